"""Train a small VAE for the built-in demo model (our addition: the SD VAE is 330 MB and a random
one cannot decode, so the tiny demo model gets its own 4x autoencoder, trained on the same frames).

Loss: mean squared error on pixels plus a small KL term (1e-6), AdamW; frames from the prepared
datasets, batches a pure function of (seed, step) like the main loop.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

DEMO_VAE = dict(block_out_channels=(32, 64, 64), layers_per_block=1, norm_num_groups=16, latent_channels=4,
                sample_size=64)


def build_demo_vae(seed: int = 0):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    n = len(DEMO_VAE["block_out_channels"])
    return AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
                         **DEMO_VAE)


def train_vae(datasets: list[str], out: Path, steps: int = 600, batch_size: int = 16, lr: float = 1e-3,
              seed: int = 0, log=print):
    from ..artifacts import load_prepared

    videos = load_prepared(datasets, min_frames=1)
    vae = build_demo_vae(seed).train()
    opt = torch.optim.AdamW(vae.parameters(), lr=lr)
    losses = []
    for step in range(steps):
        rng = np.random.default_rng([seed, step])
        batch = []
        for _ in range(batch_size):
            v = videos[rng.integers(len(videos))]
            batch.append(np.asarray(v.frames[rng.integers(len(v.frames))]))
        x = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).float() / 127.5 - 1
        post = vae.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=torch.Generator().manual_seed(step))
        rec = vae.decode(z).sample
        loss = F.mse_loss(rec, x) + 1e-6 * post.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if (step + 1) % 50 == 0:
            log(f"vae step {step + 1}/{steps}: loss {np.mean(losses[-50:]):.4f}")
    # latents scaled to unit variance, as SD's 0.18215 does for its VAE
    with torch.no_grad():
        vae.eval()
        x = torch.from_numpy(np.stack([np.asarray(v.frames[0]) for v in videos[:32]])).permute(0, 3, 1, 2).float()
        std = vae.encode(x / 127.5 - 1).latent_dist.mean.std().item()
    vae.register_to_config(scaling_factor=1.0 / max(std, 1e-3))
    out = Path(out)
    vae.save_pretrained(out)
    (out / "train_log.json").write_text(json.dumps({"steps": steps, "losses": losses[::10]}))
    return vae, losses
