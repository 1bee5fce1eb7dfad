"""Hostile inputs that already behave, locked in: a variable-frame-rate driving video, Ctrl-C in
every stage of `fgbg run`, an output that is read-only (the file, or its folder), a 4K video.

Each test makes its own small files; the runs use the weight-free backends on a 96 px, 20 frame
sample so that a machine with model weights in its store runs the same (fast) work.
"""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import fgbg, records
from fgbg.video import ffmpeg_exe, probe

FRAMES, SIZE = 20, 96
# the stages in the order `fgbg run` works through them (ref first: a photo without a person fails
# before the video is processed)
ORDER = ("ref", "pose", "segment", "track-bg", "generate", "stitch")
FAST = ["--clip-length", "4", "--pose-backend", "mediapipe", "--seg-backend", "mediapipe",
        "--tracker", "lk", "--backend", "warp"]
ROOT = os.geteuid() == 0


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    from fgbg.sample import make_sample

    return make_sample(tmp_path_factory.mktemp("small"), preset="dance", seed=0, num_frames=FRAMES,
                       width=SIZE, height=SIZE)


@pytest.fixture(scope="module")
def uninterrupted(small, tmp_path_factory):
    """The output bytes of one plain run (its own work directory)."""
    root = tmp_path_factory.mktemp("plain")
    r = fgbg("run", small.driving, "--ref", small.ref, "-w", root / "wd", "-o", root / "out.mp4", *FAST)
    assert r.returncode == 0, r.stderr
    return (root / "out.mp4").read_bytes()


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "fgbg.cli", *map(str, args)]


def _assert_error(err: str, *, what: str) -> None:
    assert re.search(r"^error: .*" + re.escape(what), err, re.M), err
    assert "\ncause: " in err and "\nhint: " in err, err
    assert "Traceback" not in err, err


# ------------------------------------------------------------------- variable frame rate
def _video_packets(path: Path) -> tuple[list[float], list[float]]:
    """(pts, duration) in seconds of every video packet, display order, from ffmpeg's framecrc
    muxer: no ffprobe needed (the imageio-ffmpeg binary has none)."""
    text = subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(path), "-map",
                           "0:v:0", "-c", "copy", "-f", "framecrc", "-"], capture_output=True, text=True,
                          check=True).stdout
    num, den = map(int, re.search(r"^#tb 0: (\d+)/(\d+)", text, re.M).groups())
    rows = sorted((int(f[2]), int(f[3])) for f in
                  (ln.split(",") for ln in text.splitlines() if ln and not ln.startswith("#")))
    return [p * num / den for p, _ in rows], [d * num / den for _, d in rows]


def _span(path: Path) -> float:
    pts, dur = _video_packets(path)
    return max(p + d for p, d in zip(pts, dur)) - min(pts)


def test_variable_frame_rate_keeps_duration(small, tmp_path):
    # the sample's first 10 frames 1/24 s apart, the last 10 1/8 s apart (no B-frames: the mp4
    # then says each frame's own duration); its audio is kept
    vfr = tmp_path / "vfr.mp4"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(small.driving), "-vf",
                    "setpts='if(lt(N,10),N/24,10/24+(N-10)/8)/TB'", "-fps_mode", "vfr", "-c:v", "libx264",
                    "-bf", "0", "-pix_fmt", "yuv420p", "-c:a", "copy", str(vfr)], check=True)
    pts, dur = _video_packets(vfr)
    steps = [round(b - a, 4) for a, b in zip(pts, pts[1:])]
    assert len(pts) == FRAMES and set(steps) == {round(1 / 24, 4), 0.125}, steps  # really VFR
    span_in = _span(vfr)
    assert 10 / 24 + 9 / 8 < span_in < 10 / 24 + 10 / 8 + 1e-3  # (the last frame's own length is the muxer's)

    out = tmp_path / "out.mp4"
    r = fgbg("run", vfr, "--ref", small.ref, "-w", tmp_path / "wd", "-o", out, *FAST)
    assert r.returncode == 0, r.stderr
    info = probe(out)
    assert info.num_frames == FRAMES  # every driving frame, none dropped or repeated
    pts_out, dur_out = _video_packets(out)
    assert len(pts_out) == FRAMES and len({round(d, 4) for d in dur_out}) == 1  # constant rate
    # ... at the average rate, so the length is kept (to within one output frame)
    assert abs(_span(out) - span_in) <= 1 / info.fps, (_span(out), span_in, info.fps)
    assert info.fps == pytest.approx(FRAMES / span_in, rel=1e-3)


