"""What the page runs, without the page: one work directory per input pair and options, the same
cached stages as `fgbg run`, progress handed to a callback. No gradio import here (the tests and
other front ends use it as it is).

Work directories live under `app_dir()/jobs/<key>/`, key = sha256 of the driving video's bytes,
the photo's bytes and the options (diffusion-only options dropped for the warp generator, where
they change nothing), so the same pair with the same options is one work directory: a second
click finds every stage cached and answers at once; a changed option gets its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

from ..params import GenerateParams
from ..report import Reporter, StageRow, Timer

SIZES = ("auto", "64", "128", "256", "384", "512", "768")
"""canvas long side choices (px); auto: the driving video's size (the diffusion model fits it)"""
DIFFUSION_MULTIPLE = 64  # the diffusion model's sizes are multiples of 64 px (8 in latent space)
PREVIEWS = ("pose", "segment", "track-bg")
# stages in the order `fgbg run` reaches them, for the progress bar's overall fraction
PROGRESS_ORDER = ("ref", "pose", "segment", "track-bg", "generate", "stitch", "previews")

OnProgress = Callable[[float, str], None]  # (fraction of the whole job 0..1, what runs now)


def app_dir() -> Path:
    """$FGBG_APP_DIR, else $XDG_CACHE_HOME/fgbg/app, else ~/.cache/fgbg/app."""
    from ..store.files import cache_dir

    return cache_dir("app", "FGBG_APP_DIR")


def ensure_sample(root: Path):
    """The built-in sample (`fgbg.sample.make_sample`, preset dance) under root/sample, made once
    (into a temporary folder renamed into place, so a crash leaves no half sample)."""
    from ..sample import SamplePaths, make_sample

    folder = Path(root) / "sample"
    paths = SamplePaths(folder / "driving.mp4", folder / "person.png", folder / "truth.npz")
    if paths.driving.is_file() and paths.ref.is_file():
        return paths
    tmp = Path(root) / f".sample.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    make_sample(tmp, preset="dance")
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return paths


@dataclass(frozen=True)
class Generator:
    """One choice of the page's generator menu."""

    label: str
    backend: str  # warp | diffusion
    pipeline: str = ""  # diffusion: the pipeline folder


def generators(extra_pipeline: str = "") -> list[Generator]:
    """warp, then every diffusion pipeline found: the built-in demo, the converted AnimateAnyone
    one in the model store, $FGBG_PIPELINE, and `fgbg app --pipeline DIR`."""
    from ..backends.generate.diffusion import DEMO_DIR, default_pipeline_dir

    out = [Generator("warp (weight-free preview)", "warp")]
    found = [("demo (built-in 128 px, synthetic scenes only)", DEMO_DIR), ("converted AnimateAnyone", default_pipeline_dir())]
    if os.environ.get("FGBG_PIPELINE"):
        found.append(("$FGBG_PIPELINE", Path(os.environ["FGBG_PIPELINE"])))
    if extra_pipeline:
        found.append((f"--pipeline {extra_pipeline}", Path(extra_pipeline)))
    seen = set()
    for label, folder in found:
        folder = Path(folder).expanduser().resolve()
        if (folder / "model_index.json").is_file() and folder not in seen:
            seen.add(folder)
            out.append(Generator(f"diffusion: {label}", "diffusion", str(folder)))
    return out


@dataclass(frozen=True)
class PageOptions:
    """What the page asks besides the two files (defaults from fgbg.params.GenerateParams)."""

    backend: str = "warp"
    pipeline: str = ""
    steps: int = GenerateParams.steps
    guidance_scale: float = GenerateParams.guidance_scale
    seed: int = GenerateParams.seed
    size: str = "auto"  # one of SIZES

    def keyed(self) -> dict:
        """The options as the work directory's key sees them."""
        d = asdict(self)
        if self.backend != "diffusion":
            for name in ("pipeline", "steps", "guidance_scale"):
                d[name] = getattr(PageOptions(), name)
        return d


def canvas(size: str, backend: str, video_w: int, video_h: int) -> tuple[int, int]:
    """(width, height) for GenerateParams: (0, 0) for auto, else the video's aspect with this long
    side, in multiples of 64 px for the diffusion model and of 2 px (H.264) for warp."""
    from ..errors import InputError

    if size == "auto":
        return 0, 0
    if size not in SIZES:
        raise InputError(f"size {size} is not offered", cause=f"the sizes are {', '.join(SIZES)}",
                         hint="choose auto (the video's size) or one of the listed long sides")
    side, m = int(size), DIFFUSION_MULTIPLE if backend == "diffusion" else 2
    s = side / max(video_w, video_h)
    return max(m, round(video_w * s / m) * m), max(m, round(video_h * s / m) * m)


def job_key(video: Path, ref: Path, options: PageOptions) -> str:
    from ..workdir import sha256_file

    h = hashlib.sha256()
    for part in (sha256_file(Path(video)), sha256_file(Path(ref)),
                 json.dumps(options.keyed(), sort_keys=True)):
        h.update(part.encode() + b"\0")
    return h.hexdigest()


