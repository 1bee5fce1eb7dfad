"""The two UNets, built from config in the diffusers idiom (ModelMixin + ConfigMixin).

Both follow the Stable Diffusion 1.5 layout and key names, so SD/AnimateAnyone state dicts map onto
them key for key (fgbg.diffusion.convert). Which piece is whose:

- diffusers: every block (ResnetBlock2D, Transformer2DModel/BasicTransformerBlock, Down/Upsample,
  the AnimateDiff motion blocks *BlockMotion / AnimateDiffTransformer3D), timestep embedding,
  SDPA attention.
- ours: the two classes below (their config and forward), the reference-attention processors
  (fgbg.diffusion.attention), the 9-channel conv_in and the additive pose/track features.

ReferenceNet: an SD 2D UNet without conv_norm_out/conv_out (AnimateAnyone's reference UNet); its
only product is the bank of self-attention inputs (`encode`).

VideoUNet: the denoising UNet. Frames are folded into the batch, (B*F, C, H, W), so every 2D op
(conv, GroupNorm, spatial attention) works per frame (AnimateAnyone's "inflated" layers); the
temporal motion blocks (our Temporal Motion Block, AnimateDiff layout) attend over frames at each
spatial position. Input channels: noisy latent (4) + conditioning latent (4) + mask (1) (PAPER.md,
condition concatenation); pose and track features are added after conv_in.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.unets.unet_2d_blocks import UNetMidBlock2DCrossAttn, get_down_block, get_up_block
from diffusers.models.unets.unet_motion_model import (
    CrossAttnDownBlockMotion,
    CrossAttnUpBlockMotion,
    DownBlockMotion,
    UNetMidBlockCrossAttnMotion,
    UpBlockMotion,
)
from torch import nn

from . import attention as ra

SD15_DOWN = ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D")
SD15_UP = ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D")
SD_KEYS = ("in_channels", "block_out_channels", "layers_per_block", "cross_attention_dim",
           "attention_head_dim", "norm_num_groups", "norm_eps", "down_block_types", "up_block_types",
           "sample_size", "flip_sin_to_cos", "freq_shift", "downsample_padding",
           "mid_block_scale_factor", "act_fn", "use_linear_projection")


class FrameGroupNorm(nn.GroupNorm):
    """GroupNorm over (B, C, F, H, W) with statistics per frame (frames folded into the batch)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            return super().forward(x)
        b, c, f, h, w = x.shape
        y = super().forward(x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w))
        return y.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)


def sd_config(config: dict) -> dict:
    """The fields of an SD `unet/config.json` that our UNets take."""
    return {k: v for k, v in config.items() if k in SD_KEYS}


def _time(model, timestep, batch: int, device, dtype) -> torch.Tensor:
    t = timestep
    if not torch.is_tensor(t):
        t = torch.tensor([t], dtype=torch.int64, device=device)
    elif t.ndim == 0:
        t = t[None].to(device)
    t = t.expand(batch)
    return model.time_embedding(model.time_proj(t).to(dtype))


