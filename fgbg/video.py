"""Video and image I/O: probe, streamed decode (decord), encode and mux (ffmpeg).

Frames are RGB uint8 arrays (n, H, W, 3) in display orientation (rotation metadata applied).
A machine without a system ffmpeg uses the static binary the imageio-ffmpeg wheel carries;
that binary has no ffprobe, so probing parses `ffmpeg -i` and asks decord for the frame count.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .errors import InputError, ToolError

IMAGE_FORMATS = ("png_pipe", "jpeg_pipe", "image2", "bmp_pipe", "webp_pipe", "tiff_pipe", "gif")
# ffmpeg demuxers that "read" any file (the tty demuxer renders text as ANSI art)
NOT_VIDEO_FORMATS = ("tty", "bin", "txt", "data")


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds. width/height are display size (after rotation)."""

    path: str
    width: int
    height: int
    fps: float
    num_frames: int
    rotation: int  # clockwise degrees applied to decoded frames for display: 0, 90, 180, 270
    has_audio: bool
    codec: str

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps


def ffmpeg_exe() -> str:
    """The ffmpeg binary: $FGBG_FFMPEG, the system one, or the one imageio-ffmpeg carries."""
    env = os.environ.get("FGBG_FFMPEG")
    if env:
        return env
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception as exc:  # pragma: no cover - depends on the machine
        raise ToolError(
            "no ffmpeg binary found",
            cause=f"there is no ffmpeg on PATH and imageio-ffmpeg has none ({exc})",
            hint="pip install imageio-ffmpeg   (or: apt-get install ffmpeg)",
        ) from exc


def _check_file(path: Path, kind: str) -> None:
    if not path.exists():
        raise InputError(f"{kind} not found: {path}", cause="no file at that path",
                         hint="check the path (and the current directory)")
    if path.is_dir():
        raise InputError(f"{kind} is a folder: {path}", cause=f"a {kind} must be a file",
                         hint=f"give the path of the {kind} file inside it")
    if path.stat().st_size == 0:
        raise InputError(f"{kind} is empty: {path}", cause="the file has zero bytes",
                         hint="the file was not written completely; copy or export it again")


def probe(path: str | os.PathLike) -> VideoInfo:
    """Frame rate, frame count, display size, rotation and audio presence of a video file.

    Raises InputError for a missing, empty, truncated or non-video file and for a video with fewer
    than 2 frames."""
    path = Path(path)
    _check_file(path, "video")
    exe = ffmpeg_exe()
    try:
        proc = subprocess.run([exe, "-hide_banner", "-i", str(path)],
                              capture_output=True, text=True, errors="replace")
    except OSError as exc:
        raise ToolError(f"cannot run ffmpeg ({exe})", cause=str(exc),
                        hint="unset FGBG_FFMPEG, or pip install imageio-ffmpeg (or apt-get install ffmpeg)") from exc
    text = proc.stderr
    fmt = re.search(r"Input #0, ([\w,]+), from", text)
    stream = re.search(r"Stream #0:\d+[^:]*: Video: (\w+).*?, (\d+)x(\d+)", text)
    if fmt is not None and any(f in fmt.group(1).split(",") for f in NOT_VIDEO_FORMATS):
        fmt, stream = None, None
        reason = "ffmpeg finds no video stream in it"
    else:
        lines = [ln.strip() for ln in text.strip().splitlines()
                 if ln.strip() and "output file must be specified" not in ln]
        reason = lines[-1] if lines else "ffmpeg could not read it"
        if fmt is not None and stream is None:
            reason = "it has no video stream"
    if fmt is None or stream is None:
        raise InputError(f"cannot read video: {path}", cause=f"not a decodable video ({reason})",
                         hint="give an mp4/mov/webm video; if it was cut short, export or copy it again")
    if any(f in fmt.group(1).split(",") for f in IMAGE_FORMATS):
        raise InputError(f"{path} is an image, not a video",
                         cause=f"ffmpeg reads it as '{fmt.group(1)}'",
                         hint=f"give the image as the reference with --ref {path}, and a video as DRIVING")
    codec, w, h = stream.group(1), int(stream.group(2)), int(stream.group(3))
    rotation = parse_rotation(text)
    has_audio = re.search(r"Stream #0:\d+[^:]*: Audio:", text) is not None
    try:
        vr = _decord().VideoReader(str(path), num_threads=1)
        num_frames = len(vr)
        fps = float(vr.get_avg_fps())
        del vr
    except Exception as exc:
        raise InputError(f"cannot decode video: {path}",
                         cause="its frames cannot be read: the file is damaged or was cut short "
                               f"(decord: {_short(exc)})",
                         hint="export or copy the video again") from exc
    if not fps or fps <= 0 or not np.isfinite(fps):
        m = re.search(r"([\d.]+) fps", text)
        fps = float(m.group(1)) if m else 25.0
    if num_frames < 2:
        raise InputError(f"video has {num_frames} frame(s): {path}",
                         cause="motion needs at least 2 frames",
                         hint="give a longer driving video")
    if rotation in (90, 270):
        w, h = h, w
    return VideoInfo(str(path), w, h, fps, num_frames, rotation, has_audio, codec)


