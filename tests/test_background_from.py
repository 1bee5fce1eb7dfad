"""--background-from OTHER.mp4 (issue 11, mixed sources): the person moves as in the driving video,
the background as in OTHER (its own pose, masks and tracks, cached in a work directory of its own)."""

import json

import numpy as np
import pytest

from tests.conftest import fgbg, video_frames as frames


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """A zooming walk (16 frames, the driving video), a panning dance (24 frames, the background
    source) and a blurred-noise background image (a texture whose shifts can be measured)."""
    import cv2

    from fgbg.sample import make_sample
    from fgbg.video import write_image

    root = tmp_path_factory.mktemp("from")
    walk = make_sample(root / "walk", preset="walk", seed=0, num_frames=16, width=256, height=256, audio=False)
    dance = make_sample(root / "dance", preset="dance", seed=0, num_frames=24, width=256, height=256, audio=False)
    noise = cv2.GaussianBlur(np.random.default_rng(0).random((256, 256, 3)).astype(np.float32), (0, 0), 3)
    noise = (noise - noise.min()) / (noise.max() - noise.min()) * 255
    write_image(root / "noise.png", noise.astype(np.uint8))
    return walk, dance, root / "noise.png"


def shift(video, t, rows=slice(0, 40)):
    """(dx, dy) of the background band from frame 0 to frame t (phase correlation)."""
    import cv2

    grey = [cv2.cvtColor(video[i, rows], cv2.COLOR_RGB2GRAY) for i in (0, t)]
    return np.array(cv2.phaseCorrelate(*grey)[0])


def run(walk, tmp_path, name, *extra):
    r = fgbg("run", walk.driving, "--ref", walk.ref, "-w", tmp_path / name, "-o", tmp_path / f"{name}.mp4",
             "--backend", "warp", "--clip-length", "8", "--tracker", "lk", "--pose-backend", "mediapipe",
             "--seg-backend", "mediapipe", *extra, env={"COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    return r


def test_the_background_moves_like_the_other_video_and_the_person_like_the_driving_one(videos, tmp_path):
    walk, dance, noise = videos
    r = run(walk, tmp_path, "mixed", "--background-from", dance.driving, "--background-image", noise)
    assert "track-bg (bg video)" in r.stderr and "from driving.mp4" in r.stderr
    run(walk, tmp_path, "own", "--background-image", noise)
    mixed, own = frames(tmp_path / "mixed.mp4"), frames(tmp_path / "own.mp4")
    camera = np.load(dance.truth)["camera"]  # (F, 2, 3): the dance's pan, frame 0 -> frame t
    for t in (4, 8, 12, 15):
        got = shift(mixed, t)
        assert np.abs(got - camera[t][:, 2]).max() < 3.0, (t, got, camera[t][:, 2])
    assert np.abs(shift(own, 8) - camera[8][:, 2]).max() > 20  # the walk's own zoom is another motion
    # the person: the driving video's pose in both runs, so the outputs agree where the person is
    ref_mask = np.load(tmp_path / "own" / "ref" / "ref.npz")["mask"].astype(bool)
    same = (np.abs(mixed - own).max(-1) < 20).mean(axis=(1, 2))
    assert (same > 0.6 * ref_mask.mean()).all(), (same.min(), ref_mask.mean())
    pose_mixed = np.load(tmp_path / "mixed" / "pose" / "pose.npz")["keypoints"]
    np.testing.assert_array_equal(pose_mixed, np.load(tmp_path / "own" / "pose" / "pose.npz")["keypoints"])


def test_the_other_video_is_cached_and_keyed_by_content(videos, tmp_path):
    import shutil

    walk, dance, _ = videos
    run(walk, tmp_path, "w", "--background-from", dance.driving)
    key = json.loads((tmp_path / "w" / "track-bg" / "record.json").read_text())["key"]
    shutil.copy(dance.driving, tmp_path / "copy.mp4")
    r = run(walk, tmp_path, "w", "--background-from", tmp_path / "copy.mp4")
    assert json.loads((tmp_path / "w" / "track-bg" / "record.json").read_text())["key"] == key
    rows = [line for line in r.stderr.splitlines() if line.strip().startswith("track-bg")]
    assert len(rows) == 2 and all("cached" in line for line in rows), rows  # its own and OTHER's
    run(walk, tmp_path, "w")  # the driving video's own tracks: another key
    assert json.loads((tmp_path / "w" / "track-bg" / "record.json").read_text())["key"] != key


def test_bad_background_videos_are_refused_before_any_work(videos, tmp_path):
    walk, dance, _ = videos
    common = ["run", dance.driving, "--ref", dance.ref, "-w", tmp_path / "w", "-o", tmp_path / "x.mp4",
              "--backend", "warp"]
    r = fgbg(*common, "--background-from", walk.driving)  # 16 frames for a 24-frame driving video
    assert r.returncode == 2 and "is shorter than the driving video" in r.stderr
    assert "at least 24 frames" in r.stderr and not (tmp_path / "w" / "pose").exists()
    r = fgbg(*common, "--background-from", tmp_path / "missing.mp4")
    assert r.returncode == 2 and "video not found" in r.stderr
    r = fgbg(*common, "--background-from", walk.driving, "--camera", "pan:1,0")
    assert r.returncode == 2 and "keep one of them" in r.stderr