class ReferenceNet(ModelMixin, ConfigMixin):
    """SD-layout 2D UNet that records its self-attention inputs (the reference bank)."""

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(self, sample_size: int = 64, in_channels: int = 4,
                 down_block_types: tuple[str, ...] = SD15_DOWN, up_block_types: tuple[str, ...] = SD15_UP,
                 block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280), layers_per_block: int = 2,
                 cross_attention_dim: int = 768, attention_head_dim: int = 8, norm_num_groups: int = 32,
                 norm_eps: float = 1e-5, act_fn: str = "silu", flip_sin_to_cos: bool = True,
                 freq_shift: int = 0, downsample_padding: int = 1, mid_block_scale_factor: float = 1.0,
                 use_linear_projection: bool = False):
        super().__init__()
        heads = attention_head_dim  # SD's config calls the head count "attention_head_dim"
        ch0, temb = block_out_channels[0], block_out_channels[0] * 4
        self.conv_in = nn.Conv2d(in_channels, ch0, 3, padding=1)
        self.time_proj = Timesteps(ch0, flip_sin_to_cos, freq_shift)
        self.time_embedding = TimestepEmbedding(ch0, temb, act_fn=act_fn)
        self.down_blocks = nn.ModuleList()
        out_ch = ch0
        for i, kind in enumerate(down_block_types):
            in_ch, out_ch = out_ch, block_out_channels[i]
            self.down_blocks.append(get_down_block(
                kind, num_layers=layers_per_block, in_channels=in_ch, out_channels=out_ch,
                temb_channels=temb, add_downsample=i < len(block_out_channels) - 1,
                resnet_eps=norm_eps, resnet_act_fn=act_fn, resnet_groups=norm_num_groups,
                cross_attention_dim=cross_attention_dim, num_attention_heads=heads,
                downsample_padding=downsample_padding, use_linear_projection=use_linear_projection,
                attention_head_dim=out_ch))
        self.up_blocks = nn.ModuleList()
        rev = list(reversed(block_out_channels))
        out_ch = rev[0]
        for i, kind in enumerate(up_block_types):
            prev, out_ch = out_ch, rev[i]
            in_ch = rev[min(i + 1, len(rev) - 1)]
            self.up_blocks.append(get_up_block(
                kind, num_layers=layers_per_block + 1, in_channels=in_ch, out_channels=out_ch,
                prev_output_channel=prev, temb_channels=temb, add_upsample=i < len(rev) - 1,
                resnet_eps=norm_eps, resnet_act_fn=act_fn, resolution_idx=i,
                resnet_groups=norm_num_groups, cross_attention_dim=cross_attention_dim,
                num_attention_heads=heads, use_linear_projection=use_linear_projection,
                attention_head_dim=out_ch))
        # registered after up_blocks, as in AnimateAnyone's class (state-dict order)
        self.mid_block = UNetMidBlock2DCrossAttn(
            in_channels=block_out_channels[-1], temb_channels=temb, resnet_eps=norm_eps,
            resnet_act_fn=act_fn, output_scale_factor=mid_block_scale_factor,
            cross_attention_dim=cross_attention_dim, num_attention_heads=heads,
            resnet_groups=norm_num_groups, use_linear_projection=use_linear_projection)
        self.reference_state: ra.ReferenceState | None = None
        self.bank_names = ra.install(self, ra.WriteProcessor)

    def forward(self, sample: torch.Tensor, timestep, encoder_hidden_states: torch.Tensor) -> torch.Tensor:
        """(B, 4, h, w) latents -> (B, C0, h, w) features after the last up block (AnimateAnyone
        discards them; the bank is what matters, see `encode`)."""
        emb = _time(self, timestep, sample.shape[0], sample.device, self.dtype)
        x = self.conv_in(sample)
        skips = (x,)
        for block in self.down_blocks:
            if getattr(block, "has_cross_attention", False):
                x, res = block(hidden_states=x, temb=emb, encoder_hidden_states=encoder_hidden_states)
            else:
                x, res = block(hidden_states=x, temb=emb)
            skips += res
        x = self.mid_block(x, emb, encoder_hidden_states=encoder_hidden_states)
        for i, block in enumerate(self.up_blocks):
            res, skips = skips[-len(block.resnets):], skips[:-len(block.resnets)]
            size = skips[-1].shape[2:] if i < len(self.up_blocks) - 1 else None
            if getattr(block, "has_cross_attention", False):
                x = block(hidden_states=x, temb=emb, res_hidden_states_tuple=res,
                          encoder_hidden_states=encoder_hidden_states, upsample_size=size)
            else:
                x = block(hidden_states=x, temb=emb, res_hidden_states_tuple=res, upsample_size=size)
        return x

    def encode(self, latents: torch.Tensor, encoder_hidden_states: torch.Tensor,
               state: ra.ReferenceState | None = None, timestep: int = 0) -> ra.ReferenceState:
        """Run once per video: record the bank into `state` (a new one if None). AnimateAnyone
        runs the reference pass at timestep 0 with the same CLIP embedding as the denoiser.
        Under torch.no_grad() (inference) the bank is detached; when training it stays in the graph."""
        state = state or ra.ReferenceState()
        state.clear()
        state.writing = True
        self.reference_state = state
        try:
            self(latents, timestep, encoder_hidden_states)
        finally:
            state.writing = False
            self.reference_state = None
        return state


