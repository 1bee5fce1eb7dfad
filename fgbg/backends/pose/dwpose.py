"""DWPose pose backend: YOLOX-L person boxes, then the DWPose whole-body model (dw-ll_ucoco_384,
133 COCO-WholeBody points) on the chosen person, both run as ONNX with onnxruntime.

The paper's: DWPose is the pose extractor of the AnimateAnyone family this project builds on, and
its two ONNX files (models.lock `dwpose-yolox-l`, `dwpose-ll-ucoco-384`) are the ones
Moore-AnimateAnyone and MimicMotion download. Pre- and post-processing follow the public ONNX
pipelines (see fgbg.backends.pose.dwpose_ops for the exact conventions): 640x640 letterbox padded with
114, YOLOX grid decoding, person score > 0.3 after NMS 0.45, a 1.25x padded crop at the model's
input size (read from the ONNX file: 288x384), SimCC argmax / 2, score = min of the two maxima.

Ours:
- Channel order. YOLOX gets BGR (it was trained on OpenCV-loaded images, and every public pipeline
  feeds it BGR). The pose model gets RGB: its mmpose config (dwpose-l_384x288.py) normalises with
  `bgr_to_rgb=True`, so it was trained on RGB; Moore-AnimateAnyone and rtmlib feed it BGR, a known
  mismatch (rtmlib issue #48). POSE_INPUT_RGB = False reproduces their inputs exactly.
- No resizing of the frame before detection (Moore resizes it to 512 px first): the detector
  letterboxes anyway, and the pose crop is taken from the full-resolution frame.
- Scores are clipped to [0, 1] (SimCC maxima can leave that range).
- ONE person per frame, followed across frames and chunks. Public code draws every detected person
  (Moore keeps the one with the best mean body score, frame by frame). We pick the most prominent
  person (box area x detection score) when acquiring, then in each later frame the detection whose
  box overlaps the last box of our person most (IoU at least MIN_IOU, lowered by MIN_IOU_DECAY per
  frame since that box was seen, never below MIN_IOU_FLOOR). A frame without such a detection gets
  no pose (all scores 0); after MAX_GAP such frames the memory is dropped and the most prominent
  person is acquired again. reset() drops it at once (a new video or photo).
- Frames are batched through both models when the ONNX graph has a dynamic batch axis (at most
  MAX_BATCH at a time); a fixed batch size (the public pipelines feed the real files one image
  at a time, so they may fix it at 1) is filled, padding the last group with zeros.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ...errors import InputError, ModelError
from ...params import PoseParams
from ...pose import layout as L
from . import dwpose_ops as ops

DET_ARTIFACT = "dwpose-yolox-l"
POSE_ARTIFACT = "dwpose-ll-ucoco-384"
POSE_INPUT_RGB = True  # False: feed the pose model BGR as Moore-AnimateAnyone and rtmlib do
MIN_IOU = 0.3
MIN_IOU_DECAY = 0.05
MIN_IOU_FLOOR = 0.05
MAX_GAP = 15
MAX_BATCH = 8  # frames (detector) or crops (pose model) per onnxruntime call, dynamic-batch graphs


def providers_for(device: str, available: list[str]) -> list:
    """onnxruntime providers for an fgbg device: CUDA (device N) first when asked for and present,
    then the CPU."""
    if device.startswith("cuda") and "CUDAExecutionProvider" in available:
        index = int(device.partition(":")[2] or 0)
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class _Model:
    """One onnxruntime session with its input geometry and batch policy."""

    def __init__(self, ort, path: Path, providers: list, what: str):
        try:
            self.session = ort.InferenceSession(str(path), providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"cannot load the DWPose {what} from {path}", cause=str(exc),
                             hint="check the file (fgbg models list), or fetch it again") from None
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        shape = list(inp.shape)
        if len(shape) != 4:
            raise ModelError(f"the DWPose {what} at {path} has an unexpected input",
                             cause=f"input {inp.name!r} has shape {shape}, expected N x 3 x H x W")
        self.batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        self.hw = tuple(d if isinstance(d, int) and d > 0 else None for d in shape[2:])
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """batch (n, 3, H, W) float32 -> outputs, each (n, ...), in groups the graph accepts."""
        step = self.batch or MAX_BATCH
        parts = []
        for start in range(0, len(batch), step):
            group = batch[start:start + step]
            real = len(group)
            if self.batch is not None and real < self.batch:
                pad = np.zeros((self.batch - real, *group.shape[1:]), group.dtype)
                group = np.concatenate([group, pad])
            out = self.session.run(self.output_names, {self.input_name: group})
            parts.append([o[:real] for o in out])
        return [np.concatenate([p[i] for p in parts]) for i in range(len(self.output_names))]


class DWPose:
    """PoseEstimator on DWPose (ONNX). Frames are one video, in order; reset() between videos."""

    name = "dwpose"

    def __init__(self, params: PoseParams | None = None, device: str = "cpu",
                 det_path: str | Path | None = None, pose_path: str | Path | None = None):
        from ...store import require

        self.params = params or PoseParams()
        det_path = Path(det_path) if det_path is not None else require(DET_ARTIFACT)
        pose_path = Path(pose_path) if pose_path is not None else require(POSE_ARTIFACT)
        try:
            import onnxruntime as ort
        except ImportError:
            raise InputError("the dwpose pose backend needs onnxruntime",
                             cause="onnxruntime is not installed in this environment",
                             hint="pip install 'fgbg[models]' (or use --pose-backend mediapipe)"
                             ) from None
        available = ort.get_available_providers()
        providers = providers_for(device, available)
        if device.startswith("cuda") and "CUDAExecutionProvider" not in available:
            warnings.warn("onnxruntime has no CUDAExecutionProvider here: DWPose runs on the CPU "
                          "(install onnxruntime-gpu for the GPU)", RuntimeWarning, stacklevel=2)
        self.device = device
        self._det = _Model(ort, det_path, providers, "detector")
        self._pose = _Model(ort, pose_path, providers, "pose model")
        self._det_hw = tuple(d or 640 for d in self._det.hw)
        if None in self._pose.hw:
            raise ModelError(f"the DWPose pose model at {pose_path} has no fixed input size",
                             cause=f"its input shape is {self._pose.session.get_inputs()[0].shape}")
        self._pose_wh = (self._pose.hw[1], self._pose.hw[0])
        names = self._pose.output_names
        if len(names) < 2:
            raise ModelError(f"the DWPose pose model at {pose_path} has unexpected outputs",
                             cause=f"outputs {names}, expected simcc_x and simcc_y")
        self._x_out = names.index("simcc_x") if "simcc_x" in names else 0
        self._y_out = names.index("simcc_y") if "simcc_y" in names else 1
        self.reset()

    def reset(self) -> None:
        self._last_box: np.ndarray | None = None
        self._since = 0

    def close(self) -> None:
        self._det = self._pose = None

    # ------------------------------------------------------------------ steps

    def detect(self, frames: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """frames (n, H, W, 3) uint8 RGB -> per frame: person boxes (K, 4) in frame px and
        their scores (K,), best first."""
        out = []
        for start in range(0, len(frames), self._det.batch or MAX_BATCH):
            batch, ratios = [], []
            for frame in frames[start:start + (self._det.batch or MAX_BATCH)]:
                img, r = ops.letterbox(frame[..., ::-1], self._det_hw)  # BGR
                batch.append(img.transpose(2, 0, 1))
                ratios.append(r)
            raw = self._det.run(np.ascontiguousarray(batch, np.float32))[0]
            out += [ops.detect_people(raw[i], ratios[i], self._det_hw) for i in range(len(ratios))]
        return out

    def follow(self, boxes: np.ndarray, scores: np.ndarray) -> np.ndarray | None:
        """One frame's person boxes -> the box of our person (memory updated), or None."""
        prev = self._last_box if self._since <= MAX_GAP else None
        min_iou = max(MIN_IOU - MIN_IOU_DECAY * self._since, MIN_IOU_FLOOR)
        pick = ops.select_person(boxes, scores, prev, min_iou)
        if pick is None:
            self._since += 1
            return None
        self._last_box, self._since = np.asarray(boxes[pick], np.float64), 0
        return self._last_box

    def pose(self, frames: np.ndarray, boxes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """One box per frame -> keypoints (n, 133, 2) frame px, scores (n, 133) in [0, 1]."""
        wh = self._pose_wh
        regions = [ops.crop_box(b, wh) for b in boxes]
        crops = np.stack([ops.crop_person(f if POSE_INPUT_RGB else f[..., ::-1], c, s, wh)
                          for f, (c, s) in zip(frames, regions)])
        outs = self._pose.run(crops)
        simcc_x, simcc_y = outs[self._x_out], outs[self._y_out]
        if simcc_x.shape[1] != L.NUM_KEYPOINTS:
            raise ModelError("the DWPose pose model gives an unexpected number of keypoints",
                             cause=f"simcc_x has shape {simcc_x.shape}, expected N x 133 x W")
        points, raw = ops.simcc_decode(simcc_x, simcc_y, simcc_x.shape[-1] / wh[0])
        keypoints = np.stack([ops.uncrop(p, c, s, wh) for p, (c, s) in zip(points, regions)])
        return keypoints.astype(np.float32), np.clip(raw, 0.0, 1.0).astype(np.float32)

    def estimate(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._det is None:
            raise RuntimeError("DWPose.estimate after close()")
        frames = np.asarray(frames)
        n = len(frames)
        keypoints = np.zeros((n, L.NUM_KEYPOINTS, 2), np.float32)
        scores = np.zeros((n, L.NUM_KEYPOINTS), np.float32)
        if n == 0:
            return keypoints, scores
        chosen = [self.follow(b, s) for b, s in self.detect(frames)]
        found = [i for i, box in enumerate(chosen) if box is not None]
        if found:
            keypoints[found], scores[found] = self.pose(frames[found], [chosen[i] for i in found])
        return keypoints, scores
