"""`fgbg train CONFIG`: one training stage (see fgbg/training). Multi-GPU/multi-node:
`accelerate launch -m fgbg.cli train CONFIG` with no code change."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import Quiet, Verbose, guarded
from ..params import GenerateParams


@guarded
def train(config: Annotated[Path, typer.Argument(help="TOML training config (see configs/train/)")],
          resume: Annotated[bool, typer.Option("--resume", help="continue from the latest checkpoint in output_dir")] = False,
          max_steps: Annotated[Optional[int], typer.Option("--max-steps", help="override the config's max_steps")] = None,
          output_dir: Annotated[Optional[str], typer.Option("--output-dir", help="override the config's output_dir")] = None,
          verbose: Verbose = False, quiet: Quiet = False):
    """Train (stage 1: frames; stage 2: clips) and write <output_dir>/pipeline."""
    from ..training.config import load_config
    from ..training.loop import train as run_training

    cfg = load_config(config, {"max_steps": max_steps, "output_dir": output_dir})
    log = (lambda *a: None) if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    progress = bar = None
    if not quiet and sys.stderr.isatty():
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(TextColumn("train"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                       TextColumn("loss {task.fields[loss]:.4f}"), TimeRemainingColumn(), transient=True)
        task = bar.add_task("train", total=cfg.max_steps, loss=float("nan"))

        def show(step, loss):  # started on the first step: only the main process reports steps
            bar.start()
            bar.update(task, completed=step, loss=loss)
        progress = show
    try:
        final = run_training(cfg, resume=resume, progress=progress, log=log)
    finally:
        if bar is not None:
            bar.stop()
    from accelerate import PartialState  # the state the training made: which process this is

    if PartialState().is_main_process:  # one line per run, not one per process
        log(f"metrics: {Path(cfg.output_dir) / 'metrics.jsonl'}")
        print(final)


EVAL_STEPS, EVAL_GUIDANCE = 10, 3.5  # for pipelines that recommend nothing (AnimateAnyone's guidance)


def eval_settings(folder, steps, guidance_scale) -> tuple[int, float]:
    """--steps / --guidance-scale, or what the pipeline's training record recommends ("inference":
    {"steps", "guidance_scale"}, written for the shipped demo model), else 10 and 3.5."""
    from ..backends.generate.diffusion import training_record

    rec = training_record(folder).get("inference") or {}
    steps = steps if steps is not None else int(rec.get("steps", EVAL_STEPS))
    guidance = guidance_scale if guidance_scale is not None else float(rec.get("guidance_scale", EVAL_GUIDANCE))
    return steps, guidance


@guarded
def evaluate(dataset: Annotated[Path, typer.Argument(help="held-out videos, a folder written by `fgbg prepare`")],
             pipeline: Annotated[Optional[Path], typer.Option("--pipeline", help="pipeline folder (default: as generate --backend diffusion)")] = None,
             out: Annotated[Path, typer.Option("-o", "--out", help="folder for results.json, results.md, per_clip.png")] = Path("eval"),
             variants: Annotated[str, typer.Option("--variants", help="comma-separated: full, no-tracks, no-cond, no-reinject, window (AnimateAnyone's overlapping context windows instead of clip chaining), anchored (background held to the first frame's moved plate), refine (started from the warp preview), anchored-no-tracks, anchored-window (window with the background anchored)")] = "full,no-tracks,no-cond,no-reinject",
             clip_length: Annotated[int, typer.Option("--clip-length")] = 8,
             steps: Annotated[Optional[int], typer.Option("--steps", help="denoising steps per clip [default: the pipeline's recommended (fgbg_pipeline.json), else 10]", show_default=False)] = None,
             guidance_scale: Annotated[Optional[float], typer.Option("--guidance-scale", help="classifier-free guidance [default: the pipeline's recommended, else 3.5]", show_default=False)] = None,
             limit: Annotated[Optional[int], typer.Option("--limit", help="at most this many videos")] = None,
             frames: Annotated[Optional[int], typer.Option("--frames", help="at most this many frames per video")] = None,
             device: Annotated[str, typer.Option("--device")] = "auto",
             pose_backend: Annotated[str, typer.Option("--pose-backend", help="pose estimator for PCK: auto, dwpose, mediapipe, or none to skip PCK")] = "auto",
             tracker: Annotated[str, typer.Option("--tracker", help="tracker for the background-track error: auto (cotracker when its code and weights are in the store, else lk), cotracker, lk")] = "auto",
             anchor_steps: Annotated[float, typer.Option("--anchor-steps", help="anchored variants: share of the steps the background is held (as generate's)")] = GenerateParams.anchor_steps,
             strength: Annotated[float, typer.Option("--strength", help="refine: noise level the warp preview is started from (as generate's)")] = GenerateParams.strength,
             verbose: Verbose = False, quiet: Quiet = False):
    """Reconstruct held-out videos from their first frame, pose and tracks, and score them:
    image metrics, background-track error, seam jump, colour drift, per ablation variant."""
    from ..backends import build, check_name, resolve
    from ..backends.generate.diffusion import check_background, pipeline_dir
    from ..devices import resolve_device
    from ..diffusion.backends_util import quiet_diffusers
    from ..diffusion.pipeline import FgbgPipeline
    from ..errors import InputError, ModelError
    from ..evaluation.runner import VARIANTS, evaluate as run_eval, write_report

    chosen = [v.strip() for v in variants.split(",") if v.strip()]
    bad = [v for v in chosen if v not in VARIANTS]
    if bad or not chosen:
        raise InputError(f"unknown variant '{(bad or [''])[0]}'", cause=f"the variants are {', '.join(VARIANTS)}",
                         hint="e.g. --variants full,no-tracks")
    check_background(GenerateParams(backend="diffusion", anchor_steps=anchor_steps, strength=strength))
    check_name("track", tracker)  # names checked before anything loads
    if pose_backend != "none":
        check_name("pose", pose_backend)
    folder = pipeline or pipeline_dir(GenerateParams())
    if not (Path(folder) / "model_index.json").is_file():
        raise ModelError(f"no pipeline at {folder}", cause="eval needs a trained or converted pipeline",
                         hint="pass --pipeline DIR (e.g. <output_dir>/pipeline of `fgbg train`)")
    steps, guidance_scale = eval_settings(folder, steps, guidance_scale)
    quiet_diffusers()
    pipe = FgbgPipeline.from_pretrained(folder).to(resolve_device(device))
    pipe.set_progress_bar_config(disable=True)
    # the eval tracks with one of track-bg's trackers: the same names, the same `auto`
    tracker = resolve("track", tracker)[0] if tracker == "auto" else tracker
    track_with = None
    if tracker == "cotracker":
        from ..evaluation.query_trackers import CoTrackerQueryTracker

        track_with = CoTrackerQueryTracker(device=str(resolve_device(device)))
    estimator = None
    if pose_backend != "none":
        from ..params import PoseParams

        name, _ = resolve("pose", pose_backend, PoseParams(backend=pose_backend))
        estimator = build("pose", name, PoseParams(backend=name), device=device)
    try:
        results = run_eval(pipe, dataset, chosen, clip_length=clip_length, steps=steps, guidance=guidance_scale,
                           limit=limit, num_frames=frames, pose_estimator=estimator, tracker=track_with,
                           anchor_steps=anchor_steps, strength=strength,
                           progress=None if quiet else (lambda what: print(f"scored {what}", file=sys.stderr,
                                                                           flush=True)))
    finally:
        from ..backends import release

        for held in (estimator, track_with):
            if held is not None:
                release(held)
    results["settings"] = {"pipeline": str(folder), "clip_length": clip_length, "steps": steps,
                           "guidance_scale": guidance_scale, "tracker": tracker, "anchor_steps": anchor_steps,
                           "strength": strength}
    table = write_report(results, out)
    if not quiet:
        print(table, file=sys.stderr)
    print(out / "results.json")
    if results.get("failed"):
        from ..errors import StageError

        v, why = next(iter(results["failed"].items()))
        raise StageError(f"{len(results['failed'])} variant(s) failed: {', '.join(results['failed'])}",
                         cause=f"{v}: {why}",
                         hint=f"the figures of the others are in {out / 'results.json'}")
