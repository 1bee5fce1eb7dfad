"""Heavier check (make test-slow): a long 1080p video streams through every stage in bounded memory.

Peak memory of `fgbg run` on 400 frames of 1080p is compared with the same run on 100 frames: a
stage that held the video (or its masks, pose maps, clips) whole would need ~1.9 GB more for the
long one (300 more decoded 1080p frames); streaming keeps the two peaks close.
"""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from fgbg.video import probe, read_frames, write_video

# runs a command and prints the peak RSS (MB) of it and its descendants
PEAK = ("import json, resource, subprocess, sys\n"
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "print(json.dumps({'rc': r.returncode, 'err': r.stderr[-2000:],"
        " 'mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))")


def _peak_run(sample, frames_src, n, tmp_path):
    video = tmp_path / f"long{n}.mp4"
    write_video(video, (cv2.resize(frames_src[t % len(frames_src)], (1920, 1080)) for t in range(n)), 24)
    cmd = [sys.executable, "-m", "fgbg.cli", "run", str(video), "--ref", str(sample.ref),
           "-w", str(tmp_path / f"wd{n}"), "-o", str(tmp_path / f"o{n}.mp4"), "-q"]
    out = json.loads(subprocess.run([sys.executable, "-c", PEAK, *cmd], capture_output=True,
                                    text=True, timeout=1500).stdout)
    assert out["rc"] == 0, out["err"]
    info = probe(tmp_path / f"o{n}.mp4")
    assert (info.width, info.height, info.num_frames) == (1920, 1080, n)
    return out["mb"]


@pytest.mark.slow
def test_1080p_run_streams_in_bounded_memory(sample, tmp_path):
    src = np.concatenate(list(read_frames(probe(sample.driving), chunk=64)))
    short = _peak_run(sample, src, 100, tmp_path)
    long = _peak_run(sample, src, 400, tmp_path)
    print(f"peak RSS of `fgbg run` on 1080p: 100 frames {short:.0f} MB, 400 frames {long:.0f} MB")
    assert long < short + 400  # 300 more frames held whole would add 1,870 MB
