"""DWPose backend: the pure steps with known answers, then the whole backend end to end on small
ONNX graphs built here with the real files' input and output names and shapes (detector
1x3x640x640 -> 1x8400x85; pose Nx3x384x288 -> simcc_x Nx133x576, simcc_y Nx133x768), whose
outputs are known functions of the input:

- the detector returns constant YOLOX predictions for a few people, each person's objectness
  read from one pixel of channel 0 of its input (so a blue patch in an RGB frame switches a person
  on: this also checks the detector is fed BGR);
- the pose model puts every keypoint at the peak of channel 0 of its crop (a red blob in an RGB
  frame: this also checks the pose model is fed RGB), with score sigmoid(peak value).
"""

import math

import numpy as np
import pytest

from fgbg.backends.pose import dwpose_ops as ops
from fgbg.errors import ModelError
from fgbg.params import PoseParams

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from fgbg.backends.pose.dwpose import MAX_GAP, DWPose, providers_for  # noqa: E402

# ----------------------------------------------------------------------------- pure steps


def test_letterbox_geometry_and_pad_value():
    img = np.zeros((50, 100, 3), np.uint8)
    img[10:20, 30:40] = 200
    out, r = ops.letterbox(img, (640, 640))
    assert out.shape == (640, 640, 3) and out.dtype == np.uint8 and r == pytest.approx(6.4)
    assert (out[320:] == 114).all()  # below the 100x50 image scaled to 640x320
    assert (out[:320] != 114).all()
    # a frame point p sits at p * r
    assert (out[int(12 * r):int(18 * r), int(32 * r):int(38 * r)] == 200).all()
    assert (out[int(25 * r):int(45 * r), int(5 * r):int(25 * r)] == 0).all()
    tall, r = ops.letterbox(np.zeros((200, 50, 3), np.uint8), (640, 640))
    assert r == pytest.approx(3.2) and (tall[:, 160:] == 114).all() and (tall[:, :160] == 0).all()


def test_nms_on_constructed_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 4],
                      [21, 21, 31, 31]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.95])
    # [1] overlaps [0] by IoU 81/119 = 0.68 -> dropped; [3] by 0.4 -> kept;
    # [2] overlaps the better [4] by 81/119 -> dropped
    assert ops.nms(boxes, scores, 0.45).tolist() == [4, 0, 3]
    assert ops.nms(boxes, scores, 0.3).tolist() == [4, 0]
    assert ops.nms(boxes[:0], scores[:0]).tolist() == []


def test_yolox_grid_order():
    cells, strides = ops.yolox_grid((640, 640))
    assert len(cells) == 8400 and strides[0] == 8 and strides[6400] == 16 and strides[-1] == 32
    assert cells[1].tolist() == [1, 0] and cells[80].tolist() == [0, 1]  # row-major, x fastest
    assert cells[6400 + 41].tolist() == [1, 1] and cells[-1].tolist() == [19, 19]


def test_decode_yolox_on_a_constructed_output():
    raw = np.zeros((8400, 85), np.float32)
    i = 6400 + 5 * 40 + 3  # stride 16, cell x=3, y=5
    raw[i, :4] = [0.5, 0.5, math.log(2), math.log(4)]
    raw[i, 4], raw[i, 5], raw[i, 6] = 0.8, 0.9, 0.5
    boxes, scores = ops.decode_yolox(raw, (640, 640))
    # centre (3.5, 5.5) * 16 = (56, 88); size (2, 4) * 16 = (32, 64)
    np.testing.assert_allclose(boxes[i], [40, 56, 72, 120], atol=1e-4)
    np.testing.assert_allclose(scores[i, :2], [0.72, 0.4], atol=1e-6)
    j = 8000 + 2 * 20 + 7  # stride 32, cell x=7, y=2
    raw[j, :4] = [0.0, 1.0, 0.0, 0.0]
    np.testing.assert_allclose(ops.decode_yolox(raw, (640, 640))[0][j],
                               [224 - 16, 96 - 16, 224 + 16, 96 + 16], atol=1e-4)
    with pytest.raises(ValueError, match="anchors"):
        ops.decode_yolox(raw[:100], (640, 640))


