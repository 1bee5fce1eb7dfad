"""stitch: clips -> one H.264 yuv420p mp4 at the driving frame rate, with the driving audio."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..errors import InputError
from ..video import write_video
from . import generate as generate_stage
from .base import Job, ensure, make_key

NAME = "stitch"
VERSION = 1


def output_size(job: Job) -> tuple[int, int]:
    """The driving video's size when the canvas is the (maybe downscaled) processing size; else the
    canvas the user asked for. yuv420p needs even sizes: odd ones lose their last row/column."""
    if not job.generate.width and not job.generate.height:
        w, h = job.video.width, job.video.height
    else:
        w, h = job.canvas_size
    return w // 2 * 2, h // 2 * 2


def check_output(path: Path) -> None:
    """Fail before any work when the output cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"output {path} is a folder", cause="-o names the mp4 file to write",
                         hint=f"use -o {path / 'out.mp4'}")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"output folder {folder} does not exist", cause="fgbg does not create it",
                         hint=f"mkdir -p {folder}   (or choose another -o)")
    try:  # a real write: permission bits say nothing for root, read-only mounts, /proc ...
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".fgbg-probe-"):
            pass
    except OSError as exc:
        raise InputError(f"output folder {folder} is not writable", cause=exc.strerror or str(exc),
                         hint="choose a writable -o path") from exc
    if path.suffix.lower() not in (".mp4", ".m4v", ".mov"):
        raise InputError(f"output {path} is not an .mp4 path", cause="fgbg writes H.264 mp4",
                         hint=f"use -o {path.with_suffix('.mp4')}")


def run(job: Job, output: Path | None = None, use_existing: bool = False) -> Path:
    """Stitch the clips of `generate` (computed first if needed). With use_existing, stitch the
    clips last generated in the work directory instead (no reference photo needed)."""
    if use_existing:
        gen_rec = job.workdir.latest(generate_stage.NAME)
        if gen_rec is None:
            raise InputError(f"no generated clips in {job.workdir.root}",
                             cause="stitch without --ref joins the clips of an earlier generate",
                             hint=f"run `fgbg generate {job.video.path} --ref PHOTO` first, or add --ref PHOTO")
    else:
        gen_rec = generate_stage.record(job)
    w, h = output_size(job)
    audio = job.stitch.audio and job.video.has_audio
    key = make_key(NAME, VERSION, job.stitch, {"video": job.video_hash()}, {"generate": gen_rec.key},
                   {}, extra={"size": [w, h], "audio": audio})

    def build_out(tmp: Path) -> dict:
        vw, vh = job.video.width, job.video.height
        if (w, h) == (vw // 2 * 2, vh // 2 * 2) and (w, h) != (vw, vh):
            job.report.warn(f"the driving video is {vw}x{vh}; the output is {w}x{h} "
                            "(H.264 yuv420p needs even sizes, so the last odd row/column is dropped)")
        target = job.canvas_size if (job.generate.width or job.generate.height) else (vw, vh)
        write_video(tmp / "out.mp4", generate_stage.iter_frames(gen_rec, target), job.video.fps,
                    crf=job.stitch.crf, audio=job.video.path if audio else None,
                    duration=job.video.num_frames / job.video.fps)
        return {"summary": f"{w}x{h} @ {job.video.fps:g} fps" + (", audio" if audio else "")}

    rec = ensure(job, NAME, key, build_out, "out.mp4")
    result = rec.folder / "out.mp4"
    if output is None:
        return result
    output = Path(output)
    tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    shutil.copyfile(result, tmp)
    os.replace(tmp, output)
    return output
