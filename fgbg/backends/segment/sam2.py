"""SAM 2 segmentation backend: the SAM 2.1 video predictor (sam2 1.1.0), prompted from the pose.

Where the `sam` backend runs Segment Anything on every frame on its own, this one prompts SAM 2
once and lets its video predictor carry the person from frame to frame through its memory of
earlier frames (temporally stable, and the prompt decoder runs only where a prompt is given). The
weights are the official SAM 2.1 checkpoints pinned in models.lock, `sam2.1-hiera-tiny` (default),
`-small`, `-base-plus`, `-large`, chosen by `SegmentParams.sam2_variant` (`--sam2-variant`). The
architecture comes from the Hydra config shipped inside the sam2 package
(`configs/sam2.1/sam2.1_hiera_<t|s|b+|l>.yaml`) through sam2's `build_sam2_video_predictor`, built
without a checkpoint; the checkpoint ({"model": state dict}, as Meta ships it) is then read by us
with `torch.load(..., weights_only=True)` and loaded strictly, mismatched keys named
(`fgbg.backends.segment.sam.load_strict`).

Ours:
1. Prompts are the `sam` backend's (fgbg.backends.segment.sam.pose_prompt: the keypoint box grown by
   PROMPT_MARGIN, positive points on the torso and the nose; mask_prompt for bridging), in frame
   pixels; the predictor maps them to its square input (`normalize_coords`).
2. Chunks. The segment stage calls `segment` chunk by chunk (32 frames) with `reset()` between
   videos. Each chunk gets its own predictor state, made from the frames in memory (resized to
   the model's square input exactly as sam2's own frame loader does, with PIL; no JPEG round
   trip). A state per chunk keeps memory bounded on long videos (the predictor keeps every frame's
   memory features and masks until the state is dropped) and fits the stage's streaming.
   - The first chunk of a video (or any chunk with nothing to carry) is prompted with the pose on
     its first frame that has a person (box + points, `add_new_points_or_box`); the frames before
     it have no person and get empty masks, unencoded.
   - A later chunk starts from the previous chunk's last frame and mask: that frame is put in
     front of the chunk and given the mask as a mask prompt (`add_new_mask`, a conditioning frame),
     so the person SAM 2 was following is the one it goes on following; that frame's output is
     dropped. The cost is one extra image encoding per chunk; the memory of the frames before
     it is lost (the mask carries the identity).
   Then `propagate_in_video` runs forward through the chunk.
3. Re-prompting. Each propagated frame that has a pose is checked against it, on SAM 2's raw
   mask (before clipping): it DISAGREES when the mask is empty, when fewer than MIN_INSIDE of the
   prompt's positive points (torso and nose, which lie well inside the silhouette) fall on the
   mask, or when the mask's bounding box overlaps the pose prompt box by an IoU below MIN_BOX_IOU
   (the mask leaked onto something else, or shrank to a part). Then that frame is re-prompted with
   its pose prompt (`add_new_points_or_box` on an already tracked frame: SAM 2's correction path,
   which also feeds its previous logits to the decoder) and, with
   `add_all_frames_to_correct_as_cond`, kept as a conditioning frame that later frames always
   attend to; propagation resumes on the next frame. A frame is re-prompted at most once; its
   new mask is kept whatever it is. Prompted frames are not checked.
4. Output, as the `sam` backend: a frame with a pose has its mask clipped to the keypoint box
   grown by `box_margin`; a frame without one keeps SAM 2's propagated mask clipped to the
   previous mask's box grown by `box_margin`, for at most MAX_BRIDGE frames in a row (sam's),
   then empty until the pose comes back (where the check in 3 re-prompts if SAM 2 lost the
   person meanwhile).

Not used: `threshold` and `morph_size` (mediapipe's; SAM 2 thresholds its logits at 0). sam2's
hole filling (`fill_hole_area`) needs its CUDA extension, which a source install skips; without
it (and on the CPU) it is switched off rather than warned about on every frame. Runs in float32
on every device, under torch.inference_mode (sam2's own demos add bfloat16 autocast on CUDA; not
done here, untested); sam2's progress bars are silenced while it runs.

Cost: one image encoding per frame at 1024 px (plus one per chunk), then memory attention and the
decoder; a re-prompt reuses the frame's encoding. The tiny model's video predictor took about
4.5 s a frame on a 2-core CPU (shared/docs/ENVIRONMENT.md), so use a GPU (`--device cuda`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import InputError, ModelError
from ...params import SegmentParams
from ..base import check_segment_inputs
from .sam import MAX_BRIDGE, Prompt, checkpoint_for, load_strict, mask_prompt, pose_prompt


@dataclass(frozen=True)
class Variant:
    artifact: str  # models.lock name
    config: str  # Hydra config inside the sam2 package


VARIANTS = {
    "tiny": Variant("sam2.1-hiera-tiny", "configs/sam2.1/sam2.1_hiera_t.yaml"),
    "small": Variant("sam2.1-hiera-small", "configs/sam2.1/sam2.1_hiera_s.yaml"),
    "base_plus": Variant("sam2.1-hiera-base-plus", "configs/sam2.1/sam2.1_hiera_b+.yaml"),
    "large": Variant("sam2.1-hiera-large", "configs/sam2.1/sam2.1_hiera_l.yaml"),
}
# fgbg's Hydra overrides on top of sam2's own (build_sam2_video_predictor adds its post-processing
# ones): a frame re-prompted from the pose becomes a conditioning frame (see the docstring, 3)
OVERRIDES = ("++model.add_all_frames_to_correct_as_cond=true",)
MIN_INSIDE = 0.5  # share of the prompt's positive points that must fall on the mask
MIN_BOX_IOU = 0.5  # IoU of the mask's box with the pose prompt box, at least
OBJ = 1  # the predictor's object id of the person
IMG_MEAN = (0.485, 0.456, 0.406)  # sam2's frame normalisation (sam2.utils.misc.load_video_frames)
IMG_STD = (0.229, 0.224, 0.225)


def variant_for(name: str) -> Variant:
    """SAM 2 variant (tiny | small | base_plus | large) -> Variant; InputError when unknown."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise InputError(f"unknown SAM 2 variant '{name}'",
                         cause=f"SAM 2.1 has {', '.join(VARIANTS)}",
                         hint="use --sam2-variant tiny (fastest), small, base_plus or large (best, "
                              "slowest)") from None


