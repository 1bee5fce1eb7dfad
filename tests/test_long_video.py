"""Heavier check (make test-slow): a long 1080p video streams through every stage.

The whole chain (pose, masks, tracks, reference, generate, stitch) runs in-process under
tracemalloc on 100 and on 400 frames of 1080p. tracemalloc sees every numpy array fgbg makes, so
its peak is what fgbg itself holds: a stage that kept the video (or its masks, pose maps, clips)
whole would need ~1.9 GB more for the long run (300 more decoded 1080p frames). mediapipe's own
native arenas are not traced; they grow to ~2 GB over the first ~160 frames and then stay flat
whatever the input size (measured), which is why process RSS is not the measure here.
"""

import tracemalloc

import cv2
import numpy as np
import pytest

from fgbg.report import Reporter
from fgbg.stages import generate, pose, reference, segment, stitch, track
from fgbg.stages.base import Job
from fgbg.video import probe, read_frames, write_video
from fgbg.workdir import Workdir


def _traced_peak_mb(sample, video, workdir) -> float:
    job = Job(video=probe(video), workdir=Workdir(workdir), ref_path=sample.ref, report=Reporter(quiet=True))
    tracemalloc.reset_peak()
    with job.workdir:
        for fn in (pose.record, segment.record, track.record, reference.record, generate.record):
            fn(job)
        out = stitch.run(job, None)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    info = probe(out)
    assert (info.width, info.height, info.num_frames) == (1920, 1080, job.video.num_frames)
    return peak


@pytest.mark.slow
def test_1080p_chain_streams(sample, tmp_path):
    src = np.concatenate(list(read_frames(probe(sample.driving), chunk=64)))
    peaks = {}
    tracemalloc.start()
    try:
        for n in (100, 400):
            video = tmp_path / f"long{n}.mp4"
            write_video(video, (cv2.resize(src[t % len(src)], (1920, 1080)) for t in range(n)), 24)
            peaks[n] = _traced_peak_mb(sample, video, tmp_path / f"wd{n}")
    finally:
        tracemalloc.stop()
    print(f"peak memory held by fgbg on 1080p: 100 frames {peaks[100]:.0f} MB, 400 frames {peaks[400]:.0f} MB")
    assert peaks[400] < peaks[100] + 200  # 300 more frames held whole would add 1,870 MB
    assert peaks[400] < 1000  # the 400 decoded frames alone are 2,490 MB
