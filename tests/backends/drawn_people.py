"""Small drawn scenes with known joints for the weight-free backends (no sample video needed).

A plain module (not conftest.py: tests/conftest.py is imported by name as `conftest`)."""

import cv2
import numpy as np
import pytest

from fgbg.pose import layout as L

SKIN, SHIRT, PANTS, HAIR, SHOE = (224, 172, 140), (40, 90, 200), (40, 40, 60), (50, 30, 20), (20, 20, 20)
# joints of the drawn person in body units (x right, y down; about 8 units tall, hips at y=0.5)
JOINTS = {
    L.LEFT_SHOULDER: (0.9, -2.1), L.RIGHT_SHOULDER: (-0.9, -2.1),
    L.LEFT_ELBOW: (1.3, -0.6), L.RIGHT_ELBOW: (-1.3, -0.6),
    L.LEFT_WRIST: (1.5, 0.8), L.RIGHT_WRIST: (-1.5, 0.8),
    L.LEFT_HIP: (0.45, 0.4), L.RIGHT_HIP: (-0.45, 0.4),
    L.LEFT_KNEE: (0.5, 2.2), L.RIGHT_KNEE: (-0.5, 2.2),
    L.LEFT_ANKLE: (0.55, 3.9), L.RIGHT_ANKLE: (-0.55, 3.9),
    L.LEFT_EYE: (0.2, -3.35), L.RIGHT_EYE: (-0.2, -3.35), L.NOSE: (0.0, -3.2),
}


def draw_person(img, cx, cy, s):
    """A crude clothed person facing the camera, centred at (cx, cy) px, s px per unit; draws into
    img (RGB) and returns ({coco index: (x, y) px}, mask (H, W) bool of what was drawn)."""
    before = img.copy()
    j = {k: (cx + x * s, cy + y * s) for k, (x, y) in JOINTS.items()}
    P = lambda x, y: (int(round(cx + x * s)), int(round(cy + y * s)))  # noqa: E731

    def limb(a, b, w, c):
        cv2.line(img, P(*a), P(*b), c, max(1, int(w * s)), cv2.LINE_AA)
        cv2.circle(img, P(*b), max(1, int(w * s / 2)), c, -1, cv2.LINE_AA)

    for side in (-1, 1):
        limb((0.4 * side, 0.5), (0.5 * side, 2.2), 0.55, PANTS)
        limb((0.5 * side, 2.2), (0.55 * side, 3.9), 0.45, PANTS)
        limb((0.55 * side, 3.9), (0.9 * side, 4.05), 0.3, SHOE)
    cv2.ellipse(img, P(0, -0.8), (int(0.95 * s), int(1.7 * s)), 0, 0, 360, SHIRT, -1, cv2.LINE_AA)
    for side in (-1, 1):
        limb((0.9 * side, -2.1), (1.3 * side, -0.6), 0.38, SHIRT)
        limb((1.3 * side, -0.6), (1.5 * side, 0.8), 0.32, SKIN)
    limb((0, -2.3), (0, -2.7), 0.35, SKIN)
    cv2.ellipse(img, P(0, -3.3), (int(0.5 * s), int(0.65 * s)), 0, 0, 360, SKIN, -1, cv2.LINE_AA)
    cv2.ellipse(img, P(0, -3.65), (int(0.52 * s), int(0.38 * s)), 0, 180, 360, HAIR, -1, cv2.LINE_AA)
    for ex in (-0.2, 0.2):
        cv2.circle(img, P(ex, -3.35), max(1, int(0.07 * s)), (30, 30, 30), -1, cv2.LINE_AA)
    cv2.line(img, P(-0.15, -2.95), P(0.15, -2.95), (150, 60, 60), max(1, int(0.05 * s)))
    return j, (img != before).any(-1)


def background(w, h, seed):
    rng = np.random.default_rng(seed)
    img = (np.full((h, w, 3), (170, 190, 170), np.float64) + rng.normal(0, 8, (h, w, 3)))
    img = img.clip(0, 255).astype(np.uint8)
    cv2.rectangle(img, (0, int(h * 0.8)), (w, h), (120, 110, 90), -1)
    return img


@pytest.fixture(scope="session")
def walk():
    """12 frames, 256x256: one person walking right, a smaller second person standing at the
    right. -> frames (12, 256, 256, 3) uint8, joints {index: (12, 2)} of the big person,
    masks (12, 256, 256) bool of the big person."""
    frames, joints, masks = [], [], []
    for t in range(12):
        img = background(256, 256, t)
        draw_person(img, 210, 125, 18)  # the other, smaller person (drawn first: behind)
        j, m = draw_person(img, 70 + 3 * t, 112, 25)
        frames.append(img), joints.append(j), masks.append(m)
    return (np.stack(frames), {k: np.array([j[k] for j in joints]) for k in JOINTS},
            np.stack(masks))