def find(params=None, explicit: bool = False) -> dict[str, str] | None:
    """The registry's finder: {artifact: sha256} of the chosen variant's checkpoint.

    For `auto` (explicit False): None unless the file is there and verified, and the sam2 package
    imports. Asked for by name (explicit True): the artifact is required, so a missing or corrupt
    file is a ModelError naming the exact `fgbg models fetch sam2.1-hiera-...` command."""
    name = variant_for((params or SegmentParams()).sam2_variant).artifact
    found = checkpoint_for(name, explicit)
    if found is not None and not explicit and not _importable():
        return None
    return found


def _importable() -> bool:
    """Whether sam2 and what it imports are installed, asked without importing them: importing
    sam2 imports torch (about 4 s), and `auto` is resolved on every run, cached ones too. A package
    that is installed but broken fails later, when the backend is built, with its own message."""
    from importlib.util import find_spec

    return all(find_spec(name) is not None for name in ("sam2", "torch", "torchvision", "hydra"))


def _import_sam2():
    try:
        from sam2.build_sam import build_sam2_video_predictor
    except Exception as exc:  # noqa: BLE001 - sam2 itself, or the torch/hydra it imports
        raise InputError("the sam2 segment backend needs the sam2 package (and torch, torchvision)",
                         cause=f"{type(exc).__name__}: {exc}",
                         hint="pip install 'fgbg[models]' (or use --seg-backend sam or mediapipe)"
                         ) from None
    return build_sam2_video_predictor


def load_sam2(variant: str, checkpoint: str | Path | None = None, device: str = "cpu",
              overrides: tuple[str, ...] = ()):
    """A SAM2VideoPredictor of `variant` with the weights at `checkpoint` (None: the model store's
    artifact). `overrides`: more Hydra overrides (tests build a small model with them)."""
    import torch

    from ...store import require

    v = variant_for(variant)
    build = _import_sam2()
    path = Path(checkpoint) if checkpoint is not None else require(v.artifact)
    with torch.random.fork_rng(devices=[]):  # random init must not move the caller's RNG
        predictor = build(v.config, None, device="cpu",
                          hydra_overrides_extra=[*OVERRIDES, *overrides])
    refetch = f"run `fgbg models fetch {v.artifact}` to download it again"
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unreadable, truncated or not a torch file
        raise ModelError(f"cannot read the SAM 2 {variant} weights {path}",
                         cause=f"{type(exc).__name__}: {exc}", hint=refetch) from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        held = (f"a dict with keys {', '.join(map(str, list(ckpt)[:5]))}"
                if isinstance(ckpt, dict) else f"a {type(ckpt).__name__}")
        raise ModelError(f"the SAM 2 {variant} weights {path} are not a SAM 2 checkpoint",
                         cause=f"SAM 2 checkpoints hold {{'model': state dict}}; this file holds "
                               f"{held}", hint=refetch)
    load_strict(predictor, ckpt["model"], path, f"SAM 2 {variant}",
                hint=f"check that --sam2-variant {variant} matches the file, or {refetch}")
    return _prepare(predictor, device)


