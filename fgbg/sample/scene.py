"""The sample's world behind the person: a large textured background canvas, the camera that pans,
zooms or shakes across it, a few objects moving on their own, and exact background point tracks.

Coordinates: the canvas is (CH, CW) pixels, pixel centres at integers. A camera matrix `C_t`
(2, 3) maps canvas pixels to frame-t pixels: x_frame = s R (x_canvas - centre_t) + (W/2, H/2).
"""

from __future__ import annotations

import cv2
import numpy as np

CAMERAS = ("pan", "zoom", "shake", "static")


def _noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Smooth value noise (h, w) float32 in about [-1, 1] with `cells` cells across the width."""
    gw, gh = max(cells, 2), max(int(cells * h / w), 2)
    grid = rng.uniform(-1, 1, (gh + 1, gw + 1)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def _fbm(rng, h, w, octaves=(4, 9, 20, 45)) -> np.ndarray:
    return sum(_noise(rng, h, w, c) / (i + 1) for i, c in enumerate(octaves)) / 2.0


def make_canvas(rng: np.random.Generator, width: int, height: int, horizon: float,
                palette: dict | None = None) -> np.ndarray:
    """(CH, CW, 3) uint8 RGB, 2x the frame width and 1.5x its height: a brick and plaster wall
    with posters and a window down to `horizon` (canvas row), wooden floor planks below it.

    `palette` (optional) overrides the seeded colours: "plaster" (3,) RGB, "bricks" (4, 3) RGB,
    "wood" (3,) RGB. The random draws are the same with or without it (same layout, new colours)."""
    palette = palette or {}
    cw, ch = 2 * width, int(round(1.5 * height))
    y, x = np.mgrid[0:ch, 0:cw].astype(np.float32)
    img = np.zeros((ch, cw, 3), np.float32)
    unit = height / 18.0  # brick height
    # wall: bricks on the left and right thirds, plaster in between (a few hues, seeded)
    brick_rgb = np.array(palette.get("bricks", [[150, 82, 62], [128, 70, 56], [165, 100, 75],
                                                [110, 75, 65]]), np.float32)
    row = np.floor(y / unit)
    col = np.floor((x + (row % 2) * unit * 1.1) / (unit * 2.2))
    brick_id = ((row * 73856093 + col * 19349663) % 4).astype(int)
    bricks = brick_rgb[brick_id] * (1 + 0.12 * _fbm(rng, ch, cw)[..., None])
    mortar = ((y % unit) < max(1.0, unit * 0.14)) | (((x + (row % 2) * unit * 1.1) % (unit * 2.2))
                                                     < max(1.0, unit * 0.14))
    bricks[mortar] = (200, 195, 185)
    plaster_hue = np.array([[190, 195, 170], [175, 190, 200], [205, 185, 160]], np.float32)
    plaster_rgb = plaster_hue[rng.integers(3)]
    if "plaster" in palette:
        plaster_rgb = np.array(palette["plaster"], np.float32)
    plaster = plaster_rgb * (1 + 0.1 * _fbm(rng, ch, cw)[..., None])
    split = cw * rng.uniform(0.3, 0.4), cw * rng.uniform(0.6, 0.7)
    is_brick = (x < split[0]) | (x > split[1])
    img[:] = np.where(is_brick[..., None], bricks, plaster)
    # floor: planks with wood grain and staggered joints
    plank = unit * 0.9
    prow = np.floor((y - horizon) / plank)
    grain = np.sin(x / (unit * 0.35) + 3 * _noise(rng, ch, cw, 12) + prow * 1.7)
    wood = np.array(palette.get("wood", [140, 100, 62]), np.float32) * (1 + 0.1 * grain + 0.15 * _fbm(rng, ch, cw))[..., None]
    joint = (((y - horizon) % plank) < 1.2) | (((x + prow * unit * 3.7) % (unit * 9)) < 1.2)
    wood[joint] = (70, 50, 35)
    floor = y >= horizon
    img[floor] = wood[floor]
    img[(y >= horizon - unit * 0.5) & (y < horizon)] = (235, 235, 228)  # skirting board
    _decorate(rng, img, unit, horizon)
    return np.clip(img, 0, 255).astype(np.uint8)


def _decorate(rng: np.random.Generator, img: np.ndarray, unit: float, horizon: float) -> None:
    """Posters, picture frames, a window and shapes on the wall: many corners for trackers."""
    ch, cw = img.shape[:2]
    colors = np.array([[60, 90, 140], [200, 170, 60], [70, 130, 90], [160, 70, 90],
                       [230, 230, 225], [120, 100, 140], [120, 160, 190]], float)
    # window with muntins
    wx, wy = rng.uniform(0.05, 0.2) * cw, rng.uniform(0.05, 0.15) * ch
    ww, wh = unit * 7, unit * 6
    cv2.rectangle(img, (int(wx), int(wy)), (int(wx + ww), int(wy + wh)), (240, 240, 235), -1)
    sky = np.linspace(1, 0.7, int(wh) - 4)[:, None, None] * np.array([150, 190, 225], float)
    img[int(wy) + 2:int(wy) + 2 + len(sky), int(wx) + 2:int(wx + ww) - 2] = sky
    for k in (1, 2):
        cv2.line(img, (int(wx + ww * k / 3), int(wy)), (int(wx + ww * k / 3), int(wy + wh)),
                 (240, 240, 235), max(1, int(unit * 0.25)))
    cv2.line(img, (int(wx), int(wy + wh / 2)), (int(wx + ww), int(wy + wh / 2)), (240, 240, 235),
             max(1, int(unit * 0.25)))
    for _ in range(22):
        c = colors[rng.integers(len(colors))]
        c2 = colors[rng.integers(len(colors))]
        cx, cy = rng.uniform(0, cw), rng.uniform(0, horizon - unit * 2)
        size = unit * rng.uniform(1.0, 2.6)
        kind = rng.integers(4)
        if kind == 0:  # poster with stripes
            x0, y0, x1, y1 = int(cx), int(cy), int(cx + size * 1.4), int(cy + size * 1.9)
            cv2.rectangle(img, (x0, y0), (x1, y1), tuple(c), -1)
            for k in range(y0, y1, max(2, int(size / 4))):
                cv2.rectangle(img, (x0 + 2, k), (x1 - 2, k + max(1, int(size / 10))), tuple(c2), -1)
            cv2.rectangle(img, (x0, y0), (x1, y1), (30, 30, 30), max(1, int(unit * 0.12)))
        elif kind == 1:  # checker tile
            n = 4
            step = size / n
            for a in range(n):
                for b in range(n):
                    cc = c if (a + b) % 2 else c2
                    cv2.rectangle(img, (int(cx + a * step), int(cy + b * step)),
                                  (int(cx + (a + 1) * step), int(cy + (b + 1) * step)), tuple(cc), -1)
        elif kind == 2:  # triangle / star-ish polygon
            k = rng.integers(3, 7)
            ang = np.linspace(0, 2 * np.pi, k, endpoint=False) + rng.uniform(0, np.pi)
            rad = 0.7 * size * (np.where(np.arange(k) % 2, 0.6, 1.0) if k > 4 else np.ones(k))
            pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1).astype(np.int32)
            cv2.fillPoly(img, [pts], tuple(c))
            cv2.polylines(img, [pts], True, tuple(c2), max(1, int(unit * 0.1)))
        else:  # framed picture with a diagonal
            x0, y0, x1, y1 = int(cx), int(cy), int(cx + size * 1.6), int(cy + size * 1.1)
            cv2.rectangle(img, (x0, y0), (x1, y1), tuple(c2), -1)
            cv2.fillPoly(img, [np.array([[x0, y1], [x1, y0], [x1, y1]], np.int32)], tuple(c))
            cv2.rectangle(img, (x0, y0), (x1, y1), (90, 60, 30), max(1, int(unit * 0.3)))


def camera_path(kind: str, rng: np.random.Generator, num_frames: int, fps: float, width: int,
                height: int, canvas_shape: tuple) -> np.ndarray:
    """(T, 2, 3) float64 canvas -> frame-t pixel maps for a camera `kind` in CAMERAS."""
    ch, cw = canvas_shape[:2]
    t = np.arange(num_frames) / fps
    prog = 0.5 - 0.5 * np.cos(np.pi * np.arange(num_frames) / max(num_frames - 1, 1))  # ease 0->1
    centre = np.tile([(cw - 1) / 2, (ch - 1) / 2], (num_frames, 1)).astype(np.float64)
    scale = np.ones(num_frames)
    angle = np.zeros(num_frames)
    if kind == "pan":
        direction = rng.choice([-1.0, 1.0])
        centre[:, 0] += direction * (prog - 0.5) * 0.5 * width
        centre[:, 1] += 0.04 * height * np.sin(2 * np.pi * prog)
    elif kind == "zoom":
        scale = 1.0 + 0.35 * prog
        centre[:, 0] += 0.08 * width * prog
    elif kind == "shake":
        for f, amp in ((1.3, 0.02), (2.9, 0.012), (5.3, 0.006)):
            ph = rng.uniform(0, 2 * np.pi, 4)
            centre[:, 0] += amp * width * np.sin(2 * np.pi * f * t + ph[0])
            centre[:, 1] += amp * height * np.sin(2 * np.pi * f * t + ph[1])
            angle += amp * 0.9 * np.sin(2 * np.pi * f * t + ph[2])
            scale += amp * 0.5 * np.sin(2 * np.pi * f * t + ph[3])
    elif kind != "static":
        raise ValueError(f"camera kind must be one of {CAMERAS}, got {kind!r}")
    cams = np.zeros((num_frames, 2, 3))
    for i in range(num_frames):
        c, s = np.cos(angle[i]) * scale[i], np.sin(angle[i]) * scale[i]
        a = np.array([[c, -s], [s, c]])
        cams[i, :, :2] = a
        cams[i, :, 2] = np.array([(width - 1) / 2, (height - 1) / 2]) - a @ centre[i]
    return cams


def compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The affine (2, 3) map x -> a(b(x))."""
    return np.concatenate([a[:, :2] @ b[:, :2], (a[:, :2] @ b[:, 2] + a[:, 2])[:, None]], 1)


