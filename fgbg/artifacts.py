"""Every file format fgbg writes, with a loader that validates shape and dtype.

| artifact  | file(s)                               | content                                               |
|-----------|---------------------------------------|-------------------------------------------------------|
| pose      | pose/pose.npz                         | keypoints (T,133,2) float32 pixel x,y in the driving  |
|           |                                       | video, scores (T,133) float32, frame_size [W,H], fps  |
|           | pose/pose_maps/ (frame store)         | (T,H,W,3) uint8 DWPose-convention renderings at the   |
|           |                                       | processing size                                       |
| masks     | segment/masks/ (frame store)          | (T,H,W) uint8, person = 1, at the processing size     |
| tracks    | track-bg/tracks.npz                   | tracks (T,N,2) float32 pixel x,y in the driving video,|
|           |                                       | visible (T,N) bool, queries (N,3) float32 [t,x,y],    |
|           |                                       | frame_size [W,H]; background points only              |
| reference | ref/ref.npz                           | image (H,W,3) uint8 fitted to the output canvas,      |
|           |                                       | keypoints (133,2), scores (133,), mask (H,W) uint8    |
| clip plan | generate/plan.json                    | frame ranges, overlap, seeds, size, generator identity|
| clips     | generate/clips/NNNN.npy               | (n,H,W,3) uint8 RGB frames of clip NNNN               |
| prepared  | <dataset>/videos/<id>/ (fgbg prepare, | frames.npy (F,S,S,3) uint8; masks.npy (F,S,S) bool;   |
| video     | the truth-based training set; read by | pose.npz keypoints (F,133,2), scores (F,133) float32; |
|           | training and eval)                    | tracks.npz tracks (F,N,2) float32, visible (F,N) bool,|
|           |                                       | origin (N,2) float32 (finite, fgbg.tracks), queries   |
|           |                                       | (N,3) [t,x,y] (optional); meta.json last; all in S x S|
|           |                                       | pixels                                                |

A *frame store* is a folder with `meta.json` ({"shape", "dtype", "chunk"}) and chunk files
`NNNNN.npz` (one array `frames`), so long videos stream to and from disk one chunk at a time. Chunks
are written with fixed zip timestamps: the same array always gives the same bytes.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import StageError
from .pose.layout import NUM_KEYPOINTS


class ArtifactError(StageError):
    """A result file is missing, unreadable or has the wrong shape/dtype."""

    def __init__(self, path: Path | str, problem: str):
        super().__init__(f"bad artifact {path}: {problem}",
                         cause="the file was damaged, truncated or written by another version",
                         hint="rerun the stage with --force (it recomputes the file)")
        self.path = Path(path)
        self.problem = problem


# ---------------------------------------------------------------------------------------------
# small helpers


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, fsync, rename: readers see old or new, never half."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            arr_buf = io.BytesIO()
            arr = np.asarray(arr)
            np.lib.format.write_array(arr_buf, arr if arr.flags.c_contiguous else arr.copy(), allow_pickle=False)
            zf.writestr(info, arr_buf.getvalue(), compresslevel=1)
    return buf.getvalue()


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Deterministic, atomic npz (readable with np.load)."""
    atomic_write_bytes(Path(path), _npz_bytes(arrays))


