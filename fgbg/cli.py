"""The `fgbg` command line: one thin command per stage, plus run, sample and models.

stdout carries only the result path of each command; progress, logs and the summary go to stderr.
Heavy modules are imported inside the commands so `fgbg --help` answers at once.
"""

from __future__ import annotations

import functools
import signal
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .errors import FgbgError, InputError, Interrupted
from .params import GenerateParams, PoseParams, SegmentParams, StitchParams, TrackParams, field_help

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Animate a person photo with a driving video; the background moves as the "
                       "driving video's background moves.")
models_app = typer.Typer(no_args_is_help=True, help="Model artifacts pinned in models.lock.")
app.add_typer(models_app, name="models")

_P, _S, _T, _G, _O = (field_help(c) for c in (PoseParams, SegmentParams, TrackParams, GenerateParams,
                                               StitchParams))

# ---- shared options ---------------------------------------------------------------------------
Video = Annotated[Path, typer.Argument(help="driving video (mp4/mov/webm)", show_default=False)]
Workdir = Annotated[Optional[Path], typer.Option("-w", "--workdir", help="work directory [default: .fgbg/<video stem>]")]
Device = Annotated[str, typer.Option("--device", help="auto | cpu | cuda")]
Verbose = Annotated[bool, typer.Option("-v", "--verbose", help="debug logs and tracebacks")]
Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="no progress or summary")]
Preview = Annotated[bool, typer.Option("--preview", help="also write a preview video under <workdir>/previews/")]
Force = Annotated[bool, typer.Option("--force", help="recompute this stage even if cached")]
Ref = Annotated[Optional[Path], typer.Option("--ref", help="photo of the person to animate")]
PoseBackend = Annotated[str, typer.Option("--pose-backend", help=_P["backend"])]
SegBackend = Annotated[str, typer.Option("--seg-backend", help=_S["backend"])]
Tracker = Annotated[str, typer.Option("--tracker", help=_T["backend"])]
NumPoints = Annotated[int, typer.Option("--num-points", help=_T["num_points"])]
GenBackend = Annotated[str, typer.Option("--backend", help=_G["backend"])]
ClipLength = Annotated[int, typer.Option("--clip-length", help=_G["clip_length"])]
Seed = Annotated[int, typer.Option("--seed", help=_G["seed"])]
Width = Annotated[int, typer.Option("--width", help=_G["width"])]
Height = Annotated[int, typer.Option("--height", help=_G["height"])]
Retarget = Annotated[bool, typer.Option("--retarget/--no-retarget", help=_G["retarget"])]
Output = Annotated[Optional[Path], typer.Option("-o", "--output", help="output mp4 [default: <video stem>.fgbg.mp4]")]
Crf = Annotated[int, typer.Option("--crf", help=_O["crf"])]
Audio = Annotated[bool, typer.Option("--audio/--no-audio", help=_O["audio"])]

STAGES = ("ref", "pose", "segment", "track-bg", "generate", "stitch")


def _fail(err: FgbgError, verbose: bool) -> None:
    if verbose:
        import traceback

        traceback.print_exc(file=sys.stderr)
    for line in err.lines():
        print(line, file=sys.stderr)
    raise typer.Exit(err.exit_code)


