"""Build an FgbgPipeline from config with random weights: the SD1.5-sized model (benchmarks: the
same cost as trained weights) or a tiny one (tests, CPU). Never downloads anything."""

from __future__ import annotations

import torch

SD15_UNET = dict(block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, cross_attention_dim=768,
                 attention_head_dim=8, norm_num_groups=32)
SD15_MOTION = dict(motion_num_attention_heads=8, motion_max_seq_length=32, motion_norm_num_groups=32)
SD15_VAE = dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, norm_num_groups=32,
                latent_channels=4, sample_size=512)
# CLIP ViT-L/14 with a 768-d projection (lambdalabs/sd-image-variations-diffusers image_encoder)
SD15_CLIP = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                 image_size=224, patch_size=14, projection_dim=768)
POSE_ENCODER = dict(block_out_channels=(16, 32, 96, 256))

TINY_UNET = dict(block_out_channels=(32, 32, 64, 64), layers_per_block=1, cross_attention_dim=32,
                 attention_head_dim=2, norm_num_groups=8)
TINY_MOTION = dict(motion_num_attention_heads=2, motion_max_seq_length=32, motion_norm_num_groups=8)
TINY_VAE = dict(block_out_channels=(8, 8, 16, 16), layers_per_block=1, norm_num_groups=4,
                latent_channels=4, sample_size=64)
TINY_CLIP = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                 image_size=32, patch_size=8, projection_dim=32)
TINY_ENCODER = dict(block_out_channels=(8, 8, 16, 16))

SIZES = {
    "sd15": (SD15_UNET, SD15_MOTION, SD15_VAE, SD15_CLIP, POSE_ENCODER),
    "tiny": (TINY_UNET, TINY_MOTION, TINY_VAE, TINY_CLIP, TINY_ENCODER),
}


def build_pipeline(size: str = "tiny", seed: int = 0, dtype: torch.dtype = torch.float32,
                   device: str | torch.device = "cpu", perturb_zero_init: bool = False, vae=None,
                   unet: dict | None = None):
    """A pipeline with random weights (seeded). `perturb_zero_init` gives the zero-initialised
    layers (encoder outputs, extra conv_in channels, motion proj_out) small random values so that
    every path contributes (tests of the conditioning plumbing).

    `vae`: None (a random AutoencoderKL of the size, 4 latent channels), "taef2" (the shipped
    TAEF2 weights, fgbg.diffusion.taef2: 8x, 32 latent channels), "taef2-random" (its layout with
    random weights, for tests), or a model. The UNets are built for the autoencoder's latent width
    C: C noisy + C conditioning + 1 mask channels in, C out. `unet` overrides UNet config fields."""
    from diffusers import AutoencoderKL
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from .backends_util import quiet_diffusers
    from .encoders import ConditionEncoder
    from .pipeline import FgbgPipeline, make_scheduler
    from .unets import ReferenceNet, VideoUNet

    quiet_diffusers()
    unet_kw, motion_kw, vae_kw, clip_kw, enc_kw = SIZES[size]
    unet_kw = {**unet_kw, **(unet or {})}
    n = len(vae_kw["block_out_channels"])
    torch.manual_seed(seed)
    if vae == "taef2":
        from .taef2 import TinyAutoencoder

        vae = TinyAutoencoder.shipped()
    with torch.device(device):
        if vae is None:  # else: a trained VAE given (the demo model's)
            vae = AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * n,
                                up_block_types=("UpDecoderBlock2D",) * n, **vae_kw)
        elif vae == "taef2-random":
            from .taef2 import TinyAutoencoder

            vae = TinyAutoencoder()
        image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**clip_kw))
        c = int(vae.config.latent_channels)
        reference_net = ReferenceNet(**unet_kw, in_channels=c)
        unet = VideoUNet(**unet_kw, **motion_kw, in_channels=c, out_channels=c, condition_channels=c + 1)
        c0 = unet_kw["block_out_channels"][0]
        # the encoders downsample as much as the VAE does (one stride-2 conv per VAE level)
        levels = len(vae.config.block_out_channels)
        enc = tuple(enc_kw["block_out_channels"])
        enc = enc[:levels] if len(enc) >= levels else enc + (enc[-1],) * (levels - len(enc))
        pose_encoder = ConditionEncoder(conditioning_embedding_channels=c0, block_out_channels=enc)
        track_encoder = ConditionEncoder(conditioning_embedding_channels=c0, block_out_channels=enc)
    if perturb_zero_init:
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for enc in (pose_encoder, track_encoder):
                enc.conv_out.weight.copy_(torch.randn(enc.conv_out.weight.shape, generator=g) * 0.05)
            w = unet.conv_in.weight
            w[:, c:] = torch.randn(w[:, c:].shape, generator=g) * 0.1
    pipe = FgbgPipeline(vae=vae, image_encoder=image_encoder, reference_net=reference_net, unet=unet,
                        pose_encoder=pose_encoder, track_encoder=track_encoder, scheduler=make_scheduler())
    for m in (vae, image_encoder, reference_net, unet, pose_encoder, track_encoder):
        m.to(device=device, dtype=dtype).eval().requires_grad_(False)
    pipe.set_progress_bar_config(disable=True)
    return pipe
