"""Weight-free pose backend: MediaPipe BlazePose (33 landmarks) mapped into the 133-point layout.

BlazePose ships inside the mediapipe wheel (model_complexity=1 only; complexities 0 and 2
download their models at run time, which fgbg never does). It finds and follows ONE person.

Mapping: the 17 COCO body points have direct counterparts; feet get heels and big toes (BlazePose's
"foot index"); the face gets the nose tip, the four eye corners and the two mouth corners; each
hand gets its wrist, thumb MCP, index MCP and little-finger MCP. Every other point has score 0.
A point's score is BlazePose's landmark visibility, zeroed when the point lies more than
OUTSIDE_MARGIN of the frame size outside the frame.

Following the same person (our choice): in video mode BlazePose tracks its person from frame to
frame and re-detects when tracking is lost, and its detector then picks the most confident person,
which may be someone else. So we remember the box of the last reliable pose (>= 5 confident body
points). When a frame's pose is missing, or its box jumps away from that box (box IoU below MIN_IOU,
lowered by MIN_IOU_DECAY for each frame since, or side length changed by more than
MAX_SCALE_CHANGE x), we run BlazePose again on a crop around the remembered box, with the jumped-to
person hidden, and take that pose if it is consistent; otherwise the frame gets no pose (all scores 0) and the tracker is
reset so that it re-detects. After MAX_GAP frames without a reliable pose the memory is dropped.
Whenever a person is (re)acquired without memory (first frame, after reset(), after a long gap,
every photo in static mode), BlazePose's pick (its most confident person, not necessarily the most
prominent) is hidden and the frame searched again; a second person with a box PROMINENCE_RATIO
larger is followed instead. That costs one extra BlazePose run per acquisition.
"""

from __future__ import annotations

import numpy as np

from ...params import PoseParams
from ...pose import layout as L
from ...video import resize_frame

# BlazePose landmark index -> COCO-WholeBody index
_F, _LH, _RH = L.FACE_START, L.LEFT_HAND_START, L.RIGHT_HAND_START
BLAZEPOSE_TO_WHOLEBODY = {
    0: L.NOSE, 2: L.LEFT_EYE, 5: L.RIGHT_EYE, 7: L.LEFT_EAR, 8: L.RIGHT_EAR,
    11: L.LEFT_SHOULDER, 12: L.RIGHT_SHOULDER, 13: L.LEFT_ELBOW, 14: L.RIGHT_ELBOW,
    15: L.LEFT_WRIST, 16: L.RIGHT_WRIST, 23: L.LEFT_HIP, 24: L.RIGHT_HIP,
    25: L.LEFT_KNEE, 26: L.RIGHT_KNEE, 27: L.LEFT_ANKLE, 28: L.RIGHT_ANKLE,
    29: L.LEFT_HEEL, 30: L.RIGHT_HEEL, 31: L.LEFT_BIG_TOE, 32: L.RIGHT_BIG_TOE,
}
# face, iBUG-68 numbering (the person's right eye is 36-41, left eye 42-47)
BLAZEPOSE_TO_FACE = {0: 30, 1: 42, 3: 45, 4: 39, 6: 36, 9: 54, 10: 48}
# hands: wrist, little-finger MCP ("pinky"), index MCP, thumb MCP ("thumb #2 knuckle")
BLAZEPOSE_TO_HAND = {15: (_LH, 0), 17: (_LH, 17), 19: (_LH, 5), 21: (_LH, 2),
                     16: (_RH, 0), 18: (_RH, 17), 20: (_RH, 5), 22: (_RH, 2)}

_SRC = np.array(list(BLAZEPOSE_TO_WHOLEBODY) + list(BLAZEPOSE_TO_FACE) + list(BLAZEPOSE_TO_HAND))
_DST = np.array(list(BLAZEPOSE_TO_WHOLEBODY.values())
                + [_F + i for i in BLAZEPOSE_TO_FACE.values()]
                + [start + i for start, i in BLAZEPOSE_TO_HAND.values()])