def _prepare(predictor, device: str):
    predictor = predictor.to(device).eval()
    if not (predictor.device.type == "cuda" and _has_cc_kernel()):
        predictor.fill_hole_area = 0  # its CPU fallback only warns (see the module docstring)
    return predictor


def _has_cc_kernel() -> bool:
    try:
        import sam2._C  # noqa: F401 - the connected-components CUDA kernel
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def _quiet_progress():
    """sam2's progress bars (tqdm, to stderr) off while fgbg drives the predictor: they would
    break into fgbg's own progress line."""
    import sam2.sam2_video_predictor as vp

    real = vp.tqdm
    vp.tqdm = lambda iterable=None, *a, **kw: iterable
    try:
        yield
    finally:
        vp.tqdm = real


def disagrees(mask: np.ndarray, p: Prompt) -> bool:
    """Whether SAM 2's (H, W) bool mask and the pose prompt `p` of the same frame disagree: empty
    mask, fewer than MIN_INSIDE of the positive points on it, or mask box IoU with the prompt box
    below MIN_BOX_IOU."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return True
    h, w = mask.shape
    if len(p.points):
        px = np.clip(np.round(p.points[:, 0]).astype(np.int64), 0, w - 1)
        py = np.clip(np.round(p.points[:, 1]).astype(np.int64), 0, h - 1)
        if mask[py, px].mean() < MIN_INSIDE:
            return True
    return box_iou(np.array([xs.min(), ys.min(), xs.max(), ys.max()], np.float64),
                   p.box) < MIN_BOX_IOU


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two x0 y0 x1 y1 boxes, inclusive pixel coordinates."""
    ix = min(a[2], b[2]) - max(a[0], b[0]) + 1
    iy = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if ix <= 0 or iy <= 0:
        return 0.0
    inter = ix * iy
    area = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return float(inter / (area - inter))


def _clip(mask: np.ndarray, clip: np.ndarray) -> np.ndarray:
    x0, y0, x1, y1 = clip
    out = np.zeros_like(mask)
    out[y0:y1 + 1, x0:x1 + 1] = mask[y0:y1 + 1, x0:x1 + 1]
    return out


