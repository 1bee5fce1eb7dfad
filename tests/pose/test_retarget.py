"""Retargeting: known answers on hand-built poses."""

import numpy as np
import pytest

from fgbg.pose import layout as L
from fgbg.pose.retarget import TREE, HIP_CENTRE, NECK, retarget


def _person(rng, centre=(128.0, 128.0), size=1.0):
    """A plausible standing whole-body pose (133, 2) around `centre`, jittered by rng."""
    body = np.array([
        [0, -60], [-4, -64], [4, -64], [-9, -62], [9, -62],       # nose, eyes, ears
        [-18, -45], [18, -45], [-24, -20], [24, -20], [-28, 4], [28, 4],  # shoulders..wrists
        [-10, 5], [10, 5], [-11, 35], [11, 35], [-12, 65], [12, 65],      # hips..ankles
    ], np.float64)
    feet = np.array([[-16, 70], [-19, 69], [-11, 68], [16, 70], [19, 69], [11, 68]], np.float64)
    face = np.array([0, -60]) + rng.normal(0, 4, (68, 2))
    lhand = body[9] + np.abs(rng.normal(0, 4, (21, 2)))
    rhand = body[10] + np.abs(rng.normal(0, 4, (21, 2)))
    lhand[0], rhand[0] = body[9], body[10]
    pts = np.concatenate([body + rng.normal(0, 1.5, body.shape), feet, face, lhand, rhand])
    return (pts * size + np.asarray(centre)).astype(np.float32)


def _bones(kps):
    hip = (kps[..., L.LEFT_HIP, :] + kps[..., L.RIGHT_HIP, :]) / 2
    neck = (kps[..., L.LEFT_SHOULDER, :] + kps[..., L.RIGHT_SHOULDER, :]) / 2
    ext = np.concatenate([kps, hip[..., None, :], neck[..., None, :]], axis=-2)
    return np.stack([ext[..., c, :] - ext[..., p, :] for p, c in TREE], axis=-2)


def test_identity_when_driving_is_reference(rng):
    ref = _person(rng)
    scores = np.ones(133, np.float32)
    out = retarget(np.stack([ref] * 5), np.stack([scores] * 5), ref, scores)
    assert out.shape == (5, 133, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out, np.stack([ref] * 5), atol=1e-3)


def test_scaled_shifted_copy_maps_to_reference(rng):
    ref = _person(rng)
    scores = np.ones(133, np.float32)
    driving = np.stack([ref * 1.7 + np.array([-40.0, 25.0], np.float32)] * 4)
    out = retarget(driving, np.stack([scores] * 4), ref, scores)
    np.testing.assert_allclose(out, np.stack([ref] * 4), atol=1e-3)


def test_root_motion_is_kept_scaled(rng):
    ref = _person(rng, size=1.0)
    scores = np.ones(133, np.float32)
    base = _person(rng, centre=(60, 100), size=2.0)
    shifts = np.array([[0, 0], [10, 0], [20, 6], [40, -4]], np.float32)
    driving = base[None] + shifts[:, None]
    out = retarget(driving, np.stack([scores] * 4), ref, scores)
    hip = (out[:, L.LEFT_HIP] + out[:, L.RIGHT_HIP]) / 2
    ref_hip = (ref[L.LEFT_HIP] + ref[L.RIGHT_HIP]) / 2
    # driving body is about twice the reference's size: its motion arrives roughly halved
    scale = np.linalg.norm(_bones(ref)[0]) / np.linalg.norm(_bones(base)[0])
    np.testing.assert_allclose(hip, ref_hip + shifts * scale, atol=1e-3)


def test_lengths_from_reference_directions_from_driving(rng):
    ref = _person(rng)
    scores = np.ones(133, np.float32)
    driving = np.stack([_person(rng, centre=(100 + 5 * t, 140), size=1.3) for t in range(6)])
    # bend the arms differently in every frame
    for t in range(6):
        a = 0.4 * t
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]], np.float32)
        for s_, e_, w_ in ((L.LEFT_SHOULDER, L.LEFT_ELBOW, L.LEFT_WRIST),):
            driving[t, e_] = driving[t, s_] + (driving[t, e_] - driving[t, s_]) @ rot.T
            driving[t, w_] = driving[t, e_] + (driving[t, w_] - driving[t, e_]) @ rot.T @ rot.T
    out = retarget(driving, np.stack([scores] * 6), ref, scores)
    got, want_len, drv = _bones(out), np.linalg.norm(_bones(ref), axis=-1), _bones(driving)
    np.testing.assert_allclose(np.linalg.norm(got, axis=-1), np.broadcast_to(want_len, got.shape[:2]),
                               rtol=1e-4, atol=1e-3)
    cos = (got * drv).sum(-1) / (np.linalg.norm(got, axis=-1) * np.linalg.norm(drv, axis=-1))
    np.testing.assert_allclose(cos, 1.0, atol=1e-5)


def test_hands_and_face_move_rigidly_with_their_anchor(rng):
    ref = _person(rng)
    scores = np.ones(133, np.float32)
    driving = np.stack([_person(rng, size=1.5), _person(rng, size=1.5)])
    out = retarget(driving, np.stack([scores] * 2), ref, scores)
    scale = np.linalg.norm(_bones(ref)[0]) / np.median(np.linalg.norm(_bones(driving)[:, 0], axis=-1))
    for part, anchor in ((L.LEFT_HAND, L.LEFT_WRIST), (L.RIGHT_HAND, L.RIGHT_WRIST), (L.FACE, L.NOSE)):
        want = out[:, anchor, None] + scale * (driving[:, part] - driving[:, anchor, None])
        np.testing.assert_allclose(out[:, part], want, atol=1e-3)


def test_missing_points_fall_back_sanely(rng):
    ref = _person(rng)
    ref_scores = np.ones(133, np.float32)
    ref_scores[L.LEFT_KNEE] = 0  # the reference's left thigh/shin are unknown
    driving = np.stack([_person(rng, size=1.2) for _ in range(5)])
    scores = np.ones((5, 133), np.float32)
    scores[2, L.LEFT_ELBOW] = 0.1      # elbow lost, wrist still seen
    scores[3, L.LEFT_HIP] = 0.0        # root lost in one frame
    driving[2, L.LEFT_ELBOW] = np.nan  # and garbage where the estimator had nothing
    driving[4] = 0.0
    scores[4] = 0.0                    # no person at all
    out = retarget(driving, scores, ref, ref_scores)
    assert np.isfinite(out).all()
    # a frame with a lost root keeps the body where its neck says it is (no jump)
    hip = (out[:, L.LEFT_HIP] + out[:, L.RIGHT_HIP]) / 2
    assert np.linalg.norm(hip[3] - hip[1]) < 20
    # the wrist without its elbow is placed relative to the root, near where it belongs
    assert np.linalg.norm(out[2, L.LEFT_WRIST] - out[1, L.LEFT_WRIST]) < 20


def test_rejects_bad_shapes():
    with pytest.raises(ValueError, match="T, 133, 2"):
        retarget(np.zeros((133, 2)), np.zeros(133), np.zeros((133, 2)), np.zeros(133))


def test_empty_sequence():
    assert retarget(np.zeros((0, 133, 2)), np.zeros((0, 133)), np.zeros((133, 2)),
                    np.ones(133)).shape == (0, 133, 2)
