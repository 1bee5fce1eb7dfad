"""The `fgbg` command line: one thin command per stage, plus run, sample and models.

stdout carries only the result path of each command; progress, logs and the summary go to stderr.
Heavy modules are imported inside the commands so `fgbg --help` answers at once.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .cli_common import (STAGES, Audio, ClipLength, Crf, Device, Dtype, Force, GenBackend, Guidance,
                         Height, LowMemory, NumPoints, Offload, Output, PipelineDir, PoseBackend,
                         Preview, Quiet, Ref, Retarget, Sam2Variant, SamVariant, Seed, SegBackend,
                         Steps, Tracker, Verbose, Video, Width, Workdir, guarded)
from .cli_models import models_app
from .errors import InputError
from .params import GenerateParams, PoseParams, SegmentParams, StitchParams, TrackParams

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Animate a person photo with a driving video; the background moves as the "
                       "driving video's background moves.")


def _job(video: Path, workdir: Optional[Path], *, ref: Optional[Path] = None, verbose=False, quiet=False,
         force=(), pose=None, segment=None, track=None, generate=None, stitch=None, device="auto"):
    from .report import Reporter
    from .stages.base import Job
    from .video import probe_cached
    from .workdir import Workdir as WD

    from .backends import check_name

    from .devices import check_device

    check_device(device)
    for kind, params in (("pose", pose), ("segment", segment), ("track", track), ("generate", generate)):
        if params is not None:
            check_name(kind, params.backend)
    root = workdir if workdir is not None else Path(".fgbg") / Path(video).stem
    info = probe_cached(video, root)
    report = Reporter(verbose=verbose, quiet=quiet)
    if max(info.width, info.height) > 1280:
        from .canvas import processing_size

        pw, ph = processing_size(info.width, info.height)
        report.warn(f"{info.width}x{info.height} is very large: processing at {pw}x{ph}; "
                    f"the output keeps {info.width}x{info.height}")
    kw = {k: v for k, v in dict(pose=pose, segment=segment, track=track, generate=generate,
                               stitch=stitch).items() if v is not None}
    return Job(video=info, workdir=WD(root), ref_path=ref, force=frozenset(force), report=report,
               device=device, **kw)


def _stitch_params(crf: int, audio: bool) -> StitchParams:
    if not 0 <= crf <= 51:
        raise InputError(f"--crf {crf} is out of range", cause="H.264 quality runs from 0 (lossless) to 51",
                         hint="use --crf 18 (visually lossless) to 28 (small files)")
    return StitchParams(crf=crf, audio=audio)


def _track_params(tracker: str, num_points: int) -> TrackParams:
    if not 5 <= num_points <= 50:
        raise InputError(f"--num-points {num_points} is out of range",
                         cause="the method uses 5 to 50 background tracks",
                         hint="use --num-points 32 (any value from 5 to 50)")
    return TrackParams(backend=tracker, num_points=num_points)


def _seg_params(seg_backend: str, sam_variant: str,
                sam2_variant: str = SegmentParams.sam2_variant) -> SegmentParams:
    from .backends.segment.sam import VARIANTS
    from .backends.segment.sam2 import VARIANTS as SAM2_VARIANTS

    if sam_variant not in VARIANTS:
        raise InputError(f"--sam-variant {sam_variant} is unknown",
                         cause=f"segment-anything has {', '.join(VARIANTS)}",
                         hint="use --sam-variant vit_b (fastest), vit_l or vit_h (best, slowest)")
    if sam2_variant not in SAM2_VARIANTS:
        raise InputError(f"--sam2-variant {sam2_variant} is unknown",
                         cause=f"SAM 2.1 has {', '.join(SAM2_VARIANTS)}",
                         hint="use --sam2-variant tiny (fastest), small, base_plus or large (best, "
                              "slowest)")
    return SegmentParams(backend=seg_backend, sam_variant=sam_variant, sam2_variant=sam2_variant)


def _write_preview(job, stage: str) -> None:
    from .preview import write_preview

    path = write_preview(job, stage)
    job.report.info(f"preview: {path}")


# ---- stage commands ---------------------------------------------------------------------------
@app.command("extract-pose")
@guarded
def extract_pose(video: Video, workdir: Workdir = None, pose_backend: PoseBackend = "auto",
                 preview: Preview = False, force: Force = False, device: Device = "auto",
                 verbose: Verbose = False, quiet: Quiet = False):
    """Whole-body keypoints (133, COCO-WholeBody) and DWPose-style pose maps of the driving video."""
    from .stages import pose as stage

    job = _job(video, workdir, verbose=verbose, quiet=quiet, force=["pose"] if force else [],
               pose=PoseParams(backend=pose_backend), device=device)
    with job.workdir:
        rec = stage.record(job)
        if preview:
            _write_preview(job, "pose")
    job.report.summary()
    print(rec.folder / "pose.npz")


@app.command("segment")
@guarded
def segment(video: Video, workdir: Workdir = None, pose_backend: PoseBackend = "auto",
            seg_backend: SegBackend = "auto", sam_variant: SamVariant = SegmentParams.sam_variant,
            sam2_variant: Sam2Variant = SegmentParams.sam2_variant,
            preview: Preview = False, force: Force = False, device: Device = "auto",
            verbose: Verbose = False, quiet: Quiet = False):
    """Person masks (person = 1) of the driving video."""
    from .stages import segment as stage

    job = _job(video, workdir, verbose=verbose, quiet=quiet, force=["segment"] if force else [],
               pose=PoseParams(backend=pose_backend),
               segment=_seg_params(seg_backend, sam_variant, sam2_variant),
               device=device)
    with job.workdir:
        rec = stage.record(job)
        if preview:
            _write_preview(job, "segment")
    job.report.summary()
    print(rec.folder / "masks")


@app.command("track-bg")
@guarded
def track_bg(video: Video, workdir: Workdir = None, tracker: Tracker = "auto",
             num_points: NumPoints = TrackParams.num_points, pose_backend: PoseBackend = "auto",
             seg_backend: SegBackend = "auto", sam_variant: SamVariant = SegmentParams.sam_variant,
             sam2_variant: Sam2Variant = SegmentParams.sam2_variant,
             preview: Preview = False, force: Force = False, device: Device = "auto",
             verbose: Verbose = False, quiet: Quiet = False):
    """Sparse background point tracks (points on the person masked out)."""
    from .stages import track as stage

    job = _job(video, workdir, verbose=verbose, quiet=quiet, force=["track-bg"] if force else [],
               pose=PoseParams(backend=pose_backend),
               segment=_seg_params(seg_backend, sam_variant, sam2_variant),
               track=_track_params(tracker, num_points), device=device)
    with job.workdir:
        rec = stage.record(job)
        if preview:
            _write_preview(job, "track-bg")
    job.report.summary()
    print(rec.folder / "tracks.npz")


def _gen_params(backend, clip_length, seed, width, height, retarget, steps=GenerateParams.steps,
                guidance_scale=GenerateParams.guidance_scale, dtype=GenerateParams.dtype,
                low_memory=False, offload=False, pipeline="") -> GenerateParams:
    if steps < 1:
        raise InputError(f"--steps {steps} is too few", cause="denoising needs at least one step",
                         hint="use --steps 25")
    if guidance_scale < 1:
        raise InputError(f"--guidance-scale {guidance_scale} is below 1",
                         cause="1 switches guidance off; below 1 pushes away from the reference",
                         hint="use --guidance-scale 3.5, or 1 for no guidance")
    if dtype not in ("auto", "fp16", "bf16", "fp32"):
        raise InputError(f"--dtype {dtype} is unknown", cause="fgbg runs the model in fp16, bf16 or fp32",
                         hint="use --dtype auto (fp16 on a GPU, fp32 on the CPU)")
    if pipeline and not (Path(pipeline) / "model_index.json").is_file():
        raise InputError(f"--pipeline {pipeline} is not a pipeline folder",
                         cause="it has no model_index.json",
                         hint="pass the folder `fgbg models convert` or training wrote")
    return GenerateParams(backend=backend, clip_length=clip_length, seed=seed, width=width,
                          height=height, retarget=retarget, steps=steps, guidance_scale=guidance_scale,
                          dtype=dtype, low_memory=low_memory, offload=offload,
                          pipeline=str(Path(pipeline).resolve()) if pipeline else "")


@app.command("generate")
@guarded
def generate(video: Video, ref: Ref = None, workdir: Workdir = None, backend: GenBackend = "auto",
             clip_length: ClipLength = GenerateParams.clip_length, seed: Seed = GenerateParams.seed,
             width: Width = 0, height: Height = 0, retarget: Retarget = True,
             steps: Steps = GenerateParams.steps, guidance_scale: Guidance = GenerateParams.guidance_scale,
             dtype: Dtype = GenerateParams.dtype, low_memory: LowMemory = False, offload: Offload = False,
             pipeline: PipelineDir = "",
             tracker: Tracker = "auto", num_points: NumPoints = TrackParams.num_points,
             pose_backend: PoseBackend = "auto", seg_backend: SegBackend = "auto",
             sam_variant: SamVariant = SegmentParams.sam_variant,
             sam2_variant: Sam2Variant = SegmentParams.sam2_variant, force: Force = False,
             device: Device = "auto", verbose: Verbose = False, quiet: Quiet = False):
    """Generate the output frames clip by clip (resumable)."""
    from .stages import generate as stage
    from .stages import reference

    job = _job(video, workdir, ref=ref, verbose=verbose, quiet=quiet,
               force=["generate"] if force else [], pose=PoseParams(backend=pose_backend),
               segment=_seg_params(seg_backend, sam_variant, sam2_variant),
               track=_track_params(tracker, num_points),
               generate=_gen_params(backend, clip_length, seed, width, height, retarget, steps,
                                   guidance_scale, dtype, low_memory, offload, pipeline), device=device)
    reference.check(job)
    stage.check(job)
    with job.workdir:
        rec = stage.record(job)
    job.report.summary()
    print(rec.folder / "clips")


def _default_output(video: Path) -> Path:
    return Path(f"{Path(video).stem}.fgbg.mp4")


@app.command("stitch")
@guarded
def stitch(video: Video, ref: Ref = None, output: Output = None, workdir: Workdir = None,
           backend: GenBackend = "auto", clip_length: ClipLength = GenerateParams.clip_length,
           seed: Seed = GenerateParams.seed, width: Width = 0, height: Height = 0,
           retarget: Retarget = True,
           steps: Steps = GenerateParams.steps, guidance_scale: Guidance = GenerateParams.guidance_scale,
           dtype: Dtype = GenerateParams.dtype, low_memory: LowMemory = False, offload: Offload = False,
           pipeline: PipelineDir = "", tracker: Tracker = "auto",
           num_points: NumPoints = TrackParams.num_points, pose_backend: PoseBackend = "auto",
           seg_backend: SegBackend = "auto", sam_variant: SamVariant = SegmentParams.sam_variant,
           sam2_variant: Sam2Variant = SegmentParams.sam2_variant,
           crf: Crf = StitchParams.crf, audio: Audio = True,
           force: Force = False, device: Device = "auto", verbose: Verbose = False,
           quiet: Quiet = False):
    """Join the clips into one H.264 mp4 with the driving video's audio.

    Without --ref, joins the clips last generated in the work directory."""
    from .stages import reference
    from .stages import stitch as stage

    output = output or _default_output(video)
    stage.check_output(output)
    job = _job(video, workdir, ref=ref, verbose=verbose, quiet=quiet,
               force=["stitch"] if force else [], pose=PoseParams(backend=pose_backend),
               segment=_seg_params(seg_backend, sam_variant, sam2_variant),
               track=_track_params(tracker, num_points),
               generate=_gen_params(backend, clip_length, seed, width, height, retarget, steps,
                                   guidance_scale, dtype, low_memory, offload, pipeline),
               stitch=_stitch_params(crf, audio), device=device)
    if ref is not None:
        reference.check(job)
    with job.workdir:
        out = stage.run(job, output, use_existing=ref is None)
    job.report.summary()
    print(out)


@app.command("run")
@guarded
def run(video: Video, ref: Ref = None, output: Output = None, workdir: Workdir = None,
        backend: GenBackend = "auto", clip_length: ClipLength = GenerateParams.clip_length,
        seed: Seed = GenerateParams.seed, width: Width = 0, height: Height = 0,
        retarget: Retarget = True,
        steps: Steps = GenerateParams.steps, guidance_scale: Guidance = GenerateParams.guidance_scale,
        dtype: Dtype = GenerateParams.dtype, low_memory: LowMemory = False, offload: Offload = False,
        pipeline: PipelineDir = "", tracker: Tracker = "auto",
        num_points: NumPoints = TrackParams.num_points, pose_backend: PoseBackend = "auto",
        seg_backend: SegBackend = "auto", sam_variant: SamVariant = SegmentParams.sam_variant,
        sam2_variant: Sam2Variant = SegmentParams.sam2_variant,
        crf: Crf = StitchParams.crf, audio: Audio = True,
        force: Annotated[list[str], typer.Option("--force", help=f"recompute a stage even if cached (repeatable): {', '.join(STAGES)}, all")] = [],
        preview: Preview = False, device: Device = "auto", verbose: Verbose = False,
        quiet: Quiet = False):
    """Everything: pose, masks, background tracks, generation, stitching. Cached and resumable."""
    from .stages import generate as gen_stage
    from .stages import reference
    from .stages import stitch as stage

    bad = [f for f in force if f not in STAGES + ("all",)]
    if bad:
        raise InputError(f"unknown stage '{bad[0]}' for --force", cause=f"stages are {', '.join(STAGES)}",
                         hint="e.g. --force track-bg, or --force all")
    output = output or _default_output(video)
    stage.check_output(output)
    job = _job(video, workdir, ref=ref, verbose=verbose, quiet=quiet, force=force,
               pose=PoseParams(backend=pose_backend),
               segment=_seg_params(seg_backend, sam_variant, sam2_variant),
               track=_track_params(tracker, num_points),
               generate=_gen_params(backend, clip_length, seed, width, height, retarget, steps,
                                   guidance_scale, dtype, low_memory, offload, pipeline),
               stitch=_stitch_params(crf, audio), device=device)
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


# ---- sample and models ------------------------------------------------------------------------
@app.command("sample")
@guarded
def sample(folder: Annotated[Path, typer.Argument(help="folder to write driving.mp4, person.png, truth.npz")],
           preset: Annotated[str, typer.Option("--preset", help="scene preset")] = "dance",
           seed: Annotated[int, typer.Option("--seed")] = 0,
           frames: Annotated[int, typer.Option("--frames", help="number of frames")] = 48,
           size: Annotated[int, typer.Option("--size", help="width and height in pixels")] = 256,
           count: Annotated[Optional[int], typer.Option("--count", help="make this many varied scenes (training data) into FOLDER/train and FOLDER/holdout instead of one sample; --preset is then drawn per scene")] = None,
           holdout: Annotated[int, typer.Option("--holdout", help="with --count: how many scenes are held out (disjoint hues and seeds)")] = 0,
           verbose: Verbose = False, quiet: Quiet = False):
    """Make the built-in procedural sample (driving video, reference photo, exact ground truth),
    or with --count many varied scenes for training and evaluation."""
    from .sample import make_sample

    if count is not None:
        from .cli_data import make_many

        make_many(folder, count, holdout, seed, frames, size, verbose, quiet)
        return

    if frames < 2:
        raise InputError(f"--frames {frames} is too few", cause="a video needs at least 2 frames",
                         hint="use --frames 48")
    if size < 64 or size > 2048:
        raise InputError(f"--size {size} is out of range", cause="the sample is made at 64..2048 px",
                         hint="use --size 256")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create {folder}", cause=str(exc), hint="choose a writable folder") from exc
    paths = make_sample(folder, preset=preset, seed=seed, num_frames=frames, width=size, height=size)
    if not quiet:
        print(f"sample: {paths.driving}  {paths.ref}  {paths.truth}", file=sys.stderr)
    print(folder)


app.add_typer(models_app, name="models")


def _register_training_commands() -> None:
    from .cli_data import prepare
    from .cli_train import evaluate, train

    app.command("prepare")(prepare)
    app.command("train")(train)
    app.command("eval")(evaluate)


_register_training_commands()


def main() -> None:
    app(prog_name="fgbg")


if __name__ == "__main__":
    main()
