"""Condition encoders: the pose encoder and the track encoder (PAPER.md: dual encoders).

The paper states two encoders, one per motion signal. Their shape is our choice: AnimateAnyone's
PoseGuider (so its public pose_guider.pth loads into the pose encoder), reused for the track map.
Per frame, 3x3 convs: conv_in, SiLU, then [conv, SiLU, stride-2 conv, SiLU] x 3, then conv_out
to the UNet's first width at latent resolution (1/8), zero-initialised so that a fresh encoder
adds nothing. Input (B, C, F, H, W) in [0, 1] (pose maps) or signed (track maps); output
(B, C0, F, H/8, W/8), added after the denoising UNet's conv_in.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn
from torch.nn import functional as F


class ConditionEncoder(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(self, conditioning_embedding_channels: int = 320, conditioning_channels: int = 3,
                 block_out_channels: tuple[int, ...] = (16, 32, 96, 256)):
        super().__init__()
        self.conv_in = nn.Conv2d(conditioning_channels, block_out_channels[0], 3, padding=1)
        blocks = []
        for i in range(len(block_out_channels) - 1):
            a, b = block_out_channels[i], block_out_channels[i + 1]
            blocks += [nn.Conv2d(a, a, 3, padding=1), nn.Conv2d(a, b, 3, padding=1, stride=2)]
        self.blocks = nn.ModuleList(blocks)
        self.conv_out = nn.Conv2d(block_out_channels[-1], conditioning_embedding_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, conditioning: torch.Tensor) -> torch.Tensor:
        b, c, frames, h, w = conditioning.shape
        x = conditioning.permute(0, 2, 1, 3, 4).reshape(b * frames, c, h, w).to(self.dtype)
        x = F.silu(self.conv_in(x))
        for conv in self.blocks:
            x = F.silu(conv(x))
        x = self.conv_out(x)
        return x.reshape(b, frames, *x.shape[1:]).permute(0, 2, 1, 3, 4)
