"""Preview videos of the preprocessing results, drawn over the driving frames.

pose: the DWPose-style skeleton over the frame; segment: the person mask tinted; track-bg: the
background tracks as short trails (visible points only). Written to <workdir>/previews/<stage>.mp4
from the cached results (previews are not part of any stage's record).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from . import artifacts
from .video import read_frames, write_video

TRAIL = 8  # frames of history drawn behind each track point


def _frames(job) -> Iterator[np.ndarray]:
    w, h = job.proc_size
    size = None if (w, h) == (job.video.width, job.video.height) else (w, h)
    return read_frames(job.video, chunk=job.chunk(32), size=size)


def overlay_pose(frames: np.ndarray, pose_maps: np.ndarray) -> np.ndarray:
    on = pose_maps.max(-1, keepdims=True) > 0
    return np.where(on, pose_maps, (frames * 0.6).astype(np.uint8))


def overlay_masks(frames: np.ndarray, masks: np.ndarray) -> np.ndarray:
    tint = np.array([255, 40, 160], np.float32)
    m = masks.astype(bool)[..., None]
    out = np.where(m, frames * 0.5 + tint * 0.5, frames).astype(np.uint8)
    return out


def overlay_tracks(frames: np.ndarray, t0: int, tracks: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """tracks (T, N, 2) in the frames' pixels; draws trails of the last TRAIL frames."""
    import cv2

    out = frames.copy()
    n = tracks.shape[1]
    hues = (np.arange(n) * 180 // max(n, 1)).astype(np.uint8)
    colours = cv2.cvtColor(np.stack([hues, np.full(n, 255, np.uint8), np.full(n, 255, np.uint8)], -1)[None],
                           cv2.COLOR_HSV2RGB)[0]
    for i, img in enumerate(out):
        t = t0 + i
        for k in range(n):
            if not visible[t, k]:
                continue
            c = tuple(int(v) for v in colours[k])
            lo = max(0, t - TRAIL)
            pts = [tracks[s, k] for s in range(lo, t + 1) if visible[s, k]]
            for a, b in zip(pts, pts[1:]):
                cv2.line(img, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), c, 1, cv2.LINE_AA)
            cv2.circle(img, (int(tracks[t, k, 0]), int(tracks[t, k, 1])), 3, c, -1, cv2.LINE_AA)
    return out


def write_preview(job, stage: str) -> Path:
    from .stages import pose as pose_stage
    from .stages import segment as segment_stage
    from .stages import track as track_stage

    folder = job.workdir.root / "previews"
    folder.mkdir(exist_ok=True)
    path = folder / f"{stage}.mp4"
    if stage == "pose":
        maps = artifacts.open_pose_maps(pose_stage.record(job).folder / "pose_maps")
        blocks = (overlay_pose(f, m) for f, m in zip(_frames(job), maps.chunks(job.chunk(32))))
    elif stage == "segment":
        masks = artifacts.open_masks(segment_stage.record(job).folder / "masks")
        blocks = (overlay_masks(f, m) for f, m in zip(_frames(job), masks.chunks(job.chunk(32))))
    elif stage == "track-bg":
        tr = artifacts.load_tracks(track_stage.record(job).folder / "tracks.npz")
        pts = tr.tracks / job.proc_scale

        def gen():
            t = 0
            for f in _frames(job):
                yield overlay_tracks(f, t, pts, tr.visible)
                t += len(f)

        blocks = gen()
    else:
        raise ValueError(f"no preview for stage {stage}")
    write_video(path, blocks, job.video.fps)
    return path