@dataclass
class PageReporter(Reporter):
    """The Reporter of `fgbg run`, its progress bars handed to `on_progress` as the whole job's
    fraction (each stage one equal share, PROGRESS_ORDER), warnings kept for the page."""

    on_progress: Optional[OnProgress] = None
    notes: list[str] = field(default_factory=list)

    def _share(self, stage: str, inner: float, what: str) -> None:
        if self.on_progress is None:
            return
        i = PROGRESS_ORDER.index(stage) if stage in PROGRESS_ORDER else 0
        self.on_progress(min(1.0, (i + inner) / len(PROGRESS_ORDER)), what)

    def warn(self, msg: str) -> None:
        self.notes.append(msg)
        super().warn(msg)

    @contextmanager
    def progress(self, label: str, total: int | None) -> Iterator:
        stage = label.split(" ")[0]  # "pose (mediapipe)" -> pose
        done = [0]
        self._share(stage, 0.0, label)

        def advance(n: int = 1) -> None:
            done[0] += n
            unit = "clips" if stage == "generate" else "frames"
            self._share(stage, done[0] / total if total else 0.0,
                        f"{label}: {done[0]}/{total} {unit}" if total else label)

        yield advance

    def add(self, row: StageRow) -> None:
        super().add(row)
        self._share(row.stage, 1.0, f"{row.stage}: {row.status}")


@dataclass
class PageResult:
    output: Path  # the mp4, with the driving video's audio when it has one
    previews: dict[str, Path]  # pose | segment | track-bg -> preview mp4
    rows: list[StageRow]
    notes: list[str]
    seconds: float
    workdir: Path

    @property
    def cached(self) -> bool:
        return all(r.status == "cached" for r in self.rows)

    def summary(self) -> str:
        """Markdown: what ran, what was cached, how long it took."""
        lines = ["| stage | status | time |", "|---|---|---|"]
        for r in self.rows:
            lines.append(f"| {r.stage} | {r.status}{f' ({r.detail})' if r.detail else ''} | {r.seconds:.1f} s |")
        head = f"done in {self.seconds:.1f} s" + (" (everything cached)" if self.cached else "")
        notes = "".join(f"\n\nwarning: {n}" for n in self.notes)
        return f"{head}\n\n" + "\n".join(lines) + notes


def run_job(video: Path, ref: Path, options: PageOptions, *, device: str = "auto",
            on_progress: Optional[OnProgress] = None, root: Path | None = None) -> PageResult:
    """`fgbg run VIDEO --ref REF --preview` in this pair's work directory; FgbgError (with its
    error/cause/hint lines) on bad input, missing weights or a failed stage."""
    from ..cli.common import _gen_params, _job
    from ..errors import InputError
    from ..preview import write_preview
    from ..stages import generate as gen_stage
    from ..stages import reference
    from ..stages import stitch
    from ..video import probe_cached

    timer = Timer()
    if video is None or ref is None:
        raise InputError("a driving video and a reference photo are both needed",
                         cause=f"no {'driving video' if video is None else 'reference photo'} was given",
                         hint="upload both (or click the built-in sample below the inputs)")
    video, ref = Path(video), Path(ref)
    for what, path in (("driving video", video), ("reference photo", ref)):
        if not path.is_file():
            raise InputError(f"{what} {path} does not exist", cause="the upload did not arrive",
                             hint=f"upload the {what} again")
    root = Path(root) if root is not None else app_dir()
    workdir = root / "jobs" / job_key(video, ref, options)[:20]
    # a file that is not a video fails here, before anything is written (remembered in the work
    # directory once it exists: a second click starts no ffmpeg)
    info = probe_cached(video, workdir)
    width, height = canvas(options.size, options.backend, info.width, info.height)
    gen = _gen_params(options.backend, GenerateParams.clip_length, int(options.seed), width, height, True,
                      int(options.steps), float(options.guidance_scale), pipeline=options.pipeline)
    job = _job(video, workdir, ref=ref, generate=gen, device=device)
    report = PageReporter(on_progress=on_progress)
    job.report = report
    reference.check(job)
    gen_stage.check(job)
    out_dir = workdir / "output"
    with job.workdir:
        out_dir.mkdir(exist_ok=True)
        output = out_dir / f"{video.stem}.fgbg.mp4"
        stitch.check_output(output)
        reference.record(job)  # a photo without a person fails before the video is processed
        stitch.run(job, output)
        # previews are not part of any stage record: written once per work directory (its inputs
        # never change), the marker last
        folder, done = workdir / "previews", workdir / "previews" / ".complete"
        if not done.is_file():
            for i, stage in enumerate(PREVIEWS):
                report._share("previews", i / len(PREVIEWS), f"preview: {stage}")
                write_preview(job, stage)
            done.write_text("\n".join(PREVIEWS))
        report._share("previews", 1.0, "done")
    previews = {s: folder / f"{s}.mp4" for s in PREVIEWS}
    return PageResult(output, previews, list(report.rows), list(report.notes), timer.seconds, workdir)
