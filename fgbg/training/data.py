"""Training samples from `fgbg prepare` folders, a pure function of (seed, step).

A dataset folder holds videos/<id>/{frames.npy (F,S,S,3) uint8, pose.npz (keypoints, scores),
masks.npy, tracks.npz (tracks, visible, origin), meta.json}. Batch `step` is drawn with a
generator seeded from (seed, step), so resuming at step k sees exactly the batches an
uninterrupted run sees (no sampler state to save). Frames are memory-mapped. The draws (plan_batch)
are separate from the reading and drawing (render_batch): in a multi-process run every process
draws the plan of the whole global batch and renders only its own rows.

Per sample (our choices): a video, a window of `frames` consecutive frames (1 in stage 1), and a
reference frame drawn from the whole video (the person in another pose); the window is resized to
the training resolution if the dataset was prepared at another size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError


@dataclass
class Video:
    id: str
    frames: np.ndarray  # (F, S, S, 3) uint8, memory-mapped
    keypoints: np.ndarray
    scores: np.ndarray
    tracks: np.ndarray
    visible: np.ndarray
    origin: np.ndarray
    masks: np.ndarray | None = None  # (F, S, S) bool person masks, memory-mapped (eval reads them)


def load_videos(datasets: list[str], min_frames: int = 2) -> list[Video]:
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
            videos.append(Video(d.name, frames, pose["keypoints"], pose["scores"], tracks["tracks"],
                                tracks["visible"], tracks["origin"], masks))
    if not videos:
        raise InputError(f"no prepared videos in {', '.join(datasets)}",
                         cause=f"training needs videos/<id>/meta.json with >= {min_frames} frames",
                         hint="run `fgbg prepare VIDEOS_DIR DATASET_DIR` first")
    return videos


def _resize(frames: np.ndarray, size: int) -> np.ndarray:
    if frames.shape[1] == size and frames.shape[2] == size:
        return np.asarray(frames)
    import cv2

    return np.stack([cv2.resize(np.asarray(f), (size, size), interpolation=cv2.INTER_LINEAR) for f in frames])


def plan_batch(videos: list[Video], step: int, *, seed: int, batch_size: int, frames: int,
               cond_prob: float, uncond_prob: float) -> dict[str, np.ndarray]:
    """The random draws of batch `step` (cheap; nothing is read): per sample the video, the
    window start, the reference frame, cond and drop_ref, all arrays of length batch_size.
    Every process of a multi-process run draws the same plan of the global batch."""
    rng = np.random.default_rng([seed, step])
    plan = {k: [] for k in ("video", "start", "ref", "cond", "drop_ref")}
    for _ in range(batch_size):
        v = int(rng.integers(len(videos)))
        n = len(videos[v].frames)
        plan["video"].append(v)
        plan["start"].append(int(rng.integers(n - min(frames, n) + 1)))
        plan["ref"].append(int(rng.integers(n)))
        plan["cond"].append(rng.random() < cond_prob)
        plan["drop_ref"].append(rng.random() < uncond_prob)
    return {k: np.array(v, bool if k in ("cond", "drop_ref") else np.int64) for k, v in plan.items()}


def render_batch(videos: list[Video], plan: dict[str, np.ndarray], rows, *, frames: int,
                 size: int) -> dict[str, np.ndarray]:
    """The samples `rows` (indices into the plan, in that order) as a numpy batch: target
    (B,F,S,S,3) uint8, ref (B,S,S,3), pose (B,F,S,S,3) uint8, tracks (B,F,3,S,S) float32,
    cond (B,) bool, drop_ref (B,) bool."""
    from ..diffusion.track_maps import render_track_maps
    from ..pose.draw import draw_pose_maps

    out = {k: [] for k in ("target", "ref", "pose", "tracks")}
    for i in rows:
        v = videos[plan["video"][i]]
        f = min(frames, len(v.frames))
        s, r = int(plan["start"][i]), int(plan["ref"][i])
        src = v.frames.shape[1]
        scale = size / src
        out["target"].append(_resize(v.frames[s:s + f], size))
        out["ref"].append(_resize(v.frames[r:r + 1], size)[0])
        kps = (v.keypoints[s:s + f] + 0.5) * scale - 0.5
        out["pose"].append(draw_pose_maps(kps, v.scores[s:s + f], size, size))
        out["tracks"].append(render_track_maps(v.tracks[s:s + f], v.visible[s:s + f], v.origin,
                                               (src, src), (size, size)))
    rows = np.asarray(list(rows), np.int64)
    return {**{k: np.stack(v) for k, v in out.items()}, "cond": plan["cond"][rows],
            "drop_ref": plan["drop_ref"][rows]}


def make_batch(videos: list[Video], step: int, *, seed: int, batch_size: int, frames: int, size: int,
               cond_prob: float, uncond_prob: float) -> dict[str, np.ndarray]:
    """The whole batch `step` (plan_batch, then render_batch of every row)."""
    plan = plan_batch(videos, step, seed=seed, batch_size=batch_size, frames=frames, cond_prob=cond_prob,
                      uncond_prob=uncond_prob)
    return render_batch(videos, plan, range(batch_size), frames=frames, size=size)


def dataset_summary(videos: list[Video]) -> str:
    frames = sum(len(v.frames) for v in videos)
    return f"{len(videos)} videos, {frames} frames"


def write_prepared(folder: Path, frames, keypoints, scores, masks, tracks, visible, origin, meta: dict) -> None:
    """Write one video in the prepared layout (used by `fgbg prepare` and by tests)."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "frames.npy", np.asarray(frames, np.uint8))
    np.savez(folder / "pose.npz", keypoints=np.asarray(keypoints, np.float32), scores=np.asarray(scores, np.float32))
    np.save(folder / "masks.npy", np.asarray(masks, bool))
    np.savez(folder / "tracks.npz", tracks=np.asarray(tracks, np.float32), visible=np.asarray(visible, bool),
             origin=np.asarray(origin, np.float32))
    (folder / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