def _load_npz(path: Path, spec: dict[str, tuple[tuple, tuple]]) -> dict[str, np.ndarray]:
    """Load and check: spec maps name -> (shape pattern with None wildcards, allowed dtypes)."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(path, "file is missing")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except Exception as exc:
        raise ArtifactError(path, f"not a readable npz ({type(exc).__name__}: {exc})") from exc
    for name, (shape, dtypes) in spec.items():
        if name not in data:
            raise ArtifactError(path, f"array '{name}' is missing (has {sorted(data)})")
        arr = data[name]
        if arr.dtype.name not in dtypes:
            raise ArtifactError(path, f"'{name}' has dtype {arr.dtype}, expected {' or '.join(dtypes)}")
        if len(arr.shape) != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise ArtifactError(path, f"'{name}' has shape {arr.shape}, expected {want}")
    return data


# ---------------------------------------------------------------------------------------------
# frame stores (masks, pose maps)


class FrameStoreWriter:
    """Append frames (n, *frame_shape) chunk by chunk; `close()` writes meta.json last."""

    def __init__(self, folder: Path, frame_shape: tuple[int, ...], dtype: str, chunk: int = 64):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.frame_shape = tuple(int(s) for s in frame_shape)
        self.dtype = np.dtype(dtype)
        self.chunk = chunk
        self._pending: list[np.ndarray] = []
        self._pending_n = 0
        self._count = 0
        self._files = 0

    def append(self, frames: np.ndarray) -> None:
        frames = np.asarray(frames)
        if frames.shape[1:] != self.frame_shape:
            raise ValueError(f"frames {frames.shape[1:]} != store frame shape {self.frame_shape}")
        self._pending.append(frames.astype(self.dtype, copy=False))
        self._pending_n += len(frames)
        while self._pending_n >= self.chunk:
            self._flush(self.chunk)

    def _flush(self, n: int) -> None:
        allf = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        out, rest = allf[:n], allf[n:]
        save_npz(self.folder / f"{self._files:05d}.npz", frames=out)
        self._files += 1
        self._count += len(out)
        self._pending = [rest] if len(rest) else []
        self._pending_n = len(rest)

    def close(self) -> Path:
        if self._pending_n:
            self._flush(self._pending_n)
        meta = {"shape": [self._count, *self.frame_shape], "dtype": self.dtype.name, "chunk": self.chunk}
        atomic_write_bytes(self.folder / "meta.json", json.dumps(meta).encode())
        return self.folder


class FrameStore:
    """Read-only view of a frame store: len(), read(start, stop), chunks(size)."""

    def __init__(self, folder: Path, frame_shape: tuple | None = None, dtypes: tuple[str, ...] | None = None):
        self.folder = Path(folder)
        meta_path = self.folder / "meta.json"
        if not meta_path.is_file():
            raise ArtifactError(self.folder, "meta.json is missing (the store was never completed)")
        try:
            meta = json.loads(meta_path.read_text())
            self.shape = tuple(int(s) for s in meta["shape"])
            self.dtype = np.dtype(meta["dtype"])
            self.chunk = int(meta["chunk"])
        except Exception as exc:
            raise ArtifactError(meta_path, f"unreadable meta.json ({exc})") from exc
        if frame_shape is not None:
            fs = self.shape[1:]
            if len(fs) != len(frame_shape) or any(a is not None and a != b for a, b in zip(frame_shape, fs)):
                raise ArtifactError(self.folder, f"frames have shape {fs}, expected {frame_shape}")
        if dtypes is not None and self.dtype.name not in dtypes:
            raise ArtifactError(self.folder, f"dtype {self.dtype}, expected {' or '.join(dtypes)}")
        n_files = -(-self.shape[0] // self.chunk) if self.shape[0] else 0
        missing = [i for i in range(n_files) if not (self.folder / f"{i:05d}.npz").is_file()]
        if missing:
            raise ArtifactError(self.folder, f"chunk file(s) missing: {missing[:5]}")
        self._cache: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.shape[0]

    def _chunk(self, i: int) -> np.ndarray:
        if self._cache is not None and self._cache[0] == i:
            return self._cache[1]
        path = self.folder / f"{i:05d}.npz"
        want_n = min(self.chunk, self.shape[0] - i * self.chunk)
        arr = _load_npz(path, {"frames": ((want_n, *self.shape[1:]), (self.dtype.name,))})["frames"]
        self._cache = (i, arr)
        return arr

    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames [start, stop) as one array."""
        stop = min(stop, len(self))
        parts = []
        t = start
        while t < stop:
            ci = t // self.chunk
            arr = self._chunk(ci)
            lo = t - ci * self.chunk
            hi = min(stop - ci * self.chunk, len(arr))
            parts.append(arr[lo:hi])
            t = ci * self.chunk + hi
        if not parts:
            return np.zeros((0, *self.shape[1:]), self.dtype)
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def chunks(self, size: int) -> Iterator[np.ndarray]:
        for s in range(0, len(self), size):
            yield self.read(s, s + size)


# ---------------------------------------------------------------------------------------------
# pose


@dataclass
class Pose:
    keypoints: np.ndarray  # (T, 133, 2) float32 pixel x,y in the driving video
    scores: np.ndarray  # (T, 133) float32 in [0, 1]
    frame_size: tuple[int, int]  # (W, H) of the driving video
    fps: float


def save_pose(path: Path, pose: Pose) -> None:
    save_npz(path, keypoints=pose.keypoints.astype(np.float32), scores=pose.scores.astype(np.float32),
             frame_size=np.asarray(pose.frame_size, np.int64), fps=np.asarray(pose.fps, np.float64))


def load_pose(path: Path) -> Pose:
    d = _load_npz(path, {
        "keypoints": ((None, NUM_KEYPOINTS, 2), ("float32",)),
        "scores": ((None, NUM_KEYPOINTS), ("float32",)),
        "frame_size": ((2,), ("int64", "int32")),
        "fps": ((), ("float64", "float32")),
    })
    if len(d["keypoints"]) != len(d["scores"]):
        raise ArtifactError(path, f"{len(d['keypoints'])} keypoint frames but {len(d['scores'])} score frames")
    return Pose(d["keypoints"], d["scores"], tuple(int(v) for v in d["frame_size"]), float(d["fps"]))