def invert(a: np.ndarray) -> np.ndarray:
    inv = np.linalg.inv(a[:, :2])
    return np.concatenate([inv, (-inv @ a[:, 2])[:, None]], 1)


class MovingObjects:
    """Two to three flat shapes moving on their own across the wall (canvas coordinates);
    `count` (0..3, optional) overrides the seeded number."""

    def __init__(self, rng: np.random.Generator, width: int, height: int, cam0: np.ndarray,
                 count: int | None = None):
        to_canvas = invert(cam0)
        # start spots in frame-0 pixels: the upper corners and the right edge, clear of the head
        spots = [(0.12, 0.14), (0.88, 0.16), (0.9, 0.5)]
        self.items = []
        palette = [(235, 200, 30), (40, 170, 220), (230, 80, 160)]
        n = int(rng.integers(2, 4))
        n = n if count is None else max(0, min(int(count), len(spots)))
        for k in range(n):
            fx, fy = spots[k]
            start = to_canvas[:, :2] @ [fx * width, fy * height] + to_canvas[:, 2]
            vel = rng.uniform(-1, 1, 2) * (0.12 * width, 0.1 * height)  # canvas px per second
            self.items.append(dict(kind=k, start=start, vel=vel, size=0.07 * height,
                                   color=palette[k], spin=rng.uniform(-2, 2)))

    def draw(self, frame: np.ndarray, cam: np.ndarray, t: float) -> np.ndarray:
        """Draw onto frame (H, W, 3) uint8 in place; -> (H, W) bool mask of the objects."""
        mask = np.zeros(frame.shape[:2], np.uint8)
        scale = float(np.sqrt(abs(np.linalg.det(cam[:, :2]))))
        for it in self.items:
            # a bounded, smooth wander (a bounce for the ball)
            off = it["vel"] * np.sin(t * 1.3 + it["kind"])
            if it["kind"] == 0:
                off = off + [0.0, -0.12 * frame.shape[0] * abs(np.sin(np.pi * t * 1.5))]
            p = cam[:, :2] @ (it["start"] + off) + cam[:, 2]
            r = it["size"] * scale
            ang = it["spin"] * t + np.linspace(0, 2 * np.pi, 3 + it["kind"] + (it["kind"] == 0) * 29,
                                                endpoint=False)
            pts = np.stack([p[0] + r * np.cos(ang), p[1] + r * np.sin(ang)], 1)
            pts = np.round(pts * 16).astype(np.int32)
            cv2.fillPoly(frame, [pts], it["color"], cv2.LINE_AA, shift=4)
            cv2.polylines(frame, [pts], True, (20, 20, 20), 1, cv2.LINE_AA, shift=4)
            cv2.fillPoly(mask, [pts], 1, cv2.LINE_8, shift=4)
            cv2.polylines(mask, [pts], True, 1, 2, cv2.LINE_8, shift=4)
        return mask > 0


