"""AnimateAnyone checkpoints -> fgbg networks: an explicit, strict key map.

Sources (Moore-AnimateAnyone layout, MODELS.md section 7): reference_unet.pth (SD 2D UNet without
conv_norm_out/conv_out), denoising_unet.pth (the spatial part of the 3D UNet), motion_module.pth
(its temporal blocks, AnimateDiff v2 naming), pose_guider.pth (PoseGuider 320, (16,32,96,256)).

Key map (everything else is the same name on both sides):

    denoising UNet, motion blocks (AnimateDiff naming -> diffusers' AnimateDiffTransformer3D)
      motion_modules.{j}.temporal_transformer.X        -> motion_modules.{j}.X
      transformer_blocks.{k}.attention_blocks.0.        -> transformer_blocks.{k}.attn1.
      transformer_blocks.{k}.attention_blocks.1.        -> transformer_blocks.{k}.attn2.
      transformer_blocks.{k}.norms.0 / norms.1 / ff_norm -> norm1 / norm2 / norm3
      attention_blocks.{0,1}.pos_encoder.pe              -> pos_embed.pe (one table; the two
                                                            source copies must be equal)
    denoising UNet conv_in.weight (C0, 4, 3, 3)          -> first 4 of our 9 input channels;
                                                            the other 5 are set to zero
    pose_guider.*                                        -> pose_encoder.*

Our parameters that no source fills: the track encoder (zero output by construction) and the 5
extra conv_in channels (zero). With both at zero the model computes exactly what AnimateAnyone
computes. Loading is strict: any source key that maps to nothing, any shape mismatch, and any of our
parameters left unfilled (beyond those new ones) is an error naming the keys.
"""

from __future__ import annotations

import re

import torch

from ..errors import ModelError

_MOTION = [
    (re.compile(r"(motion_modules\.\d+\.)temporal_transformer\."), r"\1"),
    (re.compile(r"(transformer_blocks\.\d+\.)attention_blocks\.(\d)\.pos_encoder\.pe$"), r"\1pos_embed.pe"),
    (re.compile(r"(transformer_blocks\.\d+\.)attention_blocks\.0\."), r"\1attn1."),
    (re.compile(r"(transformer_blocks\.\d+\.)attention_blocks\.1\."), r"\1attn2."),
    (re.compile(r"(transformer_blocks\.\d+\.)norms\.0\."), r"\1norm1."),
    (re.compile(r"(transformer_blocks\.\d+\.)norms\.1\."), r"\1norm2."),
    (re.compile(r"(transformer_blocks\.\d+\.)ff_norm\."), r"\1norm3."),
]


def denoising_key(key: str) -> str:
    """Moore/AnimateDiff denoising-UNet key -> our VideoUNet key."""
    if ".motion_modules." in key:
        for pattern, repl in _MOTION:
            key = pattern.sub(repl, key)
    return key


class KeyMapError(ModelError):
    pass


def _fmt(keys, n=8) -> str:
    keys = sorted(keys)
    more = f" ... and {len(keys) - n} more" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def map_state_dict(source: dict[str, torch.Tensor], target_shapes: dict[str, tuple], mapper,
                   what: str, new_ok: tuple[str, ...] = (), padded: dict[str, int] | None = None
                   ) -> dict[str, torch.Tensor]:
    """Map `source` onto a model whose state dict has `target_shapes`.

    padded: target key -> number of leading input channels the source fills (dim 1); the rest
    are zero. new_ok: target key prefixes that no source is expected to fill.
    Returns the mapped dict (only keys the source filled). Raises KeyMapError naming unmatched,
    unused, duplicate-disagreeing and mis-shaped keys.
    """
    padded = padded or {}
    out: dict[str, torch.Tensor] = {}
    unmatched, misshaped, disagree = [], [], []
    for key, value in source.items():
        tkey = mapper(key)
        if tkey not in target_shapes:
            unmatched.append(key)
            continue
        shape = tuple(target_shapes[tkey])
        if tkey in padded:
            want = (shape[0], padded[tkey], *shape[2:])
            if tuple(value.shape) != want:
                misshaped.append(f"{key} {tuple(value.shape)} (expected {want})")
                continue
            full = torch.zeros(shape, dtype=value.dtype)
            full[:, :padded[tkey]] = value
            value = full
        elif tuple(value.shape) != shape:
            misshaped.append(f"{key} {tuple(value.shape)} -> {tkey} {shape}")
            continue
        if tkey in out:
            if not torch.equal(out[tkey], value):
                disagree.append(f"{key} -> {tkey}")
            continue
        out[tkey] = value
    unused = [k for k in target_shapes if k not in out and not k.startswith(new_ok)]
    problems = []
    if unmatched:
        problems.append(f"{len(unmatched)} source keys match nothing: {_fmt(unmatched)}")
    if misshaped:
        problems.append(f"{len(misshaped)} shapes differ: {_fmt(misshaped, 4)}")
    if disagree:
        problems.append(f"{len(disagree)} duplicate source keys disagree: {_fmt(disagree)}")
    if unused:
        problems.append(f"{len(unused)} of our parameters are not filled: {_fmt(unused)}")
    if problems:
        raise KeyMapError(f"the {what} weights do not fit fgbg's {what}", cause="; ".join(problems),
                          hint="check that the file is the AnimateAnyone checkpoint models.lock names "
                               "and that the model config matches it (SD1.5 for the public weights)")
    return out


