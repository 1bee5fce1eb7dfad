"""segment: the person's mask in every frame (person = 1), restricted to the person the pose picked."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import artifacts
from ..backends import build, release, resolve
from ..video import read_frames
from . import pose as pose_stage
from .base import Job, ensure, make_key

NAME = "segment"
VERSION = 1


def run(job: Job) -> artifacts.FrameStore:
    return artifacts.open_masks(record(job).folder / "masks")


def record(job: Job):
    pose_rec = pose_stage.record(job)
    name, models = resolve("segment", job.segment.backend, job.segment)
    key = make_key(NAME, VERSION, job.segment, {"video": job.video_hash()}, {"pose": pose_rec.key},
                   models, extra={"backend": name, "proc_size": job.proc_size})

    def build_masks(tmp: Path) -> dict:
        pose = artifacts.load_pose(pose_rec.folder / "pose.npz")
        seg = build("segment", name, job.segment, job.device)
        w, h = job.proc_size
        kps = pose.keypoints / job.proc_scale
        out = artifacts.FrameStoreWriter(tmp / "masks", (h, w), "uint8")
        size = None if (w, h) == (job.video.width, job.video.height) else (w, h)
        t = 0
        area = 0.0
        try:
            with job.report.progress(f"segment ({name})", job.video.num_frames) as advance:
                for frames in read_frames(job.video, chunk=job.chunk(job.segment.chunk), size=size):
                    n = len(frames)
                    masks = seg.segment(frames, kps[t:t + n], pose.scores[t:t + n])
                    out.append(masks.astype(np.uint8))
                    area += float(masks.mean()) * n
                    t += n
                    advance(n)
        finally:
            release(seg)
        out.close()
        return {"backend": name, "summary": f"{name}, person covers {100 * area / max(t, 1):.0f}%"}

    return ensure(job, NAME, key, build_masks, "masks")
