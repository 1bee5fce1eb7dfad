"""The numbers `fgbg eval` reports, each a plain function of arrays (so each has a known-answer test).

Image metrics (generated against real frames, both (F, H, W, 3) uint8):
  l1    mean absolute difference on [0, 1];
  psnr  10 log10(1 / MSE) on [0, 1], over the whole video;
  ssim  torchmetrics' SSIM (Gaussian 11x11 window), mean over frames.

Motion metrics (this paper's claims):
  background_track_error  the generated video is tracked from the conditioning tracks' query
      points (fgbg.evaluation.query_trackers: CoTracker3 itself when its weights are present, else
      pyramidal Lucas-Kanade from each query frame on); the mean distance in pixels to the
      conditioning tracks over frames where both are visible, the query frame itself excluded
      (it is 0 by construction), and only where the conditioning point lies on the background.
  pck     fraction of the driving keypoints (confident ones) that the generated person's keypoints
      hit within alpha * max(H, W) (the eval runner uses the 17 body keypoints, alpha 0.05).
  seam_jump  the mean frame-to-frame change at clip seams divided by the median change inside
      clips (1.0 = a seam looks like any other frame step).
  colour_drift  per clip: mean over RGB channels of |mean background colour of the clip - mean
      background colour of the reference| (0-255 units).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _f(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float64) / 255.0


def _check_pair(gen: np.ndarray, real: np.ndarray) -> None:
    if gen.shape != real.shape:
        raise ValueError(f"generated {gen.shape} and real {real.shape} frames differ in shape")


def l1(gen: np.ndarray, real: np.ndarray) -> float:
    _check_pair(gen, real)
    return float(np.abs(_f(gen) - _f(real)).mean())


def psnr(gen: np.ndarray, real: np.ndarray) -> float:
    _check_pair(gen, real)
    mse = float(((_f(gen) - _f(real)) ** 2).mean())
    return float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse))


def _ssim(gen: np.ndarray, real: np.ndarray, full: bool = False):
    """torchmetrics' SSIM (Gaussian window) on (F, H, W, 3) uint8 pairs; with `full`, also the
    per-pixel map (F, 3, H, W), the same size as the frames."""
    import torch
    from torchmetrics.functional.image import structural_similarity_index_measure as tm_ssim

    _check_pair(gen, real)
    to = lambda x: torch.from_numpy(_f(x)).permute(0, 3, 1, 2).float()  # noqa: E731
    return tm_ssim(to(gen), to(real), data_range=1.0, return_full_image=full)


def ssim(gen: np.ndarray, real: np.ndarray) -> float:
    return float(_ssim(gen, real))


def ssim_person(gen: np.ndarray, real: np.ndarray, masks: np.ndarray) -> float:
    """SSIM inside the person's region: the per-pixel SSIM map (Gaussian window, as `ssim`) averaged
    over the real frames' person mask (masks (F, H, W) bool); NaN when no frame has a person. Where
    anchoring holds the background, this is the part the model still paints alone."""
    masks = np.asarray(masks, bool)
    if not masks.any():
        _check_pair(gen, real)
        return float("nan")
    _, per_pixel = _ssim(gen, real, full=True)
    return float(per_pixel.mean(1).numpy()[masks].mean())


def background_track_error(tracks: np.ndarray, visible: np.ndarray, tracks_ref: np.ndarray,
                           visible_ref: np.ndarray, masks: np.ndarray | None = None) -> float:
    """Mean pixel distance between tracks and reference tracks where both are visible, excluding
    each track's first visible reference frame (its query) and reference points on the person
    (masks (F, H, W) bool, True = person). NaN when no pair is comparable."""
    tracks, tracks_ref = np.asarray(tracks, np.float64), np.asarray(tracks_ref, np.float64)
    both = np.asarray(visible, bool) & np.asarray(visible_ref, bool)
    first = np.argmax(np.asarray(visible_ref, bool), axis=0)
    both[first, np.arange(both.shape[1])] = False
    if masks is not None:
        masks = np.asarray(masks, bool)
        f, h, w = masks.shape
        xi = np.clip(np.rint(tracks_ref[..., 0]).astype(int), 0, w - 1)
        yi = np.clip(np.rint(tracks_ref[..., 1]).astype(int), 0, h - 1)
        on_person = masks[np.arange(f)[:, None], yi, xi]
        both &= ~on_person
    if not both.any():
        return float("nan")
    return float(np.linalg.norm(tracks - tracks_ref, axis=-1)[both].mean())


def pck(keypoints: np.ndarray, keypoints_ref: np.ndarray, scores_ref: np.ndarray, size: tuple[int, int],
        alpha: float = 0.05, threshold: float = 0.3, scores: np.ndarray | None = None) -> float:
    """Fraction of confident reference keypoints matched within alpha * max(H, W) pixels. A
    keypoint the estimator missed (its score below threshold, when `scores` is given) is a miss."""
    ref_ok = np.asarray(scores_ref) > threshold
    if not ref_ok.any():
        return float("nan")
    d = np.linalg.norm(np.asarray(keypoints, np.float64) - np.asarray(keypoints_ref, np.float64), axis=-1)
    hit = d <= alpha * max(size)
    if scores is not None:
        hit &= np.asarray(scores) > threshold
    return float(hit[ref_ok].mean())


def frame_change(frames: np.ndarray) -> np.ndarray:
    """(F-1,) mean absolute change from frame t-1 to t (0-255 units); entry t-1 is the step into t."""
    f = np.asarray(frames, np.float64)
    return np.abs(np.diff(f, axis=0)).reshape(len(f) - 1, -1).mean(axis=1)


def seam_jump(frames: np.ndarray, seams: list[int]) -> float:
    """Mean change into each seam frame (the first new frame of clip c > 0) over the median change
    between the other consecutive frames. NaN without seams or without inner steps."""
    change = frame_change(frames)
    into = [s - 1 for s in seams if 1 <= s < len(frames)]
    inner = np.delete(change, into)
    if not into or not len(inner):
        return float("nan")
    med = float(np.median(inner))
    jump = float(change[into].mean())
    if med == 0:
        return 1.0 if jump == 0 else float("inf")
    return jump / med


def _mean_colour(frames: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
    f = np.asarray(frames, np.float64).reshape(-1, 3)
    if masks is None:
        return f.mean(axis=0)
    keep = ~np.asarray(masks, bool).reshape(-1)
    return f[keep].mean(axis=0) if keep.any() else np.full(3, np.nan)


def colour_drift(frames: np.ndarray, reference: np.ndarray, masks: np.ndarray | None,
                 ranges: list[tuple[int, int]], ref_mask: np.ndarray | None = None) -> list[float]:
    """Per clip [a, b): mean over channels of |background mean colour of frames[a:b] - that of the
    reference|. masks (F, H, W) True = person (excluded); None = whole frame."""
    ref = _mean_colour(np.asarray(reference)[None], None if ref_mask is None else np.asarray(ref_mask)[None])
    out = []
    for a, b in ranges:
        m = None if masks is None else np.asarray(masks)[a:b]
        out.append(float(np.abs(_mean_colour(np.asarray(frames)[a:b], m) - ref).mean()))
    return out


def write_plot(series: dict[str, list[float]], path: Path, xlabel: str = "clip",
               ylabel: str = "colour drift (0-255)") -> Path:
    """One line per series against its index, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for name, ys in series.items():
        if len(ys):
            ax.plot(range(len(ys)), ys, marker="o", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
