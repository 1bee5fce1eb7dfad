"""The engines (fgbg.engines): `prepare` and `batch` on the local engine and on Ray.

Tests marked `ray` run on a local Ray cluster this module starts (2 CPUs, no dashboard) and stops
(`make test-ray`); the unmarked ones run in the default suite without ray. Sample videos are made
at 128 px (at 64 px mediapipe misses the person in most scenes) and prepared at 64 px.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from typer.testing import CliRunner

from fgbg.sample import make_sample
from fgbg.training.prepare import load_index, prepare, video_id

pytestmark = pytest.mark.timeout(600)  # a Ray call that waits for resources never there fails

FILES = ("frames.npy", "masks.npy", "pose.npz", "tracks.npz")
SCENES = (("a", "dance", 0), ("b", "dance", 1), ("c", "walk", 0))
APP = "import sys; from fgbg.cli import app; app(sys.argv[1:], prog_name='fgbg')"


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-c", APP, *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Three small driving videos (with their photos) and a file that is no video."""
    root = tmp_path_factory.mktemp("videos")
    for sub, preset, seed in SCENES:
        make_sample(root / sub, preset=preset, seed=seed, num_frames=16, width=128, height=128,
                    audio=False)
    (root / "bad.mp4").write_bytes(b"not a video")
    return root


GOOD = [video_id(f"{sub}/driving.mp4") for sub, _, _ in SCENES]


@pytest.fixture(scope="module")
def local_ds(videos, tmp_path_factory):
    ds = tmp_path_factory.mktemp("local") / "ds"
    summary = prepare(videos, ds, size=64)
    assert summary["done"] == GOOD and [f["path"] for f in summary["failed"]] == ["bad.mp4"]
    return ds


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    # 2 GPUs declared (there are none): Ray still assigns them, which is what the workers read
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def assert_same_dataset(a, b, ids=GOOD):
    for vid in ids:
        for name in FILES:
            assert (a / "videos" / vid / name).read_bytes() == (b / "videos" / vid / name).read_bytes(), \
                f"{vid}/{name} differs"
        # meta.json holds no timestamps; `path` is the source's absolute path (the same videos here)
        assert json.loads((a / "videos" / vid / "meta.json").read_text()) == \
            json.loads((b / "videos" / vid / "meta.json").read_text())
    assert load_index(a) == load_index(b)


def no_half_samples(ds):
    """videos/ holds only complete samples (meta.json is written last, the folder renamed in)."""
    return all((d / "meta.json").is_file() for d in (ds / "videos").iterdir())


# ---- local engine (default suite) ----------------------------------------------------------------
def test_models_reused_within_a_batch_give_the_same_bytes(videos, local_ds, tmp_path, monkeypatch):
    """BATCH 1: a fresh model per stage per video (the pool holds one model); the default batch
    builds each stage's model once for the three videos and must give the same bytes."""
    import fgbg.backends as backends
    import fgbg.training.prepare as prep

    built = []
    construct = backends._construct
    monkeypatch.setattr(backends, "_construct", lambda *a: built.append(a[:2]) or construct(*a))
    ds = tmp_path / "ds"
    monkeypatch.setattr(prep, "BATCH", 1)
    prepare(videos, ds, size=64)
    assert len(built) == 9  # pose, segment, track for each of the three videos
    assert_same_dataset(ds, local_ds)
    built.clear()
    monkeypatch.setattr(prep, "BATCH", 8)
    prepare(videos, tmp_path / "ds2", size=64)
    assert sorted(built) == [("pose", "mediapipe"), ("segment", "mediapipe"), ("track", "lk")]


