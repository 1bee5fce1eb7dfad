"""Reference attention: how the reference image's appearance reaches every generated frame.

AnimateAnyone's mechanism (PAPER.md: the backbone is our choice, taken from AnimateAnyone so its
public weights load): the ReferenceNet runs once on the reference latent; in every spatial
transformer block it records the input of self-attention (the output of `norm1`, shape
(B, h*w, C)). In the denoising UNet's block of the same name, self-attention takes its keys and
values from [own tokens ; recorded tokens] (2*h*w tokens), its queries from its own tokens.

What diffusers lacks and we write here: two attention processors (diffusers' `Attention` calls a
processor object; everything else in the blocks is diffusers' own code).

- `WriteProcessor` records `hidden_states` (= norm1 output) into the shared `ReferenceState`,
  then computes ordinary self-attention (SDPA).
- `ReadProcessor` computes self-attention with the recorded tokens appended to keys/values, for
  the batch rows that carry the reference; rows of the classifier-free-guidance unconditional half
  get plain self-attention (Moore's convention: the unconditional branch never sees the reference).

Efficiency (ours): the recorded tokens do not change from step to step or frame to frame, so their
key/value projections are computed once per video per block (`ReferenceState.kv`) instead of once
per frame per step; because the projections are linear and row-wise, this is exact.
Pairing: a reader block reads the bank written by the identically named writer block (both UNets
share the SD layout; Moore pairs by sorting on width, which gives the same pairs).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


@dataclass
class ReferenceState:
    """Recorded reference tokens for one video, shared by the processors of both UNets.

    bank: block name -> (B_ref, L, C) tokens; kv: block name -> cached (K, V) projections.
    `plain_batches`: the first this-many batch items of a denoising call get plain self-attention
    (the CFG unconditional half); the remaining B_ref items read the bank.
    `bank_dtype`: dtype the tokens are stored in (None: as computed). AnimateAnyone stores them
    as float16 whatever the model dtype; `torch.float16` reproduces that exactly.
    """

    bank: dict[str, torch.Tensor] = field(default_factory=dict)
    kv: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    writing: bool = False
    num_frames: int = 1
    plain_batches: int = 0
    bank_dtype: torch.dtype | None = None
    reads: int = 0  # denoising calls that read this state (tests count reference passes)

    def clear(self) -> None:
        self.bank.clear()
        self.kv.clear()


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, c = x.shape
    return x.view(b, n, heads, c // heads).transpose(1, 2)


def _attend(attn, query_states: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """SDPA with diffusers' Attention projections; key/value already projected."""
    b = query_states.shape[0]
    q = _heads(attn.to_q(query_states), attn.heads)
    k, v = _heads(key, attn.heads), _heads(value, attn.heads)
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, is_causal=False)
    out = out.transpose(1, 2).reshape(b, -1, attn.heads * q.shape[-1]).to(q.dtype)
    return attn.to_out[1](attn.to_out[0](out))


def self_attention(attn, hidden_states: torch.Tensor) -> torch.Tensor:
    return _attend(attn, hidden_states, attn.to_k(hidden_states), attn.to_v(hidden_states))


class _Base:
    def __init__(self, name: str, state_holder):
        self.name = name
        self.holder = state_holder  # the UNet; its `reference_state` is set per call

    def _check(self, attn, encoder_hidden_states, attention_mask):
        if encoder_hidden_states is not None or attention_mask is not None:
            raise ValueError(f"{self.name}: reference attention is self-attention without a mask")


class WriteProcessor(_Base):
    """ReferenceNet side: record the self-attention input, then attend normally."""

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 temb=None, **kwargs):
        self._check(attn, encoder_hidden_states, attention_mask)
        state: ReferenceState | None = self.holder.reference_state
        if state is not None and state.writing:
            # kept in the graph when training (gradients reach the ReferenceNet through the bank)
            tokens = hidden_states if torch.is_grad_enabled() else hidden_states.detach()
            if state.bank_dtype is not None:
                tokens = tokens.to(state.bank_dtype)
            state.bank[self.name] = tokens
        return self_attention(attn, hidden_states)


class ReadProcessor(_Base):
    """Denoising side: keys/values from [own tokens ; reference tokens] for reference rows."""

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 temb=None, **kwargs):
        self._check(attn, encoder_hidden_states, attention_mask)
        state: ReferenceState | None = self.holder.reference_state
        if state is None or self.name not in state.bank:
            return self_attention(attn, hidden_states)
        frames = state.num_frames
        skip = state.plain_batches * frames
        ref_rows = hidden_states[skip:]
        kv = state.kv.get(self.name)
        if kv is None or kv[0].dtype != hidden_states.dtype:
            bank = state.bank[self.name].to(hidden_states.dtype)
            kv = (attn.to_k(bank), attn.to_v(bank))
            if not torch.is_grad_enabled():
                state.kv[self.name] = kv
        bank_k, bank_v = kv
        if bank_k.shape[0] * frames != ref_rows.shape[0]:
            raise ValueError(f"{self.name}: {ref_rows.shape[0]} reference rows but a bank of "
                             f"{bank_k.shape[0]} x {frames} frames")
        # (B_ref, L, C) -> (B_ref*F, L, C) in (b, f) order, as the rows are laid out
        bank_k = bank_k.repeat_interleave(frames, dim=0)
        bank_v = bank_v.repeat_interleave(frames, dim=0)
        key = torch.cat([attn.to_k(ref_rows), bank_k], dim=1)
        value = torch.cat([attn.to_v(ref_rows), bank_v], dim=1)
        out = _attend(attn, ref_rows, key, value)
        if skip:
            out = torch.cat([self_attention(attn, hidden_states[:skip]), out], dim=0)
        return out


def spatial_self_attentions(unet) -> dict[str, object]:
    """name -> attn1 of every spatial BasicTransformerBlock (not the temporal motion blocks)."""
    from diffusers.models.attention import BasicTransformerBlock

    found = {}
    for name, module in unet.named_modules():
        if isinstance(module, BasicTransformerBlock) and ".motion_modules." not in name \
                and not name.startswith("motion_modules"):
            found[name] = module.attn1
    return found


def install(unet, processor_cls) -> list[str]:
    """Give every spatial self-attention of `unet` a processor of `processor_cls`."""
    names = []
    for name, attn in spatial_self_attentions(unet).items():
        attn.set_processor(processor_cls(name, unet))
        names.append(name)
    return names
