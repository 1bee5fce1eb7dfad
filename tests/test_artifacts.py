import numpy as np
import pytest

from fgbg import artifacts
from fgbg.artifacts import ArtifactError, ClipPlan


def test_frame_store_roundtrip_in_chunks(tmp_path, rng):
    frames = rng.integers(0, 255, (37, 5, 7, 3), dtype=np.uint8)
    w = artifacts.FrameStoreWriter(tmp_path / "s", (5, 7, 3), "uint8", chunk=8)
    for s in range(0, 37, 5):  # appends that do not align with chunks
        w.append(frames[s:s + 5])
    w.close()
    store = artifacts.FrameStore(tmp_path / "s", (None, None, 3), ("uint8",))
    assert len(store) == 37
    np.testing.assert_array_equal(store.read(0, 37), frames)
    np.testing.assert_array_equal(store.read(6, 19), frames[6:19])
    np.testing.assert_array_equal(np.concatenate(list(store.chunks(10))), frames)


def test_frame_store_is_deterministic(tmp_path):
    a = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4)
    for name in ("x", "y"):
        w = artifacts.FrameStoreWriter(tmp_path / name, (4, 4), "uint8")
        w.append(a)
        w.close()
    assert (tmp_path / "x/00000.npz").read_bytes() == (tmp_path / "y/00000.npz").read_bytes()


def test_frame_store_without_meta_is_not_a_result(tmp_path):
    w = artifacts.FrameStoreWriter(tmp_path / "s", (4, 4), "uint8", chunk=1)
    w.append(np.zeros((3, 4, 4), np.uint8))  # never closed: no meta.json
    with pytest.raises(ArtifactError, match="meta.json is missing"):
        artifacts.open_masks(tmp_path / "s")


def test_frame_store_detects_wrong_chunk(tmp_path):
    w = artifacts.FrameStoreWriter(tmp_path / "s", (4, 4), "uint8", chunk=2)
    w.append(np.zeros((4, 4, 4), np.uint8))
    w.close()
    artifacts.save_npz(tmp_path / "s/00001.npz", frames=np.zeros((2, 3, 4), np.uint8))
    store = artifacts.open_masks(tmp_path / "s")
    with pytest.raises(ArtifactError, match="shape"):
        store.read(0, 4)


def test_pose_roundtrip_and_validation(tmp_path, rng):
    pose = artifacts.Pose(rng.random((4, 133, 2), dtype=np.float32), rng.random((4, 133), dtype=np.float32),
                          (64, 48), 24.0)
    artifacts.save_pose(tmp_path / "p.npz", pose)
    back = artifacts.load_pose(tmp_path / "p.npz")
    np.testing.assert_array_equal(back.keypoints, pose.keypoints)
    assert back.frame_size == (64, 48) and back.fps == 24.0
    artifacts.save_npz(tmp_path / "bad.npz", keypoints=np.zeros((4, 17, 2), np.float32),
                       scores=np.zeros((4, 17), np.float32), frame_size=np.array([1, 1]), fps=np.array(1.0))
    with pytest.raises(ArtifactError, match=r"'keypoints' has shape \(4, 17, 2\), expected \(\*, 133, 2\)"):
        artifacts.load_pose(tmp_path / "bad.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ArtifactError, match="not a readable npz"):
        artifacts.load_pose(tmp_path / "junk.npz")


def test_tracks_validation(tmp_path):
    tr = artifacts.Tracks(np.zeros((5, 3, 2), np.float32), np.ones((5, 3), bool), np.zeros((3, 3), np.float32),
                          (10, 10))
    artifacts.save_tracks(tmp_path / "t.npz", tr)
    assert artifacts.load_tracks(tmp_path / "t.npz").tracks.shape == (5, 3, 2)
    artifacts.save_npz(tmp_path / "b.npz", tracks=np.zeros((5, 3, 2), np.float32), visible=np.ones((5, 3), np.uint8),
                       queries=np.zeros((3, 3), np.float32), frame_size=np.array([10, 10]))
    with pytest.raises(ArtifactError, match="'visible' has dtype uint8, expected bool"):
        artifacts.load_tracks(tmp_path / "b.npz")


@pytest.mark.parametrize("n,length", [(48, 16), (16, 16), (17, 16), (5, 2), (100, 7)])
def test_clip_plan_covers_video_with_one_frame_overlap(n, length):
    plan = ClipPlan.make(n, length, 1, seed=3, width=8, height=8, fps=24, generator={})
    assert plan.clips[0].start == 0 and plan.clips[-1].stop == n
    for a, b in zip(plan.clips, plan.clips[1:]):
        assert b.start == a.stop - 1  # the next clip starts on the previous clip's last frame
    assert all(c.stop - c.start <= length for c in plan.clips)
    assert [c.seed for c in plan.clips] == [3 + i for i in range(len(plan.clips))]
    # frames after dropping overlaps == the video's frame count
    assert sum(c.stop - c.start for c in plan.clips) - (len(plan.clips) - 1) == n
    assert ClipPlan.from_json(plan.to_json()) == plan


def test_clip_roundtrip_and_shape_check(tmp_path):
    plan = ClipPlan.make(10, 4, 1, 0, 6, 4, 24, {})
    c = plan.clips[1]
    artifacts.save_clip(tmp_path, c.index, np.full((4, 4, 6, 3), 7, np.uint8))
    assert artifacts.load_clip(tmp_path, c, 6, 4).mean() == 7
    with pytest.raises(ArtifactError, match="expected uint8"):
        artifacts.load_clip(tmp_path, c, 8, 4)
