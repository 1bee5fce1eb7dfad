"""track-bg: sparse point tracks on the background only (points on the person are masked out)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import artifacts
from ..backends import build, release, resolve
from ..video import read_frames
from . import segment as segment_stage
from .base import Job, ensure, make_key

NAME = "track-bg"
VERSION = 1


def run(job: Job) -> artifacts.Tracks:
    return artifacts.load_tracks(record(job).folder / "tracks.npz")


def record(job: Job):
    seg_rec = segment_stage.record(job)
    name, models = resolve("track", job.track.backend)
    key = make_key(NAME, VERSION, job.track, {"video": job.video_hash()}, {"segment": seg_rec.key},
                   models, extra={"backend": name, "proc_size": job.proc_size})

    def build_tracks(tmp: Path) -> dict:
        masks = artifacts.open_masks(seg_rec.folder / "masks")
        tracker = build("track", name, job.track, job.device)
        w, h = job.proc_size
        size = None if (w, h) == (job.video.width, job.video.height) else (w, h)
        chunk = job.chunk(job.track.chunk)
        with job.report.progress(f"track-bg ({name})", job.video.num_frames) as advance:
            def chunks():
                for frames, m in zip(read_frames(job.video, chunk=chunk, size=size), masks.chunks(chunk)):
                    yield frames, m.astype(bool)
                    advance(len(frames))

            try:
                res = tracker.track(chunks(), job.video.num_frames)
            finally:
                release(tracker)
        s = job.proc_scale
        q = res.queries.astype(np.float32).copy()
        q[:, 1:] *= s
        tr = artifacts.Tracks(res.tracks.astype(np.float32) * s, res.visible.astype(bool), q,
                              (job.video.width, job.video.height))
        artifacts.save_tracks(tmp / "tracks.npz", tr)
        vis = tr.visible.sum(1)
        return {"backend": name,
                "summary": f"{name}, {tr.tracks.shape[1]} tracks, {vis.min()}-{vis.max()} visible per frame"}

    return ensure(job, NAME, key, build_tracks, "tracks.npz")
