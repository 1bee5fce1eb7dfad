"""Training data: many synthetic scenes with a held-out split (fgbg.sample.many), and `prepare`
(fgbg.training.prepare) over a folder of videos: samples, failures, resume, shards, the CLI's exit codes."""

import json
import subprocess
import sys

import numpy as np
import pytest

from fgbg.training.prepare import load_index, parse_shard, prepare, video_id
from fgbg.errors import InputError
from fgbg.sample import make_sample
from fgbg.sample.many import HOLDOUT_HUES, SEED_SPLIT, make_samples, plan_scene
from fgbg.video import probe, read_frames
from tests.conftest import cli_inproc

APP = "import sys; from fgbg.cli import app; app(sys.argv[1:], prog_name='fgbg')"
HUES = ("shirt_hue", "trousers_hue", "wall_hue", "brick_hue")


def cli(*args):
    """The two commands in their own process, as a user runs them (native logs silenced)."""
    return subprocess.run([sys.executable, "-c", APP, *map(str, args)], capture_output=True, text=True,
                          timeout=120)




def in_band(h):
    return HOLDOUT_HUES[0] <= h < HOLDOUT_HUES[1]


# ---- many scenes --------------------------------------------------------------------------------
def test_make_samples_splits_index_and_distinct_scenes(tmp_path):
    entries = make_samples(tmp_path, count=3, holdout=1, num_frames=12, size=64)
    assert [e["split"] for e in entries] == ["train", "train", "holdout"]
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["scenes"] == entries and index["holdout"] == 1
    firsts = []
    for e in entries:
        assert {"name", "split", "preset", "camera", "seed", "frames", "size"} <= set(e)
        folder = tmp_path / e["split"] / e["name"]
        assert folder == tmp_path / e["path"]
        info = probe(folder / "driving.mp4")
        assert (info.num_frames, info.width, info.height) == (12, 64, 64) == (e["frames"], e["size"], e["size"])
        assert (folder / "person.png").is_file() and (folder / "truth.npz").is_file()
        firsts.append(next(read_frames(info, chunk=1))[0].astype(int))
    assert len({e["name"] for e in entries}) == len({e["seed"] for e in entries}) == 3
    for a in range(3):
        for b in range(a + 1, 3):
            assert np.abs(firsts[a] - firsts[b]).mean() > 10  # different scenes, not near copies
    # a rerun keeps finished scenes
    mtime = (tmp_path / entries[0]["path"] / "driving.mp4").stat().st_mtime_ns
    assert make_samples(tmp_path, count=3, holdout=1, num_frames=12, size=64) == entries
    assert (tmp_path / entries[0]["path"] / "driving.mp4").stat().st_mtime_ns == mtime


def test_holdout_is_disjoint_and_varied():
    """Held-out scenes: hues inside the held-out band and seeds above SEED_SPLIT; training never."""
    train = [plan_scene(7, i, False, 8, 64)[0] for i in range(200)]
    held = [plan_scene(7, i, True, 8, 64)[0] for i in range(60)]
    assert all(not in_band(e[h]) and e["seed"] < SEED_SPLIT for e in train for h in HUES)
    assert all(in_band(e[h]) and e["seed"] >= SEED_SPLIT for e in held for h in HUES)
    assert {(e["motion"], e["camera"]) for e in train} == {(m, c) for m in ("dance", "walk")
                                                           for c in ("pan", "zoom", "shake", "static")}
    assert {e["objects"] for e in train} == {0, 1, 2, 3}
    assert plan_scene(7, 3, False, 8, 64)[0] == train[3]  # a pure function of (seed, index, split)


def test_make_sample_overrides(tmp_path):
    p = make_sample(tmp_path, preset="walk", seed=1, num_frames=4, width=64, height=64, audio=False,
                    camera="static", num_objects=0)
    with np.load(p.truth) as t:
        np.testing.assert_allclose(t["camera"], np.tile([[1, 0, 0], [0, 1, 0]], (4, 1, 1)), atol=1e-5)
    with pytest.raises(InputError):
        make_sample(tmp_path, camera="dolly")


def test_samples_cli_rejects_bad_counts(tmp_path, monkeypatch):
    r = cli_inproc(monkeypatch, "sample", tmp_path, "--count", "2", "--holdout", "3")
    assert r.exit_code == 2 and "error:" in r.output


# ---- prepare ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Two small driving videos (one in a sub-folder with a space in its name) and a corrupt file."""
    root = tmp_path_factory.mktemp("videos")
    for sub, preset in (("a", "dance"), ("b c", "walk")):
        make_sample(root / sub, preset=preset, seed=3, num_frames=12, width=160, height=128, audio=False)
    (root / "bad.mp4").write_bytes(b"not a video")
    return root


