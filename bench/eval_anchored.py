"""The anchored background with any weights (issue 11): `fgbg eval` of the shipped demo model and of
an AnimateAnyone stand-in side by side, on the demo's held-out synthetic scenes.

    .venv/bin/python bench/eval_anchored.py [--work .fgbg-bench/anchored] [--limit 8] [--frames 64]

The stand-in is the tiny fgbg architecture with random weights around the real TAEF2 autoencoder,
its track encoder at zero (as `fgbg models convert animateanyone` leaves it): it has no background
control of its own. The scenes are `make train-demo`'s held-out set (the same seeds: 8 scenes of 64
frames at 128 px, hues and seeds the training set never saw). Both pipelines run with the demo's
recorded eval settings (DEMO_INFERENCE: 10 steps, guidance 2; clips of 8), scored by mediapipe
(PCK) and Lucas-Kanade (background-track error). Prints the `fgbg eval` commands it ran and one
table: per pipeline and variant, SSIM (frame, person region), background-track error and its ratio to the real-video floor,
body PCK, seam jump, colour drift, and the generation time per frame with its ratio to `full`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

VARIANTS = "full,no-tracks,anchored,refine,anchored-no-tracks"


def standin(folder: Path) -> Path:
    if not (folder / "model_index.json").is_file():
        from fgbg.diffusion.build import build_pipeline
        from fgbg.diffusion.taef2 import TinyAutoencoder
        from fgbg.training.demo import DEMO_UNET

        pipe = build_pipeline("tiny", seed=0, vae=TinyAutoencoder.shipped(), unet=DEMO_UNET)
        assert all(float(p.abs().max()) == 0 for p in pipe.track_encoder.conv_out.parameters()), \
            "the stand-in's track encoder must output zeros"
        pipe.save_pretrained(folder)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=".fgbg-bench/anchored")
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--variants", default=VARIANTS)
    ap.add_argument("--anchor-steps", default="")
    ap.add_argument("--only", default="", help="demo or standin (default: both)")
    args = ap.parse_args()
    work = Path(args.work)

    from fgbg.backends.generate.diffusion import DEMO_DIR
    from fgbg.training.demo import DEMO_INFERENCE
    from fgbg.training.synthetic import write_synthetic

    steps, guidance = str(DEMO_INFERENCE["steps"]), str(DEMO_INFERENCE["guidance_scale"])

    write_synthetic(work / "holdout", 8, holdout=True, frames=64, size=128, render=256)
    pipes = {"demo": DEMO_DIR, "standin": standin(work / "standin")}
    if args.only:
        pipes = {args.only: pipes[args.only]}
    rows = []
    for name, folder in pipes.items():
        out = work / (f"eval-{name}" + (f"-a{args.anchor_steps}" if args.anchor_steps else ""))
        cmd = ["fgbg", "eval", str(work / "holdout"), "--pipeline", str(folder), "--variants", args.variants,
               "--steps", steps, "--guidance-scale", guidance, "--limit", str(args.limit), "--frames", str(args.frames),
               "--pose-backend", "mediapipe", "--tracker", "lk", "-o", str(out), "-q"]
        if args.anchor_steps:
            cmd += ["--anchor-steps", args.anchor_steps]
        print("$ " + " ".join(cmd), flush=True)
        subprocess.run([sys.executable, "-m", "fgbg.cli", *cmd[1:]], check=True)
        res = json.loads((out / "results.json").read_text())["variants"]
        floor = res["real video (floor)"]["bg_track_error_px"]
        base = res.get("full", {}).get("seconds_per_frame")
        for v, r in res.items():
            drift = r.get("colour_drift") or [float("nan")]
            t = r.get("seconds_per_frame")
            rows.append(f"| {name} | {v} | {r['ssim']:.3f} | {r['ssim_person']:.3f} | {r['bg_track_error_px']:.2f} "
                        f"| {r['bg_track_error_px'] / floor:.1f}x | {r.get('pck', float('nan')):.2f} "
                        f"| {r['seam_jump']:.2f} | {drift[0]:.2f} -> {drift[-1]:.2f} "
                        f"| {'-' if t is None else f'{t:.3f}'} | {'-' if t is None or not base else f'{t / base:.2f}'} |")
    print("\n| pipeline | variant | SSIM | SSIM, person | bg-track error (px) | x floor | PCK, body | seam jump "
          "| colour drift | s / frame | x full |\n|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
