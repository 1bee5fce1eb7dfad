"""Train the built-in demo generator from nothing (`make train-demo`), on the CPU.

Version 2 (128 px, on a real pretrained autoencoder):
1. synthetic scenes with exact ground truth (fgbg.training.synthetic), rendered at 256 px and
   stored at 128 px: `--scenes` training scenes with every motion under every camera move and
   0..3 moving objects (outfits, palettes and motions from the seed), `--holdout` held-out scenes
   of 64 frames (disjoint seeds) for `fgbg eval`;
2. the autoencoder is TAEF2 (fgbg.diffusion.taef2, the copy shipped in the package: 8x, 32 latent
   channels, MIT), frozen, with its per-channel latent mean/std measured on the training frames;
   every training frame is encoded once (TrainConfig.precompute_latents);
3. the tiny fgbg model from scratch around it: stage 1 (frames: UNet, ReferenceNet, pose and
   track encoders), then stage 2 (clips: the temporal blocks);
4. the result in <work>/demo-pipeline, in float16 (the Makefile copies it into fgbg/demo_pipeline).
Every step is resumable (finished parts are kept, a stage resumes from its last checkpoint); the
whole run is seeded and its step counts are fixed numbers, so a rerun reproduces the same model;
the log says where the time went (110 minutes measured on 2 CPU cores under load, most of it stage 1).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

RESOLUTION = 128
# the demo UNet: the tiny layout 1.5x wider (the 32-channel latents of TAEF2 need more width than
# the 4-channel ones of the 64 px model). (64, 64, 128, 128) would make the shipped folder 38 MB in
# fp16, over the 25 MB budget; this one makes it 23.7 MB (2.7 M of its 12 M parameters are TAEF2's)
# what `fgbg eval` runs the shipped model with (fgbg_pipeline.json "inference"): measured on a
# held-out scene at 10 steps, guidance 1.0 / 2.0 / 3.5 gave SSIM 0.52 / 0.50 / 0.47 and body PCK
# 0.75 / 0.82 / 0.87; 2.0 keeps most of both. background: what `--background auto` picks for this model
# (fgbg.backends.generate.diffusion.background_mode), measured in bench/eval_anchored.py
DEMO_INFERENCE = {"steps": 10, "guidance_scale": 2.0, "background": "anchored",
                  "background_why": "its track encoder was trained on synthetic scenes only: left free, it paints a "
                                    "synthetic room behind a real photo's person; anchored, the photo's own "
                                    "background moves with the driving video's"}
DEMO_UNET = dict(block_out_channels=(48, 48, 96, 96), attention_head_dim=4, cross_attention_dim=32)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=".fgbg-train")
    ap.add_argument("--scenes", type=int, default=128)
    ap.add_argument("--holdout", type=int, default=8)
    ap.add_argument("--stage1-steps", type=int, default=7000)
    ap.add_argument("--stage2-steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=8)
    a = ap.parse_args(argv)
    work = Path(a.work)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    t0 = time.perf_counter()

    from .synthetic import write_synthetic

    write_synthetic(work / "prepared", a.scenes, frames=24, size=RESOLUTION, render=2 * RESOLUTION, mix=True)
    write_synthetic(work / "holdout", a.holdout, holdout=True, frames=64, size=RESOLUTION,
                    render=2 * RESOLUTION)
    log(f"data ready ({time.perf_counter() - t0:.0f} s)")

    from ..diffusion.build import build_pipeline
    from ..diffusion.taef2 import TinyAutoencoder, measure_latent_stats, with_latent_stats
    from .config import TrainConfig
    from .loop import train

    init = work / "init"
    if not (init / "model_index.json").is_file():
        import numpy as np

        from ..artifacts import load_prepared

        vae = TinyAutoencoder.shipped()
        videos = load_prepared([str(work / "prepared")], min_frames=1)
        frames = np.stack([np.asarray(v.frames[i]) for v in videos for i in (0, len(v.frames) // 2)])
        vae = with_latent_stats(vae, measure_latent_stats(vae, frames))
        build_pipeline("tiny", seed=0, vae=vae, unet=DEMO_UNET).save_pretrained(init)
    log(f"model built ({time.perf_counter() - t0:.0f} s)")
    common = dict(datasets=[str(work / "prepared")], resolution=RESOLUTION, learning_rate=5e-4,
                  warmup_steps=50, checkpoint_every=100, log_every=10, seed=0, uncond_prob=0.1,
                  cond_prob=0.5, precompute_latents=True, latent_cache=str(work / "latents"))
    s1 = work / "stage1"
    if not (s1 / "pipeline" / "model_index.json").is_file():
        cfg = TrainConfig(output_dir=str(s1), stage=1, init=str(init), batch_size=a.batch,
                          max_steps=a.stage1_steps, **common).check()
        train(cfg, resume=(s1 / "checkpoints").is_dir(), log=log)
    log(f"stage 1 done ({time.perf_counter() - t0:.0f} s)")
    s2 = work / "stage2"
    if not (s2 / "pipeline" / "model_index.json").is_file():
        cfg = TrainConfig(output_dir=str(s2), stage=2, init=str(s1 / "pipeline"), batch_size=2, frames=8,
                          max_steps=a.stage2_steps, **common).check()
        train(cfg, resume=(s2 / "checkpoints").is_dir(), log=log)
    out = work / "demo-pipeline"
    shutil.rmtree(out, ignore_errors=True)
    _save_half(s2 / "pipeline", out)
    log(f"demo pipeline: {out} ({time.perf_counter() - t0:.0f} s in all)")
    print(out)


def _save_half(src: Path, out: Path) -> None:
    """The shipped copy in float16 (half the bytes; loaded back as float32 on the CPU), with the
    autoencoder's licence and source beside its weights."""
    import torch

    from ..diffusion.pipeline import FgbgPipeline
    from ..diffusion.taef2 import SHIPPED

    pipe = FgbgPipeline.from_pretrained(src)
    for name in ("vae", "image_encoder", "reference_net", "unet", "pose_encoder", "track_encoder"):
        getattr(pipe, name).to(torch.float16)
    pipe.save_pretrained(out, safe_serialization=True)
    meta = json.loads((src / "fgbg_pipeline.json").read_text())
    meta.update(trained_resolution=RESOLUTION, autoencoder="TAEF2 (madebyollin/taesd, MIT): see vae/LICENSE",
                training_data="synthetic scenes only (fgbg.sample): no real photos or videos",
                inference=DEMO_INFERENCE)
    (out / "fgbg_pipeline.json").write_text(json.dumps(meta, indent=1))
    for name in ("LICENSE", "SOURCE.md"):
        if (SHIPPED / name).resolve() != (out / "vae" / name).resolve():
            shutil.copy(SHIPPED / name, out / "vae" / name)


if __name__ == "__main__":
    main()
