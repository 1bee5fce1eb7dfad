"""Heavier check (make test-slow): a long 1080p video streams through every stage in bounded memory."""

import resource

import cv2
import numpy as np
import pytest

from conftest import fgbg
from fgbg.video import probe, read_frames, write_video

FRAMES = 400  # 1920x1080x3 x 400 = 2.5 GB if a stage held the video whole


@pytest.mark.slow
def test_1080p_run_streams_in_bounded_memory(sample, tmp_path):
    small = np.concatenate(list(read_frames(probe(sample.driving), chunk=64)))

    def frames():
        for t in range(FRAMES):
            yield cv2.resize(small[t % len(small)], (1920, 1080), interpolation=cv2.INTER_LINEAR)

    write_video(tmp_path / "long.mp4", frames(), 24)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    r = fgbg("run", tmp_path / "long.mp4", "--ref", sample.ref, "-w", tmp_path / "wd",
             "-o", tmp_path / "o.mp4", timeout=1500)
    assert r.returncode == 0, r.stderr
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak RSS of `fgbg run` on {FRAMES} frames of 1080p: {peak_mb:.0f} MB (before: {before / 1024:.0f})")
    info = probe(tmp_path / "o.mp4")
    assert (info.width, info.height, info.num_frames) == (1920, 1080, FRAMES)
    assert peak_mb < 1500  # the whole video decoded would be 2,490 MB