def shapes(model) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def load_animateanyone(reference_net, video_unet, pose_encoder, *, reference: dict, denoising: dict,
                       motion: dict | None, pose: dict) -> dict[str, int]:
    """Load AnimateAnyone state dicts strictly into our three networks (in place).

    `denoising` and `motion` are merged (the public denoising_unet.pth holds the spatial weights,
    motion_module.pth the temporal ones; a single dict holding both also works)."""
    ref_sd = map_state_dict(reference, shapes(reference_net), lambda k: k, "reference UNet")
    merged = dict(denoising)
    if motion:
        overlap = set(merged) & set(motion)
        if overlap:
            raise KeyMapError("denoising_unet and motion_module weights overlap",
                              cause=f"both hold {_fmt(overlap)}",
                              hint="pass the spatial and the temporal weights once each")
        merged.update(motion)
    n_in = reference_net.config.in_channels
    vid_sd = map_state_dict(merged, shapes(video_unet), denoising_key, "denoising UNet",
                            padded={"conv_in.weight": n_in})
    pose_sd = map_state_dict(pose, shapes(pose_encoder), lambda k: k, "pose encoder")
    for model, sd in ((reference_net, ref_sd), (video_unet, vid_sd), (pose_encoder, pose_sd)):
        missing, unexpected = model.load_state_dict(sd, strict=False)
        assert not unexpected and not missing, (missing, unexpected)  # map_state_dict checked
    return {"reference": len(ref_sd), "denoising": len(vid_sd), "pose": len(pose_sd)}


# ---- the whole conversion: files -> pipeline folder -------------------------------------------

MANIFEST = "fgbg_manifest.json"
SOURCES = {  # what `fgbg models convert animateanyone` reads, by models.lock name
    "reference_unet": "animateanyone-reference-unet",
    "denoising_unet": "animateanyone-denoising-unet",
    "motion_module": "animateanyone-motion-module",
    "pose_guider": "animateanyone-pose-guider",
    "unet_config": "sd15-unet-config",
    "vae": "sd-vae-ft-mse",  # the folder holding it and its config.json
    "image_encoder": "sd-image-variations-image-encoder",  # folder with config.json
}


def _torch_load(path) -> dict:
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    return sd


def convert_animateanyone(paths: dict, out_dir, *, motion_num_attention_heads: int = 8,
                          motion_max_seq_length: int = 32, motion_norm_num_groups: int = 32,
                          dtype: torch.dtype = torch.float32) -> dict:
    """AnimateAnyone checkpoint files -> an fgbg pipeline folder (diffusers layout, safetensors).

    paths: keys of SOURCES -> file (folders for vae and image_encoder). Motion settings default to
    AnimateAnyone's inference_v2.yaml. Returns the manifest written beside the pipeline.
    """
    import json
    import shutil
    from pathlib import Path

    from diffusers import AutoencoderKL
    from transformers import CLIPVisionModelWithProjection

    from .encoders import ConditionEncoder
    from .pipeline import FgbgPipeline, make_scheduler
    from .unets import ReferenceNet, VideoUNet, sd_config

    out_dir = Path(out_dir)
    unet_cfg = sd_config(json.loads(Path(paths["unet_config"]).read_text()))
    reference = ReferenceNet(**unet_cfg)
    video = VideoUNet(**unet_cfg, motion_num_attention_heads=motion_num_attention_heads,
                      motion_max_seq_length=motion_max_seq_length,
                      motion_norm_num_groups=motion_norm_num_groups)
    c0 = unet_cfg.get("block_out_channels", (320,))[0]
    pose = ConditionEncoder(conditioning_embedding_channels=c0)
    track = ConditionEncoder(conditioning_embedding_channels=c0)  # new: zero output
    counts = load_animateanyone(
        reference, video, pose, reference=_torch_load(paths["reference_unet"]),
        denoising=_torch_load(paths["denoising_unet"]),
        motion=_torch_load(paths["motion_module"]) if paths.get("motion_module") else None,
        pose=_torch_load(paths["pose_guider"]))
    vae = AutoencoderKL.from_pretrained(Path(paths["vae"]), local_files_only=True)
    n = int(vae.config.latent_channels)
    image_encoder = CLIPVisionModelWithProjection.from_pretrained(Path(paths["image_encoder"]),
                                                                  local_files_only=True)
    pipe = FgbgPipeline(vae=vae, image_encoder=image_encoder, reference_net=reference, unet=video,
                        pose_encoder=pose, track_encoder=track, scheduler=make_scheduler())
    for m in (vae, image_encoder, reference, video, pose, track):
        m.to(dtype=dtype)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    pipe.save_pretrained(tmp, safe_serialization=True)
    from ..workdir import sha256_file

    files = {str(p.relative_to(tmp)): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
    manifest = {"kind": "animateanyone", "sources": {k: str(v) for k, v in paths.items()},
                "mapped": counts, "files": files,
                "new_zero_initialised": ["track_encoder", f"unet.conv_in.weight[:, {n}:{2 * n + 1}]"]}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    old = out_dir.with_name(out_dir.name + ".old")
    if out_dir.exists():
        shutil.rmtree(old, ignore_errors=True)
        out_dir.rename(old)
    tmp.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)
    return manifest
