"""End to end through the CLI on the built-in sample: caching, resume, output."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import SAMPLE_FRAMES, fgbg, records
from fgbg.video import probe

STAGES = {"ref", "pose", "segment", "track-bg", "generate", "stitch"}


@pytest.fixture(scope="module")
def first_run(sample, tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    wd, out = root / "wd", root / "out.mp4"
    r = fgbg("run", sample.driving, "--ref", sample.ref, "-w", wd, "-o", out, "--clip-length", "8")
    assert r.returncode == 0, r.stderr
    return wd, out, r


def test_run_writes_video_with_frames_fps_audio(first_run, sample):
    wd, out, r = first_run
    assert r.stdout.strip() == str(out)  # stdout carries only the result path
    info, src = probe(out), probe(sample.driving)
    assert (info.num_frames, info.fps, info.has_audio) == (src.num_frames, src.fps, True)
    assert (info.width, info.height) == (src.width, src.height)
    assert set(records(wd)) == STAGES


def test_second_run_does_no_stage_work(first_run, sample):
    wd, out, _ = first_run
    before = records(wd)
    t0 = time.perf_counter()
    r = fgbg("run", sample.driving, "--ref", sample.ref, "-w", wd, "-o", out, "--clip-length", "8")
    assert r.returncode == 0, r.stderr
    assert records(wd) == before
    assert r.stderr.count("cached") >= len(STAGES) and " ran" not in r.stderr


HEAVY = ("torch", "sam2", "onnxruntime", "diffusers", "transformers", "segment_anything", "mediapipe")


def test_cached_run_imports_nothing_heavy(first_run, sample):
    """Resolving `auto` reads the model store and asks importlib whether a package is installed;
    a fully cached run loads no model code (with the full test install, sam2 alone took 4 s)."""
    wd, out, _ = first_run
    code = ("import sys\nfrom fgbg.cli import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
            f"print('heavy:', sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
            "sys.exit(code)\n")
    r = subprocess.run([sys.executable, "-c", code, "run", str(sample.driving), "--ref", str(sample.ref),
                        "-w", str(wd), "-o", str(out), "--clip-length", "8"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert " ran" not in r.stderr
    assert "heavy: []" in r.stderr, r.stderr


def test_changed_track_param_reruns_only_downstream(first_run, sample, tmp_path):
    wd, _, _ = first_run
    before = records(wd)
    r = fgbg("run", sample.driving, "--ref", sample.ref, "-w", wd, "-o", tmp_path / "o.mp4",
             "--clip-length", "8", "--num-points", "20")
    assert r.returncode == 0, r.stderr
    after = records(wd)
    changed = {s for s in STAGES if after[s] != before[s]}
    assert changed == {"track-bg", "generate", "stitch"}


def test_generator_key_ignores_what_the_generator_does_not_use(sample, tmp_path):
    """auto resolving to warp and an explicit --backend warp are the same work; diffusion-only
    options (steps, guidance, dtype) change nothing for warp: nothing reruns."""
    wd = tmp_path / "wd"  # its own: the module's workdir is shared by order-dependent tests
    args = [sample.driving, "--ref", sample.ref, "-w", wd, "-o", tmp_path / "o.mp4", "--clip-length", "8"]
    assert fgbg("run", *args).returncode == 0
    before = records(wd)
    r = fgbg("run", *args, "--backend", "warp", "--steps", "5", "--guidance-scale", "2", "--dtype", "fp32")
    assert r.returncode == 0, r.stderr
    assert records(wd) == before
    r = fgbg("run", *args, "--backend", "warp", "--seed", "3")
    assert r.returncode == 0, r.stderr
    assert {s for s in STAGES if records(wd)[s] != before[s]} == {"generate", "stitch"}


def test_force_one_stage(first_run, sample, tmp_path):
    wd, _, _ = first_run
    before = records(wd)
    r = fgbg("run", sample.driving, "--ref", sample.ref, "-w", wd, "-o", tmp_path / "o.mp4",
             "--clip-length", "8", "--num-points", "20", "--force", "segment")
    assert r.returncode == 0, r.stderr
    after = records(wd)
    # segment reran and produced the same masks, so track-bg's key (which hashes segment's key,
    # not its bytes) is unchanged: only the forced stage runs
    assert {s for s in STAGES if after[s] != before[s]} == {"segment"}


def test_corrupt_cache_file_is_recomputed(first_run, sample, tmp_path):
    wd, _, _ = first_run
    assert fgbg("track-bg", sample.driving, "-w", wd).returncode == 0  # cached with these params
    npz = wd / "track-bg" / "tracks.npz"
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0xFF
    npz.write_bytes(bytes(data))
    r = fgbg("track-bg", sample.driving, "-w", wd)
    assert r.returncode == 0, r.stderr
    assert "corrupt" in r.stderr and "recomputing" in r.stderr
    assert r.stdout.strip() == str(npz)
    from fgbg.artifacts import load_tracks

    load_tracks(npz)


def test_stage_alone_in_fresh_workdir_prints_path(sample, tmp_path):
    r = fgbg("segment", sample.driving, "-w", tmp_path / "wd", "-q")
    assert r.returncode == 0, r.stderr
    masks = Path(r.stdout.strip())
    assert masks == tmp_path / "wd" / "segment" / "masks" and (masks / "meta.json").is_file()
    assert set(records(tmp_path / "wd")) == {"pose", "segment"}


def test_killed_generate_resumes_to_identical_bytes(sample, tmp_path):
    common = [sample.driving, "--ref", sample.ref, "--clip-length", "4"]
    ref_run = fgbg("run", *common, "-w", tmp_path / "a", "-o", tmp_path / "a.mp4")
    assert ref_run.returncode == 0, ref_run.stderr

    wd = tmp_path / "b"
    proc = subprocess.Popen([sys.executable, "-m", "fgbg.cli", "run", *map(str, common), "-w", str(wd),
                             "-o", str(tmp_path / "b.mp4")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "FGBG_CLIP_DELAY_S": "0.3"})
    deadline = time.time() + 240
    while time.time() < deadline:
        partial = list(wd.glob(".generate.partial-*/clips/0002.npy"))
        if partial:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert partial, "generate never reached clip 2"
    done = sorted(p.name for p in partial[0].parent.glob("*.npy"))
    n_clips = len(range(0, SAMPLE_FRAMES - 1, 3))
    assert 3 <= len(done) < n_clips
    assert not (wd / "generate").exists()  # no completion record, no result

    r = fgbg("run", *common, "-w", wd, "-o", tmp_path / "b.mp4")
    assert r.returncode == 0, r.stderr
    assert "resumed" in r.stderr
    assert (tmp_path / "b.mp4").read_bytes() == (tmp_path / "a.mp4").read_bytes()
    for clip in sorted((tmp_path / "a" / "generate" / "clips").glob("*.npy")):
        assert clip.read_bytes() == (wd / "generate" / "clips" / clip.name).read_bytes()


def test_interrupt_exits_130_with_resume_hint(sample, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "fgbg.cli", "run", str(sample.driving), "--ref",
                             str(sample.ref), "-w", str(tmp_path / "wd"), "-o", str(tmp_path / "o.mp4"),
                             "--clip-length", "4"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "FGBG_CLIP_DELAY_S": "0.3"})
    deadline = time.time() + 240
    while time.time() < deadline and not list((tmp_path / "wd").glob(".generate.partial-*/clips/0000.npy")):
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "error: interrupted" in err and "hint: rerun the same command" in err
    assert "Traceback" not in err


def test_no_audio_restitches_only(first_run, sample, tmp_path):
    wd, _, _ = first_run
    r = fgbg("run", sample.driving, "--ref", sample.ref, "-w", wd, "-o", tmp_path / "silent.mp4",
             "--clip-length", "8", "--no-audio")
    assert r.returncode == 0, r.stderr
    info = probe(tmp_path / "silent.mp4")
    assert not info.has_audio and info.num_frames == SAMPLE_FRAMES
