"""The anchored background and the warp start of one clip, built from the warp generator (ours,
not the paper's: the paper trains its track encoder; these make any weights follow the driving
video's background, a converted AnimateAnyone pipeline included, whose track encoder starts at
zero). The diffusion generator (`.diffusion`) and `fgbg eval` call `warp_conditions` per clip.

- the moved plate per frame is the warp generator's (the photo with the person inpainted away,
  moved by the similarity fitted to the tracks; a similarity, not a homography: the plate is one
  flat photo and ~32 sparse tracks, some on moving objects, overfit a homography's 8 degrees of
  freedom, while the similarity's 4 survive RANSAC with few inliers), encoded by the pipeline's
  own VAE;
- the person's region per frame is where the warp generator puts the retargeted person (its
  moved alpha), grown by PERSON_MARGIN of the shorter side, taken to latent resolution by max
  pooling (any covered pixel counts) and feathered by FEATHER_LATENT latent pixels outward;
- with --anchor-steps 1.0 (every step anchored) the decoded frames are laid over the moved plate
  (`Anchor.paste`): outside the person's region (at pixel resolution: the moved alpha grown by the
  same margin, not rounded up to latent pixels, with a PASTE_RAMP-latent-pixel smooth ramp) the
  background is the plate's own pixels, not their VAE round trip, which redraws fine texture
  differently in every frame and, left to the model, the rest of the region's latent pixels;
- `--init warp` starts from the warp preview itself (`fgbg.diffusion.pipeline.Init`).
"""

from __future__ import annotations

import numpy as np

from ..base import ClipInputs

PERSON_MARGIN = 0.03  # the person's region grows by this share of the shorter side (pixels)
FEATHER_LATENT = 1.0  # sigma, in latent pixels, of the region's feathered outer border
PASTE_RAMP = 1.0  # width, in latent pixels, of the ramp between the decoded person and the pasted plate


def _grown(alpha: np.ndarray, margin_px: int) -> np.ndarray:
    """Person alpha (F, H, W) -> the region it covers grown by margin_px, (F, H, W) float32 0/1."""
    import cv2

    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin_px + 1, 2 * margin_px + 1))
    return np.stack([cv2.dilate((a > 0.05).astype(np.uint8), k) for a in alpha]).astype(np.float32)


def person_keep(alpha: np.ndarray, factor: int, margin_px: int):
    """Person alpha (F, H, W) float in [0, 1] -> keep (1, 1, F, H/factor, W/factor) float32 torch:
    0 on the person's region (grown by margin_px, any latent pixel it touches), 1 on the
    background, a feathered ramp outward between them."""
    import torch
    import torch.nn.functional as F

    region = F.max_pool2d(torch.from_numpy(_grown(alpha, margin_px))[:, None], factor)  # (F, 1, h, w)
    radius = max(1, int(round(3 * FEATHER_LATENT)))
    xs = torch.arange(-radius, radius + 1, dtype=torch.float32)
    g = torch.exp(-xs ** 2 / (2 * FEATHER_LATENT ** 2))
    g = g / g.sum()
    soft = F.conv2d(F.pad(region, (radius, radius, 0, 0), mode="replicate"), g.view(1, 1, 1, -1))
    soft = F.conv2d(F.pad(soft, (0, 0, radius, radius), mode="replicate"), g.view(1, 1, -1, 1))
    region = torch.maximum(region, (soft * 2).clamp(max=1))  # the ramp lies outside the region
    return (1 - region).permute(1, 0, 2, 3)[None]


def paste_keep(alpha: np.ndarray, margin_px: int, ramp_px: float) -> np.ndarray:
    """The same region at pixel resolution, for laying the decoded frames over the plate
    (`Anchor.paste`): (F, H, W) float32, 0 on the person grown by margin_px, exactly 1 from
    ramp_px pixels beyond it, a smooth ramp (smoothstep of the distance) in between."""
    import cv2

    out = []
    for g in _grown(alpha, margin_px):
        dist = cv2.distanceTransform((g == 0).astype(np.uint8), cv2.DIST_L2, 5)
        t = np.clip(dist / ramp_px, 0, 1)
        out.append(t * t * (3 - 2 * t))
    return np.stack(out).astype(np.float32)


def warp_conditions(pipe, warp, clip: ClipInputs, params, mode: str):
    """The anchor (or None) and the SDEdit start (or None) of one clip, from the warp generator
    `warp` (prepared on the same reference and canvas)."""
    from ...diffusion.pipeline import Anchor, Init

    layers = [warp.render_layers(clip.keypoints[t], clip.scores[t], clip.tracks[t], clip.visible[t],
                                 clip.tracks_origin) for t in range(len(clip.keypoints))]
    anchor = init = None
    if mode == "anchored":
        pixels = np.stack([b for _, b, _ in layers])
        alpha = np.stack([a for _, _, a in layers])
        margin = max(1, int(round(PERSON_MARGIN * min(warp.width, warp.height))))
        f = pipe.vae_scale_factor
        anchor = Anchor(pipe.encode_frames(pixels), person_keep(alpha, f, margin), params.anchor_steps,
                        pixels, paste_keep(alpha, margin, PASTE_RAMP * f))
    if params.init == "warp":
        init = Init(pipe.encode_frames(np.stack([f for f, _, _ in layers])), params.strength)
    return anchor, init