def test_sample_killed_while_written_is_never_read_as_done(videos, local_ds, tmp_path):
    """kill -9 while a sample is half-written: videos/ holds no trace of it; the rerun completes
    it with the same bytes."""
    ds = tmp_path / "ds"
    code = ("import os, sys, fgbg.artifacts as a; from pathlib import Path;"
            "from fgbg.training.prepare import prepare\n"
            "def die(self, meta): os.kill(os.getpid(), 9)\n"
            "a.PreparedWriter.finish = die\n"
            f"prepare(Path({str(videos)!r}), Path({str(ds)!r}), size=64)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=300)
    assert r.returncode == -signal.SIGKILL
    assert not any((ds / "videos").iterdir()) and load_index(ds) == []
    assert (ds / "work" / GOOD[0] / "sample.tmp" / "frames.npy").is_file()  # the half-written one
    summary = prepare(videos, ds, size=64)
    assert summary["done"] == GOOD and no_half_samples(ds)
    assert_same_dataset(ds, local_ds)


def test_engine_options_are_checked_first(videos, tmp_path, monkeypatch):
    monkeypatch.delenv("FGBG_VERBOSE", raising=False)
    from fgbg.cli import app

    for args in (["--engine", "spark"], ["--address", "auto"], ["--workers", "2"],
                 ["--engine", "ray", "--workers", "0"], ["--engine", "ray", "--device", "cuda:1"],
                 ["--engine", "ray", "--device", "cuda"], ["--engine", "ray", "--gpus-per-worker", "-1"]):
        r = CliRunner().invoke(app, ["prepare", str(videos), str(tmp_path / "ds"), *args, "-v"])
        assert r.exit_code == 2 and "error:" in r.output and "hint:" in r.output, (args, r.output)
    assert not (tmp_path / "ds").exists()


def jobs_file(videos, folder, bad="missing.mp4"):
    """Three jobs: two good ones (the second with its own clip length and seed) and one whose
    driving video does not exist. Paths relative to the file's folder."""
    folder.mkdir(parents=True, exist_ok=True)
    rel = os.path.relpath(videos, folder)
    (folder / "jobs.csv").write_text(
        "driving,ref,output,clip_length,seed\n"
        f"{rel}/a/driving.mp4,{rel}/a/person.png,out/a.mp4,,\n"
        f"{rel}/c/driving.mp4,{rel}/c/person.png,out/c.mp4,8,3\n"
        f"{rel}/{bad},{rel}/a/person.png,out/bad.mp4,,\n")
    (folder / "out").mkdir(exist_ok=True)
    return folder / "jobs.csv"


def test_batch_runs_jobs_and_reports_each(videos, tmp_path):
    from fgbg.video import probe

    jobs = jobs_file(videos, tmp_path / "jobs")
    r = cli("batch", jobs, "--backend", "warp", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 3, r.stdout
    assert lines[0].startswith(f"[1/3] done {tmp_path / 'jobs/out/a.mp4'} (")
    assert lines[1].startswith(f"[2/3] done {tmp_path / 'jobs/out/c.mp4'}")
    assert lines[2].startswith(f"[3/3] failed {tmp_path / 'jobs/out/bad.mp4'}: video not found")
    assert "1 failed" in r.stderr and "hint" in r.stderr
    assert sorted(p.name for p in (tmp_path / "jobs/out").iterdir()) == ["a.mp4", "c.mp4"]
    for name in ("a", "c"):
        info = probe(tmp_path / "jobs/out" / f"{name}.mp4")
        assert (info.num_frames, info.width, info.height) == (16, 128, 128)
    # both videos are called driving.mp4: each job has its own work dir, so a rerun is all cached
    r = cli("batch", jobs, "--backend", "warp", cwd=tmp_path)
    assert r.returncode == 1 and [line.split()[1] for line in r.stdout.splitlines()] == \
        ["cached", "cached", "failed"]


def test_batch_rejects_a_bad_jobs_file(tmp_path, monkeypatch):
    monkeypatch.delenv("FGBG_VERBOSE", raising=False)
    from fgbg.cli import app

    (tmp_path / "j.csv").write_text("driving,ref,output,colour\na.mp4,p.png,o.mp4,red\n")
    (tmp_path / "j.jsonl").write_text('{"driving": "a.mp4"\n')
    (tmp_path / "h.csv").write_text("driving,ref\na.mp4,p.png\n")
    for name in ("j.csv", "j.jsonl", "h.csv", "none.csv"):
        r = CliRunner().invoke(app, ["batch", str(tmp_path / name), "-v"])
        assert r.exit_code == 2 and "error:" in r.output, r.output
    # a bad value fails its own job only
    from fgbg.batch import plan, read_jobs

    (tmp_path / "k.jsonl").write_text('{"driving": "a.mp4", "ref": "p.png", "output": "o.mp4", '
                                      '"num_points": 500}\n{"driving": "b.mp4", "ref": "p.png", '
                                      '"output": "o2.mp4", "clip-length": "x"}\n')
    specs = plan(read_jobs(tmp_path / "k.jsonl"), tmp_path, defaults={})
    assert [s["error"]["what"] for s in specs] == ["--num-points 500 is out of range",
                                                    "clip_length 'x' is not a whole number"]


# ---- Ray ----------------------------------------------------------------------------------------
@pytest.mark.ray
def test_ray_prepare_equals_local_and_rerun_is_cached(ray_cluster, videos, local_ds, tmp_path):
    ds = tmp_path / "ds"
    start = time.perf_counter()
    summary = prepare(videos, ds, size=64, engine="ray", workers=2)
    seconds = time.perf_counter() - start
    assert summary["done"] == GOOD, summary
    # the bad video is recorded exactly as the local engine records it; the others finished
    assert json.loads((ds / "failed-0-of-1.json").read_text()) == \
        json.loads((local_ds / "failed-0-of-1.json").read_text())
    assert_same_dataset(ds, local_ds)
    assert not any((ds / "work").iterdir()) and no_half_samples(ds)
    mtimes = [p.stat().st_mtime_ns for p in sorted((ds / "videos").glob("*/meta.json"))]
    again = prepare(videos, ds, size=64, engine="ray", workers=2)
    assert again["done"] == [] and again["skipped"] == GOOD and len(again["failed"]) == 1
    assert [p.stat().st_mtime_ns for p in sorted((ds / "videos").glob("*/meta.json"))] == mtimes
    print(f"ray prepare of 4 videos: {seconds:.1f}s")


@pytest.mark.ray
def test_ray_worker_killed_mid_video_then_rerun_completes(ray_cluster, videos, local_ds, tmp_path):
    """kill -9 the worker once a video's pose is committed (its pid is in the video's work-dir
    lock): that batch's unfinished videos are recorded as failed, the other worker's finish; videos/
    holds no partial sample; the rerun resumes from the stage caches and equals a clean run."""
    ds = tmp_path / "ds"
    box = {}
    thread = threading.Thread(target=lambda: box.update(s=prepare(videos, ds, size=64, engine="ray",
                                                                  workers=2, keep_work=True)))
    thread.start()
    target = ds / "work" / GOOD[0]  # batches of 2: [a, b] on one worker, [c, bad] on the other
    deadline = time.monotonic() + 120
    while not (target / "pose" / "record.json").is_file():
        assert time.monotonic() < deadline and thread.is_alive(), "the first video's pose never finished"
        time.sleep(0.01)
    pid = int((target / ".lock").read_text())
    assert pid != os.getpid()
    os.kill(pid, signal.SIGKILL)
    thread.join(180)
    summary = box["s"]
    died = [f for f in summary["failed"] if "worker died" in f["what"]]
    assert GOOD[0] in [f["id"] for f in died] and set(summary["done"]) <= {GOOD[1], GOOD[2]}
    assert GOOD[2] in summary["done"]  # the other worker's batch finished
    assert no_half_samples(ds) and not (ds / "videos" / GOOD[0]).exists()
    assert GOOD[0] not in [m["id"] for m in load_index(ds)]
    pose_record = (target / "pose" / "record.json").stat().st_mtime_ns
    rerun = prepare(videos, ds, size=64, engine="ray", workers=2, keep_work=True)
    assert set(rerun["done"]) | set(rerun["skipped"]) == set(GOOD)
    assert GOOD[0] in rerun["done"]
    assert (target / "pose" / "record.json").stat().st_mtime_ns == pose_record  # resumed, not redone
    assert_same_dataset(ds, local_ds)


@pytest.mark.ray
def test_ray_batch(ray_cluster, videos, tmp_path, monkeypatch):
    from fgbg.batch import batch

    jobs = jobs_file(videos, tmp_path / "jobs")
    monkeypatch.chdir(tmp_path)
    results = batch(jobs, {"backend": "warp"}, engine="ray", workers=2)
    assert [r["status"] for r in results] == ["done", "done", "failed"]
    assert "video not found" in results[2]["what"]
    assert sorted(p.name for p in (tmp_path / "jobs/out").iterdir()) == ["a.mp4", "c.mp4"]
    again = batch(jobs, {"backend": "warp"}, engine="ray", workers=2)
    assert [r["status"] for r in again] == ["cached", "cached", "failed"]


@pytest.mark.ray
def test_ray_worker_device_comes_from_the_gpu_assignment(ray_cluster):
    """A worker's device is the GPU Ray gave it (CUDA_VISIBLE_DEVICES narrowed to it: cuda:0),
    the CPU without a share; the default worker count is what the shares and CPUs allow."""
    from fgbg.engines import Worker, _worker_count

    ray = ray_cluster
    shared = ray.remote(num_cpus=0, num_gpus=0.5)(Worker)
    whole = ray.remote(num_cpus=0, num_gpus=1)(Worker)
    cpu = ray.remote(num_cpus=0)(Worker)
    actors = [shared.remote("auto"), shared.remote("auto"), whole.remote("auto"), cpu.remote("auto")]
    try:
        infos = ray.get([a.info.remote() for a in actors], timeout=120)
    finally:
        for a in actors:
            ray.kill(a)
    assert [i["device"] for i in infos] == ["cuda:0", "cuda:0", "cuda:0", "cpu"]
    assert len(infos[0]["gpu_ids"]) == len(infos[2]["gpu_ids"]) == 1 and infos[3]["gpu_ids"] == []
    assert infos[2]["gpu_ids"] != infos[0]["gpu_ids"] or infos[2]["gpu_ids"] != infos[1]["gpu_ids"]
    assert _worker_count(None, 0.5, 10, None) == 2  # 4 GPU shares, but 2 CPUs
    assert _worker_count(None, 2, 10, None) == 1 and _worker_count(None, 0, 1, None) == 1
