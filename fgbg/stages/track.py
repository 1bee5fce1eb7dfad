"""track-bg: sparse point tracks on the background only (points on the person are masked out)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import artifacts
from ..backends import build, release, resolve
from ..errors import InputError
from ..video import read_frames
from . import segment as segment_stage
from ..params import to_dict
from .base import Job, ensure, make_key

NAME = "track-bg"
VERSION = 1
# Small videos are tracked upscaled so that their shorter side is at least this: the trackers'
# sizes in pixels (LK's 21 px window and frame border, the mask margin) were set for frames of a
# few hundred pixels, and at 64 px they leave almost no background to seed (0 to 5 tracks a frame
# on 64 px sample scenes, against 30+ upscaled). Upscaling adds no detail; it makes those sizes a
# share of the frame again. Tracks are scaled back to the driving video's pixels.
TRACK_MIN_SIDE = 256


def track_size(proc: tuple[int, int]) -> tuple[int, int]:
    """(W, H) at which track-bg runs: the processing size, small videos upscaled."""
    w, h = proc
    if min(w, h) >= TRACK_MIN_SIDE:
        return w, h
    s = TRACK_MIN_SIDE / min(w, h)
    return round(w * s), round(h * s)


def run(job: Job) -> artifacts.Tracks:
    return artifacts.load_tracks(record(job).folder / "tracks.npz")


def check(job: Job) -> None:
    """--background-from: the other video must cover the driving video (checked before any work)."""
    if job.track.background_from:
        _other_video(job)


def _other_video(job: Job):
    from ..video import probe

    other = probe(job.track.background_from)
    if other.num_frames < job.video.num_frames:
        raise InputError(f"--background-from {Path(other.path).name} is shorter than the driving video",
                         cause=f"it has {other.num_frames} frames, the driving video {job.video.num_frames}; "
                               "looping it would make the background jump back",
                         hint=f"use a background video of at least {job.video.num_frames} frames, "
                              "trim the driving video, or use --camera for a camera path")
    return other


def record(job: Job):
    if job.track.camera:
        return _camera_record(job)
    if job.track.background_from:
        return _other_record(job)
    seg_rec = segment_stage.record(job)
    name, models = resolve("track", job.track.backend)
    tsize = track_size(job.proc_size)
    params = to_dict(job.track)
    params.pop("camera")  # added later: left out when unused, so existing caches stay valid
    params.pop("background_from")
    key = make_key(NAME, VERSION, None, {"video": job.video_hash()}, {"segment": seg_rec.key},
                   models, extra={**params, "backend": name, "proc_size": job.proc_size,
                                  **({"track_size": list(tsize)} if tsize != job.proc_size else {})})

    def build_tracks(tmp: Path) -> dict:
        masks = artifacts.open_masks(seg_rec.folder / "masks")
        tracker = build("track", name, job.track, job.device)
        w, h = tsize
        size = None if (w, h) == (job.video.width, job.video.height) else (w, h)
        chunk = job.chunk(job.track.chunk)
        with job.report.progress(f"track-bg ({name})", job.video.num_frames) as advance:
            def chunks():
                for frames, m in zip(read_frames(job.video, chunk=chunk, size=size), masks.chunks(chunk)):
                    if m.shape[1:] != (h, w):
                        import cv2

                        m = np.stack([cv2.resize(k.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
                                      for k in m])
                    yield frames, m.astype(bool)
                    advance(len(frames))

            try:
                res = tracker.track(chunks(), job.video.num_frames)
            finally:
                release(tracker)
        if tsize != job.proc_size:  # pixel centres map onto pixel centres
            s = np.float32([job.video.width / w, job.video.height / h])

            def back(p):
                return ((p + 0.5) * s - 0.5).astype(np.float32)
        else:
            def back(p):
                return (p * np.float32(job.proc_scale)).astype(np.float32)
        q = res.queries.astype(np.float32).copy()
        q[:, 1:] = back(q[:, 1:])
        tr = artifacts.Tracks(back(res.tracks.astype(np.float32)), res.visible.astype(bool), q,
                              (job.video.width, job.video.height))
        artifacts.save_tracks(tmp / "tracks.npz", tr)
        vis = tr.visible.sum(1)
        return {"backend": name,
                "summary": f"{name}, {tr.tracks.shape[1]} tracks, {vis.min()}-{vis.max()} visible per frame"}

    return ensure(job, NAME, key, build_tracks, "tracks.npz")


def _camera_record(job: Job):
    """--camera: the tracks of a parametric camera path (fgbg.camera), no tracking, no masks."""
    from .. import camera

    camera.parse(job.track.camera)
    v = job.video
    key = make_key(NAME, VERSION, None, {"video": job.video_hash()}, {},
                   {}, extra={"camera": job.track.camera, "num_points": job.track.num_points,
                              "frames": v.num_frames, "size": [v.width, v.height], "fps": v.fps})

    def build_tracks(tmp: Path) -> dict:
        tracks, visible, queries = camera.camera_tracks(job.track.camera, v.num_frames, v.width, v.height,
                                                        v.fps, job.track.num_points)
        artifacts.save_tracks(tmp / "tracks.npz", artifacts.Tracks(tracks, visible, queries, (v.width, v.height)))
        return {"backend": "camera", "summary": f"camera {job.track.camera}, {tracks.shape[1]} points"}

    return ensure(job, NAME, key, build_tracks, "tracks.npz")


def _other_record(job: Job):
    """--background-from OTHER: OTHER's own background tracks (its own pose, masks and tracks, in
    a work directory of its own under this one, cached like any run), cut to the driving video's
    frames. Frames pair up one to one (a different frame rate changes the motion's speed)."""
    import dataclasses

    from ..video import probe_cached
    from ..workdir import Workdir

    other = _other_video(job)
    sub_root = job.workdir.root / "background-from" / job.workdir.file_hash(Path(other.path))[:16]
    sub_root.mkdir(parents=True, exist_ok=True)
    from ..report import Reporter

    sub = Job(video=probe_cached(other.path, sub_root), workdir=Workdir(sub_root), pose=job.pose,
              segment=job.segment, track=dataclasses.replace(job.track, background_from=""),
              force=job.force, device=job.device,
              report=Reporter(verbose=job.report.verbose, quiet=job.report.quiet))
    with sub.workdir:
        src = record(sub)
    for row in sub.report.rows:  # its stages in the summary, named apart from the driving video's
        job.report.add(dataclasses.replace(row, stage=f"{row.stage} (bg video)"))
    n = job.video.num_frames
    key = make_key(NAME, VERSION, None, {"video": job.video_hash()}, {"background-from": src.key}, {},
                   extra={"frames": n})

    def build_tracks(tmp: Path) -> dict:
        tr = artifacts.load_tracks(src.folder / "tracks.npz")
        keep = tr.queries[:, 0] < n  # tracks started after the cut are never seen
        cut = artifacts.Tracks(tr.tracks[:n, keep], tr.visible[:n, keep], tr.queries[keep], tr.frame_size)
        artifacts.save_tracks(tmp / "tracks.npz", cut)
        return {"backend": "background-from",
                "summary": f"from {Path(other.path).name}, {int(keep.sum())} tracks, frames 0-{n - 1}"}

    return ensure(job, NAME, key, build_tracks, "tracks.npz")
