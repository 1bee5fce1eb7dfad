"""Pose maps: 133 whole-body keypoints rendered in the DWPose drawing convention.

AnimateAnyone-style models (Moore-AnimateAnyone and its descendants) were trained on skeletons
drawn by DWPose's `draw_pose`, so the pose encoder expects exactly that picture: a black canvas;
the body as the 18-point OpenPose skeleton (neck = mid-shoulders) with 17 coloured ellipse limbs
dimmed to 60 % and a filled circle per joint; each hand as 20 rainbow edges and blue points; the
face as small white dots. Feet are not drawn. This module draws the same pixels from our stored
keypoints (checked against Moore's own renderings in tests/pose/test_draw.py).

The rules (pixel rounding included) follow the convention exactly, because the encoder learned
them: coordinates are truncated with int(); hand and face points with a truncated coordinate below
1 are skipped (the convention's "> 0.01" test on integer pixels); body circles are not bounds-tested.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from . import layout as L

# OpenPose-18 body order as COCO-17 indices; the neck (index 1) is the mean of the shoulders.
NECK = -1
OPENPOSE_FROM_COCO = (
    L.NOSE, NECK, L.RIGHT_SHOULDER, L.RIGHT_ELBOW, L.RIGHT_WRIST,
    L.LEFT_SHOULDER, L.LEFT_ELBOW, L.LEFT_WRIST,
    L.RIGHT_HIP, L.RIGHT_KNEE, L.RIGHT_ANKLE, L.LEFT_HIP, L.LEFT_KNEE, L.LEFT_ANKLE,
    L.RIGHT_EYE, L.LEFT_EYE, L.RIGHT_EAR, L.LEFT_EAR,
)

# OpenPose limbs (0-based OpenPose-18 indices). The convention draws only these 17; the two
# ear-shoulder limbs of the original OpenPose table are left out.
BODY_LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)

# one RGB colour per OpenPose joint; limb i is drawn in colour i
BODY_COLORS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)

STICK_WIDTH = 4  # half-width of the limb ellipses, pixels
BODY_RADIUS = 4
LIMB_DIM = 0.6  # limbs are dimmed before the joints are drawn on top

# hand edges within the 21-point hand (wrist, then 4 points per finger from the palm out)
HAND_EDGES = tuple(
    (0 if j == 0 else f * 4 + j, f * 4 + j + 1) for f in range(5) for j in range(4)
)
HAND_POINT_COLOR = (0, 0, 255)
HAND_RADIUS = 4
HAND_THICKNESS = 2
FACE_COLOR = (255, 255, 255)
FACE_RADIUS = 3


def _hsv_rgb(h: float) -> tuple[int, int, int]:
    """Fully saturated, full-value hue h in [0, 1) -> RGB 0..255, rounded as OpenCV rounds a float
    colour (the convention passes float colours to cv2.line)."""
    i = int(h * 6.0) % 6
    f = h * 6.0 - int(h * 6.0)
    # written as 1 - s*f and 1 - s*(1 - f) with s = 1 so the float colours (and hence OpenCV's
    # rounding of them) come out bit for bit as the convention's
    q, t = 1.0 - f, 1.0 - (1.0 - f)
    rgb = [(1, t, 0), (q, 1, 0), (0, 1, t), (0, q, 1), (t, 0, 1), (1, 0, q)][i]
    return tuple(int(np.rint(c * 255.0)) for c in rgb)


HAND_EDGE_COLORS = tuple(_hsv_rgb(i / len(HAND_EDGES)) for i in range(len(HAND_EDGES)))


def openpose18(keypoints: np.ndarray, scores: np.ndarray, min_score: float = 0.3
               ) -> tuple[np.ndarray, np.ndarray]:
    """COCO-WholeBody body -> OpenPose-18: (133, 2) pixel x,y and (133,) scores ->
    (18, 2) float64 pixel x,y and (18,) bool visible. The neck is the mean of the two shoulders and
    is visible only when both shoulders are (as DWPose does)."""
    kp = np.asarray(keypoints, dtype=np.float64)
    sc = np.asarray(scores, dtype=np.float64)
    idx = np.array([i if i != NECK else 0 for i in OPENPOSE_FROM_COCO])
    xy = kp[idx].copy()
    vis = sc[idx] >= min_score
    xy[1] = (kp[L.LEFT_SHOULDER] + kp[L.RIGHT_SHOULDER]) / 2.0
    vis[1] = sc[L.LEFT_SHOULDER] >= min_score and sc[L.RIGHT_SHOULDER] >= min_score
    return xy, vis


def _draw_body(canvas: np.ndarray, xy: np.ndarray, vis: np.ndarray) -> np.ndarray:
    for i, (a, b) in enumerate(BODY_LIMBS):
        if not (vis[a] and vis[b]):
            continue
        (xa, ya), (xb, yb) = xy[a], xy[b]
        length = math.hypot(xa - xb, ya - yb)
        angle = math.degrees(math.atan2(ya - yb, xa - xb))
        center = (int((xa + xb) / 2), int((ya + yb) / 2))
        poly = cv2.ellipse2Poly(center, (int(length / 2), STICK_WIDTH), int(angle), 0, 360, 1)
        cv2.fillConvexPoly(canvas, poly, BODY_COLORS[i])
    canvas = (canvas * LIMB_DIM).astype(np.uint8)
    for j in range(18):
        if vis[j]:
            cv2.circle(canvas, (int(xy[j, 0]), int(xy[j, 1])), BODY_RADIUS, BODY_COLORS[j],
                       thickness=-1)
    return canvas


def _on_canvas(x: int, y: int) -> bool:
    # the convention's `x > eps and y > eps` on truncated pixels: column/row 0 counts as missing
    return x >= 1 and y >= 1


def _draw_hand(canvas: np.ndarray, xy: np.ndarray, vis: np.ndarray) -> None:
    pts = [(int(x), int(y)) for x, y in xy]
    ok = [bool(v) and _on_canvas(*p) for v, p in zip(vis, pts)]
    for (a, b), color in zip(HAND_EDGES, HAND_EDGE_COLORS):
        if ok[a] and ok[b]:
            cv2.line(canvas, pts[a], pts[b], color, thickness=HAND_THICKNESS)
    for p, k in zip(pts, ok):
        if k:
            cv2.circle(canvas, p, HAND_RADIUS, HAND_POINT_COLOR, thickness=-1)


def _draw_face(canvas: np.ndarray, xy: np.ndarray, vis: np.ndarray) -> None:
    for (x, y), v in zip(xy, vis):
        p = (int(x), int(y))
        if v and _on_canvas(*p):
            cv2.circle(canvas, p, FACE_RADIUS, FACE_COLOR, thickness=-1)


def render_dwpose(body: np.ndarray, body_visible: np.ndarray, hands: np.ndarray,
                  hands_visible: np.ndarray, face: np.ndarray, face_visible: np.ndarray,
                  width: int, height: int) -> np.ndarray:
    """The renderer itself, on DWPose's own parts (all pixel x,y): body (18, 2) in OpenPose-18
    order with body_visible (18,) bool; hands (2, 21, 2) left then right, hands_visible (2, 21);
    face (68, 2) iBUG order, face_visible (68,). -> (height, width, 3) uint8 RGB."""
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    canvas = _draw_body(canvas, np.asarray(body, np.float64), np.asarray(body_visible, bool))
    for xy, vis in zip(np.asarray(hands, np.float64), np.asarray(hands_visible, bool)):
        _draw_hand(canvas, xy, vis)
    _draw_face(canvas, np.asarray(face, np.float64), np.asarray(face_visible, bool))
    return canvas


def draw_pose(keypoints: np.ndarray, scores: np.ndarray, width: int, height: int,
              min_score: float = 0.3) -> np.ndarray:
    """One pose map. keypoints (133, 2) float pixel x,y in a width x height frame (COCO-WholeBody
    order), scores (133,) in [0, 1]; points scored below `min_score` (or not finite) are not
    drawn. -> (height, width, 3) uint8 RGB, black where nothing is drawn."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if keypoints.shape != (L.NUM_KEYPOINTS, 2) or scores.shape != (L.NUM_KEYPOINTS,):
        raise ValueError(f"draw_pose needs keypoints (133, 2) and scores (133,), got "
                         f"{keypoints.shape} and {scores.shape}")
    finite = np.isfinite(keypoints).all(-1)
    scores = np.where(finite, scores, 0.0)
    keypoints = np.where(finite[:, None], keypoints, -1.0)
    body, body_visible = openpose18(keypoints, scores, min_score)
    visible = scores >= min_score
    hands = np.stack([keypoints[L.LEFT_HAND], keypoints[L.RIGHT_HAND]])
    hands_visible = np.stack([visible[L.LEFT_HAND], visible[L.RIGHT_HAND]])
    return render_dwpose(body, body_visible, hands, hands_visible, keypoints[L.FACE],
                         visible[L.FACE], width, height)


