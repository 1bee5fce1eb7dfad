"""How well the anchored background can track at best: the moved plate itself, and its trip through
the pipeline's VAE, scored like a generated video (issue 11; why `Anchor.paste` exists).

    .venv/bin/python bench/plate_tracks.py [--work .fgbg-bench/anchored] [--limit 8] [--frames 64]

On `make train-demo`'s held-out scenes (as bench/eval_anchored.py writes them), each scene's first
frame is the reference; the warp generator's moved plate per frame (the background an anchored run
holds) is scored by `fgbg eval`'s own scoring (fgbg.evaluation.runner.score, LK tracker) as if it
were the generated video, next to its VAE round trip (the demo pipeline's encode_frames and
decode_latents) and the real video (the floor). Prints the mean background-track error of each."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=".fgbg-bench/anchored")
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--frames", type=int, default=64)
    args = ap.parse_args()

    from fgbg.backends.base import Reference
    from fgbg.backends.generate.diffusion import DEMO_DIR
    from fgbg.backends.generate.warp import WarpGenerator
    from fgbg.diffusion.backends_util import quiet_diffusers
    from fgbg.diffusion.pipeline import FgbgPipeline
    from fgbg.evaluation.runner import load_scenes, score
    from fgbg.training.synthetic import write_synthetic

    quiet_diffusers()
    work = Path(args.work)
    write_synthetic(work / "holdout", 8, holdout=True, frames=64, size=128, render=256)
    pipe = FgbgPipeline.from_pretrained(DEMO_DIR, local_files_only=True)
    rows = {"real video (floor)": [], "moved plate": [], "moved plate, VAE round trip": []}
    for s in load_scenes(work / "holdout", args.limit):
        n, size = min(args.frames, len(s.frames)), s.frames.shape[1]
        warp = WarpGenerator()
        warp.prepare(Reference(np.array(s.frames[0]), s.keypoints[0], s.scores[0],
                               np.asarray(s.masks[0]).astype(bool)), size, size)
        plate = np.stack([warp.render_layers(s.keypoints[t], s.scores[t], s.tracks[t], s.visible[t], s.origin)[1]
                          for t in range(n)])
        videos = {"real video (floor)": np.asarray(s.frames[:n]), "moved plate": plate,
                  "moved plate, VAE round trip": pipe.decode_latents(pipe.encode_frames(plate))}
        for name, video in videos.items():
            rows[name].append(score(s, video, [0])["bg_track_error_px"])
    print("\n| video | bg-track error (px) |\n|---|---|")
    for name, errs in rows.items():
        print(f"| {name} | {np.nanmean(errs):.3f} |")


if __name__ == "__main__":
    main()