# ------------------------------------------------------------------------- Ctrl-C per stage
# A launcher for `fgbg run` that stalls one stage in the middle of its work (the stages take 0.2 to
# 1.7 s on the small sample: too short a window to hit reliably from outside). It writes a marker
# and sleeps; the test's Ctrl-C ends the sleep. Only generate has a hook of its own
# (FGBG_CLIP_DELAY_S, a pause after each clip), which that case uses instead.
_STALLING_RUN = r"""
import os, time

STAGE, MARKER = os.environ["HOSTILE_STAGE"], os.environ["HOSTILE_MARKER"]


def stall():
    open(MARKER, "w").close()
    time.sleep(120)  # ended by the test's SIGINT


import fgbg.backends as backends
import fgbg.stages.base as base
import fgbg.video as video

current = []  # the stage whose build is running (patched before any stage module is imported)
_ensure = base.ensure


def ensure(job, name, key, build, main_output):
    def marked(tmp):
        current.append(name)
        try:
            return build(tmp)
        finally:
            current.pop()

    return _ensure(job, name, key, marked, main_output)


_read_frames = video.read_frames


def read_frames(*args, **kwargs):  # pose, segment, track-bg: model loaded, first frames decoded
    for chunk in _read_frames(*args, **kwargs):
        if current and current[-1] == STAGE:
            stall()
        yield chunk


_build = backends.build


def build(kind, *args, **kwargs):  # ref: between the photo's pose and its mask
    if kind == "segment" and current and current[-1] == STAGE == "ref":
        stall()
    return _build(kind, *args, **kwargs)


_write_video = video.write_video


def write_video(path, frames, *args, **kwargs):  # stitch: ffmpeg is running, fed one block
    def fed():
        for block in frames:
            yield block
            if STAGE == "stitch":
                stall()

    return _write_video(path, fed(), *args, **kwargs)


base.ensure, video.read_frames, backends.build, video.write_video = ensure, read_frames, build, write_video

from fgbg.cli import main

main()
"""


