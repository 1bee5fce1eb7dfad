"""stitch: clips -> one H.264 yuv420p mp4 at the driving frame rate, with the driving audio."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
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
    _refuse_read_only(path)


def _refuse_read_only(path: Path, kept: Path | None = None) -> None:
    """A write-protected file at the output path is kept, whoever runs fgbg (root included): the
    output is swapped in by rename, which the file's own mode would not stop."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & 0o222 and os.access(path, os.W_OK):
        return
    hint = f"choose another -o path, or make it writable first: chmod u+w {path}"
    if kept is not None:
        hint = (f"the result is kept in {kept}; rerun with another -o path, or after "
                f"chmod u+w {path} (nothing is recomputed)")
    raise InputError(f"output {path} is read-only",
                     cause=f"fgbg does not replace a write-protected file (mode {stat.S_IMODE(mode):o})",
                     hint=hint)


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
    _refuse_read_only(output, kept=result)  # it may have become read-only while the stages ran
    tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    try:
        shutil.copyfile(result, tmp)
        os.replace(tmp, output)
    except OSError as exc:  # the folder turned read-only, went away or filled up during the run
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise InputError(f"cannot write output {output}", cause=exc.strerror or str(exc),
                         hint=f"the result is kept in {result}: rerun with a writable -o path "
                              "(nothing is recomputed)") from exc
    return output
