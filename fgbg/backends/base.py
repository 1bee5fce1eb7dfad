"""Shape contracts of the four capabilities. Backends are small classes with numpy in and out.

Coordinates are always pixel x,y in the frames given to the backend (x to the right, y down).
Images are RGB uint8. Keypoints follow the 133-point COCO-WholeBody order (fgbg.pose.layout).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Protocol

import numpy as np


class PoseEstimator(Protocol):
    """Whole-body pose of ONE person per frame: the most prominent, followed across calls.

    `estimate` is called on consecutive chunks of one video, in order; a backend keeps the state it
    needs to follow the same person from chunk to chunk. `reset()` starts a new video/image.
    """

    name: str

    def estimate(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """frames (n, H, W, 3) uint8 RGB -> keypoints (n, 133, 2) float32 pixel x,y,
        scores (n, 133) float32 in [0, 1]; score 0 where a point has no estimate (no person, or
        no counterpart in the backend's own layout)."""
        ...

    def reset(self) -> None: ...


class Segmenter(Protocol):
    """Foreground (person) masks, restricted to the person the pose stage selected."""

    name: str

    def segment(self, frames: np.ndarray, keypoints: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """frames (n, H, W, 3) uint8 RGB, keypoints (n, 133, 2), scores (n, 133)
        -> masks (n, H, W) bool, True on the person."""
        ...

    def reset(self) -> None: ...


@dataclass
class TrackResult:
    """Sparse background tracks. tracks (T, N, 2) float32 pixel x,y; visible (T, N) bool;
    queries (N, 3) float32 [t, x, y] where each track was seeded."""

    tracks: np.ndarray
    visible: np.ndarray
    queries: np.ndarray


class PointTracker(Protocol):
    """Background point tracker over a whole video, streamed in chunks."""

    name: str

    def track(
        self, chunks: Iterable[tuple[np.ndarray, np.ndarray]], num_frames: int
    ) -> TrackResult:
        """chunks: consecutive (frames (n, H, W, 3) uint8 RGB, masks (n, H, W) bool person=True)
        covering `num_frames` frames in order. Returns only background tracks."""
        ...


@dataclass
class Reference:
    """The reference photo fitted to the output canvas, and what the stages found on it.

    image (H, W, 3) uint8 RGB; keypoints (133, 2) float32 / scores (133,) in canvas pixels;
    mask (H, W) bool person=True.
    """

    image: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray
    mask: np.ndarray
    background: np.ndarray | None = None
    """(H, W, 3) uint8: the background to move (--background-image); None: the photo's own, with
    the person removed. When given, `image` is the person composited onto it."""


@dataclass
class ClipInputs:
    """Conditions of one clip, all in output-canvas pixels.

    keypoints (n, 133, 2) float32 and scores (n, 133): the (retargeted) driving pose;
    pose_maps (n, H, W, 3) uint8 rendered in the DWPose convention;
    tracks (n, N, 2) float32, visible (n, N) bool: background tracks at these frames;
    tracks_origin (N, 2) float32: the same tracks at frame 0 of the whole video;
    prev_frame (H, W, 3) uint8 or None: last frame of the previous clip (clip 0: None);
    seed: this clip's seed.
    """

    keypoints: np.ndarray
    scores: np.ndarray
    pose_maps: np.ndarray
    tracks: np.ndarray
    visible: np.ndarray
    tracks_origin: np.ndarray
    prev_frame: np.ndarray | None
    seed: int


class VideoGenerator(Protocol):
    """Makes the output clip by clip. `prepare` runs once per video (global reference features);
    `generate_clip` once per clip, in order."""

    name: str

    def prepare(self, ref: Reference, width: int, height: int) -> None: ...

    def generate_clip(self, clip: ClipInputs) -> np.ndarray:
        """-> frames (n, H, W, 3) uint8 RGB. When prev_frame is given, frame 0 continues it."""
        ...


def iter_chunks(array: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(array), size):
        yield array[start : start + size]


def check_segment_inputs(frames, keypoints, scores) -> np.ndarray:
    """What every Segmenter.segment checks first -> frames as an array (ValueError when the
    frames are not (n, H, W, 3) uint8 or the pose does not cover them one to one)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (n, H, W, 3) uint8 RGB, got {frames.shape} {frames.dtype}")
    if len(keypoints) != len(frames) or len(scores) != len(frames):
        raise ValueError(f"{len(frames)} frames but {len(keypoints)} keypoint sets and "
                         f"{len(scores)} score sets")
    return frames