def _group_gone(pgid: int, wait: float = 5.0) -> bool:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("stage", ORDER)
def test_ctrl_c_in_each_stage_exits_130_and_resumes_to_same_bytes(stage, small, uninterrupted, tmp_path):
    wd, out = tmp_path / "wd", tmp_path / "out.mp4"
    args = ["run", small.driving, "--ref", small.ref, "-w", wd, "-o", out, *FAST]
    marker = tmp_path / "stalled"
    env = {**os.environ, "HOSTILE_STAGE": stage, "HOSTILE_MARKER": str(marker)}
    if stage == "generate":
        env["FGBG_CLIP_DELAY_S"] = "0.3"

        def reached():
            return bool(list(wd.glob(".generate.partial-*/clips/0001.npy")))
    else:
        reached = marker.exists
    # its own process group, signalled as a whole: what Ctrl-C in a terminal does (ffmpeg
    # children get the SIGINT too)
    proc = subprocess.Popen([sys.executable, "-c", _STALLING_RUN, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not reached() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        hit = reached()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert hit, f"the run never got into {stage}:\n{err[-3000:]}"
    assert proc.returncode == 130, err
    assert "error: interrupted" in err and "hint: rerun the same command" in err, err
    assert "Traceback" not in err, err
    assert _group_gone(proc.pid), "a child process (ffmpeg?) outlived the interrupted run"

    upstream = ORDER[:ORDER.index(stage)]
    before = records(wd)
    assert set(before) == set(upstream)  # the stages before it are complete, it is not
    assert not list(wd.glob(f".{stage}.tmp-*")) and not (wd / stage).exists()
    assert not out.exists()
    if stage == "generate":
        assert len(list(wd.glob(".generate.partial-*/clips/*.npy"))) >= 2  # finished clips are kept

    r = fgbg(*args)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == uninterrupted
    after = records(wd)
    assert set(after) == set(ORDER)
    assert {s for s in upstream if after[s] == before[s]} == set(upstream)  # reused, not redone
    if stage == "generate":
        assert "resumed" in r.stderr
    assert not [p.name for p in wd.iterdir() if ".tmp-" in p.name or ".partial-" in p.name]


# --------------------------------------------------------------------------- read-only output
# Root writes into a folder whatever its mode bits, so for root a folder is made read-only with a
# read-only bind mount inside a mount namespace of the child's own: nothing changes outside it.
UNSHARE = ["unshare", "-m", "--propagation", "private"]  # execs the command: the same pid


def _own_mount_namespace() -> list[str]:
    if shutil.which("unshare") is None or shutil.which("nsenter") is None or subprocess.run(
            [*UNSHARE, "true"], capture_output=True).returncode != 0:
        pytest.skip("running as root without mount namespaces: no way to make a folder read-only")
    return UNSHARE


def _read_only_mount(folder: Path) -> list[str]:
    """A command prefix: the child sees `folder` read-only from its start."""
    return [*_own_mount_namespace(), "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', str(folder)]


def test_read_only_output_file_is_kept_and_refused_before_any_work(small, tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"an earlier result, write-protected")
    out.chmod(0o444)
    r = fgbg("run", small.driving, "--ref", small.ref, "-w", tmp_path / "wd", "-o", out, *FAST)
    assert r.returncode == 2, r.stderr
    _assert_error(r.stderr, what="is read-only")
    assert "chmod u+w" in r.stderr
    assert out.read_bytes() == b"an earlier result, write-protected" and (out.stat().st_mode & 0o777) == 0o444
    assert not (tmp_path / "wd").exists()  # refused before any work


def test_read_only_output_folder_is_refused_before_any_work(small, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    cmd = _cli("run", small.driving, "--ref", small.ref, "-w", tmp_path / "wd", "-o", folder / "out.mp4", *FAST)
    if ROOT:
        cmd = _read_only_mount(folder) + cmd
    else:
        folder.chmod(0o555)
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    finally:
        folder.chmod(0o755)
    assert r.returncode == 2, r.stderr
    _assert_error(r.stderr, what="is not writable")
    assert not list(folder.iterdir()) and not (tmp_path / "wd").exists()


@pytest.mark.parametrize("what", ["file", "folder"])
def test_output_turning_read_only_mid_run_keeps_every_stage(what, small, tmp_path):
    """The output is writable when the run starts and read-only by the time the video is done:
    a clear error, nothing computed is lost, a rerun to a writable path only copies the result."""
    wd, folder = tmp_path / "wd", tmp_path / "out"
    folder.mkdir()
    out = folder / "out.mp4"
    cmd = _cli("run", small.driving, "--ref", small.ref, "-w", wd, "-o", out, *FAST)
    if what == "folder" and ROOT:
        cmd = _own_mount_namespace() + cmd
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "FGBG_CLIP_DELAY_S": "0.3"})
    try:
        deadline = time.monotonic() + 120
        while (not list(wd.glob(".generate.partial-*/clips/0000.npy")) and proc.poll() is None
               and time.monotonic() < deadline):
            time.sleep(0.01)
        assert proc.poll() is None, "the run ended before generate"
        if what == "file":
            out.write_bytes(b"written meanwhile, write-protected")
            out.chmod(0o444)
        elif ROOT:
            subprocess.run(["nsenter", "-t", str(proc.pid), "-m", "mount", "--bind", "-o", "ro", str(folder),
                            str(folder)], check=True)
        else:
            folder.chmod(0o555)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        folder.chmod(0o755)
    assert proc.returncode == 2, err
    _assert_error(err, what="is read-only" if what == "file" else f"cannot write output {out}")
    kept = wd / "stitch" / "out.mp4"
    assert str(kept) in err  # the hint says where the result is
    done = records(wd)
    assert set(done) == set(ORDER)
    if what == "file":
        assert out.read_bytes() == b"written meanwhile, write-protected"
    else:
        assert not list(folder.iterdir())  # no half-copied temporary left behind

    again = tmp_path / "again.mp4"
    r = fgbg("run", small.driving, "--ref", small.ref, "-w", wd, "-o", again, *FAST)
    assert r.returncode == 0, r.stderr
    assert records(wd) == done  # all cached
    assert again.read_bytes() == kept.read_bytes()


# ----------------------------------------------------------------------------------------- 4K
@pytest.mark.slow
def test_4k_run_peak_memory(tmp_path):
    from fgbg.sample import make_sample

    s = make_sample(tmp_path / "s", preset="dance", seed=0, num_frames=10, width=384, height=216)
    uhd = tmp_path / "uhd.mp4"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(s.driving), "-vf",
                    "scale=3840:2160:flags=bicubic", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt",
                    "yuv420p", "-c:a", "copy", str(uhd)], check=True)
    assert (probe(uhd).width, probe(uhd).height) == (3840, 2160)
    out = tmp_path / "out.mp4"
    t0 = time.perf_counter()
    proc = subprocess.Popen(_cli("run", uhd, "--ref", s.ref, "-w", tmp_path / "wd", "-o", out, *FAST),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own figures (its ffmpeg children included)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    peak_mb = usage.ru_maxrss / 1024  # KiB on Linux
    print(f"\n4K run (3840x2160, 10 frames, weight-free backends): peak RSS {peak_mb:.0f} MB, "
          f"{seconds:.1f} s")
    assert proc.returncode == 0, err
    assert "3840x2160 is very large" in err  # processed downscaled, said so
    info = probe(out)
    assert (info.width, info.height, info.num_frames) == (3840, 2160, 10)
    assert peak_mb < 3000
