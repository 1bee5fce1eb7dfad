"""FgbgPipeline: reference photo + pose maps + track maps -> video, clip by clip.

A diffusers `DiffusionPipeline` (save_pretrained / from_pretrained, .to(), CPU offload). Long
videos (PAPER.md, "condition concatenation" and "global feature injection"):

1. check inputs (sizes fit the model: multiples of 8 in latent space, clip length within the
   temporal table) before any model runs;
2. encode the reference ONCE per video: CLIP image embedding + ReferenceNet bank + (cached K/V);
3. encode conditions: pose encoder(pose maps) + track encoder(track maps), per clip;
4. plan clips: clip c > 0 starts on the last frame of clip c-1 (one frame of overlap);
5. denoise clip by clip: clip c > 0 gets the VAE latent of clip c-1's last frame (as decoded
   to uint8, so a resumed run sees the same bytes) at frame 0 of the conditioning latent, mask 1
   there; clip 0 gets zeros; every step of every clip reads the same reference bank;
6. decode in chunks of frames.

Classifier-free guidance (PAPER.md, ours): the unconditional branch has a zero CLIP embedding and
no reference attention; pose, tracks and the conditioning latent stay in both branches. As one
batch of 2 (default) or two sequential halves (`low_memory`, less activation memory).

`long_video="window"` offers AnimateAnyone's alternative for comparison: all frames' latents are
denoised together, each step averaging the predictions of overlapping context windows
(a plain sliding window of `clip_length` frames, `context_overlap` shared; AnimateAnyone's
scheduler also strides and loops, which we leave out). No conditioning latent there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from diffusers import DDIMScheduler, DiffusionPipeline
from torch.nn import functional as F

from ..errors import InputError, NonFiniteError
from .attention import ReferenceState
from . import taef2 as _taef2  # noqa: F401  (registers TinyAutoencoder: model_index.json names it)
from .encoders import ConditionEncoder
from .unets import ReferenceNet, VideoUNet

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def make_scheduler(**overrides) -> DDIMScheduler:
    """DDIM with AnimateAnyone's inference settings (v-prediction, zero terminal SNR, trailing)."""
    kw = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="linear", clip_sample=False,
              steps_offset=1, prediction_type="v_prediction", rescale_betas_zero_snr=True,
              timestep_spacing="trailing")
    kw.update(overrides)
    return DDIMScheduler(**kw)


def plan_clips(num_frames: int, clip_length: int, overlap: int = 1) -> list[tuple[int, int]]:
    """[(start, stop)] covering the video; clip c > 0 starts `overlap` frames before c-1 ends."""
    clips, start = [], 0
    while True:
        stop = min(start + clip_length, num_frames)
        clips.append((start, stop))
        if stop >= num_frames:
            return clips
        start = stop - overlap


@dataclass
class VideoContext:
    """What is computed once per video and reused by every step of every clip."""

    clip_embeds: torch.Tensor  # (1, 1, D) CLIP image embedding of the reference
    reference: ReferenceState  # ReferenceNet bank (+ cached K/V)
    height: int
    width: int


@dataclass
class Anchor:
    """Anchored background (ours, not the paper's: blended latent diffusion / RePaint style).

    At the start and after each of the first `share` of the denoising steps, the latents where
    `keep` is 1 are replaced by `latents` (the clip's moved background plate, encoded by this
    pipeline's VAE) noised with the clip's own noise to the level the latents have then (clean
    after the last step); where `keep` is 0 (the person's region, feathered) the model is free.
    After those steps the model refines the whole frame; with share 1 the background is the plate.
    latents (1, C, F, h, w) scaled like the pipeline's latents; keep (1, 1, F, h, w) in [0, 1].

    `pixels` (F, H, W, 3) uint8, the moved plate itself, and `pixel_keep` (F, H, W) in [0, 1], the
    person's region at pixel resolution: with share 1 the decoded frames are laid over the plate
    (`paste`), so outside the person the background is the plate's own pixels rather than their
    trip through the VAE, which redraws fine texture differently in every frame (the inpainting
    pipelines' paste-back; on the held-out scenes the moved plate's background-track error is
    0.09 px, its TAEF2 round trip's 0.23 px, the real video's 0.16 px: bench/plate_tracks.py)."""

    latents: torch.Tensor
    keep: torch.Tensor
    share: float = 0.5
    pixels: np.ndarray | None = None
    pixel_keep: np.ndarray | None = None

    def paste(self, frames: np.ndarray) -> np.ndarray:
        """Decoded frames (F, H, W, 3) uint8 -> the plate's pixels where `pixel_keep` (F, H, W)
        is 1, the decoded ones where it is 0 (the person's region), blended in between.
        Unchanged unless `pixels` and `pixel_keep` are given and share is 1."""
        if self.pixels is None or self.pixel_keep is None or self.share < 1.0:
            return frames
        alpha = np.asarray(self.pixel_keep, np.float32)[..., None]
        out = alpha * np.asarray(self.pixels, np.float32) + (1 - alpha) * frames.astype(np.float32)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@dataclass
