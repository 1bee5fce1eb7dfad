"""Background tracks as motion: frame-0 positions of every track and the camera they imply.

Shared by everything that turns tracks (`fgbg.artifacts.Tracks`: (T, N, 2) float32 pixel x,y,
visibility (T, N), queries (N, 3) [t, x, y]) into motion: the generate stage (origins for the
track maps), the warp generator (the background's camera), `fgbg prepare` and the truth-based
training set (origins stored with each prepared video). Ours, not the paper's: the paper feeds
tracks to its encoder and says nothing of re-seeded tracks; see `track_origins` for the choice.
"""

from __future__ import annotations

import cv2
import numpy as np

IDENTITY = np.float32([[1, 0, 0], [0, 1, 0]])


def camera_transform(origin: np.ndarray, now: np.ndarray, visible: np.ndarray,
                     threshold: float) -> np.ndarray | None:
    """2x3 similarity taking frame-0 pixel coordinates to this frame's, fitted with RANSAC to the
    usable tracks (visible now, finite origin); None with fewer than 3 of them."""
    ok = visible & np.isfinite(origin).all(1) & np.isfinite(now).all(1)
    if ok.sum() < 3:
        return None
    m, _ = cv2.estimateAffinePartial2D(origin[ok].astype(np.float32), now[ok].astype(np.float32),
                                       method=cv2.RANSAC, ransacReprojThreshold=threshold,
                                       maxIters=2000, confidence=0.995, refineIters=10)
    return None if m is None else m.astype(np.float32)


def track_origins(tracks: np.ndarray, visible: np.ndarray, queries: np.ndarray,
                  threshold: float = 1.0) -> np.ndarray:
    """Frame-0 positions (N, 2) float32 of all tracks, re-seeded ones included: always finite.

    tracks (T, N, 2), visible (T, N), queries (N, 3) [t, x, y], all in one pixel frame. A track
    visible at frame 0 has its frame-0 position. A track started at t0 > 0 gets a virtual one: its
    query mapped back through the camera motion from frame 0 to t0 (`camera_path`). So every
    track's displacement is measured in one frame of reference, and every clip of a video sees it.

    Why an origin from the camera, not dropping the track (ours): a re-seeded track is exactly the
    one that carries the motion once the first tracks are lost (a pan leaves the frame-0
    background behind), so dropping it would leave late frames with no displacement at all; the
    camera's error at t0 is shared by every background pixel there and is what the warp preview
    and the training data see too. Every consumer (`fgbg prepare`, the generate stage, training,
    eval) takes its origins from here."""
    tracks = np.asarray(tracks, np.float32)
    visible = np.asarray(visible, bool)
    n = tracks.shape[1]
    origin = np.zeros((n, 2), np.float32)
    if n == 0:
        return origin
    t_q = np.clip(np.round(queries[:, 0]).astype(np.int64), 0, len(tracks) - 1)
    known = t_q == 0
    origin[known] = tracks[0, known]
    if (t_q > 0).any():
        camera_path(tracks, visible, queries, origin, known, threshold, until=int(t_q.max()))
    # a non-finite position fed in (not from our trackers) ends as its own seed position
    bad = ~np.isfinite(origin).all(1)
    if bad.any():
        origin[bad] = np.nan_to_num(tracks[t_q[bad], bad])
    return origin


def camera_path(tracks: np.ndarray, visible: np.ndarray, queries: np.ndarray, origin: np.ndarray,
                known: np.ndarray, threshold: float, until: int) -> np.ndarray:
    """(until + 1, 2, 3) float32 similarity transforms taking frame-0 pixels to frame t's.

    Frame by frame, best evidence first:
    1. fitted (RANSAC, `camera_transform`) from the tracks whose origin is known to where they are
       at t, when at least 3 are visible;
    2. else the previous frame's camera moved by the motion from t-1 to t of the tracks visible in
       both frames (a similarity for 3 or more, their mean shift for 1 or 2);
    3. else, with no track seen in both frames, the previous frame's camera (no motion observed).
    Tracks started at t get their origin through the camera at t, so they count from t + 1 on
    (`origin` and `known` are filled in place)."""
    t_q = np.clip(np.round(queries[:, 0]).astype(np.int64), 0, len(tracks) - 1)
    cams = np.repeat(IDENTITY[None], until + 1, axis=0)
    for t in range(1, until + 1):
        cam = camera_transform(np.where(known[:, None], origin, np.nan), tracks[t], visible[t] & known,
                               threshold)
        if cam is None:
            both = visible[t] & visible[t - 1] & np.isfinite(tracks[t]).all(1) & np.isfinite(tracks[t - 1]).all(1)
            step = IDENTITY
            if both.sum() >= 3:
                step = camera_transform(tracks[t - 1], tracks[t], both, threshold)
                if step is None:
                    step = IDENTITY
            elif both.any():
                shift = (tracks[t, both] - tracks[t - 1, both]).mean(0)
                step = np.float32([[1, 0, shift[0]], [0, 1, shift[1]]])
            cam = _compose(step, cams[t - 1])
        cams[t] = cam
        new = (t_q == t) & ~known
        if new.any():
            inv = cv2.invertAffineTransform(cam)
            origin[new] = queries[new, 1:] @ inv[:, :2].T + inv[:, 2]
            known |= new & np.isfinite(origin).all(1)
    return cams


def _compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """2x3 transforms: a after b."""
    m = np.vstack([a, [0, 0, 1]]) @ np.vstack([b, [0, 0, 1]])
    return m[:2].astype(np.float32)
