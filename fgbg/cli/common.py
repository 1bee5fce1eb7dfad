"""What every `fgbg` command shares: option types (help text from fgbg.params), the option groups
of the stages (defined once, added to each command that runs those stages by `stage_options`),
the job a command works on, and the guard that turns errors into `error:/cause:/hint:` lines with
DESIGN.md's exit codes."""

from __future__ import annotations

import functools
import inspect
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import FgbgError, InputError, Interrupted
from ..params import GenerateParams, PoseParams, SegmentParams, StitchParams, TrackParams, field_help

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
Camera = Annotated[str, typer.Option("--camera", help=_T["camera"])]
BackgroundFrom = Annotated[str, typer.Option("--background-from", metavar="OTHER.mp4", help=_T["background_from"])]
GenBackend = Annotated[str, typer.Option("--backend", help=_G["backend"])]
ClipLength = Annotated[int, typer.Option("--clip-length", help=_G["clip_length"])]
Seed = Annotated[int, typer.Option("--seed", help=_G["seed"])]
Width = Annotated[int, typer.Option("--width", help=_G["width"])]
Height = Annotated[int, typer.Option("--height", help=_G["height"])]
Retarget = Annotated[bool, typer.Option("--retarget/--no-retarget", help=_G["retarget"])]
Output = Annotated[Optional[Path], typer.Option("-o", "--output", help="output mp4 [default: <video stem>.fgbg.mp4]")]
Crf = Annotated[int, typer.Option("--crf", help=_O["crf"])]
Audio = Annotated[bool, typer.Option("--audio/--no-audio", help=_O["audio"])]
# where batch work runs (fgbg.engines): prepare, batch
Engine = Annotated[str, typer.Option("--engine", help="local (this process) | ray (worker actors on a "
                                                      "Ray cluster; pip install 'fgbg[ray]')")]
Address = Annotated[Optional[str], typer.Option("--address", help="with --engine ray: the cluster to join "
                                                                  "(HOST:6379, or auto) [default: "
                                                                  "$RAY_ADDRESS, else a local one]")]
Workers = Annotated[Optional[int], typer.Option("--workers", help="with --engine ray: worker processes "
                                                                  "[default: one per CPU, or per GPU "
                                                                  "share]")]
GpusPerWorker = Annotated[float, typer.Option("--gpus-per-worker", help="with --engine ray: the GPU share "
                                                                        "each worker gets (0: CPU "
                                                                        "workers; 0.5: two per GPU)")]

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
                from ..report import NativeStderrSilenced

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
Background = Annotated[str, typer.Option("--background", help=_G["background"])]
AnchorSteps = Annotated[float, typer.Option("--anchor-steps", help=_G["anchor_steps"])]
InitFrom = Annotated[str, typer.Option("--init", help=_G["init"])]
Strength = Annotated[float, typer.Option("--strength", help=_G["strength"])]
BackgroundImage = Annotated[str, typer.Option("--background-image", metavar="BG.png", help=_G["background_image"])]


# ---- option groups: each stage's options, defined once -----------------------------------------
@dataclass(frozen=True)
class Opt:
    name: str  # the command function's parameter name
    annotation: object  # the Annotated typer.Option above
    default: object


POSE_OPTIONS = (Opt("pose_backend", PoseBackend, "auto"),)
SEGMENT_OPTIONS = (Opt("seg_backend", SegBackend, "auto"),
                   Opt("sam_variant", SamVariant, SegmentParams.sam_variant),
                   Opt("sam2_variant", Sam2Variant, SegmentParams.sam2_variant))
TRACK_OPTIONS = (Opt("tracker", Tracker, "auto"), Opt("num_points", NumPoints, TrackParams.num_points),
                 Opt("camera", Camera, TrackParams.camera),
                 Opt("background_from", BackgroundFrom, TrackParams.background_from))
GENERATE_OPTIONS = (Opt("backend", GenBackend, "auto"),
                    Opt("clip_length", ClipLength, GenerateParams.clip_length),
                    Opt("seed", Seed, GenerateParams.seed), Opt("width", Width, 0), Opt("height", Height, 0),
                    Opt("retarget", Retarget, True), Opt("steps", Steps, GenerateParams.steps),
                    Opt("guidance_scale", Guidance, GenerateParams.guidance_scale),
                    Opt("dtype", Dtype, GenerateParams.dtype), Opt("low_memory", LowMemory, False),
                    Opt("offload", Offload, False), Opt("pipeline", PipelineDir, ""),
                    Opt("background", Background, GenerateParams.background),
                    Opt("anchor_steps", AnchorSteps, GenerateParams.anchor_steps),
                    Opt("init", InitFrom, GenerateParams.init), Opt("strength", Strength, GenerateParams.strength),
                    Opt("background_image", BackgroundImage, ""))
STITCH_OPTIONS = (Opt("crf", Crf, StitchParams.crf), Opt("audio", Audio, True))
ORDER = ("pose", "segment", "track", "generate", "stitch")  # the order options are checked in
GROUPS = {"pose": POSE_OPTIONS, "segment": SEGMENT_OPTIONS, "track": TRACK_OPTIONS,
          "generate": GENERATE_OPTIONS, "stitch": STITCH_OPTIONS}


