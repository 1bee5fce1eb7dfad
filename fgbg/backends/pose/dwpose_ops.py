"""Pure numpy steps of the DWPose pipeline: YOLOX-L person boxes, then the DWPose whole-body model
(RTMPose-style top-down SimCC) on a crop of the chosen person.

The I/O conventions follow the public ONNX pipelines that run the same two files (yzd-v/DWPose
`yolox_l.onnx` and `dw-ll_ucoco_384.onnx`): Moore-AnimateAnyone `src/dwpose/onnxdet.py` and
`onnxpose.py` (copied from IDEA-Research/DWPose) and rtmlib (`tools/object_detection/yolox.py`,
`tools/pose_estimation/rtmpose.py`, `post_processings.py`). The code here is our own.

Detector: the frame is scaled by r = min(640/h, 640/w) (bilinear, to int(w*r) x int(h*r)) into the
top-left corner of a 640x640 canvas filled with 114; float32 0-255, no normalisation. The output
(1, 8400, 85) holds, per anchor, raw box offsets (x, y, log w, log h) on the grids of strides 8, 16
and 32 (80x80, 40x40, 20x20 anchors, row-major, stride 8 first) then the objectness and 80 class
probabilities (already sigmoids). centre = (offset + grid cell) * stride, size = exp(.) * stride,
score = objectness * class probability; boxes go back to the frame by dividing by r.

Pose: the box's centre and size x 1.25, widened or heightened to the input's aspect (w/h = 288/384),
is warped (no rotation) onto the 288x384 input, normalised by mean (123.675, 116.28, 103.53) and
std (58.395, 57.12, 57.375). Outputs simcc_x (1, 133, 576) and simcc_y (1, 133, 768): a keypoint is
(argmax_x, argmax_y) / split ratio 2 in input pixels, mapped back through the inverse of the crop
transform; its score is the smaller of the two maxima (as rtmlib does), which we clip to [0, 1].
"""

from __future__ import annotations

import numpy as np

DET_PAD_VALUE = 114
YOLOX_STRIDES = (8, 16, 32)
PERSON_CLASS = 0
DET_SCORE_THRESHOLD = 0.3  # person boxes kept above this (objectness x class probability)
NMS_THRESHOLD = 0.45
BOX_PADDING = 1.25
POSE_MEAN = np.array([123.675, 116.28, 103.53], np.float32)
POSE_STD = np.array([58.395, 57.12, 57.375], np.float32)


# ----------------------------------------------------------------------------- detector


def letterbox(image: np.ndarray, size: tuple[int, int] = (640, 640)) -> tuple[np.ndarray, float]:
    """image (h, w, 3) uint8 -> (size[0], size[1], 3) uint8 with the image scaled by r into the
    top-left corner and DET_PAD_VALUE elsewhere; and r. A frame point p sits at p * r."""
    import cv2

    out_h, out_w = size
    h, w = image.shape[:2]
    r = min(out_h / h, out_w / w)
    new_w, new_h = max(int(w * r), 1), max(int(h * r), 1)
    canvas = np.full((out_h, out_w, 3), DET_PAD_VALUE, np.uint8)
    canvas[:new_h, :new_w] = cv2.resize(np.ascontiguousarray(image), (new_w, new_h),
                                        interpolation=cv2.INTER_LINEAR)
    return canvas, r


def yolox_grid(input_hw: tuple[int, int], strides=YOLOX_STRIDES) -> tuple[np.ndarray, np.ndarray]:
    """Anchor cells (A, 2) as (x, y) grid indices and their strides (A,), in the order of YOLOX's
    output: stride by stride, each row-major."""
    cells, steps = [], []
    for s in strides:
        gh, gw = input_hw[0] // s, input_hw[1] // s
        ys, xs = np.mgrid[0:gh, 0:gw]
        cells.append(np.stack([xs.ravel(), ys.ravel()], 1))
        steps.append(np.full(gh * gw, s))
    return np.concatenate(cells).astype(np.float32), np.concatenate(steps).astype(np.float32)


def decode_yolox(raw: np.ndarray, input_hw: tuple[int, int], strides=YOLOX_STRIDES
                 ) -> tuple[np.ndarray, np.ndarray]:
    """raw (A, 5 + C) YOLOX predictions of one image -> boxes (A, 4) x0, y0, x1, y1 in input
    pixels, scores (A, C) = objectness x class probability."""
    cells, steps = yolox_grid(input_hw, strides)
    if len(raw) != len(cells):
        raise ValueError(f"YOLOX output has {len(raw)} anchors; a {input_hw[1]}x{input_hw[0]} "
                         f"input with strides {tuple(strides)} has {len(cells)}")
    raw = raw.astype(np.float32)
    centre = (raw[:, :2] + cells) * steps[:, None]
    size = np.exp(np.minimum(raw[:, 2:4], 20.0)) * steps[:, None]
    boxes = np.concatenate([centre - size / 2, centre + size / 2], 1)
    return boxes, raw[:, 4:5] * raw[:, 5:]