def parse_rotation(text: str) -> int:
    """Clockwise display rotation (0, 90, 180, 270) from `ffmpeg -i` output, for every ffmpeg:
    5.0 and later print the display matrix's side data ("displaymatrix: rotation of -90.00
    degrees", counter-clockwise); 4.x and older print the stream's `rotate` tag ("rotate : 90",
    clockwise). Other angles are rounded to the nearest quarter turn."""
    rot = re.search(r"rotation of (-?[\d.]+) degrees", text)
    if rot:
        deg = -float(rot.group(1))
    else:
        rot = re.search(r"^\s*rotate\s*:\s*(-?[\d.]+)", text, re.M)
        deg = float(rot.group(1)) if rot else 0.0
    return int(round(deg / 90.0)) * 90 % 360


PROBE_CACHE = ".probe.json"  # in a work directory: what `probe` found, by file identity


def probe_cached(path: str | os.PathLike, workdir: Path) -> VideoInfo:
    """`probe`, remembered in `workdir`/.probe.json by the file's path, size and mtime (as the
    work directory's file hashes are): a rerun does not start ffmpeg and decord again (about
    0.5 s of a cached run). Written only into a work directory that exists already; a cache that
    cannot be read or written is ignored."""
    import json

    path = Path(path)
    try:
        st = path.stat()
        ident = [str(path.resolve()), st.st_size, st.st_mtime_ns]
    except OSError:
        return probe(path)  # probe names the problem
    cache = Path(workdir) / PROBE_CACHE
    try:
        seen = json.loads(cache.read_text())
        if seen.get("file") == ident:
            return VideoInfo(**{**seen["info"], "path": str(path)})
    except (OSError, ValueError, TypeError, KeyError):
        pass
    info = probe(path)
    if Path(workdir).is_dir():
        from dataclasses import asdict

        try:
            tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"file": ident, "info": asdict(info)}))
            os.replace(tmp, cache)
        except OSError:
            pass
    return info


def _short(exc: Exception) -> str:
    """The useful tail of a decord error (its messages start with a source path and line)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.split(": ", 2)[-1][:160]


def _decord():
    """Import decord after cv2: decord's bundled zlib, loaded first, breaks cv2's PNG codec
    ("libpng error: bad parameters to zlib")."""
    import cv2  # noqa: F401

    import decord

    return decord


def resize_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize one image to size = (width, height): halvings by pyrDown while the image is more
    than twice the target, then bilinear. (cv2.INTER_AREA in OpenCV 5.0 makes the process's
    memory grow frame after frame on 1080p input: ~1.7 GB over 400 frames, measured.)"""
    import cv2

    w, h = size
    while frame.shape[1] >= 2 * w and frame.shape[0] >= 2 * h:
        frame = cv2.pyrDown(frame)
    if (frame.shape[1], frame.shape[0]) == (w, h):
        return frame
    return cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR)