def encode_yolox(people, input_hw=(640, 640)):
    """Raw YOLOX predictions (8400, 85) for boxes in input pixels: [(x0, y0, x1, y1, obj, cls)]
    with cls the class index whose probability is 1; each at the stride-32 cell of its centre.
    Returns raw and the anchor index of each box."""
    raw = np.zeros((8400, 85), np.float32)
    anchors = []
    for x0, y0, x1, y1, obj, cls in people:
        cx, cy, w, h = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
        gx, gy = int(cx // 32), int(cy // 32)
        i = 8000 + gy * (input_hw[1] // 32) + gx
        assert i not in anchors
        raw[i, :4] = [cx / 32 - gx, cy / 32 - gy, math.log(w / 32), math.log(h / 32)]
        raw[i, 4], raw[i, 5 + cls] = obj, 1.0
        anchors.append(i)
    return raw, anchors


def test_detect_people_keeps_confident_persons_in_frame_pixels():
    raw, _ = encode_yolox([(40, 40, 200, 400, 0.9, 0),      # person
                           (48, 44, 204, 410, 0.8, 0),      # the same person again: NMS
                           (300, 40, 400, 300, 0.95, 2),    # a car
                           (420, 40, 560, 400, 0.25, 0),    # below 0.3
                           (420, 420, 520, 620, 0.5, 0)])   # a second person
    boxes, scores = ops.detect_people(raw, 2.0, (640, 640))
    np.testing.assert_allclose(boxes, [[20, 20, 100, 200], [210, 210, 260, 310]], atol=1e-3)
    np.testing.assert_allclose(scores, [0.9, 0.5], atol=1e-6)


def test_simcc_decode_peaks():
    sx = np.zeros((2, 133, 576), np.float32)
    sy = np.zeros((2, 133, 768), np.float32)
    sx[0, 7, 101], sy[0, 7, 300] = 0.9, 0.6
    sx[1, 0, 575], sy[1, 0, 0] = 1.4, 1.2
    points, scores = ops.simcc_decode(sx, sy, 2.0)
    assert points.shape == (2, 133, 2) and scores.shape == (2, 133)
    np.testing.assert_allclose(points[0, 7], [50.5, 150.0])
    np.testing.assert_allclose(points[1, 0], [287.5, 0.0])
    assert scores[0, 7] == pytest.approx(0.6) and scores[1, 0] == pytest.approx(1.2)
    assert scores[0, 8] == 0


def test_crop_box_pads_and_fixes_the_aspect():
    centre, size = ops.crop_box(np.array([10, 20, 70, 110]), (288, 384))
    np.testing.assert_allclose(centre, [40, 65])
    np.testing.assert_allclose(size, [112.5 * 0.75, 112.5])  # 75 x 112.5, widened to 3:4
    _, size = ops.crop_box(np.array([0, 0, 100, 40]), (288, 384))
    np.testing.assert_allclose(size, [125, 125 / 0.75])  # 125 x 50, heightened


def test_crop_affine_and_its_inverse():
    wh = (288, 384)
    centre, size = ops.crop_box(np.array([30, 10, 90, 100]), wh)
    m = ops.crop_matrix(centre, size, wh)
    np.testing.assert_allclose(m @ [*centre, 1], [144, 192])  # centre -> the input's centre
    np.testing.assert_allclose(m @ [*(centre - size / 2), 1], [0, 0], atol=1e-9)
    pts = np.array([[33.0, 47.0], [70.25, 12.5]])
    crop_pts = pts @ m[:, :2].T + m[:, 2]
    np.testing.assert_allclose(ops.uncrop(crop_pts, centre, size, wh), pts, atol=1e-9)
    # the warped crop has the frame's marker where the matrix sends it
    img = np.zeros((120, 160, 3), np.uint8)
    img[50, 60] = (255, 0, 0)
    crop = ops.crop_person(img, centre, size, wh)
    assert crop.shape == (3, 384, 288) and crop.dtype == np.float32
    np.testing.assert_allclose(crop[:, 0, 0], -ops.POSE_MEAN / ops.POSE_STD, rtol=1e-6)
    peak = np.unravel_index(np.argmax(crop[0]), crop[0].shape)
    np.testing.assert_allclose(peak[::-1], m @ [60, 50, 1], atol=1.0)


def test_select_person_acquires_the_most_prominent_then_follows_by_iou():
    big = np.array([10, 10, 60, 110.0])  # area 5000
    small = np.array([100, 30, 130, 80.0])  # area 1500
    boxes = np.stack([small, big])
    assert ops.select_person(boxes, [0.95, 0.5]) == 1  # 2500 > 1425
    assert ops.select_person(boxes, [0.95, 0.25]) == 0  # 1250 < 1425
    assert ops.select_person(boxes[:0], []) is None
    # following: the box overlapping the previous one, whatever the prominence
    assert ops.select_person(boxes, [0.9, 0.9], prev_box=small + 3) == 0
    assert ops.select_person(boxes, [0.9, 0.9], prev_box=big - 4) == 1
    assert ops.select_person(boxes, [0.9, 0.9], prev_box=np.array([200, 0, 230, 40.0])) is None
    assert ops.select_person(boxes, [0.9, 0.9], prev_box=small + 20, min_iou=0.3) is None
    assert ops.select_person(boxes, [0.9, 0.9], prev_box=small + 20, min_iou=0.05) == 0


def test_providers():
    cpu = ["CPUExecutionProvider"]
    assert providers_for("cpu", ["CUDAExecutionProvider", *cpu]) == cpu
    assert providers_for("cuda", cpu) == cpu
    assert providers_for("cuda:1", ["CUDAExecutionProvider", *cpu]) == [
        ("CUDAExecutionProvider", {"device_id": 1}), *cpu]


# ----------------------------------------------------------------------------- stand-in graphs

W, H = 160, 120  # frame size; letterbox ratio 4
R = 4.0


def _save(graph, path):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _const(name, array):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array, name))


