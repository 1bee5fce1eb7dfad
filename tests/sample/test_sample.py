"""The built-in procedural sample: determinism, truth consistency, the video file, and that the
weight-free pose backend (BlazePose) sees the character where the truth says it is."""

import cv2
import numpy as np
import pytest

from fgbg.errors import InputError
from fgbg.pose import layout as L
from fgbg.sample import PRESETS, SamplePaths, make_sample
from fgbg.video import probe, read_frames

SIZE, FRAMES = 128, 12


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Every preset, small and short, seed 0: {preset: (SamplePaths, truth dict)}."""
    out = {}
    for preset in PRESETS:
        paths = make_sample(tmp_path_factory.mktemp(preset), preset=preset, seed=0,
                            num_frames=FRAMES, width=SIZE, height=SIZE)
        with np.load(paths.truth) as z:
            out[preset] = paths, {k: z[k] for k in z.files}
    return out


def test_files_and_shapes(made):
    paths, t = made["dance"]
    assert isinstance(paths, SamplePaths)
    assert paths.driving.name == "driving.mp4" and paths.ref.name == "person.png"
    assert paths.truth.name == "truth.npz"
    T, H, W = FRAMES, SIZE, SIZE
    expect = {"keypoints": ((T, 133, 2), np.float32), "scores": ((T, 133), np.float32),
              "masks": ((T, H, W), np.uint8), "visible": ((T, 64), np.bool_),
              "tracks": ((T, 64, 2), np.float32), "queries": ((64, 3), np.float32),
              "camera": ((T, 2, 3), np.float32), "ref_keypoints": ((133, 2), np.float32),
              "ref_scores": ((133,), np.float32), "ref_mask": ((H, W), np.uint8)}
    for name, (shape, dtype) in expect.items():
        assert t[name].shape == shape and t[name].dtype == dtype, name
    assert int(t["width"]) == W and int(t["height"]) == H and float(t["fps"]) == 24.0
    assert str(t["preset"]) == "dance" and int(t["seed"]) == 0
    assert set(np.unique(t["masks"])) <= {0, 1} and t["masks"].any(axis=(1, 2)).all()
    assert (t["scores"][:, L.BODY] == 1).all()  # the whole body stays in frame
    np.testing.assert_allclose(t["camera"][0], [[1, 0, 0], [0, 1, 0]], atol=1e-4)


def test_deterministic(made, tmp_path):
    paths, t = made["shake"]
    again = make_sample(tmp_path, preset="shake", seed=0, num_frames=FRAMES, width=SIZE,
                        height=SIZE)
    with np.load(again.truth) as z:
        for k in z.files:
            np.testing.assert_array_equal(z[k], t[k], err_msg=k)
    assert again.driving.read_bytes() == paths.driving.read_bytes()
    assert again.ref.read_bytes() == paths.ref.read_bytes()


def test_seed_and_presets_differ(made, tmp_path):
    other = make_sample(tmp_path, preset="dance", seed=1, num_frames=FRAMES, width=SIZE,
                        height=SIZE, audio=False)
    with np.load(other.truth) as z:
        assert not np.array_equal(z["masks"], made["dance"][1]["masks"])
    kps = [made[p][1]["keypoints"] for p in PRESETS]
    cams = [made[p][1]["camera"] for p in PRESETS]
    for i in range(len(kps)):
        for j in range(i + 1, len(kps)):
            assert not (np.allclose(kps[i], kps[j]) and np.allclose(cams[i], cams[j]))


def test_camera_motion(made):
    ident = np.float32([[1, 0, 0], [0, 1, 0]])
    for preset, (_, t) in made.items():
        moved = np.abs(t["camera"] - ident).max(axis=(1, 2))
        if preset == "static":
            assert moved.max() < 1e-5
        else:
            assert moved[-1] > 1e-3 or moved.max() > 1e-2, preset
    # the camera maps move the tracks: tracks[t] = camera[t] @ queries
    t = made["dance"][1]
    q = t["queries"][:, 1:]
    moved = np.einsum("tij,nj->tni", t["camera"][:, :, :2], q) + t["camera"][:, None, :, 2]
    np.testing.assert_allclose(t["tracks"], moved, atol=1e-3)
    assert np.abs(t["tracks"][-1] - t["tracks"][0]).mean() > 0.05 * SIZE  # a real pan


def test_keypoints_on_mask(made):
    for preset, (_, t) in made.items():
        for kps, masks in ((t["keypoints"], t["masks"]), (t["ref_keypoints"][None], t["ref_mask"][None])):
            body = np.round(kps[:, :17]).astype(int)
            # within 2 px of the mask: the ears sit on the head's outline
            for k, m in zip(body, masks):
                grown = cv2.dilate(m, np.ones((5, 5), np.uint8))
                assert grown[k[:, 1], k[:, 0]].all(), preset


def test_tracks_on_background(made):
    for preset, (_, t) in made.items():
        vis = t["visible"]
        assert vis[0].all() and vis.mean() > 0.5, preset
        assert (t["queries"][:, 0] == 0).all()
        tr = np.round(t["tracks"]).astype(int)
        for i in range(FRAMES):
            pts = tr[i][vis[i]]
            assert (pts >= 0).all() and (pts < SIZE).all()
            assert not t["masks"][i][pts[:, 1], pts[:, 0]].any(), (preset, i)


def test_video_file(made):
    paths, _ = made["walk"]
    info = probe(paths.driving)
    assert (info.num_frames, info.width, info.height) == (FRAMES, SIZE, SIZE)
    assert info.fps == pytest.approx(24.0, abs=0.01)
    assert info.has_audio
    frames = np.concatenate(list(read_frames(info)))
    assert frames.shape == (FRAMES, SIZE, SIZE, 3)
    silent = make_sample(paths.driving.parent / "silent", preset="walk", num_frames=4,
                         width=64, height=64, audio=False)
    assert not probe(silent.driving).has_audio


def test_unknown_preset(tmp_path):
    with pytest.raises(InputError) as err:
        make_sample(tmp_path, preset="moonwalk")
    assert "moonwalk" in err.value.what
    for name in PRESETS:
        assert name in err.value.cause


def test_blazepose_finds_the_character(tmp_path):
    """BlazePose (the weight-free pose backend) on the default-size sample: the person is found
    in (nearly) every frame, near the true joints. Measured for seeds 0-3 and every preset at
    256 px x 48 frames: detection 1.00, PCK@0.2 (torso) 0.98-1.00; here 24 frames of 'dance'."""
    pytest.importorskip("mediapipe")
    from fgbg.backends.pose.mediapipe import MediapipePose
    from fgbg.params import PoseParams

    paths = make_sample(tmp_path, preset="dance", seed=0, num_frames=24, audio=False)
    truth = np.load(paths.truth)
    frames = np.concatenate(list(read_frames(probe(paths.driving))))
    kps, scores = MediapipePose(PoseParams()).estimate(frames)
    tk = truth["keypoints"]
    torso = np.linalg.norm((tk[:, 5] + tk[:, 6]) / 2 - (tk[:, 11] + tk[:, 12]) / 2, axis=-1)
    found = (scores[:, L.BODY] >= 0.3).sum(1) >= 5
    hit = (np.linalg.norm(kps[:, L.BODY] - tk[:, L.BODY], axis=-1) < 0.2 * torso[:, None])
    hit &= scores[:, L.BODY] >= 0.3
    assert found.mean() >= 0.9
    assert hit.mean() >= 0.9