class VideoUNet(ModelMixin, ConfigMixin):
    """Denoising UNet: SD spatial blocks + temporal motion blocks, 9-channel input."""

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(self, sample_size: int = 64, in_channels: int = 4, condition_channels: int = 5,
                 out_channels: int = 4, down_block_types: tuple[str, ...] = SD15_DOWN,
                 up_block_types: tuple[str, ...] = SD15_UP,
                 block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280), layers_per_block: int = 2,
                 cross_attention_dim: int = 768, attention_head_dim: int = 8, norm_num_groups: int = 32,
                 norm_eps: float = 1e-5, act_fn: str = "silu", flip_sin_to_cos: bool = True,
                 freq_shift: int = 0, downsample_padding: int = 1, mid_block_scale_factor: float = 1.0,
                 use_linear_projection: bool = False, motion_num_attention_heads: int = 8,
                 motion_max_seq_length: int = 32, motion_norm_num_groups: int = 32,
                 motion_mid_block: bool = True):
        super().__init__()
        heads = attention_head_dim
        ch0, temb = block_out_channels[0], block_out_channels[0] * 4
        # noisy latent + conditioning latent + mask; the extra channels start at zero when
        # 4-channel weights are loaded (fgbg.diffusion.convert)
        self.conv_in = nn.Conv2d(in_channels + condition_channels, ch0, 3, padding=1)
        self.time_proj = Timesteps(ch0, flip_sin_to_cos, freq_shift)
        self.time_embedding = TimestepEmbedding(ch0, temb, act_fn=act_fn)
        motion = dict(temporal_num_attention_heads=motion_num_attention_heads,
                      temporal_max_seq_length=motion_max_seq_length)
        common = dict(temb_channels=temb, num_layers=layers_per_block, resnet_eps=norm_eps,
                      resnet_act_fn=act_fn, resnet_groups=norm_num_groups, **motion)
        cross = dict(num_attention_heads=heads, cross_attention_dim=cross_attention_dim,
                     use_linear_projection=use_linear_projection)
        self.down_blocks = nn.ModuleList()
        out_ch = ch0
        for i, kind in enumerate(down_block_types):
            in_ch, out_ch = out_ch, block_out_channels[i]
            last = i == len(block_out_channels) - 1
            if kind.startswith("CrossAttn"):
                block = CrossAttnDownBlockMotion(in_channels=in_ch, out_channels=out_ch,
                                                 add_downsample=not last,
                                                 downsample_padding=downsample_padding, **common, **cross)
            else:
                block = DownBlockMotion(in_channels=in_ch, out_channels=out_ch, add_downsample=not last,
                                        downsample_padding=downsample_padding, **common)
            self.down_blocks.append(block)
        self.up_blocks = nn.ModuleList()
        rev = list(reversed(block_out_channels))
        out_ch = rev[0]
        up_common = {**common, "num_layers": layers_per_block + 1}
        for i, kind in enumerate(up_block_types):
            prev, out_ch = out_ch, rev[i]
            in_ch = rev[min(i + 1, len(rev) - 1)]
            kw = dict(in_channels=in_ch, out_channels=out_ch, prev_output_channel=prev,
                      add_upsample=i < len(rev) - 1, resolution_idx=i, **up_common)
            self.up_blocks.append(CrossAttnUpBlockMotion(**kw, **cross) if kind.startswith("CrossAttn")
                                  else UpBlockMotion(**kw))
        mid = dict(in_channels=block_out_channels[-1], temb_channels=temb, resnet_eps=norm_eps,
                   resnet_act_fn=act_fn, output_scale_factor=mid_block_scale_factor,
                   resnet_groups=norm_num_groups, **cross)
        self.mid_block = (UNetMidBlockCrossAttnMotion(**mid, **motion) if motion_mid_block
                          else UNetMidBlock2DCrossAttn(**mid))
        self.conv_norm_out = nn.GroupNorm(norm_num_groups, ch0, eps=norm_eps)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(ch0, out_channels, 3, padding=1)
        # The motion blocks' GroupNorm: AnimateDiff/AnimateAnyone normalise each frame on its own,
        # with 32 groups whatever the UNet's own grouping; diffusers' AnimateDiffTransformer3D
        # normalises over all frames together, with the UNet's groups. Same parameters, so we
        # swap in a per-frame norm to compute what the public weights were trained with.
        for name, module in self.named_modules():
            if name.split(".")[-2:-1] == ["motion_modules"]:
                norm = module.norm
                module.norm = FrameGroupNorm(motion_norm_num_groups, norm.num_channels, eps=norm.eps)
        self.reference_state: ra.ReferenceState | None = None
        self.bank_names = ra.install(self, ra.ReadProcessor)

    def forward(self, sample: torch.Tensor, timestep, encoder_hidden_states: torch.Tensor,
                condition: torch.Tensor | None = None, features: torch.Tensor | None = None,
                reference: ra.ReferenceState | None = None, plain_batches: int = 0) -> torch.Tensor:
        """One denoising call.

        sample (B, 4, F, h, w) noisy latents; condition (B, 5, F, h, w) conditioning latent + mask
        (None: zeros, the first clip); features (B, C0, F, h, w) pose (+ track) encoder output,
        added after conv_in; encoder_hidden_states (B, S, D) CLIP image embedding; reference:
        the bank from ReferenceNet.encode (None: no reference attention); the first
        `plain_batches` batch items skip reference attention (CFG's unconditional half).
        Returns (B, out_channels, F, h, w).
        """
        b, _, frames, h, w = sample.shape
        if condition is None:
            condition = sample.new_zeros(b, self.config.condition_channels, frames, h, w)
        x = torch.cat([sample, condition.to(sample.dtype)], dim=1)
        x = x.permute(0, 2, 1, 3, 4).reshape(b * frames, -1, h, w)  # (b f) c h w
        emb = _time(self, timestep, b, sample.device, self.dtype).repeat_interleave(frames, dim=0)
        ehs = encoder_hidden_states.repeat_interleave(frames, dim=0)
        x = self.conv_in(x)
        if features is not None:
            x = x + features.permute(0, 2, 1, 3, 4).reshape(b * frames, -1, h, w).to(x.dtype)
        if reference is not None:
            reference.num_frames, reference.plain_batches = frames, plain_batches
            reference.reads += 1
        self.reference_state = reference
        try:
            skips = (x,)
            for block in self.down_blocks:
                if getattr(block, "has_cross_attention", False):
                    x, res = block(hidden_states=x, temb=emb, encoder_hidden_states=ehs, num_frames=frames)
                else:
                    x, res = block(hidden_states=x, temb=emb, num_frames=frames)
                skips += res
            if hasattr(self.mid_block, "motion_modules"):
                x = self.mid_block(x, emb, encoder_hidden_states=ehs, num_frames=frames)
            else:
                x = self.mid_block(x, emb, encoder_hidden_states=ehs)
            for i, block in enumerate(self.up_blocks):
                res, skips = skips[-len(block.resnets):], skips[:-len(block.resnets)]
                size = skips[-1].shape[2:] if i < len(self.up_blocks) - 1 else None
                if getattr(block, "has_cross_attention", False):
                    x = block(hidden_states=x, temb=emb, res_hidden_states_tuple=res,
                              encoder_hidden_states=ehs, upsample_size=size, num_frames=frames)
                else:
                    x = block(hidden_states=x, temb=emb, res_hidden_states_tuple=res,
                              upsample_size=size, num_frames=frames)
        finally:
            self.reference_state = None
        x = self.conv_out(self.conv_act(self.conv_norm_out(x)))
        return x.reshape(b, frames, -1, h, w).permute(0, 2, 1, 3, 4)
