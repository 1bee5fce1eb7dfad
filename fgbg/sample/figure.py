"""Rendering of the sample character: clothes, skin, face and hands drawn from its `Skeleton`.

Every part is a shaded, textured shape in its own body-local coordinates (so stripes and checks
move with the limb), painted back to front into a layer super-sampled `SS` times; the layer's
coverage, box-filtered to frame size, is the alpha, and the person mask is coverage >= 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from . import skeleton as K

SS = 2  # super-sampling factor of the figure layer


@dataclass(frozen=True)
class Outfit:
    """Colours (RGB 0..255) and pattern sizes (body units) of one character."""

    skin: tuple
    hair: tuple
    shirt: tuple
    shirt_stripe: tuple
    trousers: tuple
    trouser_check: tuple
    shoes: tuple
    stripe_period: float
    check_period: float


SKINS = [(224, 172, 140), (198, 134, 96), (141, 85, 54), (236, 188, 160), (170, 112, 75)]
HAIRS = [(40, 26, 16), (20, 16, 14), (92, 56, 28), (150, 110, 60)]
SHIRTS = [((200, 40, 48), (245, 230, 210)), ((30, 130, 150), (250, 210, 60)),
          ((120, 50, 150), (240, 240, 240)), ((230, 150, 20), (40, 60, 130))]
TROUSERS = [((42, 58, 118), (58, 78, 145)), ((32, 32, 38), (62, 62, 72)),
            ((95, 38, 42), (125, 60, 60))]


def make_outfit(rng: np.random.Generator) -> Outfit:
    shirt, stripe = SHIRTS[rng.integers(len(SHIRTS))]
    trousers, check = TROUSERS[rng.integers(len(TROUSERS))]
    return Outfit(skin=SKINS[rng.integers(len(SKINS))], hair=HAIRS[rng.integers(len(HAIRS))],
                  shirt=shirt, shirt_stripe=stripe, trousers=trousers, trouser_check=check,
                  shoes=(28, 24, 22), stripe_period=float(rng.uniform(0.28, 0.4)),
                  check_period=float(rng.uniform(0.3, 0.45)))


def _grain(a: np.ndarray, b: np.ndarray, scale: float = 40.0) -> np.ndarray:
    """Deterministic fine noise in [-1, 1] tied to local coordinates (cloth weave, skin pores)."""
    x = np.floor(a * scale) * 12.9898 + np.floor(b * scale) * 78.233
    return 2 * (np.sin(x) * 43758.5453 % 1.0) - 1


class Layer:
    """The super-sampled figure layer of one frame: colour (H*SS, W*SS, 3) float32 and coverage
    (H*SS, W*SS) bool. Geometry is given in frame pixels (pixel centres at integers)."""

    def __init__(self, height: int, width: int):
        self.h, self.w = height * SS, width * SS
        self.color = np.zeros((self.h, self.w, 3), np.float32)
        self.cover = np.zeros((self.h, self.w), bool)

    def grid(self, lo: np.ndarray, hi: np.ndarray):
        """Slices of the layer box holding [lo, hi] (frame pixels) and its sample centres there."""
        x0, y0 = np.maximum(np.floor((np.asarray(lo) + 0.5) * SS).astype(int) - 1, 0)
        x1 = min(int(np.ceil((hi[0] + 0.5) * SS)) + 1, self.w)
        y1 = min(int(np.ceil((hi[1] + 0.5) * SS)) + 1, self.h)
        if x1 <= x0 or y1 <= y0:
            return None
        xs = (np.arange(x0, x1) + 0.5) / SS - 0.5
        ys = (np.arange(y0, y1) + 0.5) / SS - 0.5
        return (slice(y0, y1), slice(x0, x1)), *np.meshgrid(xs, ys)

    def paint(self, box, inside: np.ndarray, rgb: np.ndarray) -> None:
        sub = self.color[box]
        sub[inside] = np.clip(rgb, 0, 255)
        self.cover[box] |= inside

    def capsule(self, a, b, ra, rb, unit, texture) -> None:
        """Tapered capsule a->b (pixels) with radii ra, rb (pixels); texture(along, across, v)
        gets body-unit coordinates along the axis and across it, and v in [-1, 1]."""
        a, b = np.asarray(a, float), np.asarray(b, float)
        r = max(ra, rb)
        g = self.grid(np.minimum(a, b) - r, np.maximum(a, b) + r)
        if g is None:
            return
        box, x, y = g
        d = b - a
        length = max(np.hypot(*d), 1e-6)
        px, py = x - a[0], y - a[1]
        t = np.clip((px * d[0] + py * d[1]) / length ** 2, 0, 1)
        rad = ra + (rb - ra) * t
        dist = np.hypot(px - t * d[0], py - t * d[1])
        inside = dist < rad
        if not inside.any():
            return
        cross = (d[0] * py - d[1] * px) / length
        v = np.clip(cross / rad, -1, 1)[inside]
        along = (t * length / unit)[inside]
        self.paint(box, inside, texture(along, cross[inside] / unit, v) * _shade(v)[:, None])

    def polygon(self, pts, origin, rot, unit, texture, half_width: float) -> None:
        """Filled polygon (pixels); texture(along, across, v) in the frame (origin, rot) where
        rot's columns are the local x (across) and y (along) directions; v = across / half_width."""
        pts = np.asarray(pts, float)
        g = self.grid(pts.min(0), pts.max(0))
        if g is None:
            return
        box, x, y = g
        mask = np.zeros(x.shape, np.uint8)
        hi = np.round(((pts + 0.5) * SS - 0.5 - [box[1].start, box[0].start]) * 16).astype(np.int32)
        cv2.fillPoly(mask, [hi], 1, cv2.LINE_8, shift=4)
        inside = mask > 0
        px, py = (x - origin[0])[inside] / unit, (y - origin[1])[inside] / unit
        across = px * rot[0, 0] + py * rot[1, 0]
        along = px * rot[0, 1] + py * rot[1, 1]
        v = np.clip(across / half_width, -1, 1)
        self.paint(box, inside, texture(along, across, v) * _shade(v)[:, None])

    def lines(self, pts, rgb, width_px: float, closed: bool = False, fill: bool = False) -> None:
        """Flat-colour details (eyes, brows, mouth) on already covered pixels."""
        hi = np.round(((np.asarray(pts, float) + 0.5) * SS - 0.5) * 16).astype(np.int32)
        col = tuple(float(c) for c in rgb)
        if fill:
            cv2.fillPoly(self.color, [hi], col, cv2.LINE_AA, shift=4)
        else:
            cv2.polylines(self.color, [hi], closed, col, max(1, int(round(width_px * SS))),
                          cv2.LINE_AA, shift=4)

    def resolve(self) -> tuple[np.ndarray, np.ndarray]:
        """-> colour (H, W, 3) float32 premultiplied-free, alpha (H, W) float32 in [0, 1]."""
        size = (self.w // SS, self.h // SS)
        alpha = cv2.resize(self.cover.astype(np.float32), size, interpolation=cv2.INTER_AREA)
        color = cv2.resize(self.color * self.cover[..., None], size, interpolation=cv2.INTER_AREA)
        color = color / np.maximum(alpha, 1e-6)[..., None]
        return color, alpha


def _shade(v: np.ndarray) -> np.ndarray:
    """Cylinder shading across a part, lit a little from the image left."""
    return 0.62 + 0.33 * np.sqrt(1 - v ** 2) - 0.07 * v


def _flat(rgb, grain: float = 6.0):
    base = np.asarray(rgb, np.float32)
    return lambda a, c, v: base + grain * _grain(a, c)[:, None]


def _stripes(base, stripe, period):
    base, stripe = np.asarray(base, np.float32), np.asarray(stripe, np.float32)

    def tex(a, c, v):
        on = (np.mod(a, period) > 0.6 * period)[:, None]
        return np.where(on, stripe, base) + 8 * _grain(a, c)[:, None]

    return tex


def _checks(base, check, period):
    base, check = np.asarray(base, np.float32), np.asarray(check, np.float32)

    def tex(a, c, v):
        on = ((np.floor(a / period) + np.floor(c / period)) % 2 == 0)[:, None]
        return np.where(on, check, base) + 10 * _grain(a, c, 60)[:, None]

    return tex


def draw_figure(layer: Layer, sk: K.Skeleton, outfit: Outfit) -> None:
    """Paint the character back to front: legs, shoes, trousers, shirt, neck, head, arms, hands."""
    j, u = sk.joints, sk.unit
    skin = _flat(outfit.skin, 4)
    trousers = _checks(outfit.trousers, outfit.trouser_check, outfit.check_period)
    shirt = _stripes(outfit.shirt, outfit.shirt_stripe, outfit.stripe_period)
    shoe = _flat(outfit.shoes, 5)
    for side, s in K.SIDES.items():
        layer.capsule(j[f"{side}_hip"], j[f"{side}_knee"], 0.34 * u, 0.25 * u, u, trousers)
        layer.capsule(j[f"{side}_knee"], j[f"{side}_ankle"], 0.25 * u, 0.18 * u, u, trousers)
        ankle = j[f"{side}_ankle"]
        toe = ankle + np.array([s * 0.1, 0.3]) * u
        layer.capsule(ankle + np.array([0, 0.12]) * u, toe, 0.17 * u, 0.2 * u, u, shoe)
        layer.lines([toe + np.array([-0.2, 0.17]) * u, toe + np.array([0.2, 0.17]) * u],
                    (225, 225, 220), 0.06 * u)
    # pelvis and shirt share the torso frame (lean about the pelvis)
    down = j["pelvis"] - j["neck"]
    down = down / np.hypot(*down)
    rot = np.array([[down[1], down[0]], [-down[0], down[1]]])  # columns: across, along

    def torso_pts(local):
        local = np.asarray(local, float)
        return j["pelvis"] + (local[:, :1] * rot[:, 0] + local[:, 1:] * rot[:, 1]) * u

    pelvis = [[-0.72, -0.55], [0.72, -0.55], [0.8, 0.2], [0.25, 0.5], [0.0, 0.4], [-0.25, 0.5],
              [-0.8, 0.2]]
    layer.polygon(torso_pts(pelvis), j["pelvis"], rot, u, trousers, 0.8)
    body = [[-0.32, -2.7], [0.32, -2.7], [1.08, -2.58], [1.05, -2.3], [0.9, -1.9], [0.72, -1.0],
            [0.76, -0.3], [-0.76, -0.3], [-0.72, -1.0], [-0.9, -1.9], [-1.05, -2.3],
            [-1.08, -2.58]]
    layer.polygon(torso_pts(body), j["pelvis"], rot, u, shirt, 1.0)
    belt = [[-0.77, -0.45], [0.77, -0.45], [0.77, -0.28], [-0.77, -0.28]]
    layer.polygon(torso_pts(belt), j["pelvis"], rot, u, _flat((70, 45, 25)), 0.8)
    layer.polygon(torso_pts([[-0.1, -0.47], [0.1, -0.47], [0.1, -0.26], [-0.1, -0.26]]),
                  j["pelvis"], rot, u, _flat((200, 180, 90)), 0.8)
    _draw_head(layer, sk, outfit, skin)
    for side in K.SIDES:
        layer.capsule(j[f"{side}_shoulder"], j[f"{side}_elbow"], 0.3 * u, 0.23 * u, u, shirt)
        layer.capsule(j[f"{side}_elbow"], j[f"{side}_wrist"], 0.19 * u, 0.15 * u, u, skin)
        _draw_hand(layer, sk.hands[side], u, skin)


def _draw_head(layer: Layer, sk: K.Skeleton, outfit: Outfit, skin) -> None:
    j, u, hr = sk.joints, sk.unit, sk.head_rot
    head = j["head"]
    layer.capsule(j["neck"] + (head - j["neck"]) * 0.1, head, 0.2 * u, 0.2 * u, u, skin)
    at = lambda p: head + np.asarray(p, float) @ hr.T  # noqa: E731
    ring = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    for ex in (-1, 1):  # ears
        ear = np.stack([ex * 0.43 + 0.07 * np.cos(ring), 0.0 + 0.12 * np.sin(ring)], 1)
        layer.polygon(at(ear), head, hr / u, u, skin, 0.5)
    face = np.stack([K.HEAD_RX * np.cos(ring), K.HEAD_RY * np.sin(ring) + 0.02 * np.sin(ring) ** 2], 1)
    layer.polygon(at(face), head, hr / u, u, skin, K.HEAD_RX)
    top = np.linspace(np.pi - 0.12, 2 * np.pi + 0.12, 24)
    hair = np.concatenate([
        np.stack([1.08 * K.HEAD_RX * np.cos(top), -0.05 + 1.05 * K.HEAD_RY * np.sin(top)], 1),
        [[0.4, -0.12], [0.3, -0.24], [0.12, -0.3], [-0.05, -0.26], [-0.25, -0.27], [-0.4, -0.12]]])
    hair_col = np.asarray(outfit.hair, np.float32)
    layer.polygon(at(hair), head, hr / u, u,
                  lambda a, c, v: hair_col + 14 * _grain(c * 0.2, np.floor(c * 30))[:, None], 0.5)
    f = K.FACE
    dark = np.asarray(outfit.skin) * 0.55
    layer.lines(at(f[36:42]), (250, 250, 250), 0, fill=True)
    layer.lines(at(f[42:48]), (250, 250, 250), 0, fill=True)
    for c in K.EYE_CENTRES:
        iris = np.stack([c[0] + 0.032 * np.cos(ring), c[1] + 0.032 * np.sin(ring)], 1)
        layer.lines(at(iris), (45, 30, 20), 0, fill=True)
    layer.lines(at(f[36:42]), (40, 30, 25), 0.025 * u, closed=True)
    layer.lines(at(f[42:48]), (40, 30, 25), 0.025 * u, closed=True)
    layer.lines(at(f[17:22]), np.asarray(outfit.hair) * 0.8, 0.04 * u)
    layer.lines(at(f[22:27]), np.asarray(outfit.hair) * 0.8, 0.04 * u)
    layer.lines(at(f[27:31]), dark * 1.2, 0.025 * u)
    layer.lines(at(f[31:36]), dark, 0.03 * u)
    layer.lines(at(f[48:60]), (175, 60, 65), 0, fill=True)
    layer.lines(at(f[[60, 61, 62, 63, 64]]), (90, 25, 30), 0.025 * u)


def _draw_hand(layer: Layer, hand, u: float, skin) -> None:
    origin, along, across = hand
    pts = origin + K.HAND_POINTS[:, :1] * along + K.HAND_POINTS[:, 1:] * across
    palm = pts[[0, 1, 2, 5, 9, 13, 17]]
    palm = np.concatenate([palm, [origin - across * 0.12]])
    hand_len = np.hypot(*along)
    rot = np.stack([across, along], 1) / hand_len
    layer.polygon(palm, origin, rot, u, skin, 0.2)
    for finger in K.FINGERS:
        radius = (0.06 if finger[0] == 1 else 0.055) * hand_len
        for a, b in zip(finger[:-1], finger[1:]):
            layer.capsule(pts[a], pts[b], radius, radius * 0.85, u, skin)
        if finger[0] != 1:
            layer.capsule(pts[finger[0]] - 0.1 * along, pts[finger[0]], radius, radius, u, skin)
