"""One prepared GPU check: the fgbg diffusion model at its real size and the weight-backed
preprocessing backends at 720p, printed as ONE markdown table on stdout (all else on stderr).

    bash bench/gpu_check.sh                 # on a GPU machine: at most 8 minutes in all
    bash bench/gpu_check.sh --smoke         # the same code on the CPU at a tiny size (< 1 min)
    bash bench/gpu_check.sh --pack          # here: pack what the GPU image lacks (see the .sh)
    .venv/bin/python bench/gpu_check.py --help

Rows (every weight-backed model runs with random weights, built locally: the same cost as the
trained ones; nothing is downloaded):

- device: name, torch / CUDA versions, the bf16 dense tensor peak used for the TFLOP/s share
  (a table of vendor datasheet numbers by device name, "unknown" for others).
- diffusion, 4 rows (fp16 and bf16, each with batched CFG and with --low-memory, bench_diffusion's
  options `batched` and `low-memory`): the SD1.5-size fgbg model (`build_pipeline("sd15")`) at
  512x768 (width x height), one 24-frame clip, 25 DDIM steps, CFG 3.5, through
  bench_diffusion.bench_one. Seconds per output frame = (condition encoding + all steps + VAE
  decode of the clip) / 24; the reference pass (once per video) is not in it, its time is in the
  notes. Normally the 25 steps are timed; where the time budget would not allow
  it, fewer are timed and each missing step is added at the measured step time (the row says so).
  Peak GPU GiB: torch.cuda.max_memory_allocated, reset after the model is built (the weights are
  counted, they are allocated). UNet TFLOP/s: FLOPs of one CFG step (one batch-2 UNet call, or the
  two batch-1 calls of --low-memory) counted by torch.utils.flop_counter.FlopCounterMode on the
  device run, over the mean time of 2 timed steps after a warm-up.
- DWPose: fgbg's own pre/post-processing (letterbox, YOLOX decode, NMS, crops, SimCC) and
  onnxruntime on STAND-IN graphs with the real files' input/output signature (tests/backends/
  test_dwpose.py), not the YOLOX-L / DWPose-L networks, so it is a lower bound.
- SAM 2: the sam2 backend (SAM 2.1 hiera tiny video predictor, full size, fp32), prompted from the
  pose, chunks of 32 frames as the segment stage feeds it.
- CoTracker3 offline: the fgbg cotracker backend on upstream's model code (from the pinned
  autosegmentor wheel, tests/backends/cotracker_hub.py), full size.
  The backends run on a drawn 1280x720 video of a moving person (tests/backends/drawn_people.py:
  in memory, no ffmpeg needed) with its exact joints and masks, after a warm-up on 8 frames.

Every row is guarded: a failure (out of memory, a missing package, ...) prints as
"failed: <reason>" and the check goes on. A global time budget (--budget seconds, counted from
just after torch is imported; gpu_check.sh passes what is left of its 480 s) is shared out: each
row runs under an alarm at what is left minus the minimum the later rows need ("failed: time
budget" when it rings), and a row that cannot get its minimum prints "skipped: time budget". The
diffusion rows after the first also time fewer steps when the last row's step time says 25 would
not fit. Rows print as they finish, so even a run killed from outside leaves its finished rows.

--smoke runs the same code on the CPU at a tiny size (tiny model config, 64x64, 2 frames, 1 step;
a 160x90 video of a few frames; a reduced SAM 2 as in the tests): the table's numbers then mean
nothing, the point is that the script works. Without CUDA and without --smoke it exits 2.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import math
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _paths() -> None:
    """What the rows import: bench_diffusion / bench_backends, the tests' stand-in builders and
    drawn video, and fgbg itself from this tree when it is not installed."""
    for p in (ROOT / "tests" / "backends", HERE):
        if str(p) not in sys.path:
            sys.path.insert(0, str(p))
    if importlib.util.find_spec("fgbg") is None:  # a bare copy of the tree: use it uninstalled
        sys.path.insert(0, str(ROOT))


# bf16 dense tensor-core peaks in TFLOP/s (vendor datasheets, without sparsity), matched as a
# substring of torch.cuda.get_device_name(); first match wins (so the more specific names first)
BF16_DENSE_PEAKS = (
    ("GH200", 989), ("H200 NVL", 835), ("H200", 989), ("H100 NVL", 835), ("H100 PCIE", 756),
    ("H100", 989), ("B200", 2250), ("A100", 312), ("L40S", 362), ("L40", 181), ("L4", 121),
    ("RTX 4090", 165),
)
STEPS = 25  # the clip's DDIM steps that the diffusion rows report
CHUNK = 32  # frames per backend call, as the stages feed them (PoseParams.chunk etc.)
# what `--pack` puts in the tarball: the pure-Python packages the GPU image lacks (KINDS.md lists
# its packages: torch, transformers, onnx, onnxruntime, opencv... are there; these are not)
PACK_DISTS = ("diffusers", "sam2", "hydra-core", "omegaconf", "antlr4-python3-runtime", "iopath",
              "importlib_metadata")
PACK_SKIP = ("training",)  # sam2's wheel also ships a top-level `training` package: not needed


def peak_for(name: str) -> int | None:
    up = name.upper()
    return next((p for key, p in BF16_DENSE_PEAKS if key in up), None)


class OverBudget(BaseException):
    """Raised by the row alarm (a BaseException: library code catching Exception lets it by)."""


class SkipRow(Exception):
    """A row decides by itself that it does not fit (it says why)."""


def reason(exc: BaseException) -> str:
    """A short one-line reason for a failed row."""
    if isinstance(exc, ModuleNotFoundError):
        return f"missing package {exc.name} (ModuleNotFoundError)"
    what = getattr(exc, "what", None)  # fgbg errors: what + cause
    if what:
        cause = getattr(exc, "cause", None)
        text = f"{type(exc).__name__}: {what}" + (f"; {cause}" if cause else "")
    else:
        text = f"{type(exc).__name__}: {exc}"
    if "out of memory" in text.lower():
        text = f"out of memory ({type(exc).__name__})"
    text = " ".join(text.split())
    return text if len(text) <= 200 else text[:197] + "..."


def cell(value) -> str:
    text = " ".join(str(value).split()) or "-"
    return text.replace("|", "/")


class Table:
    COLUMNS = ("part", "config", "per output frame", "peak GPU GiB", "UNet TFLOP/s",
               "share of bf16 dense peak", "notes")

    def __init__(self, out):
        self.out = out
        self.rows = 0
        self._line(self.COLUMNS)
        self._line(["---"] * len(self.COLUMNS))

    def _line(self, cells):
        self.out.write("| " + " | ".join(cell(c) for c in cells) + " |\n")
        self.out.flush()

    def row(self, part, config, per_frame="-", peak="-", tflops="-", share="-", notes=""):
        self._line((part, config, per_frame, peak, tflops, share, notes))
        self.rows += 1


class Check:
    def __init__(self, args, table: Table):
        import torch

        self.torch = torch
        self.a = args
        self.table = table
        self.t0 = time.perf_counter()
        self.cuda = args.device.startswith("cuda")
        self.device = args.device
        self.tmp = Path(tempfile.mkdtemp(prefix="fgbg-gpu-check-"))
        self.estimate = None  # (overhead s, step s) of the last diffusion row
        self._video = None
        if self.cuda:
            self.name = torch.cuda.get_device_name(torch.device(args.device))
        else:
            self.name = "cpu"
        self.peak = peak_for(self.name) if self.cuda else None

    # ------------------------------------------------------------------ budget and guarding

    def left(self) -> float:
        return self.a.budget - (time.perf_counter() - self.t0)

    def guarded(self, part: str, config: str, fn, min_s: float, later_min_s: float) -> None:
        cap = self.left() - later_min_s
        if cap < min_s:
            self.table.row(part, config, f"skipped: time budget ({max(self.left(), 0):.0f} s of "
                           f"{self.a.budget:.0f} s left, this row needs {min_s:.0f} s and the "
                           f"rows after it {later_min_s:.0f} s)")
            return
        print(f"gpu_check: {part} (up to {cap:.0f} s) ...", file=sys.stderr, flush=True)
        self._clean()
        t = time.perf_counter()
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, cap)
        try:
            cells = fn(cap)
        except OverBudget:
            self.table.row(part, config, f"failed: time budget (stopped after {cap:.0f} s)")
        except SkipRow as exc:
            self.table.row(part, config, f"skipped: {exc}")
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - a row that cannot run says why (pytest's
            # Skipped from an importorskip in the stand-in builders is a BaseException too)
            self.table.row(part, config, f"failed: {reason(exc)}")
        else:
            self.table.row(part, cells.pop("config", config), **cells)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
            self._clean()
            print(f"gpu_check: {part} done in {time.perf_counter() - t:.1f} s", file=sys.stderr,
                  flush=True)

    def _clean(self) -> None:
        gc.collect()
        if self.cuda:
            try:
                self.torch.cuda.synchronize()
                self.torch.cuda.empty_cache()
                self.torch.cuda.reset_peak_memory_stats()
            except Exception as exc:  # noqa: BLE001 - a broken CUDA context: the next rows say so
                print(f"gpu_check: CUDA clean-up failed: {reason(exc)}", file=sys.stderr)

    def peak_gib(self) -> str:
        if not self.cuda:
            return "n/a (CPU)"
        return f"{self.torch.cuda.max_memory_allocated() / 2**30:.2f}"

    # ------------------------------------------------------------------ rows

    def device_row(self) -> None:
        t = self.torch
        if self.cuda:
            props = t.cuda.get_device_properties(t.device(self.device))
            config = (f"{self.name}, {props.total_memory / 2**30:.0f} GiB, torch {t.__version__}, "
                      f"CUDA {t.version.cuda}")
            share = (f"{self.peak} TFLOP/s bf16 dense (datasheet)" if self.peak else
                     f"unknown ({self.name} is not in the table of peaks)")
        else:
            config = f"CPU, {os.cpu_count()} cores, torch {t.__version__}, {t.get_num_threads()} threads"
            share = "unknown (CPU)"
        mode = "smoke (tiny sizes, numbers mean nothing)" if self.a.smoke else "full"
        self.table.row("device", config, "-", "-", "-", share,
                       f"{mode}; time budget {self.a.budget:.0f} s")

    def diffusion(self, dtype_name: str, option: str, cap: float) -> dict:
        from bench_diffusion import bench_one

        a = self.a
        dtype = {"fp32": self.torch.float32, "fp16": self.torch.float16,
                 "bf16": self.torch.bfloat16}[dtype_name]
        k = a.steps
        if self.estimate is not None:  # fit the timed steps into the cap, from the last row
            overhead, step = self.estimate
            fit = int((0.85 * cap - overhead) / (1.3 * step)) - 4  # 4: warm-up, 2 timed, FLOPs
            k = min(a.steps, fit)
            if k < 1:
                raise SkipRow(f"time budget ({cap:.0f} s left for this row, a step takes "
                              f"{step:.2f} s plus {overhead:.0f} s to build)")
        t = time.perf_counter()
        r = bench_one(a.size, self.device, dtype, a.width, a.height, a.frames, k,
                      low_memory=option == "low-memory", offload=False)
        wall = time.perf_counter() - t
        self.estimate = (max(wall - (4 + k) * r["step_s"], 0.0), r["step_s"])
        s_frame = r["s_per_frame"] + (a.steps - k) * r["step_s"] / a.frames
        tflop_step = r["tflops"] * r["step_s"]
        share = f"{100 * r['tflops'] / self.peak:.0f}% of {self.peak}" if self.peak else "unknown"
        timed = f"{k} step{'s' * (k != 1)} timed" if k == a.steps else \
            f"{k} steps timed, +{a.steps - k} x measured step (linear)"
        flop_note = ("FLOPs: FlopCounterMode on one CFG step"
                     + ("" if self.cuda else " (CPU: its flash SDPA is not counted)"))
        return dict(per_frame=f"{s_frame:.3f} s",
                    peak="n/a (CPU)" if math.isnan(r["peak_gib"]) else f"{r['peak_gib']:.2f}",
                    tflops=f"{r['tflops']:.3g}", share=share,
                    notes=f"{timed}; UNet step {r['step_s']:.3f} s ({tflop_step:.3g} TFLOP); "
                          f"reference {r['ref_s']:.3f} s; row {wall:.0f} s; {flop_note}")

    def video(self):
        """(frames, keypoints (n, 133, 2), scores (n, 133), masks, person box, gate) of a drawn
        person walking slowly right, at --video-size, warm-up frames first."""
        if self._video is None:
            import numpy as np
            from drawn_people import background, draw_person

            w, h = self.a.video_width, self.a.video_height
            n = self.a.warmup_frames + self.a.video_frames
            s = 0.1 * h  # px per body unit: the person is about 0.8 h tall
            gate = (int(0.9 * w) // 8 * 8, int(0.1 * h) // 8 * 8)  # blue patch: see dwpose()
            frames = np.zeros((n, h, w, 3), np.uint8)
            kp = np.zeros((n, 133, 2), np.float32)
            sc = np.zeros((n, 133), np.float32)
            masks = np.zeros((n, h, w), bool)
            for t in range(n):
                img = background(w, h, t)
                cx = 0.45 * w + 0.1 * w * t / n
                joints, masks[t] = draw_person(img, cx, 0.5 * h, s)
                r = max(1, w // 160)
                img[gate[1] - r:gate[1] + r + 1, gate[0] - r:gate[0] + r + 1] = (0, 0, 255)
                frames[t] = img
                for j, xy in joints.items():
                    kp[t, j], sc[t, j] = xy, 1.0
            box = (0.45 * w - 2.2 * s, 0.5 * h - 4.3 * s, 0.55 * w + 2.2 * s, 0.5 * h + 4.4 * s)
            self._video = frames, kp, sc, masks, box, gate
        return self._video

    def _backend(self, make, run_video, what: str) -> tuple[float, float, object]:
        """Build + warm up on --warmup-frames frames (timed together), then the timed run over the
        rest of the video, through bench_backends.timed: -> (build s, s per frame, the timed
        run's result). `run_video(backend, frames, keypoints, scores, masks)` does one video."""
        from bench_backends import timed

        frames, kp, sc, masks, _, _ = self.video()
        warm, rest = slice(0, self.a.warmup_frames), slice(self.a.warmup_frames, None)
        result = []

        def build():
            b = make()
            run_video(b, frames[warm], kp[warm], sc[warm], masks[warm])
            if hasattr(b, "reset"):
                b.reset()
            return b

        def work(b):
            result.append(run_video(b, frames[rest], kp[rest], sc[rest], masks[rest]))
            if self.cuda:
                self.torch.cuda.synchronize()

        print(f"gpu_check:   {what} on {self.video_config()}", file=sys.stderr, flush=True)
        build_s, per = timed(build, work, self.a.video_frames)
        return build_s, per, result[0]

    @staticmethod
    def chunked(fn, frames, *arrays):
        """fn over chunks of CHUNK frames (as the stages feed a backend) -> list of results."""
        return [fn(frames[i:i + CHUNK], *(x[i:i + CHUNK] for x in arrays))
                for i in range(0, len(frames), CHUNK)]

    def video_config(self) -> str:
        return f"{self.a.video_width}x{self.a.video_height}, {self.a.video_frames} frames"

    def dwpose(self, cap: float) -> dict:
        import numpy as np
        from test_dwpose import R, make_detector, make_pose

        from fgbg.backends.pose.dwpose import DWPose
        from fgbg.params import PoseParams

        w, h = self.a.video_width, self.a.video_height
        _, _, _, _, box, gate = self.video()
        # the stand-in detector returns one constant person box; its objectness is the
        # detector input's channel 0 (blue, BGR) at the gate pixel / 255, painted blue in every
        # frame. make_detector takes frame pixels for frames letterboxed 4x (its test's 160x120):
        # scale ours to that
        ratio = min(640 / w, 640 / h)
        det = make_detector(self.tmp / "det.onnx",
                            [(tuple(np.array(box) * ratio / R), tuple(np.array(gate) * ratio / R))])
        pose = make_pose(self.tmp / "pose.onnx")
        providers = []

        def make():
            b = DWPose(PoseParams(), device=self.device, det_path=det, pose_path=pose)
            providers.append(b._det.session.get_providers()[0])
            return b

        def run_video(b, f, k, s, m):
            return sum(int((sc.max(axis=1) > 0).sum()) for _, sc in self.chunked(b.estimate, f))

        build_s, per, found = self._backend(make, run_video, "DWPose")
        return dict(config=f"{self.video_config()}, onnxruntime {providers[0]}",
                    per_frame=f"{per * 1000:.1f} ms", peak=self.peak_gib(),
                    notes=f"fgbg's pre/post-processing + onnxruntime on STAND-IN graphs (real I/O "
                          f"signature, det 1x3x640x640, pose Nx3x384x288; not the YOLOX-L / "
                          f"DWPose-L networks: a lower bound); person found in {found}/"
                          f"{self.a.video_frames} frames; build + warm-up {build_s:.1f} s")

    def sam2(self, cap: float) -> dict:
        from sam2.build_sam import build_sam2_video_predictor

        from fgbg.backends.segment.sam2 import OVERRIDES, VARIANTS, Sam2Segmenter
        from fgbg.params import SegmentParams

        overrides = list(OVERRIDES)
        if self.a.smoke:  # the tests' reduced SAM 2 (256 px input, fewer blocks)
            from test_sam2 import SMALL

            overrides += SMALL

        def make():
            self.torch.manual_seed(0)
            model = build_sam2_video_predictor(VARIANTS["tiny"].config, ckpt_path=None,
                                               device=self.device, hydra_overrides_extra=overrides)
            return Sam2Segmenter(SegmentParams(sam2_variant="tiny"), device=self.device, model=model)

        build_s, per, _ = self._backend(
            make, lambda b, f, k, s, m: self.chunked(b.segment, f, k, s), "SAM 2")
        size = "reduced as in tests/backends/test_sam2.py" if self.a.smoke else "full size"
        return dict(config=f"{self.video_config()}, SAM 2.1 hiera tiny, random weights ({size})",
                    per_frame=f"{per * 1000:.1f} ms", peak=self.peak_gib(),
                    notes=f"the sam2 backend (video predictor, fp32, prompted from the pose, "
                          f"chunks of {CHUNK}); build + warm-up {build_s:.1f} s")

    def cotracker(self, cap: float) -> dict:
        import cotracker_hub

        from fgbg.backends.track.cotracker import CoTracker
        from fgbg.params import TrackParams

        torch = self.torch
        try:  # cached in <venv>/cotracker-hub when running from a virtual environment
            hub = cotracker_hub.build_hub_dir(self.tmp / "hub")
        except OSError:  # that venv is not writable (a machine's image): a temporary folder
            cotracker_hub.venv_cache = lambda: None
            hub = cotracker_hub.build_hub_dir(self.tmp / "hub")
        pred = torch.hub.load(str(hub), "cotracker3_offline", source="local", pretrained=False)
        state = pred.model.state_dict()
        # as the tests: the random model's visibility bias raised, so it calls points visible
        # (with the init bias 0 it calls nothing visible and the tracker would keep re-seeding)
        state["updateformer.vis_conf_head.bias"] = torch.full_like(
            state["updateformer.vis_conf_head.bias"], 2.0)
        ckpt = self.tmp / "cotracker_random.pth"
        torch.save(state, ckpt)
        del pred, state

        def make():
            return CoTracker(TrackParams(), device=self.device, hub_dir=hub, checkpoint=ckpt)

        def run_video(b, f, k, s, m):  # the whole video, as (frames, masks) chunks
            return b.track(iter(self.chunked(lambda *x: x, f, m)), len(f))

        build_s, per, res = self._backend(make, run_video, "CoTracker3")
        tracks = getattr(res, "tracks", None)
        started = tracks.shape[1] if tracks is not None else "?"
        return dict(config=f"{self.video_config()}, CoTracker3 offline, random weights (full size)",
                    per_frame=f"{per * 1000:.1f} ms", peak=self.peak_gib(),
                    notes=f"the cotracker backend (windows of 60 frames, model input 384x512, "
                          f"{TrackParams().num_points} points kept, {started} tracks started); "
                          f"build + warm-up {build_s:.1f} s")

    # ------------------------------------------------------------------ all

    def run(self) -> None:
        a = self.a
        self.device_row()
        diff_cfg = (f"{a.size} random weights, {a.width}x{a.height}, {a.frames} frames, "
                    f"{a.steps} step{'s' * (a.steps != 1)}, CFG 3.5")
        rows = []
        for d in a.dtypes:
            for opt in ("batched", "low-memory"):
                label = "batched CFG" if opt == "batched" else "--low-memory (CFG halves)"
                rows.append((f"diffusion {d}, {label}", diff_cfg,
                             lambda cap, d=d, opt=opt: self.diffusion(d, opt, cap), a.min_diffusion))
        rows += [
            ("DWPose", self.video_config(), self.dwpose, a.min_backend),
            ("SAM 2 (sam2 backend)", self.video_config(), self.sam2, a.min_backend),
            ("CoTracker3 offline", self.video_config(), self.cotracker, a.min_backend),
        ]
        for i, (part, config, fn, min_s) in enumerate(rows):
            later = sum(r[3] for r in rows[i + 1:])
            self.guarded(part, config, fn, min_s, later)
        total = time.perf_counter() - self.t0
        self.table.row("total", f"{total:.0f} s of the {a.budget:.0f} s budget (after imports)",
                       notes=f"{len(rows)} rows; a failed or skipped row says why")


def _alarm(signum, frame):
    raise OverBudget()


# ---------------------------------------------------------------------- --pack


def pack(out: Path) -> int:
    """Tar the PACK_DISTS packages of this environment (no __pycache__) under site/, and the
    CoTracker wheel under wheels/, into `out` (gpu_check.sh unpacks it on the GPU machine)."""
    import importlib.metadata as md
    import tarfile

    out.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with tarfile.open(out, "w:gz") as tar:
        for name in PACK_DISTS:
            try:
                dist = md.distribution(name)
            except md.PackageNotFoundError:
                print(f"pack: {name} is not installed here, left out", file=sys.stderr)
                continue
            for f in dist.files or ():
                path = Path(dist.locate_file(f))
                if "__pycache__" in f.parts or f.suffix == ".pyc" or ".." in f.parts \
                        or f.parts[0] in PACK_SKIP or not path.is_file():
                    continue
                tar.add(path, arcname=f"site/{f.as_posix()}")
                count += 1
        from cotracker_hub import WHEEL_NAME

        for cand in (os.environ.get("FGBG_COTRACKER_WHEEL"), Path(sys.prefix) / "wheels" / WHEEL_NAME):
            if cand and Path(cand).is_file():
                tar.add(cand, arcname=f"wheels/{WHEEL_NAME}")
                count += 1
                break
        else:
            print(f"pack: no {WHEEL_NAME} found (make test puts it in .venv/wheels): the "
                  "CoTracker row will fail on the GPU machine", file=sys.stderr)
    print(f"pack: {count} files, {out.stat().st_size / 2**20:.1f} MiB -> {out}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------- main


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (checks the script)")
    ap.add_argument("--device", default=None, help="default: cuda when present (cpu with --smoke)")
    ap.add_argument("--budget", type=float, default=460.0, help="seconds for all rows")
    ap.add_argument("--pack", type=Path, default=None, metavar="TGZ",
                    help="only pack this environment's packages the GPU image lacks, then exit")
    ap.add_argument("--size", default=None, choices=("tiny", "sd15"))
    ap.add_argument("--width", type=int, default=None)
    ap.add_argument("--height", type=int, default=None)
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--dtypes", nargs="+", default=["fp16", "bf16"], choices=("fp32", "fp16", "bf16"))
    ap.add_argument("--video-width", type=int, default=None)
    ap.add_argument("--video-height", type=int, default=None)
    ap.add_argument("--video-frames", type=int, default=None, help="timed frames per backend")
    ap.add_argument("--warmup-frames", type=int, default=None, help="frames of each backend's warm-up")
    a = ap.parse_args(argv)
    full = dict(size="sd15", width=512, height=768, frames=24, steps=STEPS, video_width=1280,
                video_height=720, video_frames=48, warmup_frames=8, min_diffusion=20.0, min_backend=15.0)
    smoke = dict(size="tiny", width=64, height=64, frames=2, steps=1, video_width=160,
                 video_height=90, video_frames=2, warmup_frames=2, min_diffusion=1.0, min_backend=1.0)
    for k, v in (smoke if a.smoke else full).items():
        if getattr(a, k, None) is None:
            setattr(a, k, v)
    return a


def main(argv=None) -> int:
    a = parse(argv)
    _paths()
    if a.pack is not None:
        return pack(a.pack)
    # stdout carries the table alone: everything else (library prints, native logs) to stderr
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    try:
        import torch
    except Exception as exc:  # noqa: BLE001
        print(f"error: torch is not importable ({reason(exc)})\nhint: run bench/gpu_check.sh, "
              "which picks the project's .venv or the machine's python3", file=sys.stderr)
        return 2
    if a.device is None:
        a.device = "cpu" if a.smoke else "cuda"
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: no CUDA device (torch.cuda.is_available() is False, torch "
              f"{torch.__version__})\nhint: run on a GPU machine, or --smoke to check the script "
              "on the CPU", file=sys.stderr)
        return 2
    if a.smoke and not a.device.startswith("cuda"):
        torch.set_num_threads(1)  # tiny models: threads on a shared 2-core machine only wait
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    table = Table(out)
    Check(a, table).run()
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