def make_detector(path, people, batch=1):
    """people: [(box in frame px, gate (x, y) frame px)]. Each person's objectness is channel 0 of
    the detector input at its gate pixel / 255 (class 0 probability 1)."""
    raw, anchors = encode_yolox([(*(np.array(b) * R), 0.0, 0) for b, _ in people])
    gates = [0 * 640 * 640 + int(g[1] * R) * 640 + int(g[0] * R) for _, g in people]
    onehot = np.zeros((len(people), 8400), np.float32)
    onehot[np.arange(len(people)), anchors] = 1
    obj_col = np.zeros((1, 1, 85), np.float32)
    obj_col[..., 4] = 1
    nodes = [
        _const("flat_shape", np.array([0, -1], np.int64)),
        _const("gates", np.array(gates, np.int64)),
        _const("k255", np.array(255, np.float32)),
        _const("onehot", onehot),
        _const("col_shape", np.array([0, 8400, 1], np.int64)),
        _const("obj_col", obj_col),
        _const("base", raw[None]),
        helper.make_node("Reshape", ["images", "flat_shape"], ["flat"]),
        helper.make_node("Gather", ["flat", "gates"], ["g"], axis=1),
        helper.make_node("Div", ["g", "k255"], ["gn"]),
        helper.make_node("MatMul", ["gn", "onehot"], ["obj"]),
        helper.make_node("Reshape", ["obj", "col_shape"], ["obj3"]),
        helper.make_node("Mul", ["obj3", "obj_col"], ["objs"]),
        helper.make_node("Add", ["base", "objs"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes, "det",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, 640, 640])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch, 8400, 85])])
    return _save(graph, path)


def make_pose(path, batch="N"):
    """Every keypoint at the (column, row) of the maximum of channel 0; values sigmoid(max)."""
    ux = np.zeros((288, 576), np.float32)
    ux[np.arange(288), 2 * np.arange(288)] = 1
    uy = np.zeros((384, 768), np.float32)
    uy[np.arange(384), 2 * np.arange(384)] = 1
    nodes = [
        _const("s0", np.array([0], np.int64)), _const("s1", np.array([1], np.int64)),
        _const("ux", ux), _const("uy", uy),
        _const("k133", np.array([1, 133, 1], np.int64)),
        helper.make_node("Slice", ["input", "s0", "s1", "s1"], ["ch0"]),
        helper.make_node("ReduceMax", ["ch0"], ["cols"], axes=[1, 2], keepdims=0),
        helper.make_node("ReduceMax", ["ch0"], ["rows"], axes=[1, 3], keepdims=0),
    ]
    for axis, prof, up in (("x", "cols", "ux"), ("y", "rows", "uy")):
        nodes += [
            helper.make_node("Sigmoid", [prof], [f"sig_{axis}"]),
            helper.make_node("MatMul", [f"sig_{axis}", up], [f"bins_{axis}"]),
            helper.make_node("Unsqueeze", [f"bins_{axis}", "s1"], [f"b3_{axis}"]),
            helper.make_node("Expand", [f"b3_{axis}", "k133"], [f"simcc_{axis}"]),
        ]
    graph = helper.make_graph(
        nodes, "pose",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, 384, 288])],
        [helper.make_tensor_value_info("simcc_x", TensorProto.FLOAT, [batch, 133, 576]),
         helper.make_tensor_value_info("simcc_y", TensorProto.FLOAT, [batch, 133, 768])])
    return _save(graph, path)


PEAK_SCORE = 1 / (1 + math.exp(-(255 - ops.POSE_MEAN[0]) / ops.POSE_STD[0]))  # 0.9046


def frame(blobs=(), gates=()):
    """Black RGB frame with red Gaussian blobs at integer (x, y) and blue gate patches."""
    img = np.zeros((H, W, 3), np.uint8)
    yy, xx = np.mgrid[0:H, 0:W]
    for x, y in blobs:
        img[..., 0] = np.maximum(img[..., 0], 255 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 18))
    for x, y in gates:
        img[y - 3:y + 4, x - 3:x + 4, 2] = 255
    return img


