"""SAM segmentation backend: Segment Anything (segment-anything 1.0), prompted from the pose.

The paper's: the person mask comes from SAM prompted with the pose (DESIGN.md, backends). The
weights are the official checkpoints pinned in models.lock: `sam-vit-b` (default), `sam-vit-l`,
`sam-vit-h`, chosen by `SegmentParams.sam_variant` (`--sam-variant`). The architecture comes from
segment-anything's own `sam_model_registry[variant]`; the state dict is loaded by us with
`torch.load(..., weights_only=True)` and strictly, mismatched keys reported by name.

Ours, per frame (all coordinates in the frame's own pixels; SamPredictor maps them to SAM's
ResizeLongestSide input):
1. Prompt from that frame's pose. Confident keypoints are those with score >= `min_score` (as in
   the mediapipe segmenter and `person_present`); a frame has a person when at least
   MIN_BODY_POINTS of the 17 body points are confident.
   - Box: the box of all confident keypoints (body, feet, face, hands), grown on each side by
     PROMPT_MARGIN of its size. Keypoints are joint centres, so the silhouette reaches past them by
     about half a limb's width, and past the eyes/brows by the top of the head; 10 % of a standing
     person's height covers both without taking in much background.
   - Positive points (at most 6): the torso centre (mean of the confident shoulders and hips, when
     at least two are), each confident shoulder and hip pulled TORSO_PULL of the way towards that
     centre (a joint estimate near the silhouette's edge could otherwise fall on the background),
     and the nose (keeps the head in). Limbs get no points: they are thin, and a slightly-off
     wrist or knee lands on the background and teaches SAM the wrong thing.
   - No negative points. The only candidates we know are outside the body are the box corners,
     and with outstretched arms or legs the body reaches them (the box is made from the extreme
     keypoints); a negative point on the person cuts a hole in it. Points on a second person
     would help, but the pose stage gives us only ours. The box already bounds the mask.
2. One image embedding per frame (`SamPredictor.set_image`, once), then ONE `predict` call with
   the box and the points, `multimask_output=False`: with a box plus several points the prompt is
   not ambiguous, and SAM's authors recommend the single-mask output for that case (the three
   multimask outputs exist for single-click ambiguity, whole/part/subpart).
3. The mask is clipped to the keypoint box grown by `SegmentParams.box_margin` of its size (as the
   mediapipe segmenter does), so a second person touching ours is cut at its edge.
4. A frame where the pose found no person: SAM is prompted with the box of the previous frame's
   mask (grown by PROMPT_MARGIN, no points) and clipped to that box grown by `box_margin`, for at
   most MAX_BRIDGE frames in a row; with no previous mask (or an empty one, or after that), the
   mask is empty and the image is not encoded. Like the mediapipe segmenter's bridging, this
   keeps the person masked through short pose drop-outs (blur, occlusion), so later stages do not
   seed background tracks on a person the pose missed. Re-prompting rather than copying the last
   mask follows the person as it moves; the cap stops it from chasing another object for long
   after the person has left.

`threshold` and `morph_size` of SegmentParams are the mediapipe backend's and are not used here
(SAM thresholds its own logits at `Sam.mask_threshold`).

Cost: SAM encodes every frame at 1024 px on its long side. On a CPU vit_b takes 15 s or more per
frame (measured 14-17 s, and 50 s on a busy 2-core machine), so use a GPU (`--device cuda`) for
videos; the prompt decoder itself is cheap.

SAM 2 (the `sam2` package and its video predictor) is the `sam2` backend, fgbg.backends.segment.sam2;
it takes its prompts from `pose_prompt` and `mask_prompt` here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ...errors import InputError, ModelError
from ...params import SegmentParams
from ...pose import layout as L
from ..base import check_segment_inputs

VARIANTS = {"vit_b": "sam-vit-b", "vit_l": "sam-vit-l", "vit_h": "sam-vit-h"}  # -> models.lock
MIN_BODY_POINTS = 5
PROMPT_MARGIN = 0.1  # prompt box growth per side, share of the keypoint box's size
TORSO_PULL = 0.25  # shoulder/hip points move this share of the way towards the torso centre
TORSO_POINTS = (L.LEFT_SHOULDER, L.RIGHT_SHOULDER, L.LEFT_HIP, L.RIGHT_HIP)
MAX_BRIDGE = 8  # frames without a pose prompted from the previous mask, at most, in a row


def artifact_for(variant: str) -> str:
    """SAM variant (vit_b | vit_l | vit_h) -> its models.lock name; InputError when unknown."""
    try:
        return VARIANTS[variant]
    except KeyError:
        raise InputError(f"unknown SAM variant '{variant}'",
                         cause=f"segment-anything has {', '.join(VARIANTS)}",
                         hint="use --sam-variant vit_b (fastest), vit_l or vit_h (best, slowest)"
                         ) from None


def find(params=None, explicit: bool = False) -> dict[str, str] | None:
    """The registry's finder: {artifact: sha256} of the chosen variant's checkpoint.

    For `auto` (explicit False): None unless the file is there and verified. Asked for by name
    (explicit True): the artifact is required, so a missing or corrupt file is a ModelError naming
    the exact `fgbg models fetch sam-vit-...` command."""
    return checkpoint_for(artifact_for((params or SegmentParams()).sam_variant), explicit)


def checkpoint_for(name: str, explicit: bool) -> dict[str, str] | None:
    """{name: sha256} when the lock's artifact `name` is present and verified; when it is not:
    a ModelError naming the fetch command if `explicit`, else None."""
    from ...store import load_lock, require, state

    lock = load_lock()
    if explicit:
        require(name, lock)
    elif name not in lock or state(lock[name]) != "present":
        return None
    return {name: lock[name].sha256 or ""}


def load_sam(variant: str, checkpoint: str | Path | None = None, device: str = "cpu",
             builder: Callable | None = None):
    """A Sam of `variant` with the weights at `checkpoint` (None: the model store's artifact).

    `builder(checkpoint=None)` makes the untrained architecture; None means
    segment-anything's `sam_model_registry[variant]` (tests pass a tiny one)."""
    import torch

    from ...store import require

    artifact = artifact_for(variant)
    path = Path(checkpoint) if checkpoint is not None else require(artifact)
    if builder is None:
        from segment_anything import sam_model_registry

        builder = sam_model_registry[variant]
    with torch.random.fork_rng(devices=[]):  # random init must not move the caller's RNG
        model = builder(checkpoint=None)
    refetch = f"run `fgbg models fetch {artifact}` to download it again"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unreadable, truncated or not a torch file
        raise ModelError(f"cannot read the SAM {variant} weights {path}",
                         cause=f"{type(exc).__name__}: {exc}", hint=refetch) from None
    if not isinstance(state, dict):
        raise ModelError(f"the SAM {variant} weights {path} are not a state dict",
                         cause=f"the file holds a {type(state).__name__}", hint=refetch)
    load_strict(model, state, path, f"SAM {variant}",
                hint=f"check that --sam-variant {variant} matches the file, or {refetch}")
    return model.to(device).eval()


def load_strict(model, state: dict, path: str | Path, what: str, hint: str) -> None:
    """Load the state dict `state` (read from `path`) into `model` strictly. ModelError when the
    keys differ (the missing and unexpected ones named, five of each at most) or a tensor's size
    does (as torch names it); `what` names the model in the message, `hint` is the fix."""
    expected = set(model.state_dict())
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({', '.join(missing[:5])}"
                         f"{', ...' if len(missing) > 5 else ''})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({', '.join(unexpected[:5])}"
                         f"{', ...' if len(unexpected) > 5 else ''})")
        raise ModelError(f"the weights {path} do not fit {what}",
                         cause="keys: " + "; ".join(parts), hint=hint)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # size mismatches, named by torch
        raise ModelError(f"the weights {path} do not fit {what}",
                         cause=str(exc).strip().replace("\n\t", " "), hint=hint) from None


@dataclass
class Prompt:
    """One frame's SAM prompt, frame pixels: box (4,) x0 y0 x1 y1; points (k, 2) x, y; labels
    (k,) 1 = person; clip (4,) int x0 y0 x1 y1 (inclusive) that the mask is cut to."""

    box: np.ndarray
    points: np.ndarray
    labels: np.ndarray
    clip: np.ndarray


def _grow(lo: np.ndarray, hi: np.ndarray, share: float, size: tuple[int, int]) -> np.ndarray:
    """Box lo..hi grown by `share` of its size per side, inside a (h, w) frame -> (4,) float."""
    h, w = size
    margin = share * (hi - lo)
    x0, y0 = np.maximum(lo - margin, 0.0)
    x1, y1 = np.minimum(hi + margin, [w - 1.0, h - 1.0])
    return np.array([x0, y0, max(x1, x0), max(y1, y0)], np.float64)


def _clip_box(lo: np.ndarray, hi: np.ndarray, share: float, size: tuple[int, int]) -> np.ndarray:
    b = _grow(lo, hi, share, size)
    return np.concatenate([np.floor(b[:2]), np.ceil(b[2:])]).astype(np.int64)


def pose_prompt(keypoints: np.ndarray, scores: np.ndarray, size: tuple[int, int],
                min_score: float = 0.3, box_margin: float = SegmentParams.box_margin
                ) -> Prompt | None:
    """The prompt for one frame of (133, 2) keypoints and (133,) scores in a (h, w) frame, or None
    when the pose has no person there (see the module docstring)."""
    h, w = size
    keypoints = np.asarray(keypoints, np.float64)
    scores = np.asarray(scores, np.float64)
    ok = (scores >= min_score) & np.isfinite(keypoints).all(-1)
    if ok[L.BODY].sum() < MIN_BODY_POINTS:
        return None
    pts = keypoints[ok]
    lo, hi = pts.min(0), pts.max(0)
    box = _grow(lo, hi, PROMPT_MARGIN, size)

    positive = []
    torso = [i for i in TORSO_POINTS if ok[i]]
    if len(torso) >= 2:
        centre = keypoints[torso].mean(0)
        positive.append(centre)
        positive += [keypoints[i] + TORSO_PULL * (centre - keypoints[i]) for i in torso]
    if ok[L.NOSE]:
        positive.append(keypoints[L.NOSE])
    points = np.array(positive, np.float64).reshape(-1, 2)
    inside = (points[:, 0] >= 0) & (points[:, 0] <= w - 1) & (points[:, 1] >= 0) & \
        (points[:, 1] <= h - 1)
    points = points[inside]
    return Prompt(box, points, np.ones(len(points), np.int64), _clip_box(lo, hi, box_margin, size))


def mask_prompt(mask: np.ndarray, box_margin: float = SegmentParams.box_margin) -> Prompt | None:
    """A box-only prompt from a previous (H, W) bool mask, or None when it is empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    lo = np.array([xs.min(), ys.min()], np.float64)
    hi = np.array([xs.max(), ys.max()], np.float64)
    return Prompt(_grow(lo, hi, PROMPT_MARGIN, mask.shape), np.zeros((0, 2)), np.zeros(0, np.int64),
                  _clip_box(lo, hi, box_margin, mask.shape))


class SamSegmenter:
    """Segmenter on SAM. Frames are one video, in order (the previous mask bridges frames without
    a pose); `reset()` starts a new video or image.

    `model`: a ready Sam (tests); else `checkpoint` (a path) or the model store's artifact for
    `params.sam_variant`, built by `builder` (default segment-anything's registry)."""

    name = "sam"

    def __init__(self, params: SegmentParams | None = None, min_score: float = 0.3,
                 device: str = "cpu", model=None, checkpoint: str | Path | None = None,
                 builder: Callable | None = None):
        try:
            from segment_anything import SamPredictor
        except ImportError as exc:  # segment-anything itself, or the torchvision it imports
            raise InputError("the sam segment backend needs segment-anything (and torchvision)",
                             cause=f"{type(exc).__name__}: {exc}",
                             hint="pip install 'fgbg[models]' (or use --seg-backend mediapipe)"
                             ) from None

        self.params = params or SegmentParams()
        self.min_score = min_score
        self.device = device
        self.variant = self.params.sam_variant
        artifact_for(self.variant)  # an unknown variant fails before any loading
        if model is None:
            model = load_sam(self.variant, checkpoint, device, builder)
        else:
            model = model.to(device).eval()
        self.model = model
        self.predictor = SamPredictor(model)
        self.reset()

    def reset(self) -> None:
        self._prev: np.ndarray | None = None
        self._bridged = 0

    def close(self) -> None:
        self.predictor = None
        self.model = None

    def prompt(self, keypoints: np.ndarray, scores: np.ndarray, size: tuple[int, int]
               ) -> Prompt | None:
        """This frame's prompt: from its pose, else (bridging) from the previous mask, else None."""
        p = pose_prompt(keypoints, scores, size, self.min_score, self.params.box_margin)
        if p is not None:
            self._bridged = 0
            return p
        if self._prev is None or self._bridged >= MAX_BRIDGE:
            return None
        p = mask_prompt(self._prev, self.params.box_margin)
        if p is not None:
            self._bridged += 1
        return p

    def predict(self, frame: np.ndarray, p: Prompt) -> np.ndarray:
        """One frame (H, W, 3) uint8 RGB and its prompt -> (H, W) bool mask: the image is encoded
        once, then one single-mask prediction from the box and the points, cut to `p.clip`."""
        self.predictor.set_image(np.ascontiguousarray(frame), image_format="RGB")
        has_points = len(p.points) > 0
        masks, _, _ = self.predictor.predict(
            point_coords=p.points.astype(np.float32) if has_points else None,
            point_labels=p.labels if has_points else None,
            box=p.box.astype(np.float32), multimask_output=False)
        mask = np.asarray(masks[0], bool)
        x0, y0, x1, y1 = p.clip
        out = np.zeros_like(mask)
        out[y0:y1 + 1, x0:x1 + 1] = mask[y0:y1 + 1, x0:x1 + 1]
        return out

    def segment(self, frames: np.ndarray, keypoints: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """frames (n, H, W, 3) uint8 RGB, keypoints (n, 133, 2) pixel x,y in those frames,
        scores (n, 133) -> masks (n, H, W) bool, True on the person."""
        if self.predictor is None:
            raise RuntimeError("SamSegmenter.segment after close()")
        frames = check_segment_inputs(frames, keypoints, scores)
        n, h, w = frames.shape[:3]
        masks = np.zeros((n, h, w), bool)
        for i in range(n):
            p = self.prompt(keypoints[i], scores[i], (h, w))
            if p is not None:
                masks[i] = self.predict(frames[i], p)
            self._prev = masks[i]
        if n:
            self.predictor.reset_image()  # drop the last embedding (GPU memory between chunks)
        return masks
