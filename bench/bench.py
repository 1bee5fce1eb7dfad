"""Throughput of every stage on the built-in sample, cold `fgbg run` and the fully cached rerun.

    make bench            # or: .venv/bin/python bench/bench.py --sizes 256 512 --frames 48

Prints a markdown table. Stage fps = frames / seconds of that stage alone, measured in-process on a
fresh work directory (backend construction included); `run cold` and `run cached` time the whole CLI
as a user runs it (process start and imports included). Machines are noisy: compare rows of one run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def stage_times(driving: Path, ref: Path, workdir: Path) -> dict[str, float]:
    from fgbg.report import Reporter
    from fgbg.stages import generate, pose, reference, segment, stitch, track
    from fgbg.stages.base import Job
    from fgbg.video import probe
    from fgbg.workdir import Workdir

    job = Job(video=probe(driving), workdir=Workdir(workdir), ref_path=ref, report=Reporter(quiet=True))
    out = {}
    with job.workdir:
        for name, fn in (("extract-pose", pose.record), ("segment", segment.record),
                         ("track-bg", track.record), ("ref", reference.record),
                         ("generate", generate.record), ("stitch", lambda j: stitch.run(j, None))):
            t = time.perf_counter()
            fn(job)
            out[name] = time.perf_counter() - t
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--preset", default="dance")
    args = ap.parse_args()

    from fgbg.report import NativeStderrSilenced
    from fgbg.sample import make_sample

    NativeStderrSilenced().__enter__()  # mediapipe's native log lines would bury the table

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for size in args.sizes:
            t = time.perf_counter()
            s = make_sample(tmp / f"s{size}", preset=args.preset, num_frames=args.frames, width=size, height=size)
            t_sample = time.perf_counter() - t
            times = stage_times(s.driving, s.ref, tmp / f"wd{size}")
            cli = [sys.executable, "-m", "fgbg.cli", "run", str(s.driving), "--ref", str(s.ref),
                   "-w", str(tmp / f"cli{size}"), "-o", str(tmp / f"o{size}.mp4"), "-q"]
            t = time.perf_counter()
            subprocess.run(cli, check=True, capture_output=True)
            cold = time.perf_counter() - t
            t = time.perf_counter()
            subprocess.run(cli, check=True, capture_output=True)
            cached = time.perf_counter() - t
            rows.append((size, t_sample, times, cold, cached))

    n = args.frames
    from importlib.util import find_spec

    heavy = [m for m in ("torch", "sam2", "segment_anything", "onnxruntime", "diffusers") if find_spec(m)]
    print(f"\nfgbg bench: sample '{args.preset}', {n} frames; fps = frames per second (higher is better); "
          f"installed: {', '.join(heavy) or 'core only'} (the cached rerun imports none of them)\n")
    stages = ["extract-pose", "segment", "track-bg", "generate", "stitch"]
    print("| size | sample s | " + " | ".join(f"{s} fps" for s in stages) + " | ref s | run cold s | run cached s |")
    print("|---" * (len(stages) + 5) + "|")
    for size, t_sample, times, cold, cached in rows:
        fps = " | ".join(f"{n / times[s]:.1f}" for s in stages)
        print(f"| {size} | {t_sample:.1f} | {fps} | {times['ref']:.2f} | {cold:.1f} | {cached:.2f} |")


if __name__ == "__main__":
    main()