BIG = ((10, 10, 70, 110), (4, 4))      # person A: 60 x 100 px, gate at (4, 4)
SMALL = ((105, 40, 145, 100), (150, 110))  # person B: 40 x 60 px


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    d = tmp_path_factory.mktemp("dwpose")
    return {"det": make_detector(d / "yolox_l.onnx", [BIG, SMALL]),
            "det_dyn": make_detector(d / "yolox_dyn.onnx", [BIG, SMALL], batch="N"),
            "pose": make_pose(d / "pose_dyn.onnx"),
            "pose_fixed": make_pose(d / "pose_b1.onnx", batch=1)}


@pytest.mark.parametrize("det, pose", [("det", "pose_fixed"), ("det_dyn", "pose")])
def test_end_to_end_keypoints_land_on_the_marker(graphs, det, pose):
    est = DWPose(PoseParams(), det_path=graphs[det], pose_path=graphs[pose])
    assert est.name == "dwpose" and est._pose_wh == (288, 384)
    marks = [(40, 60), (33, 25), (61, 97), (12, 102), (47, 14)]
    frames = np.stack([frame([m], [BIG[1]]) for m in marks])
    keypoints, scores = est.estimate(frames)
    assert keypoints.shape == (5, 133, 2) and keypoints.dtype == np.float32
    assert scores.shape == (5, 133) and scores.dtype == np.float32
    for k in (0, 66, 132):
        np.testing.assert_allclose(keypoints[:, k], np.array(marks, np.float32), atol=0.5)
    np.testing.assert_allclose(scores, PEAK_SCORE, atol=0.01)
    est.close()


def test_end_to_end_follows_the_same_person(graphs):
    est = DWPose(PoseParams(), det_path=graphs["det"], pose_path=graphs["pose"])
    a, b = (40, 60), (125, 70)  # a blob inside each person's box
    both = frame([a, b], [BIG[1], SMALL[1]])
    only_b = frame([a, b], [SMALL[1]])
    # chunk 1: both people -> the bigger one (A); chunk 2: A not detected -> no pose, B ignored
    k1, s1 = est.estimate(np.stack([both, both]))
    np.testing.assert_allclose(k1[:, 0], [a, a], atol=0.5)
    k2, s2 = est.estimate(np.stack([only_b, both]))
    assert (s2[0] == 0).all() and (k2[0] == 0).all()
    np.testing.assert_allclose(k2[1, 0], a, atol=0.5)
    # after reset, only B in view: B is acquired, then kept when A comes back
    est.reset()
    k3, s3 = est.estimate(np.stack([only_b, both, both]))
    np.testing.assert_allclose(k3[:, 0], [b, b, b], atol=0.5)
    assert (s3 > 0.8).all()
    empty_k, empty_s = est.estimate(np.zeros((0, H, W, 3), np.uint8))
    assert empty_k.shape == (0, 133, 2) and empty_s.shape == (0, 133)


def test_follow_across_frames_with_two_people(graphs):
    """The memory step alone: constructed detections, two people walking past each other."""
    est = DWPose(det_path=graphs["det"], pose_path=graphs["pose"])
    sc = np.array([0.9, 0.9], np.float32)

    def people(t):  # A walks right (big), B walks left (small), listed in changing order
        a = np.array([10 + 6 * t, 20, 70 + 6 * t, 120], np.float32)
        b = np.array([150 - 6 * t, 40, 190 - 6 * t, 100], np.float32)
        return (np.stack([a, b]), 0) if t % 2 else (np.stack([b, a]), 1)

    for t in range(12):
        boxes, ia = people(t)
        np.testing.assert_array_equal(est.follow(boxes, sc), boxes[ia])
    # A disappears: nothing is followed, B (far from A now) is not taken while A is remembered
    lone_b = people(0)[0][:1]
    for _ in range(MAX_GAP + 1):
        assert est.follow(lone_b, sc[:1]) is None
    # memory dropped after MAX_GAP frames: B is acquired
    np.testing.assert_array_equal(est.follow(lone_b, sc[:1]), lone_b[0])
    est.reset()
    boxes, ia = people(0)
    np.testing.assert_array_equal(est.follow(boxes, sc), boxes[ia])


def test_missing_weights_raise_model_error(graphs, monkeypatch, tmp_path):
    monkeypatch.setenv("FGBG_MODELS", str(tmp_path / "empty"))
    monkeypatch.delenv("FGBG_LOCK", raising=False)
    with pytest.raises(ModelError) as err:
        DWPose(PoseParams())
    assert err.value.exit_code == 3 and "fgbg models fetch dwpose-yolox-l" in err.value.hint
    with pytest.raises(ModelError) as err:
        DWPose(PoseParams(), det_path=graphs["det"])
    assert err.value.exit_code == 3 and "dwpose-ll-ucoco-384" in err.value.hint


def test_a_broken_model_file_is_a_model_error(tmp_path, graphs):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(ModelError) as err:
        DWPose(PoseParams(), det_path=bad, pose_path=graphs["pose"])
    assert err.value.exit_code == 3
