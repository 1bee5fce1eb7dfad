"""`fgbg sample` and `fgbg prepare`: the built-in sample (or many synthetic scenes), and training
data from a folder of videos.

The functions are typer commands, not registered here: fgbg.cli adds them to its app.
stdout carries only the dataset (or scenes) folder; progress and the summary go to stderr.
Exit codes as DESIGN.md gives them; `prepare` exits 1 when any video failed, after finishing the
others (a rerun retries only the failed and missing ones).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import InputError
from .common import Address, Device, Engine, GpusPerWorker, Quiet, Verbose, Workers, guarded


@guarded
def prepare(videos_dir: Annotated[Path, typer.Argument(help="folder of videos, searched recursively "
                                                            "(.mp4 .mov .mkv .webm .avi)", show_default=False)],
            dataset_dir: Annotated[Path, typer.Argument(help="dataset folder to write (videos/<id>/, "
                                                             "index-<i>-of-<N>.jsonl)", show_default=False)],
            shard: Annotated[str, typer.Option("--shard", help="this machine's part i/N: the videos whose "
                                                               "position % N == i")] = "0/1",
            size: Annotated[int, typer.Option("--size", help="side of the square training frames (each "
                                                             "frame is scaled to cover it, centre-cropped)")] = 128,
            keep_work: Annotated[bool, typer.Option("--keep-work", help="keep each video's stage cache "
                                                                        "under <dataset>/work/")] = False,
            engine: Engine = "local", address: Address = None, workers: Workers = None,
            gpus_per_worker: GpusPerWorker = 0.0,
            device: Device = "auto", verbose: Verbose = False, quiet: Quiet = False):
    """Preprocess every video (pose, segment, track-bg) into training samples: frames, pose, masks and
    background tracks at SIZE x SIZE. Resumable: finished videos are skipped on a rerun. A video that
    fails is recorded in <dataset>/failed-<i>-of-<N>.json and the others go on; the exit code is then 1.
    With --engine ray the videos are spread over the workers of a Ray cluster."""
    from ..training.prepare import format_summary, parse_shard
    from ..training.prepare import prepare as run_prepare
    from ..report import Reporter

    i, n = parse_shard(shard)
    report = Reporter(verbose=verbose, quiet=quiet)
    summary = run_prepare(videos_dir, dataset_dir, shard=(i, n), size=size, report=report,
                          device=device, keep_work=keep_work, engine=engine, address=address,
                          workers=workers, gpus_per_worker=gpus_per_worker)
    if not quiet or summary["failed"]:
        print(format_summary(summary), file=sys.stderr)
    if summary["failed"]:
        print(f"hint: see {Path(dataset_dir) / f'failed-{i}-of-{n}.json'}; rerun the same command to "
              "retry the failed videos (finished ones are skipped)", file=sys.stderr)
    print(dataset_dir)
    if summary["failed"]:
        raise typer.Exit(1)


def make_many(out_dir: Path, count: int, holdout: int, seed: int, frames: int, size: int,
              verbose: bool, quiet: bool) -> None:
    """`fgbg sample DIR --count N [--holdout K]`."""
    from ..errors import InputError
    from ..report import Reporter
    from ..sample.many import make_samples

    if count < 1 or not 0 <= holdout <= count:
        raise InputError(f"--count {count} --holdout {holdout} is not a split",
                         cause="count must be >= 1 and holdout between 0 and count",
                         hint="e.g. --count 48 --holdout 8")
    report = Reporter(verbose=verbose, quiet=quiet)
    made = []

    def on_scene(entry, new):
        made.append(new)
        report.info(f"[{len(made)}/{count}] {entry['path']}" + ("" if new else " (kept)"))

    entries = make_samples(out_dir, count, seed=seed, num_frames=frames, size=size, holdout=holdout,
                           on_scene=on_scene)
    if not quiet:
        held = sum(e["split"] == "holdout" for e in entries)
        print(f"samples: {len(entries) - held} train + {held} held-out scenes ({sum(made)} rendered, "
              f"{len(made) - sum(made)} kept); index {Path(out_dir) / 'index.json'}", file=sys.stderr)
    print(out_dir)


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
    from ..sample import make_sample

    if count is not None:

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