def box_area(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one box (4,) with each of boxes (M, 4) -> (M,)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    lo = np.maximum(box[:2], boxes[:, :2])
    hi = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    union = box_area(box)[0] + box_area(boxes) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = NMS_THRESHOLD) -> np.ndarray:
    """Greedy non-maximum suppression: indices kept, best score first. A box is dropped when its
    IoU with a kept, better box exceeds iou_threshold. (Areas in continuous coordinates; the
    public code adds 1 px to widths, a difference of well under a pixel for people.)"""
    order = np.argsort(-np.asarray(scores), kind="stable")
    keep = []
    while len(order):
        best, order = order[0], order[1:]
        keep.append(best)
        order = order[box_iou(boxes[best], boxes[order]) <= iou_threshold]
    return np.array(keep, np.int64)


def detect_people(raw: np.ndarray, ratio: float, input_hw: tuple[int, int],
                  score_threshold: float = DET_SCORE_THRESHOLD,
                  iou_threshold: float = NMS_THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """One image's raw YOLOX output -> person boxes (K, 4) in frame pixels and scores (K,), best
    first. Same result as the public code's per-class NMS at 0.1 followed by keeping class 0 above
    0.3: a box scoring 0.1-0.3 can only be suppressed by better boxes, never suppress one."""
    boxes, scores = decode_yolox(raw, input_hw)
    person = scores[:, PERSON_CLASS]
    ok = person > score_threshold
    boxes, person = boxes[ok], person[ok]
    keep = nms(boxes, person, iou_threshold)
    return (boxes[keep] / ratio).astype(np.float32), person[keep].astype(np.float32)


# ----------------------------------------------------------------------------- the person


def select_person(boxes: np.ndarray, scores: np.ndarray, prev_box: np.ndarray | None = None,
                  min_iou: float = 0.3) -> int | None:
    """Which detection is our person. Without a previous box: the most prominent one (box area x
    score). With one: the box overlapping it most, if that IoU reaches min_iou; else None."""
    if len(boxes) == 0:
        return None
    if prev_box is None:
        return int(np.argmax(box_area(boxes) * np.asarray(scores, np.float64)))
    iou = box_iou(np.asarray(prev_box, np.float64), boxes)
    best = int(np.argmax(iou))
    return best if iou[best] >= min_iou else None


# ----------------------------------------------------------------------------- pose model


def crop_box(box: np.ndarray, input_wh: tuple[int, int], padding: float = BOX_PADDING
             ) -> tuple[np.ndarray, np.ndarray]:
    """Person box (x0, y0, x1, y1) -> centre (2,) and size (2,) w, h of the frame region the pose
    model sees: the box grown by `padding`, then widened or heightened to the input's aspect."""
    box = np.asarray(box, np.float64)
    centre = (box[:2] + box[2:]) / 2
    w, h = (box[2:] - box[:2]) * padding
    aspect = input_wh[0] / input_wh[1]
    size = np.array([w, w / aspect] if w > h * aspect else [h * aspect, h])
    return centre, np.maximum(size, 1.0)


def crop_matrix(centre: np.ndarray, size: np.ndarray, input_wh: tuple[int, int]) -> np.ndarray:
    """2x3 affine from frame pixels to pose-input pixels: centre -> the input's centre, the region
    of `size` -> the whole input (same scale on both axes once crop_box fixed the aspect)."""
    sx, sy = input_wh[0] / size[0], input_wh[1] / size[1]
    return np.array([[sx, 0.0, input_wh[0] / 2 - sx * centre[0]],
                     [0.0, sy, input_wh[1] / 2 - sy * centre[1]]])


def uncrop(points: np.ndarray, centre: np.ndarray, size: np.ndarray, input_wh: tuple[int, int]
           ) -> np.ndarray:
    """Pose-input pixels (..., 2) -> frame pixels: the inverse of crop_matrix."""
    return points / np.asarray(input_wh, np.float64) * size + centre - size / 2


def crop_person(image: np.ndarray, centre: np.ndarray, size: np.ndarray,
                input_wh: tuple[int, int]) -> np.ndarray:
    """The pose model's view of the person: (3, H, W) float32, normalised, channels as `image`."""
    import cv2

    crop = cv2.warpAffine(np.ascontiguousarray(image), crop_matrix(centre, size, input_wh),
                          (int(input_wh[0]), int(input_wh[1])), flags=cv2.INTER_LINEAR)
    crop = (crop.astype(np.float32) - POSE_MEAN) / POSE_STD
    return np.ascontiguousarray(crop.transpose(2, 0, 1))


def simcc_decode(simcc_x: np.ndarray, simcc_y: np.ndarray, split_ratio: float = 2.0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """simcc_x (N, K, Wx), simcc_y (N, K, Wy) -> keypoints (N, K, 2) in input pixels (argmax bin /
    split_ratio) and raw scores (N, K): the smaller of the two maxima."""
    x = np.argmax(simcc_x, axis=-1)
    y = np.argmax(simcc_y, axis=-1)
    points = np.stack([x, y], -1).astype(np.float32) / np.float32(split_ratio)
    scores = np.minimum(simcc_x.max(-1), simcc_y.max(-1)).astype(np.float32)
    return points, scores
