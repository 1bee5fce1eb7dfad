"""Training samples from `fgbg prepare` folders, a pure function of (seed, step).

A dataset folder holds videos/<id>/ in the prepared layout (`fgbg.artifacts`, "prepared video"). Batch `step` is drawn with a
generator seeded from (seed, step), so resuming at step k sees exactly the batches an
uninterrupted run sees (no sampler state to save). Frames are memory-mapped. The draws (plan_batch)
are separate from the reading and drawing (render_batch): in a multi-process run every process
draws the plan of the whole global batch and renders only its own rows.

Per sample (our choices): a video, a window of `frames` consecutive frames (1 in stage 1), and a
reference frame drawn from the whole video (the person in another pose); the window is resized to
the training resolution if the dataset was prepared at another size.
"""

from __future__ import annotations


import numpy as np

from ..artifacts import PreparedVideo


def _resize(frames: np.ndarray, size: int) -> np.ndarray:
    if frames.shape[1] == size and frames.shape[2] == size:
        return np.asarray(frames)
    import cv2

    return np.stack([cv2.resize(np.asarray(f), (size, size), interpolation=cv2.INTER_LINEAR) for f in frames])


def plan_batch(videos: list[PreparedVideo], step: int, *, seed: int, batch_size: int, frames: int,
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


def render_batch(videos: list[PreparedVideo], plan: dict[str, np.ndarray], rows, *, frames: int,
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


def make_batch(videos: list[PreparedVideo], step: int, *, seed: int, batch_size: int, frames: int, size: int,
               cond_prob: float, uncond_prob: float) -> dict[str, np.ndarray]:
    """The whole batch `step` (plan_batch, then render_batch of every row)."""
    plan = plan_batch(videos, step, seed=seed, batch_size=batch_size, frames=frames, cond_prob=cond_prob,
                      uncond_prob=uncond_prob)
    return render_batch(videos, plan, range(batch_size), frames=frames, size=size)


def dataset_summary(videos: list[PreparedVideo]) -> str:
    frames = sum(len(v.frames) for v in videos)
    return f"{len(videos)} videos, {frames} frames"