def open_pose_maps(folder: Path) -> FrameStore:
    return FrameStore(folder, (None, None, 3), ("uint8",))


def open_masks(folder: Path) -> FrameStore:
    return FrameStore(folder, (None, None), ("uint8", "bool"))


# ---------------------------------------------------------------------------------------------
# tracks


@dataclass
class Tracks:
    tracks: np.ndarray  # (T, N, 2) float32 pixel x,y in the driving video
    visible: np.ndarray  # (T, N) bool
    queries: np.ndarray  # (N, 3) float32 [t, x, y]
    frame_size: tuple[int, int]  # (W, H)


def save_tracks(path: Path, tr: Tracks) -> None:
    save_npz(path, tracks=tr.tracks.astype(np.float32), visible=tr.visible.astype(bool),
             queries=tr.queries.astype(np.float32), frame_size=np.asarray(tr.frame_size, np.int64))


def load_tracks(path: Path) -> Tracks:
    d = _load_npz(path, {
        "tracks": ((None, None, 2), ("float32",)),
        "visible": ((None, None), ("bool",)),
        "queries": ((None, 3), ("float32",)),
        "frame_size": ((2,), ("int64", "int32")),
    })
    if d["tracks"].shape[:2] != d["visible"].shape or d["tracks"].shape[1] != len(d["queries"]):
        raise ArtifactError(path, f"tracks {d['tracks'].shape}, visible {d['visible'].shape} and "
                                  f"queries {d['queries'].shape} disagree")
    return Tracks(d["tracks"], d["visible"], d["queries"], tuple(int(v) for v in d["frame_size"]))


# ---------------------------------------------------------------------------------------------
# reference


def save_reference(path: Path, image, keypoints, scores, mask) -> None:
    save_npz(path, image=image.astype(np.uint8), keypoints=keypoints.astype(np.float32),
             scores=scores.astype(np.float32), mask=mask.astype(np.uint8))


def load_reference(path: Path) -> dict[str, np.ndarray]:
    d = _load_npz(path, {
        "image": ((None, None, 3), ("uint8",)),
        "keypoints": ((NUM_KEYPOINTS, 2), ("float32",)),
        "scores": ((NUM_KEYPOINTS,), ("float32",)),
        "mask": ((None, None), ("uint8",)),
    })
    if d["image"].shape[:2] != d["mask"].shape:
        raise ArtifactError(path, f"image {d['image'].shape[:2]} and mask {d['mask'].shape} differ in size")
    return d


# ---------------------------------------------------------------------------------------------
# clip plan and clips


@dataclass
class ClipSpec:
    index: int
    start: int  # first frame (inclusive) in the driving video
    stop: int  # last frame (exclusive)
    seed: int


@dataclass
class ClipPlan:
    num_frames: int
    clip_length: int
    overlap: int
    width: int
    height: int
    fps: float
    generator: dict  # backend name, model identity
    clips: list[ClipSpec] = field(default_factory=list)

    @staticmethod
    def make(num_frames: int, clip_length: int, overlap: int, seed: int, width: int, height: int,
             fps: float, generator: dict) -> "ClipPlan":
        """Clip c > 0 starts `overlap` frames before clip c-1 ends (the paper's continuation frame)."""
        if clip_length <= overlap:
            raise ValueError(f"clip_length {clip_length} must exceed overlap {overlap}")
        clips, start, i = [], 0, 0
        while True:
            stop = min(start + clip_length, num_frames)
            clips.append(ClipSpec(i, start, stop, seed + i))
            if stop >= num_frames:
                break
            start, i = stop - overlap, i + 1
        return ClipPlan(num_frames, clip_length, overlap, width, height, fps, generator, clips)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @staticmethod
    def from_json(text: str, path: Path | str = "plan.json") -> "ClipPlan":
        try:
            d = json.loads(text)
            clips = [ClipSpec(**c) for c in d.pop("clips")]
            plan = ClipPlan(**d, clips=clips)
        except Exception as exc:
            raise ArtifactError(path, f"unreadable clip plan ({exc})") from exc
        covered = [c for c in plan.clips]
        if not covered or covered[0].start != 0 or covered[-1].stop != plan.num_frames:
            raise ArtifactError(path, "clips do not cover the video")
        return plan


def clip_path(folder: Path, index: int) -> Path:
    return Path(folder) / f"{index:04d}.npy"


def save_clip(folder: Path, index: int, frames: np.ndarray) -> Path:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(frames, dtype=np.uint8), allow_pickle=False)
    path = clip_path(folder, index)
    atomic_write_bytes(path, buf.getvalue())
    return path


