"""`fgbg train CONFIG`: one training stage (see fgbg/training). Multi-GPU/multi-node:
`accelerate launch -m fgbg.cli train CONFIG` with no code change."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .cli_common import Quiet, Verbose, guarded


@guarded
def train(config: Annotated[Path, typer.Argument(help="TOML training config (see configs/train/)")],
          resume: Annotated[bool, typer.Option("--resume", help="continue from the latest checkpoint in output_dir")] = False,
          max_steps: Annotated[Optional[int], typer.Option("--max-steps", help="override the config's max_steps")] = None,
          output_dir: Annotated[Optional[str], typer.Option("--output-dir", help="override the config's output_dir")] = None,
          verbose: Verbose = False, quiet: Quiet = False):
    """Train (stage 1: frames; stage 2: clips) and write <output_dir>/pipeline."""
    from .training.config import load_config
    from .training.loop import train as run_training

    cfg = load_config(config, {"max_steps": max_steps, "output_dir": output_dir})
    log = (lambda *a: None) if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    progress = None
    if not quiet and sys.stderr.isatty():
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(TextColumn("train"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                       TextColumn("loss {task.fields[loss]:.4f}"), TimeRemainingColumn(), transient=True)
        task = bar.add_task("train", total=cfg.max_steps, loss=float("nan"))
        bar.start()
        progress = lambda step, loss: bar.update(task, completed=step, loss=loss)  # noqa: E731
    try:
        final = run_training(cfg, resume=resume, progress=progress, log=log)
    finally:
        if progress is not None:
            bar.stop()
    log(f"metrics: {Path(cfg.output_dir) / 'metrics.jsonl'}")
    print(final)