class Sam2Segmenter:
    """Segmenter on the SAM 2 video predictor. Chunks are consecutive pieces of one video, in
    order; `reset()` starts a new video or image.

    `model`: a ready SAM2VideoPredictor (tests); else `checkpoint` (a path) or the model store's
    artifact for `params.sam2_variant`, built from sam2's config with `overrides` added.
    `reprompted`: frames of this video (counted from the first chunk) re-prompted from the pose."""

    name = "sam2"

    def __init__(self, params: SegmentParams | None = None, min_score: float = 0.3,
                 device: str = "cpu", model=None, checkpoint: str | Path | None = None,
                 overrides: tuple[str, ...] = ()):
        self.params = params or SegmentParams()
        self.min_score = min_score
        self.device = device
        self.variant = self.params.sam2_variant
        variant_for(self.variant)  # an unknown variant fails before any loading
        if model is None:
            model = load_sam2(self.variant, checkpoint, device, overrides)
        else:
            _import_sam2()
            model = _prepare(model, device)
        self.predictor = model
        self.reset()

    def reset(self) -> None:
        self._prev: np.ndarray | None = None  # last mask of the video so far
        self._prev_frame: np.ndarray | None = None  # and its frame
        self._bridged = 0
        self._t = 0  # frames of this video segmented so far
        self.reprompted: list[int] = []

    def close(self) -> None:
        self.predictor = None

    # ------------------------------------------------------------------------------ state

    def _images(self, frames: np.ndarray):
        """(n, H, W, 3) uint8 -> (n, 3, S, S) float32 normalised, on the model's device: sam2's
        frame loader's preprocessing (PIL resize to S x S, /255, ImageNet mean and std)."""
        import torch
        from PIL import Image

        s = self.predictor.image_size
        out = np.stack([np.asarray(Image.fromarray(f).resize((s, s))) for f in frames])
        images = torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255.0)
        mean = torch.tensor(IMG_MEAN, dtype=torch.float32)[:, None, None]
        std = torch.tensor(IMG_STD, dtype=torch.float32)[:, None, None]
        return ((images - mean) / std).to(self.predictor.device)

    def new_state(self, frames: np.ndarray) -> dict:
        """A predictor state over `frames` held in memory: what `SAM2VideoPredictor.init_state`
        (sam2 1.1.0) makes from a video file, without the file (a test compares the two)."""
        import collections

        device = self.predictor.device
        return {
            "images": self._images(frames),
            "num_frames": len(frames),
            "offload_video_to_cpu": False,
            "offload_state_to_cpu": False,
            "video_height": int(frames.shape[1]),
            "video_width": int(frames.shape[2]),
            "device": device,
            "storage_device": device,
            "point_inputs_per_obj": {},
            "mask_inputs_per_obj": {},
            "cached_features": {},
            "constants": {},
            "obj_id_to_idx": collections.OrderedDict(),
            "obj_idx_to_id": collections.OrderedDict(),
            "obj_ids": [],
            "output_dict_per_obj": {},
            "temp_output_dict_per_obj": {},
            "frames_tracked_per_obj": {},
        }

    def prompt_points(self, state: dict, t: int, p: Prompt) -> np.ndarray:
        """Prompt frame t of `state` with a pose prompt (box first, then the points, frame pixels)
        -> SAM 2's (H, W) bool mask there."""
        has_points = len(p.points) > 0
        _, _, logits = self.predictor.add_new_points_or_box(
            state, frame_idx=t, obj_id=OBJ,
            points=p.points.astype(np.float32) if has_points else None,
            labels=p.labels.astype(np.int32) if has_points else None,
            box=p.box.astype(np.float32))
        return (logits[0, 0] > 0).cpu().numpy()

    # ------------------------------------------------------------------------------ running

    def segment(self, frames: np.ndarray, keypoints: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """frames (n, H, W, 3) uint8 RGB, keypoints (n, 133, 2) pixel x,y in those frames,
        scores (n, 133) -> masks (n, H, W) bool, True on the person."""
        if self.predictor is None:
            raise RuntimeError("Sam2Segmenter.segment after close()")
        frames = check_segment_inputs(frames, keypoints, scores)
        n, h, w = frames.shape[:3]
        masks = np.zeros((n, h, w), bool)
        if n == 0:
            return masks
        prompts = [pose_prompt(keypoints[i], scores[i], (h, w), self.min_score,
                               self.params.box_margin) for i in range(n)]
        carry = (self._prev is not None and self._prev_frame is not None
                 and self._prev.shape == (h, w) and self._prev.any())
        if carry:
            first = 0
        else:
            first = next((i for i in range(n) if prompts[i] is not None), None)
        if first is not None:
            import torch

            with torch.inference_mode(), _quiet_progress():
                self._run(frames, prompts, masks, first, carry)
        else:  # no person and nothing to follow: empty masks, nothing encoded
            self._prev = masks[-1]
            self._bridged = 0
        self._prev_frame = frames[-1].copy()
        self._t += n
        return masks

    def _run(self, frames, prompts, masks, first: int, carry: bool) -> None:
        pred = self.predictor
        if carry:  # the previous chunk's last frame in front, prompted with its mask
            state = self.new_state(np.concatenate([self._prev_frame[None], frames]))
            pred.add_new_mask(state, frame_idx=0, obj_id=OBJ, mask=self._prev)
            offset, prompted = -1, {0}
        else:  # from the first frame with a person, prompted with its pose
            state = self.new_state(frames[first:])
            self.prompt_points(state, 0, prompts[first])
            offset, prompted = first, {0}
        start = 0
        while start < state["num_frames"]:
            resume = None
            for t, _, logits in pred.propagate_in_video(state, start_frame_idx=start):
                i = t + offset  # the frame in this chunk
                if i < 0:
                    continue  # the carried frame
                raw = (logits[0, 0] > 0).cpu().numpy()
                p = prompts[i]
                if p is not None and t not in prompted and disagrees(raw, p):
                    raw = self.prompt_points(state, t, p)
                    prompted.add(t)
                    self.reprompted.append(self._t + i)
                    resume = t + 1
                masks[i] = self._output(raw, p)
                if resume is not None:
                    break
            if resume is None:
                break
            start = resume
        del state

    def _output(self, raw: np.ndarray, p: Prompt | None) -> np.ndarray:
        """The frame's mask from SAM 2's raw mask: clipped to the pose box, or bridged from the
        previous mask (see the module docstring, 4); remembered as the previous mask."""
        if p is not None:
            out = _clip(raw, p.clip)
            self._bridged = 0
        else:
            bridge = (mask_prompt(self._prev, self.params.box_margin)
                      if self._prev is not None and self._bridged < MAX_BRIDGE else None)
            if bridge is None:
                out = np.zeros_like(raw)
            else:
                out = _clip(raw, bridge.clip)
                self._bridged += 1
        self._prev = out
        return out