def background_tracks(first: np.ndarray, free: np.ndarray, cams: np.ndarray, occluded: np.ndarray,
                      num_points: int, rng: np.random.Generator):
    """Query points on frame 0's static background (corners first, where `free` (H, W) bool),
    moved through the exact camera maps `cams` (T, 2, 3) canvas -> frame.

    -> tracks (T, N, 2) float32, visible (T, N) bool (inside the frame and not on `occluded`
    (T, H, W) bool), queries (N, 3) float32 [0, x, y]."""
    h, w = free.shape
    gray = cv2.cvtColor(first, cv2.COLOR_RGB2GRAY)
    corners = cv2.goodFeaturesToTrack(gray, num_points, 0.01, max(4.0, w / 24),
                                      mask=free.astype(np.uint8))
    pts = np.zeros((0, 2)) if corners is None else corners.reshape(-1, 2).astype(np.float64)
    if len(pts) < num_points:
        ys, xs = np.nonzero(free)
        pick = rng.choice(len(xs), num_points - len(pts), replace=False)
        pts = np.concatenate([pts, np.stack([xs[pick], ys[pick]], 1)])
    back = invert(cams[0])
    canvas_pts = pts @ back[:, :2].T + back[:, 2]
    tracks = np.einsum("tij,nj->tni", cams[:, :, :2], canvas_pts) + cams[:, None, :, 2]
    xi, yi = np.round(tracks[..., 0]).astype(int), np.round(tracks[..., 1]).astype(int)
    inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    t_idx = np.arange(len(cams))[:, None]
    hidden = occluded[t_idx, np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)]
    visible = inside & ~hidden
    queries = np.concatenate([np.zeros((len(pts), 1)), pts], 1)
    return tracks.astype(np.float32), visible, queries.astype(np.float32)
