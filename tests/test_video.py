import os
import shutil
import subprocess
import wave

import numpy as np
import pytest

from fgbg.errors import InputError
from fgbg.video import probe, read_frames, read_image, write_image, write_video


def _wav(path, seconds=2.0, rate=16000):
    t = np.arange(int(seconds * rate)) / rate
    a = (0.2 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(a.tobytes())
    return path


@pytest.fixture
def frames(rng):
    base = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
    base = np.kron(base, np.ones((8, 8, 1), np.uint8))  # 48x64, blocky so h264 keeps it
    return np.stack([np.roll(base, i, axis=1) for i in range(20)])


def test_write_probe_read_with_audio(tmp_path, frames):
    out = write_video(tmp_path / "v.mp4", frames, 12.5, audio=_wav(tmp_path / "a.wav"))
    info = probe(out)
    assert (info.width, info.height, info.num_frames, info.fps, info.has_audio) == (64, 48, 20, 12.5, True)
    got = np.concatenate(list(read_frames(info, chunk=7)))
    assert got.shape == frames.shape
    assert np.abs(got.astype(int) - frames).mean() < 12  # lossy, but the same picture
    assert [len(c) for c in read_frames(info, start=3, stop=11, chunk=4)] == [4, 4]
    assert read_frames(info, size=(32, 24)).__next__().shape[1:] == (24, 32, 3)


def test_audio_is_trimmed_and_encoding_is_bit_exact(tmp_path, frames):
    wav = _wav(tmp_path / "a.wav", seconds=5)
    a = write_video(tmp_path / "a.mp4", frames, 10, audio=wav, duration=2.0)
    b = write_video(tmp_path / "b.mp4", frames, 10, audio=wav, duration=2.0)
    assert a.read_bytes() == b.read_bytes()
    assert probe(a).has_audio and not probe(write_video(tmp_path / "c.mp4", frames, 10)).has_audio


def test_odd_sizes_are_cropped_to_even(tmp_path, frames):
    info = probe(write_video(tmp_path / "o.mp4", frames[:, :47, :63], 10))
    assert (info.width, info.height) == (62, 46)


def _binaries() -> dict[str, str | None]:
    """The ffmpeg binaries fgbg may meet: the system's (Debian 12 has 5.1) and imageio-ffmpeg's."""
    import imageio_ffmpeg

    bundled = imageio_ffmpeg.get_ffmpeg_exe()
    system = shutil.which("ffmpeg", path="/usr/bin:/usr/local/bin:/bin")
    return {"system": system if system and os.path.realpath(system) != os.path.realpath(bundled) else None,
            "bundled": bundled}


def _rotate_args(exe: str, src, dst) -> list[str]:
    """Arguments that copy src to dst with a 90 degree display rotation, for this binary: ffmpeg 6
    and later have the -display_rotation input option; 5.x (Debian 12) has not, and its mov muxer
    turns the stream's `rotate` tag into a display matrix instead."""
    opts = subprocess.run([exe, "-hide_banner", "-h", "full"], capture_output=True, text=True).stdout
    if "display_rotation" in opts:
        return [exe, "-y", "-loglevel", "error", "-display_rotation", "90", "-i", str(src), "-c", "copy", str(dst)]
    return [exe, "-y", "-loglevel", "error", "-i", str(src), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(dst)]


@pytest.mark.parametrize("which", ["system", "bundled"])
def test_rotation_metadata_is_applied(tmp_path, frames, monkeypatch, which):
    exe = _binaries()[which]
    if exe is None:
        pytest.skip("no system ffmpeg on this machine (apt-get install ffmpeg; .ci/run installs it)")
    monkeypatch.setenv("FGBG_FFMPEG", exe)  # probe, decode and encode with this binary
    src = write_video(tmp_path / "v.mp4", frames, 10)
    rot = tmp_path / "r.mp4"
    subprocess.run(_rotate_args(exe, src, rot), check=True)
    info = probe(rot)
    assert info.rotation in (90, 270) and (info.width, info.height) == (48, 64)
    first = next(read_frames(info, chunk=1))[0]
    assert first.shape == (64, 48, 3)
    k = {90: 3, 270: 1}[info.rotation]
    assert np.abs(first.astype(int) - np.rot90(frames[0], k)).mean() < 12


def test_rotation_is_read_from_every_ffmpeg_s_probe_text():
    from fgbg.video import parse_rotation

    new = ("  Stream #0:0[0x1](und): Video: h264 (avc1 / 0x31637661), yuv420p, 64x48, 10 fps\n"
           "    Side data:\n      displaymatrix: rotation of -90.00 degrees\n")
    old = ("  Stream #0:0(und): Video: h264 (High) (avc1 / 0x31637661), yuv420p, 64x48, 10 fps\n"
           "    Metadata:\n      rotate          : 90\n      handler_name    : VideoHandler\n")
    assert parse_rotation(new) == 90 and parse_rotation(old) == 90
    assert parse_rotation(new.replace("-90.00", "90.00")) == 270
    assert parse_rotation(new.replace("-90.00", "-180.00")) == 180
    assert parse_rotation("  Stream #0:0: Video: h264, yuv420p, 64x48\n") == 0


@pytest.mark.parametrize("which", ["system", "bundled", "none on PATH"])
def test_write_probe_read_with_each_ffmpeg(tmp_path, frames, which):
    """The whole round trip (encode with audio, probe, decode) in a fresh process that sees only
    this binary: FGBG_FFMPEG for a chosen one; with none on PATH fgbg falls back to imageio-ffmpeg's."""
    import sys

    env = {k: v for k, v in os.environ.items() if k != "FGBG_FFMPEG"}
    if which == "none on PATH":
        bare = tmp_path / "bin"
        bare.mkdir()
        os.symlink(sys.executable, bare / "python")
        env["PATH"] = str(bare)
    else:
        exe = _binaries()[which]
        if exe is None:
            pytest.skip("no system ffmpeg on this machine (apt-get install ffmpeg; .ci/run installs it)")
        env["FGBG_FFMPEG"] = exe
    np.save(tmp_path / "f.npy", frames)
    code = (
        "import sys, numpy as np\n"
        "from fgbg.video import ffmpeg_exe, write_video, probe, read_frames\n"
        "f = np.load(sys.argv[1])\n"
        "p = write_video(sys.argv[2], f, 10)\n"
        "i = probe(p)\n"
        "back = np.concatenate(list(read_frames(i, chunk=4)))\n"
        "print(ffmpeg_exe(), i.num_frames, i.width, i.height, round(float(np.abs(back.astype(int) - f).mean()), 2))\n")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "f.npy"), str(tmp_path / "o.mp4")],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    used, n, w, h, err = r.stdout.split()
    if which == "none on PATH":
        assert "imageio_ffmpeg" in used
    else:
        assert used == _binaries()[which]
    assert (int(n), int(w), int(h)) == (len(frames), frames.shape[2], frames.shape[1])
    assert float(err) < 12


