"""Preprocessing backends side by side: ms per frame of each pose / segment / track backend.

    make bench-backends      # or: .venv/bin/python bench/bench_backends.py --size 256 --frames 16

Every backend runs its real code path on the built-in sample (the true pose feeds the segmenters).
No weights can be downloaded here, so the weight-backed backends run models built locally:

  dwpose     stand-in ONNX graphs with the real input/output signature (tests/backends): the row
             measures fgbg's pre/post-processing (letterbox, decode, NMS, crops, SimCC) and
             onnxruntime overhead, NOT the YOLOX-L / RTMPose networks;
  sam2       the real SAM 2.1 video predictor (hiera tiny by default) with random weights;
  sam        the real segment-anything architecture (vit_b by default) with random weights, the
             same cost as the trained model;
  cotracker  the real CoTracker3 offline model code (from the pinned autosegmentor wheel) with
             random weights, the same cost as the trained model.

Prints a markdown table; compare rows of one run (machines are noisy). Backend construction is
timed separately from the per-frame work.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "backends"))  # stand-in model builders


def load_sample(tmp: Path, size: int, frames: int):
    from fgbg.sample import make_sample
    from fgbg.video import probe, read_frames

    s = make_sample(tmp / "s", preset="dance", num_frames=frames, width=size, height=size, audio=False)
    video = np.concatenate(list(read_frames(probe(s.driving), chunk=32)))
    truth = np.load(s.truth)
    return video, truth["keypoints"].astype(np.float32), truth["scores"].astype(np.float32), truth["masks"]


def timed(make, work, n: int) -> tuple[float, float]:
    t = time.perf_counter()
    backend = make()
    t_build = time.perf_counter() - t
    t = time.perf_counter()
    work(backend)
    per_frame = (time.perf_counter() - t) / n
    close = getattr(backend, "close", None)
    if close:
        close()
    return t_build, per_frame


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--sam-variant", default="vit_b", choices=["vit_b", "vit_l", "vit_h"])
    ap.add_argument("--sam2-variant", default="tiny", choices=["tiny", "small", "base_plus", "large"])
    ap.add_argument("--sam-frames", type=int, default=2, help="SAM frames (seconds each on a CPU)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip", nargs="*", default=[], help="rows to leave out, e.g. sam cotracker")
    a = ap.parse_args()

    import torch

    from fgbg.params import PoseParams, SegmentParams, TrackParams
    from fgbg.report import NativeStderrSilenced

    NativeStderrSilenced().__enter__()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        video, kp, sc, masks = load_sample(tmp, a.size, a.frames)
        n = len(video)

        def chunks(m=masks):
            return ((video[i:i + 8], m[i:i + 8].astype(bool)) for i in range(0, n, 8))

        def row(kind, name, note, make, work, frames=n):
            if name in a.skip:
                return
            try:
                b, f = timed(make, work, frames)
                rows.append((kind, name, note, f"{b:.2f}", f"{f * 1000:.0f}", f"{1 / f:.3g}"))
            except Exception as exc:  # a row that cannot run says why instead of stopping the table
                rows.append((kind, name, f"FAILED: {type(exc).__name__}: {str(exc)[:80]}", "-", "-", "-"))
            print(f"  {kind} {name} done", file=sys.stderr)

        from fgbg.backends.pose.mediapipe import MediapipePose

        row("pose", "mediapipe", "bundled model", lambda: MediapipePose(PoseParams()), lambda b: b.estimate(video))

        def make_dwpose():
            from test_dwpose import make_detector, make_pose

            from fgbg.backends.pose.dwpose import DWPose

            det = make_detector(tmp / "det.onnx", [((a.size * .3, a.size * .1, a.size * .7, a.size * .95),
                                                     (a.size * .5, a.size * .5))])
            pose = make_pose(tmp / "pose.onnx")
            return DWPose(PoseParams(), device=a.device, det_path=det, pose_path=pose)

        row("pose", "dwpose", "stand-in graphs: pre/post-processing only", make_dwpose, lambda b: b.estimate(video))

        from fgbg.backends.segment.mediapipe import MediapipeSegmenter

        row("segment", "mediapipe", "bundled model", lambda: MediapipeSegmenter(SegmentParams()),
            lambda b: b.segment(video, kp, sc))

        def make_sam():
            from segment_anything import sam_model_registry

            from fgbg.backends.segment.sam import SamSegmenter

            torch.manual_seed(0)
            model = sam_model_registry[a.sam_variant](checkpoint=None)
            return SamSegmenter(SegmentParams(sam_variant=a.sam_variant), device=a.device, model=model)

        k = min(a.sam_frames, n)
        row("segment", "sam",
            f"{a.sam_variant}, random weights (full size), {k} frames", make_sam,
            lambda b: b.segment(video[:k], kp[:k], sc[:k]), frames=k)

        def make_sam2():
            from sam2.build_sam import build_sam2_video_predictor

            from fgbg.backends.segment.sam2 import VARIANTS, Sam2Segmenter

            torch.manual_seed(0)
            model = build_sam2_video_predictor(VARIANTS[a.sam2_variant].config, ckpt_path=None, device=a.device)
            return Sam2Segmenter(SegmentParams(sam2_variant=a.sam2_variant), device=a.device, model=model)

        row("segment", "sam2", f"SAM 2.1 hiera {a.sam2_variant}, random weights (full size), video predictor",
            make_sam2, lambda b: b.segment(video, kp, sc))

        from fgbg.backends.track.lk import LKTracker

        row("track", "lk", "weight-free", lambda: LKTracker(TrackParams()), lambda b: b.track(chunks(), n))

        def make_cotracker():
            from cotracker_hub import build_hub_dir

            from fgbg.backends.track.cotracker import CoTracker

            hub = build_hub_dir(tmp / "hub")
            pred = torch.hub.load(str(hub), "cotracker3_offline", source="local", pretrained=False)
            ckpt = tmp / "cotracker_random.pth"
            torch.save(pred.model.state_dict(), ckpt)
            return CoTracker(TrackParams(), device=a.device, hub_dir=hub, checkpoint=ckpt)

        row("track", "cotracker", "CoTracker3 offline, random weights (full size)", make_cotracker,
            lambda b: b.track(chunks(), n))

    print(f"\n{n} frames at {a.size}x{a.size}, device {a.device}, torch threads {torch.get_num_threads()}\n")
    print("| stage | backend | model | build s | ms/frame | frames/s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
