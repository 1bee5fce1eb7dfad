"""MediaPipe BlazePose backend on drawn scenes with known joints."""

import numpy as np
import pytest

from fgbg.params import PoseParams
from fgbg.pose import layout as L

from drawn_people import walk  # noqa: F401  (fixture)

mp = pytest.importorskip("mediapipe")
from fgbg.backends.pose.mediapipe import MediapipePose  # noqa: E402


def pck(keypoints, scores, joints, ref_len, alpha=0.2, min_score=0.3):
    """Share of known joints found within alpha x ref_len pixels (missing = wrong)."""
    hits = []
    for k, xy in joints.items():
        d = np.linalg.norm(keypoints[:, k] - xy, axis=-1)
        hits.append((d < alpha * ref_len) & (scores[:, k] >= min_score))
    return float(np.mean(hits))


def test_layout_and_contract(walk):
    frames, joints, _ = walk
    est = MediapipePose(PoseParams())
    keypoints, scores = est.estimate(frames[:3])
    assert keypoints.shape == (3, 133, 2) and keypoints.dtype == np.float32
    assert scores.shape == (3, 133) and scores.dtype == np.float32
    assert (scores >= 0).all() and (scores <= 1).all()
    # points without a BlazePose counterpart have score 0
    assert (scores[:, L.LEFT_SMALL_TOE] == 0).all() and (scores[:, L.FACE_START] == 0).all()
    assert (scores[:, L.LEFT_HAND_START + 8] == 0).all()  # index fingertip
    # the mapped face and hand points sit next to their body counterparts
    np.testing.assert_allclose(keypoints[:, L.LEFT_HAND_START], keypoints[:, L.LEFT_WRIST])
    np.testing.assert_allclose(keypoints[:, L.FACE_START + 30], keypoints[:, L.NOSE])


def test_follows_the_most_prominent_person(walk):
    """Measured: PCK@0.2 torso 0.99-1.0 over 12 frames with a second (smaller) person in view;
    BlazePose alone picks the smaller one in this scene."""
    frames, joints, _ = walk
    est = MediapipePose(PoseParams())
    keypoints, scores = est.estimate(frames[:6])
    k2, s2 = est.estimate(frames[6:])  # a second chunk continues the video
    keypoints, scores = np.concatenate([keypoints, k2]), np.concatenate([scores, s2])
    torso = np.linalg.norm(joints[L.LEFT_SHOULDER][0] - joints[L.LEFT_HIP][0])
    assert pck(keypoints, scores, joints, torso) >= 0.9
    assert (scores[:, :17] >= 0.3).sum(1).min() >= 12


def test_static_photo_and_reset(walk):
    frames, joints, _ = walk
    est = MediapipePose(PoseParams(), static=True)
    keypoints, scores = est.estimate(frames[5:6])
    torso = np.linalg.norm(joints[L.LEFT_SHOULDER][0] - joints[L.LEFT_HIP][0])
    assert pck(keypoints, scores, {k: v[5:6] for k, v in joints.items()}, torso) >= 0.9
    est.reset()
    blank = np.full((1, 128, 128, 3), 127, np.uint8)
    keypoints, scores = est.estimate(blank)
    assert (scores == 0).all()


def test_rejects_bad_frames():
    est = MediapipePose(PoseParams())
    with pytest.raises(ValueError, match="uint8"):
        est.estimate(np.zeros((1, 32, 32, 3), np.float32))
