"""The fgbg video diffusion model (issue 4): networks, track maps, pipeline, weight conversion.

Importing `fgbg.diffusion` imports nothing heavy; each submodule imports torch/diffusers itself.

    attention.py   reference attention: ReferenceNet writes its self-attention inputs, the
                   denoising UNet reads them (AnimateAnyone's mechanism, our processors)
    unets.py       ReferenceNet (2D) and VideoUNet (2D blocks + temporal motion blocks)
    encoders.py    ConditionEncoder: the pose encoder and the track encoder (PoseGuider shape)
    track_maps.py  tracks artifact -> per-frame Gaussian-splat maps
    pipeline.py    FgbgPipeline (a diffusers DiffusionPipeline), clip by clip
    convert.py     AnimateAnyone checkpoints -> fgbg pipeline folder (explicit key map)
    taef2.py       TinyAutoencoder: the TAEF2 tiny autoencoder (VAE interface, shipped weights
                   in fgbg/demo_pipeline/vae, per-channel latent normalisation in its config)
"""
