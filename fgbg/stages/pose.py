"""extract-pose: whole-body keypoints of the one most prominent person, and rendered pose maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import artifacts
from ..backends import build, release, resolve
from ..errors import InputError
from ..video import read_frames
from .base import Job, ensure, make_key

NAME = "pose"
VERSION = 1
MIN_PERSON_SHARE = 0.5  # fewer frames than this with a person: the video has no usable person


def person_present(scores: np.ndarray, min_score: float) -> np.ndarray:
    """(..., 133) scores -> (...) bool: at least 5 of the 17 body points are confident."""
    return (scores[..., :17] >= min_score).sum(-1) >= 5


def run(job: Job) -> artifacts.Pose:
    return artifacts.load_pose(record(job).folder / "pose.npz")


def record(job: Job):
    name, models = resolve("pose", job.pose.backend)
    key = make_key(NAME, VERSION, job.pose, {"video": job.video_hash()}, {}, models,
                   extra={"backend": name, "proc_size": job.proc_size})

    def build_pose(tmp: Path) -> dict:
        from ..pose.draw import draw_pose_maps

        est = build("pose", name, job.pose, job.device)
        w, h = job.proc_size
        scale = job.proc_scale
        maps = artifacts.FrameStoreWriter(tmp / "pose_maps", (h, w, 3), "uint8")
        kps, scs = [], []
        size = None if (w, h) == (job.video.width, job.video.height) else (w, h)
        try:
            with job.report.progress(f"pose ({name})", job.video.num_frames) as advance:
                for frames in read_frames(job.video, chunk=job.chunk(job.pose.chunk), size=size):
                    k, s = est.estimate(frames)
                    maps.append(draw_pose_maps(k, s, w, h))
                    kps.append(k.astype(np.float32) * scale)
                    scs.append(s.astype(np.float32))
                    advance(len(frames))
        finally:
            release(est)
        maps.close()
        keypoints, scores = np.concatenate(kps), np.concatenate(scs)
        found = int(person_present(scores, job.pose.min_score).sum())
        if found < MIN_PERSON_SHARE * len(scores):
            raise InputError(f"no person found in {job.video.path}",
                             cause=f"the pose estimator ({name}) found a person in only {found} of "
                                   f"{len(scores)} frames",
                             hint="use a driving video in which one person is fully visible in most frames")
        artifacts.save_pose(tmp / "pose.npz", artifacts.Pose(keypoints, scores,
                                                            (job.video.width, job.video.height),
                                                            job.video.fps))
        return {"backend": name, "summary": f"{name}, person in {found}/{len(scores)} frames"}

    return ensure(job, NAME, key, build_pose, "pose.npz")
