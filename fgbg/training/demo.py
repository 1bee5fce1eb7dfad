"""Train the built-in demo generator from nothing (`make train-demo`), on the CPU.

1. synthetic scenes with exact ground truth (fgbg.training.synthetic): 96 training scenes, 8
   held-out scenes (disjoint seeds), 64 px;
2. a small 4x VAE (fgbg.training.vae), since a random VAE cannot decode;
3. the tiny fgbg model from scratch around it: stage 1 (frames), then stage 2 (clips);
4. the result in <work>/demo-pipeline (the Makefile copies it into fgbg/demo_pipeline).
Every step is resumable (finished parts are kept); the whole run is seeded.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=".fgbg-train")
    ap.add_argument("--scenes", type=int, default=96)
    ap.add_argument("--holdout", type=int, default=8)
    ap.add_argument("--vae-steps", type=int, default=300)
    ap.add_argument("--stage1-steps", type=int, default=3000)
    ap.add_argument("--stage2-steps", type=int, default=400)
    a = ap.parse_args(argv)
    work = Path(a.work)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    t0 = time.perf_counter()

    from .synthetic import write_synthetic

    write_synthetic(work / "prepared", a.scenes, frames=24)
    write_synthetic(work / "holdout", a.holdout, holdout=True, frames=64)
    log(f"data ready ({time.perf_counter() - t0:.0f} s)")

    from ..diffusion.build import build_pipeline
    from .config import TrainConfig
    from .loop import train
    from .vae import train_vae

    vae_dir = work / "vae"
    if not (vae_dir / "config.json").is_file():
        train_vae([str(work / "prepared")], vae_dir, steps=a.vae_steps, log=log)
    from diffusers import AutoencoderKL

    init = work / "init"
    if not (init / "model_index.json").is_file():
        build_pipeline("tiny", seed=0, vae=AutoencoderKL.from_pretrained(vae_dir)).save_pretrained(init)
    log(f"vae ready ({time.perf_counter() - t0:.0f} s)")
    common = dict(datasets=[str(work / "prepared")], resolution=64, learning_rate=5e-4, warmup_steps=50,
                  checkpoint_every=100, log_every=10, seed=0, uncond_prob=0.1, cond_prob=0.5)
    s1 = work / "stage1"
    if not (s1 / "pipeline" / "model_index.json").is_file():
        cfg = TrainConfig(output_dir=str(s1), stage=1, init=str(init), batch_size=8,
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
    """The shipped copy in float16 (half the bytes; loaded back as float32 on the CPU)."""
    import torch

    from ..diffusion.pipeline import FgbgPipeline

    pipe = FgbgPipeline.from_pretrained(src)
    for name in ("vae", "image_encoder", "reference_net", "unet", "pose_encoder", "track_encoder"):
        getattr(pipe, name).to(torch.float16)
    pipe.save_pretrained(out, safe_serialization=True)
    shutil.copy(src / "fgbg_pipeline.json", out / "fgbg_pipeline.json")


if __name__ == "__main__":
    main()
