"""What every `fgbg` command shares: option types (help text from fgbg.params) and the guard that
turns errors into `error:/cause:/hint:` lines with DESIGN.md's exit codes."""

from __future__ import annotations

import functools
import signal
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .errors import FgbgError, Interrupted
from .params import GenerateParams, PoseParams, SegmentParams, StitchParams, TrackParams, field_help

_P, _S, _T, _G, _O = (field_help(c) for c in (PoseParams, SegmentParams, TrackParams, GenerateParams,
                                               StitchParams))

# ---- shared options ---------------------------------------------------------------------------
Video = Annotated[Path, typer.Argument(help="driving video (mp4/mov/webm)", show_default=False)]
Workdir = Annotated[Optional[Path], typer.Option("-w", "--workdir", help="work directory [default: .fgbg/<video stem>]")]
Device = Annotated[str, typer.Option("--device", help="auto | cpu | cuda | cuda:N (auto: a GPU when torch sees one)")]
Verbose = Annotated[bool, typer.Option("-v", "--verbose", help="debug logs and tracebacks")]
Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="no progress or summary")]
Preview = Annotated[bool, typer.Option("--preview", help="also write a preview video under <workdir>/previews/")]
Force = Annotated[bool, typer.Option("--force", help="recompute this stage even if cached")]
Ref = Annotated[Optional[Path], typer.Option("--ref", help="photo of the person to animate")]
PoseBackend = Annotated[str, typer.Option("--pose-backend", help=_P["backend"])]
SegBackend = Annotated[str, typer.Option("--seg-backend", help=_S["backend"])]
SamVariant = Annotated[str, typer.Option("--sam-variant", help=_S["sam_variant"])]
Sam2Variant = Annotated[str, typer.Option("--sam2-variant", help=_S["sam2_variant"])]
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

# diffusion generator (fgbg.backends.generate.diffusion); the warp generator ignores them
Steps = Annotated[int, typer.Option("--steps", help=_G["steps"])]
Guidance = Annotated[float, typer.Option("--guidance-scale", help=_G["guidance_scale"])]
Dtype = Annotated[str, typer.Option("--dtype", help=_G["dtype"])]
LowMemory = Annotated[bool, typer.Option("--low-memory", help=_G["low_memory"])]
Offload = Annotated[bool, typer.Option("--offload", help=_G["offload"])]
PipelineDir = Annotated[str, typer.Option("--pipeline", help=_G["pipeline"])]
