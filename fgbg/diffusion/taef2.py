"""TinyAutoencoder: the TAEF2 tiny image autoencoder as a diffusers model of ours.

TAEF2 (madebyollin/taesd, MIT) is a 2 x 1.34 M-parameter autoencoder distilled to FLUX.2's VAE
latent space: 8x spatial downsampling, 32 latent channels. This module is written from the layer
layout in the weights' SOURCE.md (see `fgbg/demo_pipeline/vae/SOURCE.md`); the upstream files are plain
state dicts whose keys index a flat `nn.Sequential`, so `encoder` and `decoder` here are flat
`nn.Sequential`s with the same indices: upstream key `K` is our `encoder.K` / `decoder.K`.

It offers the interface FgbgPipeline uses of a VAE (AutoencoderKL's):

    vae.encode(x).latent_dist.mean   x (B, 3, H, W) in [-1, 1], H and W multiples of 8
                                     -> (B, 32, H/8, W/8), normalised per channel
    vae.decode(z).sample             -> (B, 3, H, W), about [-1, 1] (not clamped)
    vae.config.scaling_factor        1.0 (the normalisation is per channel, below)
    2 ** (len(vae.config.block_out_channels) - 1) == 8

Normalisation (ours): TAEF2's raw latents are roughly within [-3, 3] and not unit variance per
channel. `encode` returns (raw - latents_mean) / latents_std and `decode` undoes it, with the
per-channel lists stored in the config (default mean 0, std 1: the identity, until measured with
`measure_latent_stats` on the training frames). Unlike AutoencoderKL, where pipelines apply
`latents_mean`/`latents_std` themselves, this model applies them itself, so a pipeline written
for AutoencoderKL (`latent_dist.mean * scaling_factor`, `decode(z / scaling_factor)`) sees
normalised latents with no change.

Loading: `TinyAutoencoder.from_original(encoder_pth, decoder_pth)` reads the upstream files
(sha256 checked against models.lock before anything is loaded, then `torch.load(...,
weights_only=True)`, keys matched strictly); `TinyAutoencoder.shipped()` reads the copy carried
by the package (`fgbg/demo_pipeline/vae/`, the demo pipeline's autoencoder: fp16 safetensors written by
save_pretrained; `shipped()` returns it without the demo's latent normalisation);
`from_pretrained` / `save_pretrained` work as for any diffusers model. fp16 and fp32 both run.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from ..errors import InputError, ModelError

# the package's copy of the weights (fp16 safetensors + config.json + LICENSE + SOURCE.md)
# (the demo pipeline's autoencoder: the weights are in the repository once)
SHIPPED = Path(__file__).resolve().parents[1] / "demo_pipeline" / "vae"
# models.lock entries of the upstream files (`fgbg models fetch taef2` fetches both)
LOCK_NAMES = {"encoder": "taef2-encoder", "decoder": "taef2-decoder"}
UPSTREAM_FILES = {"encoder": "taef2_encoder.pth", "decoder": "taef2_decoder.pth"}
# The one part of the upstream .pth files that torch.save does not reproduce: the random
# 40-digit id it writes into `<stem>/.data/serialization_id`. With these, `write_original`
# rebuilds the upstream files byte for byte (same sha256) from the shipped safetensors.
UPSTREAM_SERIALIZATION_IDS = {"encoder": b"0811547948550104797907891459422033820079",
                              "decoder": b"0811547948550104797904760766797265125499"}


# ----------------------------------------------------------------------------- layers


def _conv(c_in: int, c_out: int, *, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=bias)


class _Pool(nn.Sequential):
    """The FLUX.2 variant's extra branch: 1x1 conv c->4c (no bias), GroupNorm, ReLU, 1x1 conv
    4c->c (no bias). Keys `pool.0.weight`, `pool.1.{weight,bias}`, `pool.3.weight`."""

    def __init__(self, channels: int, hidden: int, groups: int):
        super().__init__(nn.Conv2d(channels, hidden, 1, bias=False), nn.GroupNorm(groups, hidden),
                         nn.ReLU(), nn.Conv2d(hidden, channels, 1, bias=False))


class _Block(nn.Module):
    """x = x + pool(x) (where the block has a pool branch); out = ReLU(conv3(x) + skip(x)), conv3 =
    conv, ReLU, conv, ReLU, conv (keys `conv.0`, `conv.2`, `conv.4`), skip = identity (c -> c).
    Submodules are registered in the upstream order (conv, skip, fuse, pool): the module tree is
    what torch.save records beside the weights (`state_dict()._metadata`)."""

    def __init__(self, channels: int, pool_channels: int = 0, pool_groups: int = 4):
        super().__init__()
        self.conv = nn.Sequential(_conv(channels, channels), nn.ReLU(), _conv(channels, channels),
                                  nn.ReLU(), _conv(channels, channels))
        self.skip = nn.Identity()
        self.fuse = nn.ReLU()
        self.pool = _Pool(channels, pool_channels, pool_groups) if pool_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + self.skip(x))


class _Clamp(nn.Module):
    """Decoder input clamp: tanh(x / limit) * limit (no weights)."""

    def __init__(self, limit: float):
        super().__init__()
        self.limit = limit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / self.limit) * self.limit


@dataclass
class PointLatent:
    """The encoder's output as AutoencoderKL's `latent_dist`: a point mass (the encoder is
    deterministic), so `mean`, `mode()` and `sample()` are the same tensor; std is zero."""

    mean: torch.Tensor

    def mode(self) -> torch.Tensor:
        return self.mean

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.mean

    @property
    def std(self) -> torch.Tensor:
        return torch.zeros_like(self.mean)

    @property
    def var(self) -> torch.Tensor:
        return torch.zeros_like(self.mean)

    def kl(self, other=None) -> torch.Tensor:
        return torch.zeros(self.mean.shape[0], device=self.mean.device, dtype=self.mean.dtype)


# ----------------------------------------------------------------------------- the model


class TinyAutoencoder(ModelMixin, ConfigMixin):
    """TAEF2's layout, parameterised only as far as SOURCE.md describes it.

    block_out_channels: the width at each resolution, full to latent (len 4 -> 8x; a stride-2
    conv between levels; all TAEF2 blocks are 64 -> 64). blocks_per_level: blocks at each level
    in the encoder (full to latent); the decoder mirrors it. The blocks at the latent level carry
    a pool branch of `pool_channels` (0: none) with GroupNorm(`pool_groups`). The decoder starts
    with a tanh clamp at +-`latent_clamp`.
    """

    config_name = "config.json"

    @register_to_config
    def __init__(self, in_channels: int = 3, out_channels: int = 3, latent_channels: int = 32,
                 block_out_channels: tuple[int, ...] = (64, 64, 64, 64),
                 blocks_per_level: tuple[int, ...] = (1, 3, 3, 3), pool_channels: int = 256,
                 pool_groups: int = 4, latent_clamp: float = 3.0, scaling_factor: float = 1.0,
                 latents_mean: list[float] | None = None, latents_std: list[float] | None = None,
                 force_upcast: bool = False):
        super().__init__()
        widths, counts = list(block_out_channels), list(blocks_per_level)
        if len(widths) != len(counts) or len(widths) < 1:
            raise ValueError(f"block_out_channels {widths} and blocks_per_level {counts} must "
                             "have one entry per resolution level")
        mean = [0.0] * latent_channels if latents_mean is None else [float(v) for v in latents_mean]
        std = [1.0] * latent_channels if latents_std is None else [float(v) for v in latents_std]
        if len(mean) != latent_channels or len(std) != latent_channels:
            raise ValueError(f"latents_mean and latents_std need {latent_channels} values (one per "
                             f"latent channel), got {len(mean)} and {len(std)}")
        if not all(np.isfinite(v) for v in mean) or not all(np.isfinite(s) and s > 0 for s in std):
            raise ValueError("latents_mean must be finite and latents_std finite and positive")
        # the config always holds the explicit lists (the identity until measured)
        self.register_to_config(latents_mean=mean, latents_std=std)
        last = len(widths) - 1

        def blocks(level: int) -> list[nn.Module]:
            pool = pool_channels if level == last else 0
            return [_Block(widths[level], pool, pool_groups) for _ in range(counts[level])]

        enc: list[nn.Module] = [_conv(in_channels, widths[0]), *blocks(0)]
        for level in range(1, len(widths)):
            enc += [_conv(widths[level - 1], widths[level], stride=2, bias=False), *blocks(level)]
        enc.append(_conv(widths[-1], latent_channels))
        self.encoder = nn.Sequential(*enc)

        dec: list[nn.Module] = [_Clamp(latent_clamp), _conv(latent_channels, widths[-1]), nn.ReLU(),
                                *blocks(last)]
        for level in range(last - 1, -1, -1):
            dec += [nn.Upsample(scale_factor=2, mode="nearest"),
                    _conv(widths[level + 1], widths[level], bias=False), *blocks(level)]
        dec.append(_conv(widths[0], out_channels))
        self.decoder = nn.Sequential(*dec)

    # ---- normalisation ----------------------------------------------------------------------
    def _stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (1, -1, 1, 1)
        mean = torch.tensor(self.config.latents_mean, dtype=like.dtype, device=like.device)
        std = torch.tensor(self.config.latents_std, dtype=like.dtype, device=like.device)
        return mean.view(shape), std.view(shape)

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.config.block_out_channels) - 1)

    # ---- AutoencoderKL's interface ----------------------------------------------------------
    def encode_raw(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 3, H, W) in [-1, 1] -> TAEF2's raw latents (B, 32, H/8, W/8), unnormalised."""
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise InputError(f"the autoencoder encodes (B, {self.config.in_channels}, H, W) images, "
                             f"got shape {tuple(x.shape)}")
        f = self.downsample_factor
        if x.shape[-2] % f or x.shape[-1] % f:
            raise InputError(f"cannot encode a {x.shape[-1]}x{x.shape[-2]} image",
                             cause=f"width and height must be multiples of {f} (the autoencoder "
                                   f"downsamples {f}x)",
                             hint=f"resize or crop to {x.shape[-1] // f * f}x{x.shape[-2] // f * f}")
        # both halves run on channels-last activations: the same convolutions in another memory
        # order, 1.3-1.6x faster on the CPU (the plate's encode is what anchoring adds)
        x = ((x.to(self.dtype) + 1) / 2).contiguous(memory_format=torch.channels_last)  # RGB in [0, 1]
        return self.encoder(x).contiguous()

    def decode_raw(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw (unnormalised) latents -> images (B, 3, 8h, 8w) in about [-1, 1]."""
        raw = raw.to(self.dtype).contiguous(memory_format=torch.channels_last)
        return self.decoder(raw).contiguous() * 2 - 1  # TAEF2 writes RGB in about [0, 1]

    def encode(self, x: torch.Tensor, return_dict: bool = True):
        """x (B, 3, H, W) in [-1, 1] -> AutoencoderKLOutput(latent_dist=PointLatent(normalised))."""
        raw = self.encode_raw(x)
        mean, std = self._stats(raw)
        dist = PointLatent((raw - mean) / std)
        return AutoencoderKLOutput(latent_dist=dist) if return_dict else (dist,)

    def decode(self, z: torch.Tensor, return_dict: bool = True, generator=None):
        """Normalised latents (B, 32, h, w) -> DecoderOutput(sample=(B, 3, 8h, 8w) in about [-1, 1])."""
        if z.ndim != 4 or z.shape[1] != self.config.latent_channels:
            raise InputError(f"the autoencoder decodes (B, {self.config.latent_channels}, h, w) "
                             f"latents, got shape {tuple(z.shape)}")
        z = z.to(self.dtype)
        mean, std = self._stats(z)
        img = self.decode_raw(z * std + mean)
        return DecoderOutput(sample=img) if return_dict else (img,)

    def forward(self, sample: torch.Tensor, sample_posterior: bool = False, return_dict: bool = True,
                generator=None):
        """Encode then decode (a round trip), like AutoencoderKL.forward."""
        return self.decode(self.encode(sample).latent_dist.mean, return_dict=return_dict)

    # ---- loading ----------------------------------------------------------------------------
    @classmethod
    def shipped(cls, dtype: torch.dtype = torch.float32) -> "TinyAutoencoder":
        """The package's copy of TAEF2 (fgbg/demo_pipeline/vae), in `dtype`."""
        if not (SHIPPED / "diffusion_pytorch_model.safetensors").is_file():
            raise ModelError("fgbg's copy of the TAEF2 autoencoder is missing",
                             f"{SHIPPED} holds no diffusion_pytorch_model.safetensors",
                             "reinstall fgbg, or run `fgbg models fetch taef2` and load it with "
                             "TinyAutoencoder.from_original")
        model = cls.from_pretrained(SHIPPED, torch_dtype=dtype)
        # upstream TAEF2 has no normalisation: the demo's measured statistics stay in its folder
        c = model.config.latent_channels
        return with_latent_stats(model, {"latents_mean": [0.0] * c, "latents_std": [1.0] * c})

    @classmethod
    def from_original(cls, encoder_pth: str | Path, decoder_pth: str | Path, *,
                      dtype: torch.dtype = torch.float32,
                      expected_sha256: Mapping[str, str] | None = None,
                      **config) -> "TinyAutoencoder":
        """Load the upstream taef2_encoder.pth / taef2_decoder.pth, strictly.

        Each file's sha256 must be the one models.lock pins (`taef2-encoder`, `taef2-decoder`)
        or, when given, `expected_sha256[half]` (half: 'encoder' / 'decoder'); a file that
        differs is refused before torch.load reads it. Then `torch.load(weights_only=True)`, and
        every key must be one the layout has, with its shape: missing, extra and misshapen keys
        are named in a ModelError. `config` overrides config fields (e.g. measured latents_mean
        and latents_std)."""
        model = cls(**config)
        for half, path in (("encoder", Path(encoder_pth)), ("decoder", Path(decoder_pth))):
            want = (expected_sha256 or {}).get(half) or _lock_sha256(half)
            _check_sha256(path, want, half)
            state = _load_pth(path, half)
            load_half(model, half, state, source=str(path))
        return nn.Module.to(model, dtype).eval()  # (ModelMixin.to warns on every dtype cast)


# ----------------------------------------------------------------------------- upstream files


def _lock_sha256(half: str) -> str:
    from ..store import load_lock

    name = LOCK_NAMES[half]
    entry = load_lock().get(name)
    if entry is None or not entry.hash_confirmed:
        raise ModelError(f"models.lock pins no sha256 for '{name}'",
                         "the TAEF2 files are checked against the lock before they are loaded",
                         "use fgbg's models.lock (unset $FGBG_LOCK) or pass expected_sha256")
    return entry.sha256


def _check_sha256(path: Path, want: str, half: str) -> None:
    from ..store import sha256_file

    if not path.is_file():
        raise ModelError(f"the TAEF2 {half} file {path} does not exist",
                         hint=f"run `fgbg models fetch taef2` (it places {UPSTREAM_FILES[half]} in "
                              "the models folder; `fgbg models path taef2-" + half + "` prints where)")
    got = sha256_file(path)
    if got != want:
        raise ModelError(f"refusing to load {path}: it is not the TAEF2 {half} fgbg pins",
                         f"its sha256 is {got}, the pinned one is {want}",
                         "fetch the pinned file with `fgbg models fetch taef2`, or pass its "
                         "sha256 as expected_sha256 if you mean to load another file")


def _load_pth(path: Path, half: str) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same thing here
        raise ModelError(f"cannot read the TAEF2 {half} file {path}", f"{type(exc).__name__}: {exc}",
                         "it must be a plain PyTorch state dict (torch.save of a dict of tensors)"
                         ) from exc
    if not isinstance(state, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ModelError(f"the TAEF2 {half} file {path} is not a state dict",
                         f"it holds a {type(state).__name__}, not a dict of named tensors")
    return dict(state)


def _named(keys: Iterable[str], limit: int = 8) -> str:
    keys = sorted(keys, key=_key_order)
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def _key_order(key: str):
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in key.split(".")]


def load_half(model: TinyAutoencoder, half: str, state: Mapping[str, torch.Tensor], *,
              source: str = "the state dict") -> None:
    """Load one half's upstream-layout state dict (keys `0.weight`, `1.conv.0.weight`, ...) into
    `model.encoder` / `model.decoder`, strictly: any missing, extra or misshapen key is named in a
    ModelError and nothing is loaded."""
    module: nn.Module = getattr(model, half)
    expected = module.state_dict()
    missing = set(expected) - set(state)
    extra = set(state) - set(expected)
    shapes = [f"{k} {tuple(state[k].shape)} (the layout has {tuple(expected[k].shape)})"
              for k in sorted(set(expected) & set(state), key=_key_order)
              if state[k].shape != expected[k].shape]
    problems = []
    if missing:
        problems.append(f"missing keys: {_named(missing)}")
    if extra:
        problems.append(f"unexpected keys: {_named(extra)}")
    if shapes:
        problems.append(f"wrong shapes: {', '.join(shapes[:8])}")
    if problems:
        raise ModelError(f"{source} does not fit the TAEF2 {half} layout", "; ".join(problems),
                         f"load the pinned {UPSTREAM_FILES[half]} (`fgbg models fetch taef2`)")
    module.load_state_dict(state, strict=True)


def original_state_dicts(model: TinyAutoencoder) -> dict[str, dict[str, torch.Tensor]]:
    """The model's weights in the upstream layout and dtype (fp16), half -> state dict, keys in
    the upstream order, one storage per tensor (as torch.save wrote the upstream files)."""
    out = {}
    for half in ("encoder", "decoder"):
        state = getattr(model, half).state_dict()
        copy = OrderedDict((k, v.detach().to("cpu", torch.float16).contiguous().clone())
                           for k, v in state.items())
        copy._metadata = state._metadata  # the module tree, as Module.state_dict() records it
        out[half] = copy
    return out


def write_original(model: TinyAutoencoder, folder: str | Path, *,
                   serialization_ids: Mapping[str, bytes | None] | None = None) -> dict[str, Path]:
    """Write taef2_encoder.pth / taef2_decoder.pth in the upstream layout into `folder`.

    The files are what torch.save writes, with the zip entry `.data/serialization_id` set to the
    upstream file's (UPSTREAM_SERIALIZATION_IDS, or `serialization_ids`; None keeps torch's
    random one). From the shipped weights this reproduces the upstream files byte for byte."""
    ids = UPSTREAM_SERIALIZATION_IDS if serialization_ids is None else serialization_ids
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for half, state in original_state_dicts(model).items():
        path = folder / UPSTREAM_FILES[half]
        torch.save(state, path)  # the zip's top folder is the file's stem, as upstream
        if ids.get(half) is not None:
            path.write_bytes(_set_serialization_id(path.read_bytes(), path.stem, ids[half]))
        out[half] = path
    return out


def _set_serialization_id(data: bytes, stem: str, new_id: bytes) -> bytes:
    """Replace the stored (uncompressed) `<stem>/.data/serialization_id` entry of a torch.save
    zip by `new_id` of the same length, and its CRC-32 (in the data descriptor and the central
    directory; torch writes 0 in the local header)."""
    name = f"{stem}/.data/serialization_id"
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(name)
    if info.compress_type != zipfile.ZIP_STORED or info.file_size != len(new_id):
        raise ValueError(f"{name}: expected a stored entry of {len(new_id)} bytes")
    buf = bytearray(data)
    local_name_len, local_extra_len = struct.unpack_from("<HH", buf, info.header_offset + 26)
    start = info.header_offset + 30 + local_name_len + local_extra_len
    old_crc, new_crc = struct.pack("<I", info.CRC), struct.pack("<I", zlib.crc32(new_id))
    buf[start:start + len(new_id)] = new_id
    tail = bytes(buf[start + len(new_id):])
    if tail.count(old_crc) != 2:
        raise ValueError(f"{name}: its CRC-32 is not found exactly twice after its data")
    buf[start + len(new_id):] = tail.replace(old_crc, new_crc)
    zipfile.ZipFile(io.BytesIO(bytes(buf))).testzip()
    return bytes(buf)


# ----------------------------------------------------------------------------- latent statistics


def _frames_to_tensor(frames) -> torch.Tensor:
    """uint8 (N, H, W, 3) frames, or a float tensor (N, 3, H, W) in [-1, 1] -> the latter."""
    if isinstance(frames, torch.Tensor):
        return frames.float()
    arr = np.asarray(frames)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
        raise InputError(f"frames must be uint8 (N, H, W, 3) or a tensor (N, 3, H, W), got "
                         f"{arr.dtype} {arr.shape}")
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 127.5 - 1


@torch.no_grad()
def measure_latent_stats(model: TinyAutoencoder, frames, *, batch_size: int = 8) -> dict:
    """Per-channel mean and std of the model's raw latents over `frames` (uint8 (N, H, W, 3) or a
    tensor (N, 3, H, W) in [-1, 1]; every pixel of every frame counts once) -> a new config: the
    model's, with `latents_mean` / `latents_std` replaced. Rebuild with `with_latent_stats` or
    `TinyAutoencoder.from_config(cfg)` + `load_state_dict(model.state_dict())`."""
    x = _frames_to_tensor(frames)
    if len(x) == 0:
        raise InputError("no frames to measure the latent statistics on")
    c = model.config.latent_channels
    total = torch.zeros(c, dtype=torch.float64)
    squares = torch.zeros(c, dtype=torch.float64)
    count = 0
    for i in range(0, len(x), batch_size):
        raw = model.encode_raw(x[i:i + batch_size].to(model.device)).double().cpu()
        total += raw.sum(dim=(0, 2, 3))
        squares += (raw ** 2).sum(dim=(0, 2, 3))
        count += raw.shape[0] * raw.shape[2] * raw.shape[3]
    mean = total / count
    var = (squares / count - mean ** 2).clamp_min(0)
    std = var.sqrt().clamp_min(1e-4)  # a constant channel keeps a usable (finite, positive) std
    cfg = dict(model.config)
    cfg["latents_mean"] = [round(float(v), 6) for v in mean]
    cfg["latents_std"] = [round(float(v), 6) for v in std]
    return cfg


def with_latent_stats(model: TinyAutoencoder, config: Mapping) -> TinyAutoencoder:
    """A new model with `config`'s latents_mean / latents_std and `model`'s weights and dtype."""
    cfg = dict(model.config)
    cfg["latents_mean"], cfg["latents_std"] = list(config["latents_mean"]), list(config["latents_std"])
    new = TinyAutoencoder.from_config(cfg)
    new.load_state_dict(model.state_dict())
    return nn.Module.to(new, model.device, model.dtype).eval()