@pytest.fixture(scope="module")
def first(videos, tmp_path_factory):
    ds = tmp_path_factory.mktemp("ds") / "dataset"
    return ds, cli("prepare", videos, ds, "--size", "64")


def test_prepare_writes_samples_and_records_failure(first):
    ds, r = first
    assert r.returncode == 1, r.stderr  # a video failed: exit 1, after doing the others
    assert r.stdout.strip() == str(ds)
    assert "2 done" in r.stderr and "1 failed" in r.stderr and "bad.mp4" in r.stderr
    failed = json.loads((ds / "failed-0-of-1.json").read_text())
    assert len(failed) == 1 and failed[0]["path"] == "bad.mp4" and failed[0]["id"] == video_id("bad.mp4")
    assert failed[0]["what"] and failed[0]["cause"]
    index = load_index(ds)
    assert [m["source"] for m in index] == ["a/driving.mp4", "b c/driving.mp4"]
    for m in index:
        d = ds / "videos" / m["id"]
        assert m["id"] == video_id(m["source"]) and " " not in m["id"] and "/" not in m["id"]
        assert (m["width"], m["height"], m["frames"], m["size"]) == (160, 128, 12, 64)
        assert set(m["backends"]) == {"pose", "segment", "track-bg"} and m["fps"] == 24.0
        assert json.loads((d / "meta.json").read_text()) == m
        assert np.load(d / "frames.npy").shape == (12, 64, 64, 3)
        masks = np.load(d / "masks.npy")
        assert masks.shape == (12, 64, 64) and masks.dtype == bool and masks.any()
        with np.load(d / "pose.npz") as p:
            assert p["keypoints"].shape == (12, 133, 2) and p["scores"].shape == (12, 133)
            body = p["scores"][:, :17] > 0.5  # the body lies inside the centred square crop
            assert ((p["keypoints"][:, :17][body] > -1) & (p["keypoints"][:, :17][body] < 64)).all()
        with np.load(d / "tracks.npz") as t:
            n = t["tracks"].shape[1]
            assert t["tracks"].shape == (12, n, 2) and t["visible"].shape == (12, n) and n > 0
            assert t["origin"].shape == (n, 2)
            vis = t["visible"][0]
            np.testing.assert_allclose(t["origin"][vis], t["tracks"][0][vis], atol=1e-4)
    assert not any((ds / "work").iterdir())  # stage caches of finished videos are gone


def test_prepare_rerun_skips_done(first, videos):
    ds, _ = first
    metas = sorted((ds / "videos").glob("*/meta.json"))
    before = [m.stat().st_mtime_ns for m in metas]
    r = cli("prepare", videos, ds, "--size", "64")
    assert r.returncode == 1 and "0 done, 2 skipped" in r.stderr and "1 failed" in r.stderr
    assert [m.stat().st_mtime_ns for m in metas] == before
    assert len(load_index(ds)) == 2


def test_shards_are_disjoint_and_merge(videos, tmp_path):
    ds = tmp_path / "ds"
    s0 = prepare(videos, ds, shard=(0, 2), size=64)
    s1 = prepare(videos, ds, shard=(1, 2), size=64)
    # sorted by relative path: a/driving.mp4, b c/driving.mp4, bad.mp4 (" " < "a");
    # shard 0 takes positions 0 and 2, shard 1 position 1
    assert [f["path"] for f in s0["failed"]] == ["bad.mp4"] and not s1["failed"]
    assert s0["done"] == [video_id("a/driving.mp4")] and s1["done"] == [video_id("b c/driving.mp4")]
    assert (s0["videos"], s1["videos"]) == (2, 1)
    assert (ds / "index-0-of-2.jsonl").is_file() and (ds / "index-1-of-2.jsonl").is_file()
    assert json.loads((ds / "failed-1-of-2.json").read_text()) == []
    assert [m["id"] for m in load_index(ds)] == [video_id("a/driving.mp4"), video_id("b c/driving.mp4")]


@pytest.mark.parametrize("shard", ["2/2", "1/0", "a/b", "-1/2", "1", "0/2/3"])
def test_bad_shard_is_rejected(shard, videos, tmp_path, monkeypatch):
    r = cli_inproc(monkeypatch, "prepare", videos, tmp_path / "ds", "--shard", shard)
    assert r.exit_code == 2 and "error: bad" in r.output and "hint:" in r.output
    assert not (tmp_path / "ds").exists()


def test_parse_shard_and_missing_folder(tmp_path):
    assert parse_shard("3/8") == (3, 8) and parse_shard(" 0 / 1 ") == (0, 1)
    with pytest.raises(InputError):
        prepare(tmp_path / "nope", tmp_path / "ds")
    with pytest.raises(InputError):  # a folder without videos
        prepare(tmp_path, tmp_path / "ds")
