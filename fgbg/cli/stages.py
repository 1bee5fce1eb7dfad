"""`fgbg extract-pose | segment | track-bg | generate | stitch | run`: one thin command per stage,
and the whole chain. Each takes the options of the stages it runs (fgbg.cli.common.stage_options)
and prints only its result path on stdout; progress, logs and the summary go to stderr."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import InputError
from .common import (STAGES, Device, Force, Output, Preview, Quiet, Ref, StageOptions, Verbose, Video,
                     Workdir, _job, guarded, stage_options)

app = typer.Typer()  # the commands are added to fgbg.cli's app


def _write_preview(job, stage: str) -> None:
    from ..preview import write_preview

    path = write_preview(job, stage)
    job.report.info(f"preview: {path}")


def _one_stage(job, stage, name: str, main_output: str, preview: bool) -> None:
    """Run one preprocessing stage (cached), its preview if asked, the summary; print its output."""
    with job.workdir:
        rec = stage.record(job)
        if preview:
            _write_preview(job, name)
    job.report.summary()
    print(rec.folder / main_output)


def _default_output(video: Path) -> Path:
    return Path(f"{Path(video).stem}.fgbg.mp4")


@app.command("extract-pose")
@guarded
@stage_options("pose")
def extract_pose(video: Video, workdir: Workdir = None, preview: Preview = False, force: Force = False,
                 device: Device = "auto", verbose: Verbose = False, quiet: Quiet = False,
                 opts: StageOptions = None):
    """Whole-body keypoints (133, COCO-WholeBody) and DWPose-style pose maps of the driving video."""
    from ..stages import pose as stage

    job = _job(video, workdir, verbose=verbose, quiet=quiet, force=["pose"] if force else [],
               device=device, **opts.job_kwargs())
    _one_stage(job, stage, "pose", "pose.npz", preview)


@app.command("segment")
@guarded
@stage_options("pose", "segment")
def segment(video: Video, workdir: Workdir = None, preview: Preview = False, force: Force = False,
            device: Device = "auto", verbose: Verbose = False, quiet: Quiet = False,
            opts: StageOptions = None):
    """Person masks (person = 1) of the driving video."""
    from ..stages import segment as stage

    job = _job(video, workdir, verbose=verbose, quiet=quiet, force=["segment"] if force else [],
               device=device, **opts.job_kwargs())
    _one_stage(job, stage, "segment", "masks", preview)


@app.command("track-bg")
@guarded
@stage_options("track", "pose", "segment")
def track_bg(video: Video, workdir: Workdir = None, preview: Preview = False, force: Force = False,
             device: Device = "auto", verbose: Verbose = False, quiet: Quiet = False,
             opts: StageOptions = None):
    """Sparse background point tracks (points on the person masked out)."""
    from ..stages import track as stage

    job = _job(video, workdir, verbose=verbose, quiet=quiet, force=["track-bg"] if force else [],
               device=device, **opts.job_kwargs())
    _one_stage(job, stage, "track-bg", "tracks.npz", preview)


@app.command("generate")
@guarded
@stage_options("generate", "track", "pose", "segment")
def generate(video: Video, ref: Ref = None, workdir: Workdir = None, force: Force = False,
             device: Device = "auto", verbose: Verbose = False, quiet: Quiet = False,
             opts: StageOptions = None):
    """Generate the output frames clip by clip (resumable)."""
    from ..stages import generate as stage
    from ..stages import reference

    job = _job(video, workdir, ref=ref, verbose=verbose, quiet=quiet,
               force=["generate"] if force else [], device=device, **opts.job_kwargs())
    reference.check(job)
    stage.check(job)
    with job.workdir:
        rec = stage.record(job)
    job.report.summary()
    print(rec.folder / "clips")


@app.command("stitch")
@guarded
@stage_options("generate", "stitch", "track", "pose", "segment")
def stitch(video: Video, ref: Ref = None, output: Output = None, workdir: Workdir = None,
           force: Force = False, device: Device = "auto", verbose: Verbose = False, quiet: Quiet = False,
           opts: StageOptions = None):
    """Join the clips into one H.264 mp4 with the driving video's audio.

    Without --ref, joins the clips last generated in the work directory."""
    from ..stages import reference
    from ..stages import stitch as stage

    output = output or _default_output(video)
    stage.check_output(output)
    job = _job(video, workdir, ref=ref, verbose=verbose, quiet=quiet,
               force=["stitch"] if force else [], device=device, **opts.job_kwargs())
    if ref is not None:
        reference.check(job)
    with job.workdir:
        out = stage.run(job, output, use_existing=ref is None)
    job.report.summary()
    print(out)


RunForce = Annotated[list[str], typer.Option(
    "--force", help=f"recompute a stage even if cached (repeatable): {', '.join(STAGES)}, all")]


@app.command("run")
@guarded
@stage_options("generate", "stitch", "track", "pose", "segment")
def run(video: Video, ref: Ref = None, output: Output = None, workdir: Workdir = None,
        force: RunForce = [], preview: Preview = False, device: Device = "auto", verbose: Verbose = False,
        quiet: Quiet = False, opts: StageOptions = None):
    """Everything: pose, masks, background tracks, generation, stitching. Cached and resumable."""
    from ..stages import generate as gen_stage
    from ..stages import reference
    from ..stages import stitch as stage

    bad = [f for f in force if f not in STAGES + ("all",)]
    if bad:
        raise InputError(f"unknown stage '{bad[0]}' for --force", cause=f"stages are {', '.join(STAGES)}",
                         hint="e.g. --force track-bg, or --force all")
    output = output or _default_output(video)
    stage.check_output(output)
    job = _job(video, workdir, ref=ref, verbose=verbose, quiet=quiet, force=force, device=device,
               **opts.job_kwargs())
    reference.check(job)
    gen_stage.check(job)
    with job.workdir:
        reference.record(job)  # a photo without a person fails before the video is processed
        out = stage.run(job, output)
        if preview:
            for s in ("pose", "segment", "track-bg"):
                _write_preview(job, s)
    job.report.summary()
    print(out)
