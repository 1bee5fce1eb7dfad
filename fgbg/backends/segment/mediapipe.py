"""Weight-free segmentation backend: MediaPipe selfie segmentation, restricted to the pose's person.

Per frame (our choices; all in the frame's own pixels):
1. person probability from SelfieSegmentation(model_selection=0) (the general model, bundled in
   the mediapipe wheel), thresholded at `SegmentParams.threshold`;
2. cleaned: a morphological opening (drops specks) then closing (joins thin gaps), with an
   elliptical kernel of `SegmentParams.morph_size` x the frame's shorter side, then holes filled
   (background regions that do not reach the frame border become person);
3. restricted to the person the pose stage selected: of the connected components, keep those that
   contain a confident keypoint (score >= `min_score`, within a few pixels) or lie mostly inside
   the box of the confident keypoints grown by `SegmentParams.box_margin` of its size; then clip
   to that grown box, so a second person touching ours is cut at its edge;
4. a frame where the pose found no person (fewer than 5 confident body points) keeps the cleaned
   components that overlap the previous frame's mask (the person moves little from one frame to
   the next); with no previous mask, all cleaned components. The mask is therefore only empty when
   the segmenter itself sees nobody, so later stages never seed background tracks on a person the
   pose missed for a frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from ...params import SegmentParams
from ..base import check_segment_inputs

MIN_BODY_POINTS = 5
MIN_INSIDE_SHARE = 0.5  # a component mostly inside the pose box belongs to the person
POINT_RADIUS = 3  # pixels around a keypoint that count as "on" a component


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool -> (H, W) bool with every background region not touching the border filled."""
    background = (~mask).astype(np.uint8)
    count, labels = cv2.connectedComponents(background, connectivity=4)
    if count <= 1:
        return mask.copy()
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    holes = ~np.isin(labels, border) & (background > 0)
    return mask | holes


class MediapipeSegmenter:
    """Segmenter on MediaPipe selfie segmentation. Frames are one video, in order (the previous
    mask bridges frames without a pose); `reset()` starts a new video or image."""

    name = "mediapipe"

    def __init__(self, params: SegmentParams | None = None, min_score: float = 0.3):
        from ..mp_runtime import import_mediapipe

        mp = import_mediapipe()  # heavy; only when a backend is built

        self.params = params or SegmentParams()
        self.min_score = min_score
        self._seg = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
        self._prev: np.ndarray | None = None

    def reset(self) -> None:
        self._prev = None

    def close(self) -> None:
        self._seg.close()

    def probability(self, frame: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (H, W) float32 person probability in [0, 1]."""
        result = self._seg.process(np.ascontiguousarray(frame))
        if result.segmentation_mask is None:
            return np.zeros(frame.shape[:2], np.float32)
        return np.asarray(result.segmentation_mask, np.float32)

    def clean(self, mask: np.ndarray) -> np.ndarray:
        """(H, W) bool -> opened, closed, holes filled."""
        size = max(3, int(round(self.params.morph_size * min(mask.shape))) | 1)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
        m = mask.astype(np.uint8)
        m = cv2.morphologyEx(m, cv2.MORPH_OPEN, kernel)
        m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, kernel)
        return fill_holes(m > 0)

    def _restrict(self, mask: np.ndarray, keypoints: np.ndarray, scores: np.ndarray
                  ) -> np.ndarray | None:
        """Keep the components of the pose's person; None when the pose has no person."""
        h, w = mask.shape
        ok = (scores >= self.min_score) & np.isfinite(keypoints).all(-1)
        if ok[:17].sum() < MIN_BODY_POINTS:
            return None
        pts = keypoints[ok]
        lo, hi = pts.min(0), pts.max(0)
        margin = self.params.box_margin * (hi - lo) + POINT_RADIUS
        x0, y0 = np.floor(np.maximum(lo - margin, 0)).astype(int)
        x1, y1 = np.ceil(np.minimum(hi + margin, [w - 1, h - 1])).astype(int)
        in_box = np.zeros_like(mask)
        if x1 >= x0 and y1 >= y0:
            in_box[y0:y1 + 1, x0:x1 + 1] = True

        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), 8)
        keep = np.zeros(count, bool)
        # components under a confident keypoint (a small disc around each)
        hits = np.zeros_like(mask)
        for x, y in pts:
            if 0 <= x < w and 0 <= y < h:
                cv2.circle(hits.view(np.uint8), (int(x), int(y)), POINT_RADIUS, 1, -1)
        keep[np.unique(labels[hits & mask])] = True
        # components mostly inside the grown box
        inside = np.bincount(labels[in_box & mask], minlength=count)
        keep |= inside >= MIN_INSIDE_SHARE * np.maximum(stats[:, cv2.CC_STAT_AREA], 1)
        keep[0] = False
        return keep[labels] & in_box

    def _bridge(self, mask: np.ndarray) -> np.ndarray:
        """No pose in this frame: the components that overlap the previous mask (or all)."""
        if self._prev is None or not self._prev.any():
            return mask
        count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        keep = np.zeros(count, bool)
        keep[np.unique(labels[mask & self._prev])] = True
        keep[0] = False
        return keep[labels]

    def segment(self, frames: np.ndarray, keypoints: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """frames (n, H, W, 3) uint8 RGB, keypoints (n, 133, 2) pixel x,y in those frames,
        scores (n, 133) -> masks (n, H, W) bool, True on the person."""
        frames = check_segment_inputs(frames, keypoints, scores)
        n, h, w = frames.shape[:3]
        masks = np.zeros((n, h, w), bool)
        for i in range(n):
            cleaned = self.clean(self.probability(frames[i]) > self.params.threshold)
            person = self._restrict(cleaned, np.asarray(keypoints[i], np.float64),
                                    np.asarray(scores[i], np.float64))
            masks[i] = person if person is not None else self._bridge(cleaned)
            self._prev = masks[i]
        return masks
