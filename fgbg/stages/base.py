"""The job a run works on, and the one routine every stage uses to run-or-reuse itself."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..canvas import processing_size
from ..params import GenerateParams, PoseParams, SegmentParams, StitchParams, TrackParams, to_dict
from ..report import Reporter, StageRow, Timer
from ..video import VideoInfo
from ..workdir import Record, Workdir, stage_key

CHUNK_BYTES = 64 << 20  # decoded frames held at a time: 1080p chunks shrink to ~10 frames


@dataclass
class Job:
    """One driving video (and optionally a reference photo) in one work directory."""

    video: VideoInfo
    workdir: Workdir
    ref_path: Path | None = None
    pose: PoseParams = field(default_factory=PoseParams)
    segment: SegmentParams = field(default_factory=SegmentParams)
    track: TrackParams = field(default_factory=TrackParams)
    generate: GenerateParams = field(default_factory=GenerateParams)
    stitch: StitchParams = field(default_factory=StitchParams)
    force: frozenset[str] = frozenset()
    device: str = "auto"  # one device for the run (fgbg.devices); model backends load onto it
    report: Reporter = field(default_factory=Reporter)
    _keys: dict = field(default_factory=dict)
    _done: dict = field(default_factory=dict)  # (stage, key) -> Record checked in this process
    _video_hash: str | None = None

    @property
    def proc_size(self) -> tuple[int, int]:
        return processing_size(self.video.width, self.video.height)

    @property
    def proc_scale(self) -> float:
        """driving-video pixels per processing pixel"""
        return self.video.width / self.proc_size[0]

    @property
    def canvas_size(self) -> tuple[int, int]:
        """(W, H) of the generated frames."""
        w = self.generate.width or self.proc_size[0]
        h = self.generate.height or self.proc_size[1]
        return w, h

    def chunk(self, frames: int) -> int:
        """Frames per decoded chunk: the stage's setting, fewer for large frames. Every reader
        of one stage must use the same value (frame and mask chunks are zipped)."""
        per_frame = self.video.width * self.video.height * 3
        return max(2, min(frames, CHUNK_BYTES // per_frame))

    def video_hash(self) -> str:
        if self._video_hash is None:
            self._video_hash = self.workdir.file_hash(Path(self.video.path))
        return self._video_hash

    def memo_key(self, name: str, compute: Callable[[], str]) -> str:
        if name not in self._keys:
            self._keys[name] = compute()
        return self._keys[name]


def make_key(stage: str, version: int, params, inputs: dict, upstream: dict, models: dict,
             extra: dict | None = None) -> str:
    p = to_dict(params) if params is not None else {}
    if extra:
        p = {**p, **extra}
    return stage_key(stage, version, p, inputs, upstream, models)


def ensure(job: Job, stage: str, key: str, build: Callable[[Path], dict],
           main_output: str) -> Record:
    """Reuse the stage's completed result with this key, or build it into a temporary folder and
    commit it atomically. `build(tmp_folder) -> meta` writes the outputs."""
    wd = job.workdir
    if (stage, key) in job._done:  # already run or verified in this process
        return job._done[(stage, key)]
    forced = stage in job.force or "all" in job.force
    if not forced:
        rec, reason = wd.completed(stage, key)
        if rec is not None:
            job.report.add(StageRow(stage, "cached", 0.0, str(rec.folder / main_output)))
            job.report.debug(f"{stage}: cached ({key[:12]})")
            job._done[(stage, key)] = rec
            return rec
        job.report.debug(f"{stage}: {reason}")
        if reason.startswith("cached file"):
            job.report.warn(f"{stage}: {reason}; recomputing")
    timer = Timer()
    tmp = wd.begin(stage)
    try:
        meta = build(tmp) or {}
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    rec = wd.commit(stage, tmp, key, meta)
    job._done[(stage, key)] = rec
    job.report.add(StageRow(stage, "ran", timer.seconds, str(rec.folder / main_output),
                            meta.get("summary", "")))
    return rec
