"""The built-in procedural sample: a driving video, a reference photo and exact ground truth.

`make_sample(out_dir, preset, seed, ...)` renders a jointed, clothed character (striped shirt,
checked trousers, belt, shoes, skin-toned head with hair, eyes, brows, nose, mouth and ears, hands
with fingers) dancing or walking over a textured wall-and-floor background that the camera pans,
zooms or shakes across, with two or three flat shapes moving on their own. Everything is seeded
and deterministic; no files or network are needed.

Files written to `out_dir`:
- `driving.mp4`: H.264, `num_frames` frames of `width` x `height` at `fps`, with a synthesized
  beat as its audio track when `audio=True`.
- `person.png`: the same character (same outfit) in an A-pose facing the camera, on a different,
  plainer background, a little smaller and off-centre compared with the video.
- `truth.npz`, all coordinates in pixels with pixel centres at integers (x right, y down):
  - `keypoints (T, 133, 2) float32`: x, y of the character's joints in each video frame, in the
    COCO-WholeBody order of `fgbg.pose.layout` (body, feet, iBUG-68 face, left hand, right hand;
    "left" is the person's own left, on the image right). Taken from the renderer's skeleton:
    every point is modelled, and face points are exactly where the eyes/brows/nose/mouth/jaw
    are drawn.
  - `scores (T, 133) float32`: 1 where the point lies inside the frame, else 0.
  - `masks (T, H, W) uint8`: 1 on the pixels the character covers (super-sampled coverage >= 1/2).
  - `tracks (T, N, 2) float32`, `visible (T, N) bool`, `queries (N, 3) float32 [t, x, y]`: N
    points on the static background at frame 0 (strong corners first, off the person and the
    moving objects), moved by the exact camera map. `visible` is False where the point leaves the
    frame or lies under the person or a moving object (both masks grown by 1 pixel).
  - `camera (T, 2, 3) float32`: the affine map from frame-0 pixels of the static background to
    frame-t pixels (`camera[0]` is the identity): `x_t = camera[t, :, :2] @ x_0 + camera[t, :, 2]`.
  - `fps`, `width`, `height` (scalars), `preset` (str), `seed` (int).
  - `ref_keypoints (133, 2) float32`, `ref_scores (133,) float32`, `ref_mask (H, W) uint8`: the
    same for `person.png`.
"""

from __future__ import annotations

import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from . import figure as F
from . import scene as S
from . import skeleton as K


@dataclass(frozen=True)
class Preset:
    motion: str  # "dance" | "walk"
    camera: str  # one of scene.CAMERAS
    description: str


PRESETS = {
    "dance": Preset("dance", "pan", "dancing in place while the camera pans sideways"),
    "walk": Preset("walk", "zoom", "walking across the frame while the camera zooms in"),
    "shake": Preset("dance", "shake", "dancing, filmed with a shaky hand-held camera"),
    "static": Preset("dance", "static", "dancing in front of a camera on a tripod"),
}
NUM_TRACKS = 64
GROUND = 0.93  # the feet's line, share of the frame height
FIGURE_HEIGHT = 0.76  # the standing figure's height, share of the frame height


@dataclass(frozen=True)
class SamplePaths:
    driving: Path
    ref: Path
    truth: Path


def _render(layer_size, background: np.ndarray, sk: K.Skeleton, outfit: F.Outfit):
    """-> frame (H, W, 3) uint8 with the character composited, mask (H, W) bool."""
    layer = F.Layer(*layer_size)
    F.draw_figure(layer, sk, outfit)
    color, alpha = layer.resolve()
    out = background.astype(np.float32) * (1 - alpha[..., None]) + color * alpha[..., None]
    return np.clip(np.round(out), 0, 255).astype(np.uint8), alpha >= 0.5


def _scores(keypoints: np.ndarray, width: int, height: int) -> np.ndarray:
    inside = ((keypoints[..., 0] >= 0) & (keypoints[..., 0] <= width - 1)
              & (keypoints[..., 1] >= 0) & (keypoints[..., 1] <= height - 1))
    return inside.astype(np.float32)


