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


def test_rotation_metadata_is_applied(tmp_path, frames):
    import subprocess

    from fgbg.video import ffmpeg_exe

    src = write_video(tmp_path / "v.mp4", frames, 10)
    rot = tmp_path / "r.mp4"
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-display_rotation", "90", "-i", str(src),
                    "-c", "copy", str(rot)], check=True)
    info = probe(rot)
    assert info.rotation in (90, 270) and (info.width, info.height) == (48, 64)
    first = next(read_frames(info, chunk=1))[0]
    assert first.shape == (64, 48, 3)
    k = {90: 3, 270: 1}[info.rotation]
    assert np.abs(first.astype(int) - np.rot90(frames[0], k)).mean() < 12


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
