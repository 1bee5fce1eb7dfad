"""Cost of the anchored background and the warp start against free generation (issue 11).

    .venv/bin/python bench/bench_anchored.py [--size 128] [--frames 8] [--steps 10] [--guidance 2] [--repeats 5]

The built-in sample through the demo pipeline (or --pipeline), one clip per mode, the modes
interleaved and repeated so machine noise falls on all of them alike; prints s per clip and the
ratio to free (warp rendering, plate encoding and mask building included).

Then the same ratio in FLOPs (counted by torch.utils.flop_counter, not timed), for this pipeline
at this size and for the SD1.5 / AnimateAnyone architecture at the size a GPU user runs (512x768,
24-frame clips, 25 steps, CFG; random weights on the meta device: shapes only, nothing computed).
What anchoring adds is one VAE encode of the clip's moved plate; how much that weighs depends on
how big the denoiser is next to the autoencoder, which the FLOP table shows."""

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
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--guidance", type=float, default=2.0, help="2: the demo model's recommended (1: no CFG)")
    ap.add_argument("--pipeline", default="")
    ap.add_argument("--no-sd15", action="store_true", help="skip the FLOP count at SD1.5 size")
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
    wall = {name: [] for name in modes}
    cpu = {name: [] for name in modes}
    for _ in range(args.repeats):
        for name, g in gens.items():
            t, c = time.perf_counter(), time.process_time()
            g.generate_clip(clip)
            wall[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
    # CPU time as well as wall time: on a shared virtual machine the wall clock also counts the
    # time the host gave to others, which the process's CPU time does not
    w0, c0 = float(np.median(wall["free"])), float(np.median(cpu["free"]))
    print(f"\n{n} frames at {S} px, {args.steps} steps, guidance {args.guidance}, median of {args.repeats}\n")
    print("| mode | wall s per clip | x free | CPU s per clip | x free |\n|---|---|---|---|---|")
    for name in modes:
        w, c = float(np.median(wall[name])), float(np.median(cpu[name]))
        print(f"| {name} | {w:.3f} | {w / w0:.2f} | {c:.3f} | {c / c0:.2f} |")

    from fgbg.diffusion.build import build_pipeline

    g = gens["free"]
    rows = [(args.pipeline or "demo", f"{n} x {S}x{S}, {args.steps} steps, guidance {args.guidance}",
             clip_flops(g.pipe, n, S, S, args.steps, args.guidance))]
    if not args.no_sd15:
        sd = build_pipeline("sd15", device="meta")
        rows.append(("SD1.5 / AnimateAnyone size", "24 x 512x768, 25 steps, guidance 3.5",
                     clip_flops(sd, 24, 768, 512, 25, 3.5)))
    print_flops(rows)


def clip_flops(pipe, frames: int, height: int, width: int, steps: int, guidance: float) -> dict:
    """FLOPs of one clip's parts: denoising (steps x one UNet call, CFG batched), conditions
    (pose + track encoders), the final VAE decode, and the VAE encode anchoring adds (the moved
    plate, `frames` images). Runs on the pipeline's device (meta: shapes only)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    def count(fn):
        c = FlopCounterMode(display=False)
        with c, torch.no_grad():
            fn()
        return c.get_total_flops()

    dev, dt = pipe.unet.device, pipe.unet.dtype
    f = pipe.vae_scale_factor
    c = int(pipe.latent_channels)
    h, w = height // f, width // f
    box = {}
    count(lambda: box.setdefault("ctx", pipe.encode_reference(np.zeros((height, width, 3), np.uint8), height, width)))
    maps = torch.zeros(1, 3, frames, height, width, device=dev, dtype=dt)
    cond = count(lambda: box.setdefault("feats", pipe.pose_encoder(maps) + pipe.track_encoder(maps)))
    lat = torch.zeros(1, c, frames, h, w, device=dev, dtype=dt)
    cnd = torch.zeros(1, c + 1, frames, h, w, device=dev, dtype=dt)
    step = count(lambda: pipe._predict(box["ctx"], lat, torch.tensor(999), box["feats"], cnd, guidance, False))
    images = torch.zeros(frames, 3, height, width, device=dev, dtype=dt)
    enc = count(lambda: pipe.vae.encode(images).latent_dist.mean)
    dec = count(lambda: pipe.vae.decode(torch.zeros(frames, c, h, w, device=dev, dtype=dt)).sample)
    free = steps * step + cond + dec
    return dict(free=free, plate=enc, ratio=(free + enc) / free)


def print_flops(rows) -> None:
    print("\nFLOPs per clip (counted, not timed)\n")
    print("| pipeline | clip | free TFLOP | plate encode TFLOP | anchored x free |\n|---|---|---|---|---|")
    for name, what, r in rows:
        print(f"| {name} | {what} | {r['free'] / 1e12:.2f} | {r['plate'] / 1e12:.3f} | {r['ratio']:.3f} |")


if __name__ == "__main__":
    main()