class Init:
    """SDEdit start (ours): denoising starts from `latents` (1, C, F, h, w) noised to `strength`
    (1: pure noise, the usual start; 0: the latents themselves) instead of from pure noise."""

    latents: torch.Tensor
    strength: float = 0.6


def _check_finite(x: torch.Tensor, what: str) -> None:
    """Raise NonFiniteError when x holds NaN or infinity: a NaN latent decodes to black frames,
    which must never pass as a result."""
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise NonFiniteError(f"{what} are not finite ({bad} of {x.numel()} values are NaN or inf)",
                             cause=f"the model computed NaN/inf in {x.dtype}: fp16 overflow, broken "
                                   "weights, or non-finite inputs",
                             hint="rerun with --dtype fp32 (or bf16 on a GPU); if it persists, check "
                                  "the pipeline's weights with fgbg models verify")


class FgbgPipeline(DiffusionPipeline):
    model_cpu_offload_seq = "image_encoder->reference_net->pose_encoder->track_encoder->unet->vae"

    def __init__(self, vae, image_encoder, reference_net: ReferenceNet, unet: VideoUNet,
                 pose_encoder: ConditionEncoder, track_encoder: ConditionEncoder,
                 scheduler: DDIMScheduler):
        super().__init__()
        self.register_modules(vae=vae, image_encoder=image_encoder, reference_net=reference_net,
                              unet=unet, pose_encoder=pose_encoder, track_encoder=track_encoder,
                              scheduler=scheduler)
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        # the latent width comes from the autoencoder: 4 for an SD VAE (AutoencoderKL, converted
        # AnimateAnyone), 32 for TAEF2 (fgbg.diffusion.taef2.TinyAutoencoder, the demo model)
        self.latent_channels = c = int(vae.config.latent_channels)
        widths = {"unet in_channels": unet.config.in_channels, "unet out_channels": unet.config.out_channels,
                  "unet condition_channels - 1": unet.config.condition_channels - 1,
                  "reference_net in_channels": reference_net.config.in_channels}
        wrong = {k: v for k, v in widths.items() if v != c}
        if wrong:
            raise ValueError(f"the VAE has {c} latent channels but " + ", ".join(
                f"{k} is {v}" for k, v in wrong.items()) + ": build the UNets for this autoencoder")
        for enc in (pose_encoder, track_encoder):
            factor = 2 ** (len(enc.config.block_out_channels) - 1)
            if factor != self.vae_scale_factor:
                raise ValueError(f"a condition encoder downsamples {factor}x but the VAE "
                                 f"{self.vae_scale_factor}x: their features would not line up")
        self.vae_chunk = 8  # frames per VAE encode/decode call
        self.bank_dtype: torch.dtype | None = None  # torch.float16 reproduces AnimateAnyone bit for bit

    # ---- 1. checks -------------------------------------------------------------------------
    def check_inputs(self, reference_image, pose_maps, track_maps, height: int, width: int,
                     clip_length: int, num_inference_steps: int, guidance_scale: float,
                     output_type: str = "np", long_video: str = "concat", context_overlap: int = 0):
        """Every problem found before any model runs, as an InputError naming the fix."""
        m = self.vae_scale_factor * 2 ** (len(self.unet.config.block_out_channels) - 1)
        if height <= 0 or width <= 0 or height % m or width % m:
            raise InputError(f"output size {width}x{height} does not fit the model",
                             cause=f"width and height must be positive multiples of {m} (the VAE's "
                                   f"{self.vae_scale_factor}x and the UNet's downsampling)",
                             hint=f"use --width {max(m, round(width / m) * m)} "
                                  f"--height {max(m, round(height / m) * m)}")
        max_len = self.unet.config.motion_max_seq_length
        if not 2 <= clip_length <= max_len:
            raise InputError(f"clip length {clip_length} does not fit the model",
                             cause=f"the temporal blocks hold positions for at most {max_len} frames, "
                                   "and a clip continues from one frame of the previous one",
                             hint=f"use --clip-length between 2 and {max_len} (24 is AnimateAnyone's)")
        if num_inference_steps < 1:
            raise InputError(f"--steps {num_inference_steps} is too few", cause="DDIM needs >= 1 step",
                             hint="use --steps 25")
        if guidance_scale < 1.0:
            raise InputError(f"--guidance-scale {guidance_scale} is below 1",
                             cause="1 switches guidance off; below 1 pushes away from the reference",
                             hint="use --guidance-scale 3.5 (AnimateAnyone's) or 1 for no guidance")
        if output_type not in ("np", "pil", "latent"):
            raise InputError(f"output_type '{output_type}' is unknown", cause="np, pil or latent",
                             hint="use output_type='np'")
        if long_video not in ("concat", "window"):
            raise InputError(f"long_video '{long_video}' is unknown",
                             cause="concat (the paper's clip chaining) or window (AnimateAnyone's)",
                             hint="use long_video='concat'")
        if long_video == "window" and not 0 <= context_overlap < clip_length:
            raise InputError(f"context_overlap {context_overlap} does not fit clip length {clip_length}",
                             cause="windows must advance", hint="use context_overlap 4")
        ref = np.asarray(reference_image)
        if ref.ndim != 3 or ref.shape[2] != 3 or ref.dtype != np.uint8:
            raise InputError("the reference image must be (H, W, 3) uint8 RGB",
                             cause=f"got {ref.dtype} {ref.shape}", hint="pass the photo as RGB uint8")
        pm = np.asarray(pose_maps) if not torch.is_tensor(pose_maps) else pose_maps
        if pm.ndim != 4 or pm.shape[1:] != (height, width, 3):
            raise InputError("pose maps must be (F, H, W, 3) at the output size",
                             cause=f"got {tuple(pm.shape)} for {width}x{height}",
                             hint="render the pose maps at the output size")
        if track_maps is not None and tuple(track_maps.shape) != (pm.shape[0], 3, height, width):
            raise InputError("track maps must be (F, 3, H, W) at the output size",
                             cause=f"got {tuple(track_maps.shape)}, pose maps {tuple(pm.shape)}",
                             hint="render them with fgbg.diffusion.track_maps.render_track_maps")
        if track_maps is not None and not bool(torch.isfinite(torch.as_tensor(track_maps)).all()):
            raise InputError("the track maps hold NaN or infinity",
                             cause="a non-finite value would spread to every latent of the clip",
                             hint="render them with fgbg.diffusion.track_maps.render_track_maps "
                                  "(finite for any tracks)")

    # ---- 2. reference, once per video ------------------------------------------------------
    def _clip_pixels(self, image: np.ndarray) -> torch.Tensor:
        size = self.image_encoder.config.image_size
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255
        h, w = x.shape[-2:]
        s = size / min(h, w)
        x = F.interpolate(x, size=(max(size, round(h * s)), max(size, round(w * s))), mode="bicubic",
                          align_corners=False, antialias=True).clamp(0, 1)
        top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
        x = x[..., top:top + size, left:left + size]
        mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
        return (x - mean) / std

    def _images_to_latents(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> (N, C, h, w) scaled latents (posterior mean), in chunks."""
        out = []
        for i in range(0, len(images), self.vae_chunk):
            x = images[i:i + self.vae_chunk].to(self.vae.device, self.vae.dtype) * 2 - 1
            out.append(self.vae.encode(x).latent_dist.mean * self.vae.config.scaling_factor)
        return torch.cat(out)

    @staticmethod
    def _to_unit(images: np.ndarray, height: int, width: int) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255
        if x.shape[-2:] != (height, width):
            x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
        return x

    @torch.no_grad()
    def encode_reference(self, reference_image: np.ndarray, height: int, width: int) -> VideoContext:
        device, dtype = self.unet.device, self.unet.dtype
        pixels = self._clip_pixels(reference_image).to(self.image_encoder.device, self.image_encoder.dtype)
        embeds = self.image_encoder(pixels).image_embeds[:, None].to(device, dtype)  # (1, 1, D)
        ref_latent = self._images_to_latents(self._to_unit(reference_image[None], height, width))
        state = self.reference_net.encode(ref_latent.to(self.reference_net.device, self.reference_net.dtype),
                                          embeds.to(self.reference_net.device, self.reference_net.dtype),
                                          state=ReferenceState(bank_dtype=self.bank_dtype))
        return VideoContext(embeds, state, height, width)

    # ---- 3. conditions ---------------------------------------------------------------------
    @torch.no_grad()
    def encode_conditions(self, pose_maps: np.ndarray, track_maps=None) -> torch.Tensor:
        """pose maps (F, H, W, 3) uint8, track maps (F, 3, H, W) -> features (1, C0, F, h, w)."""
        pose = torch.from_numpy(np.ascontiguousarray(pose_maps)).permute(3, 0, 1, 2)[None].float() / 255
        feats = self.pose_encoder(pose.to(self.pose_encoder.device, self.pose_encoder.dtype))
        if track_maps is not None:
            tm = torch.as_tensor(track_maps).permute(1, 0, 2, 3)[None].float()
            feats = feats + self.track_encoder(tm.to(self.track_encoder.device, self.track_encoder.dtype)).to(feats.device)
        feats = feats.to(self.unet.device, self.unet.dtype)
        _check_finite(feats, "the condition features (pose and track encoders)")
        return feats

    # ---- 5. denoising ----------------------------------------------------------------------
    def _predict(self, ctx: VideoContext, latents, t, features, condition, guidance_scale, low_memory):
        unet = self.unet
        if guidance_scale <= 1.0:
            return unet(latents, t, ctx.clip_embeds, condition=condition, features=features,
                        reference=ctx.reference)
        uncond_embeds = torch.zeros_like(ctx.clip_embeds)
        if low_memory:
            u = unet(latents, t, uncond_embeds, condition=condition, features=features)
            c = unet(latents, t, ctx.clip_embeds, condition=condition, features=features,
                     reference=ctx.reference)
        else:
            both = unet(torch.cat([latents, latents]), t, torch.cat([uncond_embeds, ctx.clip_embeds]),
                        condition=torch.cat([condition, condition]), features=torch.cat([features, features]),
                        reference=ctx.reference, plain_batches=1)
            u, c = both.chunk(2)
        return u + guidance_scale * (c - u)

    def _noise(self, shape, generator: torch.Generator) -> torch.Tensor:
        # drawn on the CPU: the same seed gives the same noise on every device
        return torch.randn(shape, generator=generator, dtype=torch.float32).to(self.unet.device, self.unet.dtype)

    def condition_for(self, prev_frame: np.ndarray | None, num_frames: int, height: int, width: int):
        """(1, C + 1, F, h, w): [VAE latent of the previous clip's last frame ; mask] at frame 0."""
        h, w = height // self.vae_scale_factor, width // self.vae_scale_factor
        c = self.latent_channels
        cond = torch.zeros(1, c + 1, num_frames, h, w, device=self.unet.device, dtype=self.unet.dtype)
        if prev_frame is not None:
            lat = self._images_to_latents(self._to_unit(prev_frame[None], height, width))
            cond[0, :c, 0] = lat[0].to(cond.dtype)
            cond[0, c, 0] = 1
        return cond

    @torch.no_grad()
    def denoise_clip(self, ctx: VideoContext, features: torch.Tensor, prev_frame: np.ndarray | None,
                     generator: torch.Generator, num_inference_steps: int = 25,
                     guidance_scale: float = 3.5, low_memory: bool = False, progress=None,
                     anchor: Anchor | None = None, init: Init | None = None) -> torch.Tensor:
        frames = features.shape[2]
        h, w = ctx.height // self.vae_scale_factor, ctx.width // self.vae_scale_factor
        noise = self._noise((1, self.latent_channels, frames, h, w), generator)
        latents = noise * self.scheduler.init_noise_sigma
        condition = self.condition_for(prev_frame, frames, ctx.height, ctx.width)
        self.scheduler.set_timesteps(num_inference_steps, device=latents.device)
        timesteps = self.scheduler.timesteps
        if init is not None:  # SDEdit: skip the first (1 - strength) of the schedule
            skip = min(len(timesteps) - 1, int(round(len(timesteps) * (1.0 - init.strength))))
            timesteps = timesteps[skip:]
            latents = self.scheduler.add_noise(init.latents.to(noise), noise, timesteps[:1])
        anchored = 0 if anchor is None else int(round(anchor.share * len(timesteps)))
        steps = len(timesteps)
        if anchored:
            latents = self._hold(latents, anchor, noise, timesteps, 0)
        for i, t in enumerate(timesteps):
            x = self.scheduler.scale_model_input(latents, t)
            pred = self._predict(ctx, x, t, features, condition, guidance_scale, low_memory)
            latents = self.scheduler.step(pred, t, latents).prev_sample
            if i < anchored:
                latents = self._hold(latents, anchor, noise, timesteps, i + 1)
            _check_finite(latents, f"the latents after denoising step {i + 1} of {steps}")
            if progress is not None:
                progress(1)
        return latents

    def _hold(self, latents, anchor: Anchor, noise, timesteps, i: int) -> torch.Tensor:
        """The anchored background at the noise level the latents have after i steps (clean after
        the last), outside the person's region."""
        plate, keep = anchor.latents.to(noise), anchor.keep.to(noise)
        known = plate if i >= len(timesteps) else self.scheduler.add_noise(plate, noise, timesteps[i].reshape(1))
        return keep * known + (1 - keep) * latents

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> np.ndarray:
        """(1, C, F, h, w) -> (F, H, W, 3) uint8, in chunks of frames."""
        flat = latents[0].permute(1, 0, 2, 3) / self.vae.config.scaling_factor
        out = []
        for i in range(0, len(flat), self.vae_chunk):
            img = self.vae.decode(flat[i:i + self.vae_chunk].to(self.vae.device, self.vae.dtype)).sample
            _check_finite(img, f"the decoded frames {i}-{i + len(img) - 1} (VAE decoder)")
            out.append(((img.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu())
        return torch.cat(out).numpy()

    def generate_clip(self, ctx: VideoContext, pose_maps: np.ndarray, track_maps, prev_frame, seed: int,
                      num_inference_steps: int = 25, guidance_scale: float = 3.5,
                      low_memory: bool = False, progress=None, anchor: Anchor | None = None,
                      init: Init | None = None) -> np.ndarray:
        """One clip, uint8 frames out. Clip c of a video is made with seed `seed + c`; `anchor`
        holds the background to the moved plate, `init` starts from given latents (SDEdit)."""
        feats = self.encode_conditions(pose_maps, track_maps)
        gen = torch.Generator().manual_seed(int(seed))
        latents = self.denoise_clip(ctx, feats, prev_frame, gen, num_inference_steps, guidance_scale,
                                    low_memory, progress, anchor=anchor, init=init)
        frames = self.decode_latents(latents)
        return frames if anchor is None else anchor.paste(frames)

    @torch.no_grad()
    def encode_frames(self, frames: np.ndarray) -> torch.Tensor:
        """(F, H, W, 3) uint8 at the clip's size -> (1, C, F, h, w) latents, in VAE chunks."""
        lat = self._images_to_latents(self._to_unit(frames, frames.shape[1], frames.shape[2]))
        return lat.permute(1, 0, 2, 3)[None].to(self.unet.device, self.unet.dtype)

    @torch.no_grad()
    def _window_video(self, ctx, pose_maps, track_maps, seed, steps, guidance_scale, clip_length,
                      overlap, low_memory, anchor: Anchor | None = None):
        n = len(pose_maps)
        feats = self.encode_conditions(pose_maps, track_maps)
        h, w = ctx.height // self.vae_scale_factor, ctx.width // self.vae_scale_factor
        noise = self._noise((1, self.latent_channels, n, h, w), torch.Generator().manual_seed(int(seed)))
        latents = noise * self.scheduler.init_noise_sigma
        windows = plan_clips(n, clip_length, overlap) if n > clip_length else [(0, n)]
        self.scheduler.set_timesteps(steps, device=latents.device)
        timesteps = self.scheduler.timesteps
        anchored = 0 if anchor is None else int(round(anchor.share * len(timesteps)))
        if anchored:  # the whole video's plate, held as in clip mode
            latents = self._hold(latents, anchor, noise, timesteps, 0)
        for i, t in enumerate(timesteps):
            x = self.scheduler.scale_model_input(latents, t)
            total = torch.zeros_like(latents)
            count = torch.zeros(1, 1, n, 1, 1, device=latents.device, dtype=latents.dtype)
            for a, b in windows:
                cond = torch.zeros(1, self.latent_channels + 1, b - a, h, w, device=latents.device,
                                   dtype=latents.dtype)
                total[:, :, a:b] += self._predict(ctx, x[:, :, a:b], t, feats[:, :, a:b], cond,
                                                  guidance_scale, low_memory)
                count[:, :, a:b] += 1
            latents = self.scheduler.step(total / count, t, latents).prev_sample
            if i < anchored:
                latents = self._hold(latents, anchor, noise, timesteps, i + 1)
            _check_finite(latents, f"the latents at timestep {int(t)} (window mode)")
        return latents

    # ---- all steps -------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, reference_image: np.ndarray, pose_maps: np.ndarray, track_maps=None, *,
                 height: int | None = None, width: int | None = None, clip_length: int = 24,
                 num_inference_steps: int = 25, guidance_scale: float = 3.5, seed: int = 0,
                 output_type: str = "np", long_video: str = "concat", context_overlap: int = 4,
                 low_memory: bool = False, anchor: Anchor | None = None):
        """Returns frames: (F, H, W, 3) uint8 ('np'), a list of PIL images ('pil'), or the
        latents ('latent': one (1, C, F_clip, h, w) tensor per clip, or one for 'window').
        `anchor` (window mode only; clips get theirs through generate_clip): the whole video's
        moved plate and person region, (1, C, F, h, w) and (1, 1, F, h, w)."""
        height = height or np.asarray(pose_maps).shape[1]
        width = width or np.asarray(pose_maps).shape[2]
        # 1. check inputs
        self.check_inputs(reference_image, pose_maps, track_maps, height, width, clip_length,
                          num_inference_steps, guidance_scale, output_type, long_video, context_overlap)
        # 2. encode the reference (once per video)
        if anchor is not None and long_video != "window":
            raise InputError("anchor= is for long_video='window'",
                             cause="clip chaining anchors each clip separately",
                             hint="call generate_clip(..., anchor=...) per clip")
        ctx = self.encode_reference(np.asarray(reference_image), height, width)
        if long_video == "window":
            latents = self._window_video(ctx, pose_maps, track_maps, seed, num_inference_steps,
                                         guidance_scale, clip_length, context_overlap, low_memory, anchor)
            if output_type == "latent":
                return [latents]
            frames = self.decode_latents(latents)
            if anchor is not None:
                frames = anchor.paste(frames)
        else:
            # 4. plan clips
            clips = plan_clips(len(pose_maps), clip_length)
            parts, latents_out, prev = [], [], None
            bar = self.progress_bar(total=len(clips) * num_inference_steps)
            for c, (a, b) in enumerate(clips):
                # 3. conditions, 5. denoise (conditioned on the previous clip's last frame)
                feats = self.encode_conditions(pose_maps[a:b], None if track_maps is None else track_maps[a:b])
                lat = self.denoise_clip(ctx, feats, prev, torch.Generator().manual_seed(seed + c),
                                        num_inference_steps, guidance_scale, low_memory, bar.update)
                latents_out.append(lat)
                # 6. decode
                clip_frames = self.decode_latents(lat)
                prev = clip_frames[-1]
                parts.append(clip_frames if c == 0 else clip_frames[1:])
            bar.close()
            if output_type == "latent":
                return latents_out
            frames = np.concatenate(parts)
        ctx.reference.clear()
        if output_type == "pil":
            from PIL import Image

            return [Image.fromarray(f) for f in frames]
        return frames
