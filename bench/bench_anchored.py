"""Cost of the anchored background and the warp start against free generation (issue 11).

    .venv/bin/python bench/bench_anchored.py [--size 128] [--frames 8] [--steps 10] [--guidance 2] [--repeats 3]

The built-in sample through the demo pipeline (or --pipeline), one clip per mode, the modes
interleaved and repeated so machine noise falls on all of them alike; prints s per clip and the
ratio to free (warp rendering, plate encoding and mask building included)."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)  # the demo model's resolution
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--guidance", type=float, default=2.0, help="2: the demo model's recommended (1: no CFG)")
    ap.add_argument("--pipeline", default="")
    args = ap.parse_args()

    import cv2

    from fgbg.backends.base import ClipInputs, Reference
    from fgbg.backends.generate.diffusion import DiffusionGenerator
    from fgbg.params import GenerateParams
    from fgbg.pose.draw import draw_pose_maps
    from fgbg.sample import make_sample
    from fgbg.tracks import track_origins
    from fgbg.video import read_image

    n, S = args.frames, args.size
    with tempfile.TemporaryDirectory() as tmp:
        s = make_sample(Path(tmp), preset="dance", num_frames=n, width=256, height=256, audio=False)
        truth = np.load(s.truth)
        img = read_image(s.ref)
    k = S / 256

    def px(p):
        return ((p + 0.5) * k - 0.5).astype(np.float32)

    mask = cv2.resize(truth["ref_mask"].astype(np.uint8), (S, S), interpolation=cv2.INTER_NEAREST) > 0
    ref = Reference(cv2.resize(img, (S, S), interpolation=cv2.INTER_AREA), px(truth["ref_keypoints"]),
                    truth["ref_scores"], mask)
    q = truth["queries"].copy()
    q[:, 1:] = px(q[:, 1:])
    kps = px(truth["keypoints"])
    clip = ClipInputs(keypoints=kps, scores=truth["scores"], pose_maps=draw_pose_maps(kps, truth["scores"], S, S),
                      tracks=px(truth["tracks"]), visible=truth["visible"],
                      tracks_origin=track_origins(px(truth["tracks"]), truth["visible"], q), prev_frame=None, seed=0)
    modes = {"free": dict(background="free"), "anchored": dict(background="anchored"),
             "refine (warp start, 0.6)": dict(background="free", init="warp")}
    gens = {}
    for name, kw in modes.items():
        g = DiffusionGenerator(GenerateParams(backend="diffusion", steps=args.steps, guidance_scale=args.guidance,
                                              pipeline=args.pipeline, **kw), device="cpu")
        g.prepare(ref, S, S)
        g.generate_clip(clip)  # warm-up
        gens[name] = g
    times = {name: [] for name in modes}
    for _ in range(args.repeats):
        for name, g in gens.items():
            t = time.perf_counter()
            g.generate_clip(clip)
            times[name].append(time.perf_counter() - t)
    base = float(np.median(times["free"]))
    print(f"\n{n} frames at {S} px, {args.steps} steps, guidance {args.guidance}, median of {args.repeats}\n")
    print("| mode | s per clip | x free |\n|---|---|---|")
    for name, ts in times.items():
        print(f"| {name} | {np.median(ts):.3f} | {np.median(ts) / base:.2f} |")


if __name__ == "__main__":
    main()
