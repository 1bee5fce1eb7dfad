"""Canvas geometry: the size frames are processed at, the size they are generated at, and the
cover fit between a picture and a canvas.

- processing size: the driving video's own size unless it is very large (then the long side is
  PROCESS_SIDE); the output keeps the driving video's size.
- generation canvas: --width/--height, else the processing size; a model generator fits it to
  what it accepts (the diffusion model: multiples of 64, long side at most 768).
- cover fit: a picture scaled to cover the canvas completely, centred, the overflow cropped
  (x_canvas = s * x_src + ox); the reference photo and every keypoint and track go through it.
"""

from __future__ import annotations

import numpy as np

MAX_SIDE = 1280  # frames larger than this are processed downscaled ...
PROCESS_SIDE = 1024  # ... to this long side; the output keeps the driving video's size


def processing_size(width: int, height: int) -> tuple[int, int]:
    """(W, H) at which the stages process frames: the video's own size unless it is very large."""
    if max(width, height) <= MAX_SIDE:
        return width, height
    s = PROCESS_SIDE / max(width, height)
    return max(2, round(width * s)), max(2, round(height * s))


def generation_canvas(job, name: str | None = None) -> tuple[int, int]:
    """(W, H) of the generated frames (and of the fitted reference) of a `fgbg.stages.base.Job`.
    A model generator may fit the
    size to what it accepts, and checks what it can before anything loads."""
    if name is None:
        from .backends import resolve

        name, _ = resolve("generate", job.generate.backend, job.generate)
    w, h = job.canvas_size
    if name == "diffusion":
        from .backends.generate import diffusion

        diffusion.check(job.generate, job.video.num_frames)
        return diffusion.fit_canvas(job.generate, w, h)
    return w, h


def cover_transform(src_w: int, src_h: int, dst_w: int, dst_h: int) -> tuple[float, float, float]:
    """Scale and offset (s, ox, oy) mapping src pixels into a dst canvas that the scaled source
    covers completely, centred (the overflow is cropped): x_dst = s * x_src + ox."""
    s = max(dst_w / src_w, dst_h / src_h)
    return s, (dst_w - s * src_w) / 2.0, (dst_h - s * src_h) / 2.0


def apply_cover(image: np.ndarray, dst_w: int, dst_h: int) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    s, ox, oy = cover_transform(w, h, dst_w, dst_h)
    m = np.array([[s, 0, ox], [0, s, oy]], np.float64)
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(image, m, (dst_w, dst_h), flags=interp, borderMode=cv2.BORDER_REFLECT)


def to_canvas(points: np.ndarray, src_size: tuple[int, int], canvas: tuple[int, int]) -> np.ndarray:
    """Pixel x,y in the driving video -> pixel x,y on the output canvas (cover fit, centred)."""
    s, ox, oy = cover_transform(src_size[0], src_size[1], canvas[0], canvas[1])
    return (points * s + np.array([ox, oy], np.float32)).astype(np.float32)
