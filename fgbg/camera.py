"""Parametric camera paths: the background's motion from a chosen camera move instead of tracks
(`--camera`, ours). The path is written as an ordinary tracks artifact (a grid of background
points moved by the camera), so every generator (warp, diffusion, anchored or not) uses it
unchanged.

Grammar (pixels and frames of the driving video; the camera maps frame-0 pixels to frame t's):
  static               no motion
  pan:DX,DY            the background moves DX, DY pixels per frame
  zoom:RATE            the background scales by RATE per frame about the frame centre (1.01: in)
  shake:AMP[,HZ]       a hand-held shake: AMP pixels, HZ cycles per second (default 2)
  orbit:DEG[,DEPTH]    the camera circles the person DEG degrees per frame (positive: to the
                       camera's right) about a vertical axis through the frame centre, looking at
                       it; the background is a flat backdrop DEPTH camera-distances behind the
                       person (default 1). The backdrop turns in perspective (a homography) and
                       slides the faster the farther it is (one at the person's depth only turns). Pinhole with a focal length of one frame
                       width (a 53 degree field of view).
"""

from __future__ import annotations

import math

import numpy as np

from .errors import InputError

GRAMMAR = "static | pan:DX,DY | zoom:RATE | shake:AMP[,HZ] | orbit:DEG[,DEPTH]   (e.g. pan:2,0, zoom:1.01, orbit:0.5)"
MAX_ORBIT_DEG = 10.0  # per frame


def parse(spec: str):
    """spec -> (kind, numbers); InputError naming the grammar when it does not parse."""
    kind, _, rest = spec.strip().partition(":")
    try:
        nums = [float(v) for v in rest.split(",")] if rest else []
    except ValueError:
        nums = None
    ok = nums is not None and all(math.isfinite(v) for v in nums) and (
        (kind == "static" and not nums) or (kind == "pan" and len(nums) == 2)
        or (kind == "zoom" and len(nums) == 1 and nums[0] > 0) or (kind == "shake" and len(nums) in (1, 2))
        or (kind == "orbit" and len(nums) in (1, 2) and abs(nums[0]) <= MAX_ORBIT_DEG
            and (len(nums) == 1 or nums[1] > 0)))
    if not ok:
        raise InputError(f"--camera {spec!r} does not parse", cause="a camera path is one of the forms below",
                         hint=f"use --camera {GRAMMAR}")
    return kind, nums


def orbit_homography(deg: float, depth: float, width: int, height: int) -> np.ndarray:
    """(3, 3): frame-0 pixels of the backdrop -> their pixels after the camera has circled `deg`
    degrees about the pivot (one unit ahead of the camera; backdrop plane at 1 + depth)."""
    f = float(width)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    k = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1.0]])
    a = math.radians(deg)
    # camera t: centre pivot + R(a) (0, 0, -1) = (sin a, 0, 1 - cos a), axes R(a) (yawed to face the pivot)
    rot = np.array([[math.cos(a), 0, -math.sin(a)], [0, 1, 0], [math.sin(a), 0, math.cos(a)]])
    centre = np.array([math.sin(a), 0.0, 1 - math.cos(a)])
    # plane n.X = d in frame-0 camera coordinates: n = (0, 0, 1), d = 1 + depth; camera t maps X
    # to R X + T (R = rot^T, T = -rot^T centre), so on the plane X -> (R + T n^T / d) X
    r_t, t_t = rot.T, -rot.T @ centre
    h = k @ (r_t + np.outer(t_t, [0, 0, 1.0]) / (1 + depth)) @ np.linalg.inv(k)
    return h / h[2, 2]


def path(spec: str, num_frames: int, width: int, height: int, fps: float) -> np.ndarray:
    """(T, 3, 3) float64 homographies taking frame-0 pixel coordinates to frame t's (affine for
    every path but orbit)."""
    kind, v = parse(spec)
    out = np.zeros((num_frames, 3, 3))
    out[:, 2, 2] = 1.0
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    for t in range(num_frames):
        if kind == "orbit":
            out[t] = orbit_homography(v[0] * t, v[1] if len(v) > 1 else 1.0, width, height)
            continue
        s, tx, ty = 1.0, 0.0, 0.0
        if kind == "pan":
            tx, ty = v[0] * t, v[1] * t
        elif kind == "zoom":
            s = v[0] ** t
        elif kind == "shake":
            hz = v[1] if len(v) > 1 else 2.0
            a = 2 * math.pi * hz * t / max(fps, 1e-6)
            tx, ty = v[0] * math.sin(a), v[0] * math.sin(1.7 * a)  # zero at frame 0
        out[t, :2] = [[s, 0, cx - s * cx + tx], [0, s, cy - s * cy + ty]]
    return out


def camera_tracks(spec: str, num_frames: int, width: int, height: int, fps: float, num_points: int):
    """A tracks artifact's arrays for the camera path: a grid of about num_points points at frame 0,
    moved by the path; visible while inside the frame. -> tracks (T, N, 2) float32, visible
    (T, N) bool, queries (N, 3) float32 [0, x, y]."""
    g = max(2, int(round(math.sqrt(num_points))))
    xs = (np.arange(g) + 0.5) * width / g - 0.5
    ys = (np.arange(g) + 0.5) * height / g - 0.5
    p0 = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
    cams = path(spec, num_frames, width, height, fps)
    hom = np.einsum("tij,nj->tni", cams, np.concatenate([p0, np.ones((len(p0), 1))], 1))
    ahead = hom[..., 2] > 1e-6  # a backdrop point that turned behind the camera is not seen
    tracks = hom[..., :2] / np.where(ahead, hom[..., 2], 1.0)[..., None]
    visible = ((tracks >= 0) & (tracks <= [width - 1, height - 1])).all(-1) & ahead
    queries = np.concatenate([np.zeros((len(p0), 1)), p0], 1)
    return tracks.astype(np.float32), visible, queries.astype(np.float32)