def load_clip(folder: Path, clip: ClipSpec, width: int, height: int) -> np.ndarray:
    path = clip_path(folder, clip.index)
    if not path.is_file():
        raise ArtifactError(path, "clip file is missing")
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise ArtifactError(path, f"not a readable .npy ({exc})") from exc
    want = (clip.stop - clip.start, height, width, 3)
    if arr.dtype != np.uint8 or arr.shape != want:
        raise ArtifactError(path, f"clip is {arr.dtype}{arr.shape}, expected uint8{want}")
    return arr


# ---------------------------------------------------------------------------- prepared videos
# One training (or held-out) video in the layout `fgbg prepare` writes and training and eval read:
# written here and read here, by every writer (prepare, the truth-based synthetic set, tests).


@dataclass
class PreparedVideo:
    id: str
    frames: np.ndarray  # (F, S, S, 3) uint8, memory-mapped
    keypoints: np.ndarray  # (F, 133, 2) float32 pixel x,y in the S x S frames
    scores: np.ndarray  # (F, 133) float32
    tracks: np.ndarray  # (F, N, 2) float32 pixel x,y
    visible: np.ndarray  # (F, N) bool
    origin: np.ndarray  # (N, 2) float32 frame-0 positions (fgbg.tracks.track_origins)
    masks: np.ndarray | None = None  # (F, S, S) bool person masks, memory-mapped (eval reads them)


class PreparedWriter:
    """Writes one prepared video into `folder`: `frames` and `masks` are memory maps to fill frame
    by frame (a long video never sits in memory whole), then `write_pose`, `write_tracks`, and
    `finish(meta)`, which writes meta.json last: a folder with meta.json is complete."""

    def __init__(self, folder: Path, num_frames: int, size: int):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        shape = (int(num_frames), int(size), int(size))
        self.frames = np.lib.format.open_memmap(self.folder / "frames.npy", "w+", np.uint8, (*shape, 3))
        self.masks = np.lib.format.open_memmap(self.folder / "masks.npy", "w+", bool, shape)

    def write_pose(self, keypoints, scores) -> None:
        np.savez(self.folder / "pose.npz", keypoints=np.asarray(keypoints, np.float32),
                 scores=np.asarray(scores, np.float32))

    def write_tracks(self, tracks, visible, origin, queries=None) -> None:
        origin = np.asarray(origin, np.float32)
        arrays = dict(tracks=np.asarray(tracks, np.float32), visible=np.asarray(visible, bool), origin=origin)
        if queries is not None:
            arrays["queries"] = np.asarray(queries, np.float32)
        np.savez(self.folder / "tracks.npz", **arrays)

    def finish(self, meta: dict) -> None:
        for m in (self.frames, self.masks):
            m.flush()
        self.frames = self.masks = None
        atomic_write_bytes(self.folder / "meta.json", (json.dumps(meta, indent=1, sort_keys=True) + "\n").encode())


def write_prepared(folder: Path, frames, keypoints, scores, masks, tracks, visible, origin, meta: dict,
                   queries=None) -> None:
    """One prepared video from arrays in memory (the truth-based synthetic set, tests)."""
    frames = np.asarray(frames, np.uint8)
    w = PreparedWriter(folder, len(frames), frames.shape[1])
    w.frames[:] = frames
    w.masks[:] = np.asarray(masks, bool)
    w.write_pose(keypoints, scores)
    w.write_tracks(tracks, visible, origin, queries)
    w.finish(meta)


def load_prepared(datasets: list[str], min_frames: int = 2) -> list[PreparedVideo]:
    """Every complete prepared video (meta.json present) of the dataset folders, with at least
    `min_frames` frames; frames and masks memory-mapped."""
    videos = []
    for root in datasets:
        folder = Path(root).expanduser() / "videos"
        for meta in sorted(folder.glob("*/meta.json")):
            d = meta.parent
            pose, tracks = np.load(d / "pose.npz"), np.load(d / "tracks.npz")
            frames = np.load(d / "frames.npy", mmap_mode="r")
            if len(frames) < min_frames:
                continue
            masks = np.load(d / "masks.npy", mmap_mode="r") if (d / "masks.npy").is_file() else None
            videos.append(PreparedVideo(d.name, frames, pose["keypoints"], pose["scores"], tracks["tracks"],
                                        tracks["visible"], tracks["origin"], masks))
    if not videos:
        from .errors import InputError

        raise InputError(f"no prepared videos in {', '.join(datasets)}",
                         cause=f"training needs videos/<id>/meta.json with >= {min_frames} frames",
                         hint="run `fgbg prepare VIDEOS_DIR DATASET_DIR` first")
    return videos