def _fit(frame: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if size is None or (frame.shape[1], frame.shape[0]) == size:
        return frame
    return resize_frame(frame, size)


def read_frames(info: VideoInfo, start: int = 0, stop: int | None = None, chunk: int = 32,
                size: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
    """Yield consecutive chunks (n, H, W, 3) uint8 RGB of frames [start, stop), display-oriented,
    resized to `size` = (width, height) when given. Never holds more than one chunk.

    decord 0.6 mis-sizes videos with rotation metadata, so those are decoded through an ffmpeg pipe
    (which applies the rotation itself)."""
    stop = info.num_frames if stop is None else min(stop, info.num_frames)
    if info.rotation:
        yield from _read_frames_ffmpeg(info, start, stop, chunk, size)
        return
    vr = _decord().VideoReader(info.path, num_threads=1)
    for s in range(start, stop, chunk):
        idx = list(range(s, min(s + chunk, stop)))
        try:
            batch = vr.get_batch(idx).asnumpy()
        except Exception as exc:
            raise InputError(f"cannot decode frames {idx[0]}-{idx[-1]} of {info.path}",
                             cause=f"the file is damaged or was cut short (decord: {_short(exc)})",
                             hint="export or copy the video again; finished stages are kept") from exc
        if size is not None:
            batch = np.stack([_fit(f, size) for f in batch])
        yield batch


def _read_frames_ffmpeg(info: VideoInfo, start: int, stop: int, chunk: int,
                        size: tuple[int, int] | None) -> Iterator[np.ndarray]:
    w, h = info.width, info.height
    proc = subprocess.Popen([ffmpeg_exe(), "-loglevel", "error", "-i", info.path, "-f", "rawvideo",
                             "-pix_fmt", "rgb24", "-"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    frame_bytes = w * h * 3
    try:
        t = 0
        while t < stop:
            n = min(chunk, stop - max(t, start)) if t >= start else min(chunk, start - t)
            data = proc.stdout.read(frame_bytes * n)
            got = len(data) // frame_bytes
            if got == 0:
                break
            batch = np.frombuffer(data[: got * frame_bytes], np.uint8).reshape(got, h, w, 3)
            if t >= start:
                if size is not None:
                    batch = np.stack([_fit(f, size) for f in batch])
                yield batch
            t += got
    finally:
        proc.stdout.close()
        proc.kill()
        proc.wait()


def read_image(path: str | os.PathLike, kind: str = "reference image",
               hint: str = "give a photo of the person as PNG or JPEG with --ref") -> np.ndarray:
    """A photo as (H, W, 3) uint8 RGB (alpha dropped onto white). `kind` and `hint` name the
    option it came from in the errors."""
    import cv2

    path = Path(path)
    _check_file(path, kind)
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(f"cannot read {kind}: {path}",
                         cause="not a PNG/JPEG/WebP image (or the file is damaged)", hint=hint)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        alpha = img[..., 3:4].astype(np.float32) / 255.0
        img = (img[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    else:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img.dtype != np.uint8:
        img = (img / (np.iinfo(img.dtype).max / 255.0)).astype(np.uint8)
    return img


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    import cv2

    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise InputError(f"cannot write image: {path}", cause="the folder is missing or not writable",
                         hint="choose a writable output path")


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float, *,
                crf: int = 18, audio: str | os.PathLike | None = None,
                duration: float | None = None) -> Path:
    """Encode frames (each (H, W, 3) or chunks (n, H, W, 3) uint8 RGB) to H.264 yuv420p mp4.

    Odd sizes are cropped by one pixel to even (yuv420p needs even sizes). `audio`: a file whose
    first audio track is muxed in, trimmed to `duration` (default: the video's length). The output
    is bit-exact for the same input (no timestamps or encoder strings that vary)."""
    import ffmpeg

    path = Path(path)
    it = iter(frames)
    proc = None
    n = 0
    w = h = 0
    try:
        for block in it:
            block = np.asarray(block)
            if block.ndim == 3:
                block = block[None]
            if proc is None:
                h, w = block.shape[1] // 2 * 2, block.shape[2] // 2 * 2
                video = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{w}x{h}",
                                     framerate=fps)
                streams = [video]
                out_kw = dict(vcodec="libx264", pix_fmt="yuv420p", crf=crf, preset="medium",
                              movflags="+faststart", map_metadata=-1, fflags="+bitexact",
                              **{"flags:v": "+bitexact", "flags:a": "+bitexact"})
                if audio is not None:
                    streams.append(ffmpeg.input(str(audio)).audio)
                    out_kw.update(acodec="aac", **{"b:a": "128k"})
                if duration is not None:
                    out_kw["t"] = f"{duration:.6f}"
                elif audio is not None:
                    out_kw["shortest"] = None
                node = ffmpeg.output(*streams, str(path), **out_kw).overwrite_output()
                args = node.compile(cmd=ffmpeg_exe())
                try:
                    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.PIPE)
                except OSError as exc:
                    raise ToolError(f"cannot run ffmpeg ({args[0]})", cause=str(exc),
                                    hint="unset FGBG_FFMPEG, or pip install imageio-ffmpeg") from exc
            data = np.ascontiguousarray(block[:, :h, :w, :3], dtype=np.uint8)
            proc.stdin.write(data.tobytes())
            n += len(block)
    except BrokenPipeError:
        pass
    finally:
        if proc is not None:
            proc.stdin.close()
            err = proc.stderr.read().decode(errors="replace")
            proc.wait()
    if proc is None or n == 0:
        raise ToolError(f"no frames to encode into {path}", cause="the frame source was empty",
                        hint="rerun the stage that makes the frames with --force")
    if proc.returncode != 0:
        tail = "\n".join(err.strip().splitlines()[-3:])
        raise ToolError(f"ffmpeg failed to write {path}", cause=tail or f"exit {proc.returncode}",
                        hint="check that the output folder is writable and has free space")
    return path