OUTSIDE_MARGIN = 0.1
MIN_BODY_POINTS = 5
MIN_IOU = 0.3  # box overlap with the last reliable box below which a pose is someone else
MIN_IOU_DECAY = 0.05  # ... lowered by this per frame since that box
MAX_SCALE_CHANGE = 2.0
MAX_GAP = 15
CROP_EXPAND = 1.6
PROMINENCE_RATIO = 1.3  # a second person this much larger (box area) is followed instead


def _box(keypoints: np.ndarray, scores: np.ndarray, min_score: float) -> np.ndarray | None:
    """Box (x0, y0, x1, y1) of the confident body points, or None when too few are confident."""
    ok = scores[:17] >= min_score
    if ok.sum() < MIN_BODY_POINTS:
        return None
    pts = keypoints[:17][ok]
    return np.concatenate([pts.min(0), pts.max(0)])


def _area(box: np.ndarray) -> float:
    return float(max(box[2] - box[0], 1.0) * max(box[3] - box[1], 1.0))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    lo, hi = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = float(np.prod(np.clip(hi - lo, 0, None)))
    return inter / (_area(a) + _area(b) - inter)


def _jumped(box: np.ndarray, prev: np.ndarray, frames_since: int) -> bool:
    """Too far from the last reliable box to be the same person `frames_since` frames later."""
    ratio = _area(box) / _area(prev)
    if max(ratio, 1 / ratio) > MAX_SCALE_CHANGE ** 2:
        return True
    return _iou(box, prev) < max(MIN_IOU - MIN_IOU_DECAY * frames_since, 0.05)


def _hide(frame: np.ndarray, box: np.ndarray, grow: float = 0.1) -> np.ndarray:
    """A copy of frame with `box` (grown by `grow` of its size) filled with the frame's median
    colour, so that BlazePose's detector cannot pick the person in it."""
    h, w = frame.shape[:2]
    g = grow * (box[2:] - box[:2]) + 4
    x0, y0 = np.maximum(np.floor(box[:2] - g), 0).astype(int)
    x1, y1 = np.minimum(np.ceil(box[2:] + g), [w, h]).astype(int)
    hidden = frame.copy()
    hidden[y0:y1, x0:x1] = np.median(frame[::4, ::4].reshape(-1, 3), axis=0).astype(np.uint8)
    return hidden


CROP_PX = 384  # side of the square the re-detection crop is resized to


