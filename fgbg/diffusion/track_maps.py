"""Track maps: the background-motion signal the track encoder reads (PAPER.md, our reconstruction).

Per frame t, three channels at any output resolution:
  0  occupancy   O = min(1, sum_k v_k(t) G_k)            where a visible track is
  1  dx          O * sum_k v_k G_k dx_k / sum_k v_k G_k   displacement p_k(t) - p_k(0) of the
  2  dy          (same for y)                              tracks there, / frame width, height
G_k is an isotropic Gaussian centred on p_k(t) with sigma = `sigma` x the shorter output side;
v_k(t) is the track's visibility (0/1). p_k(0) is the track's position in the first frame of the
whole video (not of the clip), so every clip sees one frame of reference. Displacements are
normalised by the frame size, so maps at any resolution carry the same values.

Finite for any input: a track whose origin, or whose position in a frame, is not finite counts as
not visible there (it is left out of all three channels; one NaN would otherwise turn every pixel
of every frame to NaN through the matrix products). `fgbg.tracks.track_origins` gives every
track a finite origin, so on our own data this drops nothing; it guards data made elsewhere.

Vectorised (ours): a 2D Gaussian is the outer product of two 1D ones, so the sums over tracks are
batched matrix products (T, H, N) @ (T, N, W): no (T, N, H, W) tensor and no loop over pixels.
The same function serves training (torch tensors on any device) and inference (numpy in).
"""

from __future__ import annotations

import numpy as np

SIGMA = 0.015  # of the shorter side: ~8 px at 512, survives the encoder's 8x downsampling
EPS = 1e-6


def render_track_maps(tracks, visible, origin, frame_size: tuple[int, int], out_size: tuple[int, int],
                      sigma: float = SIGMA):
    """tracks (T, N, 2) pixel x,y in a frame of `frame_size` (W, H); visible (T, N) bool/0-1;
    origin (N, 2) first-frame positions in the same pixels -> maps (T, 3, H_out, W_out) float32.

    Accepts numpy arrays (returns numpy) or torch tensors (returns torch, on their device)."""
    import torch

    as_numpy = isinstance(tracks, np.ndarray)
    tracks = torch.as_tensor(np.asarray(tracks) if as_numpy else tracks, dtype=torch.float32)
    device = tracks.device
    visible = torch.as_tensor(np.asarray(visible) if as_numpy else visible, device=device).float()
    origin = torch.as_tensor(np.asarray(origin) if as_numpy else origin, device=device, dtype=torch.float32)
    T, N, _ = tracks.shape
    if tuple(visible.shape) != (T, N) or tuple(origin.shape) != (N, 2):
        raise ValueError(f"render_track_maps: tracks {tuple(tracks.shape)}, visible {tuple(visible.shape)} "
                         f"and origin {tuple(origin.shape)} disagree (want (T, N, 2), (T, N), (N, 2))")
    usable = torch.isfinite(tracks).all(-1) & torch.isfinite(origin).all(-1)[None]
    visible = visible * usable
    tracks = torch.where(usable[..., None], tracks, torch.zeros_like(tracks))
    origin = torch.where(torch.isfinite(origin), origin, torch.zeros_like(origin))
    w0, h0 = frame_size
    w1, h1 = out_size
    if N == 0:
        empty = torch.zeros(T, 3, h1, w1, device=device)
        return empty.numpy() if as_numpy else empty
    scale = torch.tensor([w1 / w0, h1 / h0], device=device)
    pos = (tracks + 0.5) * scale - 0.5  # output pixels (integer coordinates = pixel centres)
    disp = (tracks - origin[None]) / torch.tensor([w0, h0], device=device, dtype=torch.float32)
    s = sigma * min(w1, h1)
    xs = torch.arange(w1, device=device, dtype=torch.float32)
    ys = torch.arange(h1, device=device, dtype=torch.float32)
    gx = torch.exp(-((xs[None, None] - pos[..., :1]) ** 2) / (2 * s * s))  # (T, N, W)
    gy = torch.exp(-((ys[None, None] - pos[..., 1:]) ** 2) / (2 * s * s))  # (T, N, H)
    gy = gy * visible[..., None]
    gyt = gy.transpose(1, 2)  # (T, H, N)
    total = torch.bmm(gyt, gx)  # (T, H, W)
    dx = torch.bmm(gyt * disp[..., 0][:, None], gx)
    dy = torch.bmm(gyt * disp[..., 1][:, None], gx)
    occ = total.clamp(max=1.0)
    norm = occ / total.clamp(min=EPS)
    maps = torch.stack([occ, dx * norm, dy * norm], dim=1)
    return maps.cpu().numpy() if as_numpy else maps
