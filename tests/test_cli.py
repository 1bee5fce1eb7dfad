"""Every bad input: its exit code, an error/cause/hint, no traceback, nothing computed lost."""

import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import fgbg, records
from fgbg.video import probe, read_frames, write_image, write_video


def _assert_clean_error(r, code):
    assert r.returncode == code, (r.returncode, r.stderr)
    assert "error: " in r.stderr and "hint: " in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stdout == ""


def test_help_is_fast_and_lists_commands():
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "fgbg.cli", "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    for cmd in ("extract-pose", "segment", "track-bg", "generate", "stitch", "run", "sample", "models"):
        assert cmd in r.stdout
    assert time.perf_counter() - t0 < 3.0  # generous: the point is no torch/mediapipe import
    r = subprocess.run([sys.executable, "-c", "import sys, fgbg.cli; "
                        "print(sorted(m for m in ('cv2','mediapipe','decord','torch') if m in sys.modules))"],
                       capture_output=True, text=True)
    assert r.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, sample):
    d = tmp_path_factory.mktemp("bad")
    (d / "empty.mp4").write_bytes(b"")
    full = sample.driving.read_bytes()
    (d / "truncated.mp4").write_bytes(full[: len(full) // 2])
    (d / "notes.txt").write_text("not a video\n" * 50)
    frames = np.concatenate(list(read_frames(probe(sample.driving), chunk=64)))
    write_video(d / "one.mp4", frames[:1], 24)
    # the sample's frames with the person painted out: a video without a person
    bg = np.full_like(frames[:12], 90)
    bg[:, ::8] = 200
    write_video(d / "noperson.mp4", bg, 24)
    write_image(d / "noperson.png", bg[0])
    return d


@pytest.mark.parametrize("name,cause", [
    ("missing.mp4", "no file at that path"),
    ("empty.mp4", "zero bytes"),
    ("truncated.mp4", "damaged or was cut short"),
    ("notes.txt", "not a decodable video"),
    ("one.mp4", "at least 2 frames"),
])
def test_bad_driving_video(bad_files, sample, tmp_path, name, cause):
    r = fgbg("run", bad_files / name, "--ref", sample.ref, "-w", tmp_path / "wd", "-o", tmp_path / "o.mp4")
    _assert_clean_error(r, 2)
    assert cause in r.stderr


def test_image_given_as_video(sample, tmp_path):
    r = fgbg("extract-pose", sample.ref, "-w", tmp_path / "wd")
    _assert_clean_error(r, 2)
    assert "is an image, not a video" in r.stderr and "--ref" in r.stderr


def test_video_without_person(bad_files, tmp_path):
    r = fgbg("extract-pose", bad_files / "noperson.mp4", "-w", tmp_path / "wd")
    _assert_clean_error(r, 2)
    assert "no person found" in r.stderr
    assert records(tmp_path / "wd") == {}  # nothing half-written is left as a result


def test_reference_without_person_fails_before_video_work(bad_files, sample, tmp_path):
    r = fgbg("run", sample.driving, "--ref", bad_files / "noperson.png", "-w", tmp_path / "wd",
             "-o", tmp_path / "o.mp4")
    _assert_clean_error(r, 2)
    assert "no person found in the reference photo" in r.stderr
    assert "pose" not in records(tmp_path / "wd")


def test_bad_reference_files(bad_files, sample, tmp_path):
    for ref, what in ((bad_files / "nothere.png", "not found"), (bad_files / "notes.txt", "cannot read")):
        r = fgbg("run", sample.driving, "--ref", ref, "-w", tmp_path / "wd", "-o", tmp_path / "o.mp4")
        _assert_clean_error(r, 2)
        assert what in r.stderr


@pytest.mark.parametrize("out,cause", [("/proc/fgbg-out.mp4", "not writable"),
                                       ("{tmp}/no/such/dir/o.mp4", "does not exist"),
                                       ("{tmp}/o.avi", "not an .mp4")])
def test_unwritable_output_fails_before_any_work(sample, tmp_path, out, cause):
    r = fgbg("run", sample.driving, "--ref", sample.ref, "-w", tmp_path / "wd", "-o", out.format(tmp=tmp_path))
    _assert_clean_error(r, 2)
    assert cause in r.stderr
    assert not (tmp_path / "wd").exists()


def test_locked_workdir(sample, tmp_path):
    from fgbg.workdir import Workdir

    with Workdir(tmp_path / "wd"):
        r = fgbg("extract-pose", sample.driving, "-w", tmp_path / "wd")
    _assert_clean_error(r, 2)
    assert "is in use" in r.stderr and "another fgbg process" in r.stderr


@pytest.mark.parametrize("args,what", [
    (["--num-points", "60"], "--num-points 60 is out of range"),
    (["--clip-length", "1"], "--clip-length 1 is too short"),
    (["--tracker", "nope"], "unknown track backend 'nope'"),
    (["--force", "nope"], "unknown stage 'nope'"),
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--crf", "99"], "--crf 99 is out of range"),
    (["--width", "1"], "--width 1 is out of range"),
])
def test_bad_options(sample, tmp_path, args, what):
    r = fgbg("run", sample.driving, "--ref", sample.ref, "-w", tmp_path / "wd", "-o", tmp_path / "o.mp4", *args)
    _assert_clean_error(r, 2)
    assert what in r.stderr


def test_missing_ref_for_generate(sample, tmp_path):
    r = fgbg("generate", sample.driving, "-w", tmp_path / "wd")
    _assert_clean_error(r, 2)
    assert "--ref" in r.stderr


def test_odd_frame_size(sample, tmp_path):
    frames = np.concatenate(list(read_frames(probe(sample.driving), chunk=64)))[:16, :-1, :-1]
    odd = write_video(tmp_path / "odd.mp4", frames, 24)  # the writer itself crops to even...
    # ...so make the odd-sized file with ffmpeg's scaler directly
    from fgbg.video import ffmpeg_exe

    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(odd), "-vf", "scale=255:255",
                    "-c:v", "libx264", "-pix_fmt", "yuv444p", str(tmp_path / "odd255.mp4")], check=True)
    assert probe(tmp_path / "odd255.mp4").width == 255
    r = fgbg("run", tmp_path / "odd255.mp4", "--ref", sample.ref, "-w", tmp_path / "wd",
             "-o", tmp_path / "o.mp4", "--clip-length", "8")
    assert r.returncode == 0, r.stderr
    info = probe(tmp_path / "o.mp4")
    assert (info.width, info.height, info.num_frames) == (254, 254, 16)
    assert "even" in r.stderr