@dataclass(frozen=True)
class StageOptions:
    """The checked params of the stages a command runs (None: the command does not run it)."""

    pose: PoseParams | None = None
    segment: SegmentParams | None = None
    track: TrackParams | None = None
    generate: GenerateParams | None = None
    stitch: StitchParams | None = None

    def job_kwargs(self) -> dict:
        return {k: v for k, v in vars(self).items() if v is not None}


def _build(group: str, v: dict):
    if group == "pose":
        return PoseParams(backend=v["pose_backend"])
    if group == "segment":
        return _seg_params(v["seg_backend"], v["sam_variant"], v["sam2_variant"])
    if group == "track":
        return _track_params(v["tracker"], v["num_points"], v["camera"], v["background_from"])
    if group == "generate":
        return _gen_params(v["backend"], v["clip_length"], v["seed"], v["width"], v["height"], v["retarget"],
                           v["steps"], v["guidance_scale"], v["dtype"], v["low_memory"], v["offload"],
                           v["pipeline"], v["background"], v["anchor_steps"], v["init"], v["strength"],
                           background_image=v["background_image"])
    return _stitch_params(v["crf"], v["audio"])


def stage_options(*groups: str):
    """Add the options of these stage groups (pose, segment, track, generate, stitch) to a command:
    the command declares `opts: StageOptions` and receives them checked and built. One definition
    of each option serves every command that runs its stage."""
    extra = [o for g in groups for o in GROUPS[g]]

    def deco(fn):
        sig = inspect.signature(fn, eval_str=True)
        own = [p for p in sig.parameters.values() if p.name != "opts"]
        kw = inspect.Parameter.KEYWORD_ONLY
        params = [p.replace(kind=kw) if p.default is not p.empty else p for p in own]
        params += [inspect.Parameter(o.name, kw, annotation=o.annotation, default=o.default) for o in extra]

        @functools.wraps(fn)
        def command(*args, **kwargs):
            values = {o.name: kwargs.pop(o.name) for o in extra}
            # checked in the stages' order, so a bad option is named before any work starts
            opts = StageOptions(**{g: _build(g, values) for g in ORDER if g in groups})
            return fn(*args, opts=opts, **kwargs)

        del command.__wrapped__  # typer reads the signature below, not fn's
        command.__signature__ = sig.replace(parameters=params)
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return deco


# ---- the job a stage command works on ----------------------------------------------------------
def _job(video: Path, workdir: Optional[Path], *, ref: Optional[Path] = None, verbose=False, quiet=False,
         force=(), pose=None, segment=None, track=None, generate=None, stitch=None, device="auto"):
    from ..report import Reporter
    from ..stages.base import Job
    from ..video import probe_cached
    from ..workdir import Workdir as WD

    from ..backends import check_name
    from ..devices import check_device

    check_device(device)
    for kind, params in (("pose", pose), ("segment", segment), ("track", track), ("generate", generate)):
        if params is not None:
            check_name(kind, params.backend)
    root = workdir if workdir is not None else Path(".fgbg") / Path(video).stem
    info = probe_cached(video, root)
    report = Reporter(verbose=verbose, quiet=quiet)
    if max(info.width, info.height) > 1280:
        from ..canvas import processing_size

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


def _track_params(tracker: str, num_points: int, camera: str = "", background_from: str = "") -> TrackParams:
    if not 5 <= num_points <= 50:
        raise InputError(f"--num-points {num_points} is out of range",
                         cause="the method uses 5 to 50 background tracks",
                         hint="use --num-points 32 (any value from 5 to 50)")
    if camera:
        from ..camera import parse

        parse(camera)  # a bad spec is named before any work
    if background_from:
        from ..video import probe

        if camera:
            raise InputError("--camera and --background-from both set the background's motion",
                             cause="the background follows one source: a camera path or another video",
                             hint="keep one of them")
        probe(background_from)  # a missing or unreadable video is named before any work
        background_from = str(Path(background_from).resolve())
    return TrackParams(backend=tracker, num_points=num_points, camera=camera, background_from=background_from)


def _seg_params(seg_backend: str, sam_variant: str,
                sam2_variant: str = SegmentParams.sam2_variant) -> SegmentParams:
    from ..backends.segment.sam import VARIANTS
    from ..backends.segment.sam2 import VARIANTS as SAM2_VARIANTS

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


def _gen_params(backend, clip_length, seed, width, height, retarget, steps=GenerateParams.steps,
                guidance_scale=GenerateParams.guidance_scale, dtype=GenerateParams.dtype,
                low_memory=False, offload=False, pipeline="", background=GenerateParams.background,
                anchor_steps=GenerateParams.anchor_steps, init=GenerateParams.init,
                strength=GenerateParams.strength, background_image="") -> GenerateParams:
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
                          pipeline=str(Path(pipeline).resolve()) if pipeline else "",
                          background=background, anchor_steps=anchor_steps, init=init, strength=strength,
                          background_image=str(Path(background_image).resolve()) if background_image else "")
