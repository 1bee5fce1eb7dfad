"""`fgbg prepare` throughput: the local engine against Ray (2 workers), and Ray's overhead per video.

    make bench-scale      # or: .venv/bin/python bench/bench_scale.py --videos 8 --workers 2

Makes N sample videos (128 px, 16 frames: mediapipe misses the person in most 64 px scenes),
then prepares them at 64 px into fresh datasets, in-process as `fgbg prepare` does:

- local: the local engine (one process, stage by stage over batches of 8 videos).
- ray cold: `--engine ray` with no cluster running: starting the local Ray cluster, the worker
  actors and shutting it down are inside the time, as a user's first `fgbg prepare --engine ray`.
- ray warm: a cluster already started (`ray.init` before the clock): the actors still start.

videos/min = N / wall seconds. Overhead per video = (wall - work / workers) / N, where work is the
time the workers spent inside the per-video code (summary["seconds"]): what Ray adds (cluster and
actor start-up, scheduling, result transfer, idle workers at the end), spread over the videos.
The workers' own slow-down from sharing the cores is not overhead; it shows in videos/min.
Machines are noisy (the load average is printed): compare rows of one run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def make_videos(root: Path, count: int) -> Path:
    from fgbg.sample import make_sample

    for k in range(count):
        preset = ("dance", "walk")[k % 2]
        make_sample(root / f"{preset}{k // 2}", preset=preset, seed=k // 2, num_frames=16, width=128,
                    height=128, audio=False)
    return root


def timed_prepare(videos: Path, ds: Path, **kw) -> tuple[float, dict]:
    from fgbg.training.prepare import prepare

    start = time.perf_counter()
    summary = prepare(videos, ds, size=64, **kw)
    wall = time.perf_counter() - start
    if summary["failed"]:
        raise SystemExit(f"bench: {len(summary['failed'])} videos failed: {summary['failed'][0]}")
    return wall, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1, help="runs of each row, the fastest kept "
                                                          "(the rows interleave, so load drifts hit all)")
    args = ap.parse_args()
    os.environ.setdefault("GLOG_minloglevel", "2")
    n, w = args.videos, args.workers
    with tempfile.TemporaryDirectory(prefix="fgbg-bench-scale-") as tmp:
        tmp = Path(tmp)
        videos = make_videos(tmp / "videos", n)
        load = os.getloadavg()[0]
        best = {}

        def keep(name, wall, summary, k):
            if name not in best or wall < best[name][0]:
                best[name] = (wall, sum(summary["seconds"].values()), k)

        import ray

        init = float("inf")
        for r in range(args.repeat):
            keep("local (1 process)", *timed_prepare(videos, tmp / f"local{r}", engine="local"), 1)
            keep(f"ray cold ({w} workers, cluster start inside)",
                 *timed_prepare(videos, tmp / f"ray-cold{r}", engine="ray", workers=w), w)
            start = time.perf_counter()
            ray.init(num_cpus=w, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
            init = min(init, time.perf_counter() - start)
            try:
                keep(f"ray warm ({w} workers, cluster running)",
                     *timed_prepare(videos, tmp / f"ray-warm{r}", engine="ray", workers=w), w)
            finally:
                ray.shutdown()
        rows = [(name, *v) for name, v in best.items()]
    local = rows[0][1]
    print(f"\n`fgbg prepare` of {n} sample videos (128 px, 16 frames -> 64 px samples), "
          f"{os.cpu_count()} cores, load average {load:.1f} at the start; ray.init alone: {init:.1f}s; "
          f"fastest of {args.repeat}\n")
    print("| engine | wall s | videos/min | vs local | work s (in workers) | overhead s/video |")
    print("|---|---|---|---|---|---|")
    for name, wall, work, k in rows:
        overhead = "" if k == 1 else f"{(wall - work / k) / n:.2f}"
        print(f"| {name} | {wall:.1f} | {60 * n / wall:.1f} | {local / wall:.2f}x | {work:.1f} "
              f"| {overhead} |")


if __name__ == "__main__":
    main()