def test_models_list():
    r = fgbg("models", "list")
    assert r.returncode == 0, r.stderr
    assert "missing" in r.stdout or "present" in r.stdout
    # piped: every name whole on its line (users copy them into `fgbg models fetch`)
    from fgbg.store import load_lock

    names = {line.split("│")[0].strip() for line in r.stdout.splitlines() if "│" in line}
    assert {"sam-vit-b", "sam2.1-hiera-tiny", "cotracker3-offline", "dwpose-ll-ucoco-384"} <= names
    assert names <= set(load_lock())


def test_very_large_frames_are_processed_downscaled_output_keeps_size(sample, tmp_path):
    import cv2

    frames = np.concatenate(list(read_frames(probe(sample.driving), chunk=64)))[:8]
    big = np.stack([cv2.resize(f, (2000, 1200), interpolation=cv2.INTER_CUBIC) for f in frames])
    write_video(tmp_path / "big.mp4", big, 24)
    r = fgbg("run", tmp_path / "big.mp4", "--ref", sample.ref, "-w", tmp_path / "wd", "-o", tmp_path / "o.mp4")
    assert r.returncode == 0, r.stderr
    assert "very large: processing at 1024x614" in r.stderr
    info = probe(tmp_path / "o.mp4")
    assert (info.width, info.height, info.num_frames) == (2000, 1200, 8)
    from fgbg.artifacts import load_pose, open_masks

    pose = load_pose(tmp_path / "wd" / "pose" / "pose.npz")
    assert pose.frame_size == (2000, 1200)  # keypoints in driving-video pixels ...
    assert pose.keypoints[:, :17, 0].max() > 1024  # ... not in processing pixels
    assert open_masks(tmp_path / "wd" / "segment" / "masks").shape[1:] == (614, 1024)


def test_previews_are_written(sample, tmp_path):
    r = fgbg("track-bg", sample.driving, "-w", tmp_path / "wd", "--preview")
    assert r.returncode == 0, r.stderr
    prev = tmp_path / "wd" / "previews" / "track-bg.mp4"
    assert f"preview: {prev}" in r.stderr.replace("\n", "")
    info = probe(prev)
    assert info.num_frames == probe(sample.driving).num_frames


def test_sample_command(tmp_path):
    r = fgbg("sample", tmp_path / "s", "--preset", "walk", "--frames", "12", "--size", "128")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(tmp_path / "s")
    info = probe(tmp_path / "s" / "driving.mp4")
    assert (info.num_frames, info.width, info.has_audio) == (12, 128, True)
    r = fgbg("sample", tmp_path / "s2", "--preset", "moonwalk")
    _assert_clean_error(r, 2)
    assert "dance" in r.stderr


def test_stitch_without_ref(sample, tmp_path):
    r = fgbg("stitch", sample.driving, "-w", tmp_path / "wd", "-o", tmp_path / "o.mp4")
    _assert_clean_error(r, 2)
    assert "no generated clips" in r.stderr
    assert fgbg("generate", sample.driving, "--ref", sample.ref, "-w", tmp_path / "wd", "-q").returncode == 0
    r = fgbg("stitch", sample.driving, "-w", tmp_path / "wd", "-o", tmp_path / "o.mp4")
    assert r.returncode == 0, r.stderr
    assert probe(tmp_path / "o.mp4").num_frames == probe(sample.driving).num_frames


def test_missing_ffmpeg_is_exit_4(sample, tmp_path):
    r = fgbg("extract-pose", sample.driving, "-w", tmp_path / "wd", env={"FGBG_FFMPEG": str(tmp_path / "nope")})
    _assert_clean_error(r, 4)
    assert "cannot run ffmpeg" in r.stderr