def draw_pose_maps(keypoints: np.ndarray, scores: np.ndarray, width: int, height: int,
                   min_score: float = 0.3) -> np.ndarray:
    """Pose maps of a sequence: keypoints (T, 133, 2) pixel x,y, scores (T, 133)
    -> (T, height, width, 3) uint8 RGB."""
    keypoints = np.asarray(keypoints)
    scores = np.asarray(scores)
    out = np.zeros((len(keypoints), height, width, 3), dtype=np.uint8)
    for t in range(len(keypoints)):
        out[t] = draw_pose(keypoints[t], scores[t], width, height, min_score)
    return out


def from_dwpose_dict(pose: dict, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """A pose in the dict format DWPose's detector hands to its `draw_pose` (as in
    Moore-AnimateAnyone) -> keypoints (133, 2) float32 pixel x,y and scores (133,) float32.

    pose["bodies"]["candidate"] (18, 2) normalised x/W, y/H in OpenPose-18 order and
    pose["bodies"]["subset"] (1, 18) with -1 for a missing joint; pose["hands"] (2, 21, 2) left
    then right and pose["faces"] (1, 68, 2), normalised, [-1, -1] where missing. Present points get
    score 1, missing ones 0; the neck is dropped (we store none: it is the mean of the shoulders)
    and the feet, which the format does not carry, get score 0.
    """
    size = np.array([width, height], dtype=np.float64)
    keypoints = np.zeros((L.NUM_KEYPOINTS, 2), dtype=np.float64)
    scores = np.zeros(L.NUM_KEYPOINTS, dtype=np.float64)
    candidate = np.asarray(pose["bodies"]["candidate"], dtype=np.float64)
    subset = np.asarray(pose["bodies"]["subset"], dtype=np.float64)[0]
    for j, coco in enumerate(OPENPOSE_FROM_COCO):
        if coco == NECK:
            continue
        keypoints[coco] = candidate[j] * size
        scores[coco] = float(subset[j] >= 0)
    parts = ((np.asarray(pose["hands"], np.float64)[0], L.LEFT_HAND),
             (np.asarray(pose["hands"], np.float64)[1], L.RIGHT_HAND),
             (np.asarray(pose["faces"], np.float64)[0], L.FACE))
    for xy, where in parts:
        missing = (xy == -1).all(-1)
        keypoints[where] = np.where(missing[:, None], -1.0, xy * size)
        scores[where] = (~missing).astype(np.float64)
    return keypoints.astype(np.float32), scores.astype(np.float32)