@pytest.mark.parametrize("case", ["missing", "empty", "truncated", "image", "text", "one_frame", "folder"])
def test_bad_videos(tmp_path, frames, case):
    p = tmp_path / "x.mp4"
    if case == "empty":
        p.write_bytes(b"")
    elif case == "truncated":
        full = write_video(tmp_path / "full.mp4", frames, 10).read_bytes()
        p.write_bytes(full[: len(full) // 3])
    elif case == "image":
        p = tmp_path / "x.png"
        write_image(p, frames[0])
    elif case == "text":
        p.write_text("hello, I am not a video\n" * 20)
    elif case == "one_frame":
        write_video(p, frames[:1], 10)
    elif case == "folder":
        p.mkdir()
    with pytest.raises(InputError) as err:
        probe(p)
    assert err.value.exit_code == 2 and err.value.hint


def test_read_image_errors(tmp_path, frames):
    write_image(tmp_path / "ok.png", frames[0])
    assert read_image(tmp_path / "ok.png").shape == (48, 64, 3)
    (tmp_path / "bad.png").write_text("nope")
    with pytest.raises(InputError, match="cannot read reference image"):
        read_image(tmp_path / "bad.png")
    with pytest.raises(InputError, match="not found"):
        read_image(tmp_path / "nothere.png")


def test_probe_is_remembered_in_the_work_directory_by_file_identity(tmp_path, frames, monkeypatch):
    from fgbg import video

    src = write_video(tmp_path / "v.mp4", frames, 10)
    wd = tmp_path / "wd"
    first = video.probe_cached(src, wd)  # no work directory yet: nothing is written
    assert not (wd / video.PROBE_CACHE).exists()
    wd.mkdir()
    assert video.probe_cached(src, wd) == first and (wd / video.PROBE_CACHE).is_file()

    def no_ffmpeg(path):
        raise AssertionError("probed again")

    monkeypatch.setattr(video, "probe", no_ffmpeg)
    assert video.probe_cached(src, wd) == first  # remembered
    write_video(src, frames[:5], 10)  # another file at the same path
    os.utime(src, ns=(1, 1))
    with pytest.raises(AssertionError, match="probed again"):
        video.probe_cached(src, wd)