def guarded(fn):
    """Errors become `error:/cause:/hint:` lines and the exit code DESIGN.md gives."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        verbose = bool(kwargs.get("verbose"))

        def on_term(signum, frame):
            raise KeyboardInterrupt

        old = signal.signal(signal.SIGTERM, on_term)
        native = None
        try:
            if not verbose:
                from .report import NativeStderrSilenced

                native = NativeStderrSilenced().__enter__()
            else:
                import os

                os.environ["FGBG_VERBOSE"] = "1"
            return fn(*args, **kwargs)
        except FgbgError as err:
            _fail(err, verbose)
        except KeyboardInterrupt:
            _fail(Interrupted("interrupted", cause="Ctrl-C or a termination signal",
                              hint="rerun the same command: finished stages and clips are kept and it resumes"),
                  verbose)
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:  # a bug or an unexpected failure inside a stage
            if verbose:
                import traceback

                traceback.print_exc(file=sys.stderr)
            print(f"error: a stage failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            print("cause: an unexpected error inside fgbg or a library it uses", file=sys.stderr)
            print("hint: rerun with -v for the traceback; cached results so far are kept", file=sys.stderr)
            raise typer.Exit(1)
        finally:
            if native is not None:
                native.__exit__(None, None, None)
            signal.signal(signal.SIGTERM, old)

    return wrapper


def _check_device(device: str) -> str:
    if device not in ("auto", "cpu", "cuda"):
        raise InputError(f"unknown device '{device}'", cause="fgbg runs on auto, cpu or cuda",
                         hint="use --device auto")
    return device


def _job(video: Path, workdir: Optional[Path], *, ref: Optional[Path] = None, verbose=False, quiet=False,
         force=(), pose=None, segment=None, track=None, generate=None, stitch=None, device="auto"):
    from .report import Reporter
    from .stages.base import Job
    from .video import probe
    from .workdir import Workdir as WD

    from .backends import check_name

    _check_device(device)
    for kind, params in (("pose", pose), ("segment", segment), ("track", track), ("generate", generate)):
        if params is not None:
            check_name(kind, params.backend)
    info = probe(video)
    report = Reporter(verbose=verbose, quiet=quiet)
    if max(info.width, info.height) > 1280:
        from .stages.base import processing_size

        pw, ph = processing_size(info.width, info.height)
        report.warn(f"{info.width}x{info.height} is very large: processing at {pw}x{ph}; "
                    f"the output keeps {info.width}x{info.height}")
    root = workdir if workdir is not None else Path(".fgbg") / Path(video).stem
    kw = {k: v for k, v in dict(pose=pose, segment=segment, track=track, generate=generate,
                               stitch=stitch).items() if v is not None}
    return Job(video=info, workdir=WD(root), ref_path=ref, force=frozenset(force), report=report, **kw)


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
            seg_backend: SegBackend = "auto", preview: Preview = False, force: Force = False,
            device: Device = "auto", verbose: Verbose = False, quiet: Quiet = False):
    """Person masks (person = 1) of the driving video."""
    from .stages import segment as stage

    job = _job(video, workdir, verbose=verbose, quiet=quiet, force=["segment"] if force else [],
               pose=PoseParams(backend=pose_backend), segment=SegmentParams(backend=seg_backend),
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
             seg_backend: SegBackend = "auto", preview: Preview = False, force: Force = False,
             device: Device = "auto", verbose: Verbose = False, quiet: Quiet = False):
    """Sparse background point tracks (points on the person masked out)."""
    from .stages import track as stage

    job = _job(video, workdir, verbose=verbose, quiet=quiet, force=["track-bg"] if force else [],
               pose=PoseParams(backend=pose_backend), segment=SegmentParams(backend=seg_backend),
               track=_track_params(tracker, num_points), device=device)
    with job.workdir:
        rec = stage.record(job)
        if preview:
            _write_preview(job, "track-bg")
    job.report.summary()
    print(rec.folder / "tracks.npz")


def _gen_params(backend, clip_length, seed, width, height, retarget) -> GenerateParams:
    return GenerateParams(backend=backend, clip_length=clip_length, seed=seed, width=width,
                          height=height, retarget=retarget)


@app.command("generate")
@guarded
def generate(video: Video, ref: Ref = None, workdir: Workdir = None, backend: GenBackend = "auto",
             clip_length: ClipLength = GenerateParams.clip_length, seed: Seed = GenerateParams.seed,
             width: Width = 0, height: Height = 0, retarget: Retarget = True,
             tracker: Tracker = "auto", num_points: NumPoints = TrackParams.num_points,
             pose_backend: PoseBackend = "auto", seg_backend: SegBackend = "auto",
             force: Force = False, device: Device = "auto", verbose: Verbose = False,
             quiet: Quiet = False):
    """Generate the output frames clip by clip (resumable)."""
    from .stages import generate as stage
    from .stages import reference

    job = _job(video, workdir, ref=ref, verbose=verbose, quiet=quiet,
               force=["generate"] if force else [], pose=PoseParams(backend=pose_backend),
               segment=SegmentParams(backend=seg_backend), track=_track_params(tracker, num_points),
               generate=_gen_params(backend, clip_length, seed, width, height, retarget), device=device)
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
           retarget: Retarget = True, tracker: Tracker = "auto",
           num_points: NumPoints = TrackParams.num_points, pose_backend: PoseBackend = "auto",
           seg_backend: SegBackend = "auto", crf: Crf = StitchParams.crf, audio: Audio = True,
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
               segment=SegmentParams(backend=seg_backend), track=_track_params(tracker, num_points),
               generate=_gen_params(backend, clip_length, seed, width, height, retarget),
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
        retarget: Retarget = True, tracker: Tracker = "auto",
        num_points: NumPoints = TrackParams.num_points, pose_backend: PoseBackend = "auto",
        seg_backend: SegBackend = "auto", crf: Crf = StitchParams.crf, audio: Audio = True,
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
               pose=PoseParams(backend=pose_backend), segment=SegmentParams(backend=seg_backend),
               track=_track_params(tracker, num_points),
               generate=_gen_params(backend, clip_length, seed, width, height, retarget),
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
           verbose: Verbose = False, quiet: Quiet = False):
    """Make the built-in procedural sample (driving video, reference photo, exact ground truth)."""
    from .sample import make_sample

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


@models_app.command("list")
@guarded
def models_list(all_: Annotated[bool, typer.Option("--all", help="also list artifacts no backend loads")] = False,
                verbose: Verbose = False):
    """The artifacts in models.lock and their state on this machine (present/missing/corrupt)."""
    from rich.console import Console
    from rich.table import Table

    from .weights import list_table, models_dir

    rows = list_table() if all_ else list_table(roles=("required", "optional", "training"))
    table = Table(show_edge=False, header_style="bold")
    for col in ("name", "backend", "size", "licence", "state", "path"):
        table.add_column(col)
    for r in rows:
        table.add_row(*[str(x) for x in r])
    console = Console(stderr=False, highlight=False)
    console.print(table)
    print(f"models folder: {models_dir()}", file=sys.stderr)



def _lock_entries(names: list[str]):
    from .weights import _entry, load_lock

    lock = load_lock()
    return lock, [_entry(n, lock) for n in dict.fromkeys(names)]


@models_app.command("fetch")
@guarded
def models_fetch(names: Annotated[Optional[list[str]], typer.Argument(help="artifact names (see `fgbg models list`)", show_default=False)] = None,
                 for_: Annotated[Optional[str], typer.Option("--for", help="'run': every artifact whose role is 'required' (what the default backends load)")] = None,
                 yes: Annotated[bool, typer.Option("--yes", "-y", help="accept restricting licences (non-commercial, gated, use-restricted) without asking")] = False,
                 verbose: Verbose = False, quiet: Quiet = False):
    """Download artifacts into the models folder and verify them (resumes a partial download).

    stdout: the path of each artifact, one a line."""
    from rich.console import Console
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                               TimeRemainingColumn, TransferSpeedColumn)

    from .errors import ModelError
    from .fetch import already_there, confirm_licences, download, stderr_line
    from .weights import load_lock, models_dir

    if for_ is not None and for_ != "run":
        raise InputError(f"unknown --for '{for_}'", cause="--for takes 'run'",
                         hint="use `fgbg models fetch --for run`, or name the artifacts")
    if not names and for_ is None:
        raise InputError("nothing to fetch", cause="no artifact names and no --for",
                         hint="name artifacts (`fgbg models list` shows them) or use --for run")
    lock, entries = _lock_entries(names or [])
    if for_ == "run":
        entries += [e for e in lock.values() if e.role == "required" and e not in entries]
    todo = [e for e in entries if not already_there(e)]
    done = [e for e in entries if e not in todo]
    for e in done:
        if not quiet:
            stderr_line(f"{e.name}: already present")
    ask = None
    if sys.stdin.isatty():
        ask = lambda q: typer.confirm(q, default=False, err=True)  # noqa: E731
    # git entries are not fetched yet (download() says so): no licence question for them
    confirm_licences([e for e in todo if e.kind != "git"], yes=yes, out=stderr_line, ask=ask)

    failed: list[tuple[str, ModelError]] = []
    paths = {e.name: models_dir() / e.file for e in done}
    console = Console(stderr=True, quiet=quiet)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        for e in todo:
            try:
                paths[e.name] = download(e, progress=progress,
                                         warn=lambda m: console.print(f"warning: {m}", markup=False,
                                                                      highlight=False))
            except ModelError as err:
                if len(entries) == 1:
                    raise
                failed.append((e.name, err))
                for line in err.lines():
                    console.print(line, markup=False, highlight=False)
    for e in entries:
        if e.name in paths and e.name not in dict(failed):
            print(paths[e.name])
    if failed:
        names_failed = ", ".join(n for n, _ in failed)
        raise ModelError(f"{len(failed)} of {len(entries)} artifacts could not be fetched: {names_failed}",
                         cause="see the errors above",
                         hint="fix those and rerun: finished artifacts are kept, partial ones resume")


@models_app.command("verify")
@guarded
def models_verify(names: Annotated[Optional[list[str]], typer.Argument(help="artifact names; none: every artifact on disk", show_default=False)] = None,
                  no_cache: Annotated[bool, typer.Option("--no-cache", help="rehash every file (ignore the hash cache)")] = False,
                  verbose: Verbose = False):
    """Recompute the hashes and show each artifact's state; exit 3 if one is corrupt or missing."""
    from rich.console import Console
    from rich.table import Table

    from .errors import ModelError
    from .weights import check

    lock, entries = _lock_entries(names or [])
    results = [check(e, use_cache=not no_cache) for e in (entries if names else lock.values())]
    if not names:
        results = [r for r in results if r.state != "missing"]
    table = Table(show_edge=False, header_style="bold")
    for col in ("name", "state", "detail"):
        table.add_column(col, overflow="fold")
    for r in results:
        table.add_row(r.name, r.state, r.detail)
    if results:
        Console(stderr=False, highlight=False).print(table)
    else:
        print("no artifacts on disk to verify", file=sys.stderr)
    bad = [r for r in results if r.state in ("missing", "corrupt")]
    if bad:
        raise ModelError(f"{len(bad)} artifact(s) failed verification: "
                         + ", ".join(f"{r.name} ({r.state})" for r in bad),
                         cause="; ".join(r.detail for r in bad),
                         hint=f"run `fgbg models fetch {' '.join(r.name for r in bad)}`")


@models_app.command("path")
@guarded
def models_path(name: Annotated[str, typer.Argument(help="artifact name", show_default=False)],
                verbose: Verbose = False):
    """Print the absolute path of an artifact; exit 3 when it is missing or corrupt."""
    import warnings

    from .weights import require

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = require(name)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    print(Path(path).resolve())


@models_app.command("import")
@guarded
def models_import(name: Annotated[str, typer.Argument(help="artifact name", show_default=False)],
                  file: Annotated[Path, typer.Argument(help="a file downloaded elsewhere", show_default=False)],
                  verbose: Verbose = False):
    """Copy a file downloaded elsewhere into place, verified like a fetch (for offline machines)."""
    from .fetch import import_file
    from .weights import _entry

    entry = _entry(name, None)
    path = import_file(entry, file, warn=lambda m: print(f"warning: {m}", file=sys.stderr))
    print(path)

def main() -> None:
    app(prog_name="fgbg")


if __name__ == "__main__":
    main()