class MediapipePose:
    """PoseEstimator on BlazePose (mediapipe, model_complexity=1). `static=True` treats every frame
    as an unrelated photo (for the reference image); otherwise frames are one video, in order."""

    name = "mediapipe"

    def __init__(self, params: PoseParams | None = None, static: bool = False):
        from ..mp_runtime import import_mediapipe

        mp = import_mediapipe()  # heavy; only when a backend is built

        self.params = params or PoseParams()
        self.static = static
        self._mp_pose = mp.solutions.pose
        self._pose = self._mp_pose.Pose(static_image_mode=static, model_complexity=1,
                                        smooth_landmarks=True)
        self._crop_pose = None  # built on first need
        self._last_box: np.ndarray | None = None
        self._since = 0

    def reset(self) -> None:
        self._pose.reset()
        self._last_box = None
        self._since = 0

    def close(self) -> None:
        self._pose.close()
        if self._crop_pose is not None:
            self._crop_pose.close()

    def _run(self, pose, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One image (h, w, 3) uint8 RGB -> (133, 2) float32 pixels, (133,) float32 scores."""
        h, w = image.shape[:2]
        keypoints = np.zeros((L.NUM_KEYPOINTS, 2), np.float32)
        scores = np.zeros(L.NUM_KEYPOINTS, np.float32)
        result = pose.process(np.ascontiguousarray(image))
        if result.pose_landmarks is None:
            return keypoints, scores
        lm = np.array([(p.x, p.y, p.visibility) for p in result.pose_landmarks.landmark],
                      np.float64)
        xy = lm[:, :2] * (w, h)
        vis = np.clip(lm[:, 2], 0.0, 1.0)
        m = OUTSIDE_MARGIN
        inside = ((lm[:, 0] > -m) & (lm[:, 0] < 1 + m) & (lm[:, 1] > -m) & (lm[:, 1] < 1 + m))
        keypoints[_DST] = xy[_SRC]
        scores[_DST] = np.where(inside, vis, 0.0)[_SRC]
        return keypoints, scores

    def _run_crop(self, frame: np.ndarray, box: np.ndarray, hide: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
        """BlazePose on a square crop around `box` (with the person in box `hide` hidden),
        coordinates mapped back to the frame."""
        if self._crop_pose is None:
            self._crop_pose = self._mp_pose.Pose(static_image_mode=True, model_complexity=1)
        h, w = frame.shape[:2]
        centre = (box[:2] + box[2:]) / 2
        side = CROP_EXPAND * max(box[2] - box[0], box[3] - box[1], 16.0)
        x0, y0 = np.floor(centre - side / 2).astype(int)
        x1, y1 = np.ceil(centre + side / 2).astype(int)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 - x0 < 16 or y1 - y0 < 16:
            return np.zeros((L.NUM_KEYPOINTS, 2), np.float32), np.zeros(L.NUM_KEYPOINTS, np.float32)
        if hide is not None:
            frame = _hide(frame, hide)
        # pad to a square and resize to one fixed size: mediapipe keeps buffers per input size,
        # so crops of ever-changing sizes would make its memory grow through a long video
        crop = frame[y0:y1, x0:x1]
        sq = max(crop.shape[:2])
        canvas = np.zeros((sq, sq, 3), np.uint8)
        canvas[: crop.shape[0], : crop.shape[1]] = crop
        canvas = resize_frame(canvas, (CROP_PX, CROP_PX))
        keypoints, scores = self._run(self._crop_pose, canvas)
        keypoints = keypoints * np.float32(sq / CROP_PX)
        keypoints = np.where(scores[:, None] > 0, keypoints + np.float32([x0, y0]), keypoints)
        return keypoints.astype(np.float32), scores

    def _most_prominent(self, frame, keypoints, scores, box):
        """On (re)acquiring a person: BlazePose returns its most confident person, not the largest.
        Hide that person and look again; a clearly larger second person is the one to follow."""
        hidden = _hide(frame, box)
        if self._crop_pose is None:
            self._crop_pose = self._mp_pose.Pose(static_image_mode=True, model_complexity=1)
        k2, s2 = self._run(self._crop_pose, hidden)
        box2 = _box(k2, s2, self.params.min_score)
        if box2 is not None and _area(box2) > PROMINENCE_RATIO * _area(box):
            if not self.static:
                self._pose.reset()
            return k2, s2, box2
        return keypoints, scores, box

    def _estimate_one(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        min_score = self.params.min_score
        keypoints, scores = self._run(self._pose, frame)
        box = _box(keypoints, scores, min_score)
        prev = self._last_box if self._since <= MAX_GAP else None
        if prev is not None and (box is None or _jumped(box, prev, self._since)):
            # lost, or possibly somebody else: look again where our person was
            k2, s2 = self._run_crop(frame, prev, hide=box)
            box2 = _box(k2, s2, min_score)
            if box2 is not None and not _jumped(box2, prev, self._since):
                # the tracker stays on whoever it follows: while that is someone else, every
                # frame takes this crop path (one extra run); once it loses them it re-detects
                keypoints, scores, box = k2, s2, box2
            elif box is not None:
                keypoints = np.zeros_like(keypoints)
                scores = np.zeros_like(scores)
                box = None
                if not self.static:
                    self._pose.reset()
        if prev is None and box is not None:
            keypoints, scores, box = self._most_prominent(frame, keypoints, scores, box)
        if box is not None:
            self._last_box, self._since = box, 0
        else:
            self._since += 1
        return keypoints, scores

    def estimate(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """frames (n, H, W, 3) uint8 RGB -> keypoints (n, 133, 2) float32 pixel x,y,
        scores (n, 133) float32 in [0, 1] (0 where BlazePose has no counterpart or no person)."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be (n, H, W, 3) uint8 RGB, got {frames.shape} "
                             f"{frames.dtype}")
        n = len(frames)
        keypoints = np.zeros((n, L.NUM_KEYPOINTS, 2), np.float32)
        scores = np.zeros((n, L.NUM_KEYPOINTS), np.float32)
        for i, frame in enumerate(frames):
            if self.static:
                self._last_box = None  # unrelated photos: no memory between them
            keypoints[i], scores[i] = self._estimate_one(frame)
        return keypoints, scores