def _reference_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A plain studio-like room: a graded wall, a floor, a soft lamp glow, a framed picture."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    wall = np.array([[200, 210, 220], [215, 200, 185], [190, 205, 190]], np.float32)[rng.integers(3)]
    img = wall * (0.8 + 0.2 * (1 - y / height))[..., None]
    glow = np.exp(-(((x - 0.8 * width) / (0.3 * width)) ** 2 + ((y - 0.2 * height) / (0.3 * height)) ** 2))
    img = img + 25 * glow[..., None]
    floor = y > 0.78 * height
    img[floor] = np.array([120, 115, 110], np.float32) * (0.9 + 0.1 * (y[floor] / height))[:, None]
    x0, y0 = int(0.06 * width), int(0.15 * height)
    cv2.rectangle(img, (x0, y0), (x0 + int(0.18 * width), y0 + int(0.14 * height)), (90, 120, 150), -1)
    cv2.rectangle(img, (x0, y0), (x0 + int(0.18 * width), y0 + int(0.14 * height)), (60, 40, 30),
                  max(1, width // 100))
    return np.clip(img, 0, 255).astype(np.uint8)


def _write_beat(path: Path, seconds: float, rng: np.random.Generator, rate: int = 22050) -> None:
    """A 120 bpm kick with a hi-hat and a soft two-note tone, 16-bit mono wav."""
    t = np.arange(int(rate * (seconds + 0.2))) / rate
    beat = t % 0.5
    kick = np.sin(2 * np.pi * (50 + 80 * np.exp(-beat * 30)) * beat) * np.exp(-beat * 9)
    off = (t + 0.25) % 0.5
    hat = rng.uniform(-1, 1, len(t)) * np.exp(-off * 60) * 0.25
    note = np.where((t % 2.0) < 1.0, 220.0, 277.2)
    tone = 0.15 * np.sin(2 * np.pi * note * t)
    signal = np.clip(0.6 * kick + hat + tone, -1, 1)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((signal * 30000).astype("<i2").tobytes())


def make_sample(out_dir: Path, preset: str = "dance", seed: int = 0, num_frames: int = 48,
                width: int = 256, height: int = 256, fps: float = 24.0,
                audio: bool = True, *, camera: str | None = None, outfit: F.Outfit | None = None,
                palette: dict | None = None, num_objects: int | None = None) -> SamplePaths:
    """Render the sample `preset` (a key of PRESETS) into out_dir -> its SamplePaths.
    Same arguments, same truth arrays and video bytes.

    Optional overrides of what the seed draws (used by `fgbg.sample.many`; left out, the output is
    exactly what it was without them): `camera` (one of scene.CAMERAS, instead of the preset's),
    `outfit` (the character's colours), `palette` (wall and floor colours, see
    scene.make_canvas), `num_objects` (0..3 shapes moving in the background). The seed's random
    draws stay in the same order, so the rest of the scene is the same with or without them."""
    if preset not in PRESETS:
        raise InputError(f"unknown sample preset '{preset}'",
                         cause=f"the presets are {', '.join(PRESETS)}",
                         hint=f"use --preset {next(iter(PRESETS))}")
    if camera is not None and camera not in S.CAMERAS:
        raise InputError(f"unknown sample camera '{camera}'",
                         cause=f"the camera moves are {', '.join(S.CAMERAS)}",
                         hint=f"use one of {', '.join(S.CAMERAS)}")
    spec = PRESETS[preset]
    if camera is not None:
        spec = Preset(spec.motion, camera, spec.description)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 4242])
    drawn_outfit = F.make_outfit(rng)  # drawn even when overridden: the later draws stay put
    outfit = drawn_outfit if outfit is None else outfit
    horizon = 0.25 * height + 0.62 * height  # canvas row of the wall's foot (view 0 is centred)
    canvas = S.make_canvas(rng, width, height, horizon, palette)
    cams = S.camera_path(spec.camera, rng, num_frames, fps, width, height, canvas.shape)
    objects = S.MovingObjects(rng, width, height, cams[0], num_objects)
    phase = float(rng.uniform(0, 2 * np.pi))
    unit0 = FIGURE_HEIGHT * height / K.STANDING_HEIGHT

    frames = np.zeros((num_frames, height, width, 3), np.uint8)
    masks = np.zeros((num_frames, height, width), bool)
    occluded = np.zeros((num_frames, height, width), bool)
    keypoints = np.zeros((num_frames, 133, 2))
    for i in range(num_frames):
        t = i / fps
        if spec.motion == "walk":
            prog = i / max(num_frames - 1, 1)
            angles = K.walk(t, phase)
            root = np.array([(0.4 + 0.2 * prog) * width, GROUND * height])
            unit = unit0 * (1.0 + 0.06 * prog)
        else:
            angles = K.dance(t, phase)
            root = np.array([(0.5 + 0.04 * np.sin(2 * np.pi * t / 4 + phase)) * width,
                             GROUND * height])
            unit = unit0
        sk = K.pose_skeleton(angles, root, unit)
        bg = cv2.warpAffine(canvas, cams[i], (width, height), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REFLECT)
        moving = objects.draw(bg, cams[i], t)
        frames[i], masks[i] = _render((height, width), bg, sk, outfit)
        keypoints[i] = sk.keypoints
        grown = cv2.dilate((masks[i] | moving).astype(np.uint8), np.ones((3, 3), np.uint8))
        occluded[i] = grown > 0

    free = cv2.erode((~occluded[0]).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    tracks, visible, queries = S.background_tracks(frames[0], free, cams, occluded, NUM_TRACKS, rng)
    to_first = S.invert(cams[0])
    camera = np.stack([S.compose(c, to_first) for c in cams])

    # the reference photo: A-pose, a little smaller and off-centre, on another background
    ref_bg = _reference_background(rng, width, height)
    ref_root = np.array([rng.uniform(0.4, 0.46) * width, 0.9 * height])
    ref_sk = K.pose_skeleton(K.a_pose(), ref_root, unit0 * 0.92)
    ref_image, ref_mask = _render((height, width), ref_bg, ref_sk, outfit)

    paths = SamplePaths(out_dir / "driving.mp4", out_dir / "person.png", out_dir / "truth.npz")
    from ..video import write_image, write_video

    write_image(paths.ref, ref_image)
    if audio:
        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / "beat.wav"
            _write_beat(wav, num_frames / fps, np.random.default_rng([seed, 7]))
            write_video(paths.driving, frames, fps, audio=wav, duration=num_frames / fps)
    else:
        write_video(paths.driving, frames, fps)
    np.savez_compressed(
        paths.truth, keypoints=keypoints.astype(np.float32),
        scores=_scores(keypoints, width, height), masks=masks.astype(np.uint8),
        tracks=tracks, visible=visible, queries=queries, camera=camera.astype(np.float32),
        fps=np.float32(fps), width=np.int32(width), height=np.int32(height),
        preset=np.str_(preset), seed=np.int64(seed),
        ref_keypoints=ref_sk.keypoints.astype(np.float32),
        ref_scores=_scores(ref_sk.keypoints, width, height), ref_mask=ref_mask.astype(np.uint8))
    return paths
