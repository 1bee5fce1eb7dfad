"""`fgbg prepare`: a folder of videos -> a training dataset, resumable, shardable over machines.

For every video under `videos_dir` (recursively: .mp4 .mov .mkv .webm .avi, any case; sorted by
relative path; shard i of n takes the videos whose position % n == i), the usual preprocessing
stages run (pose, segment, track-bg, cached in `dataset_dir/work/<id>/`), and one training sample
is written to `dataset_dir/videos/<id>/` in the prepared layout (`fgbg.artifacts.PreparedWriter`,
which training and eval read with `load_prepared`):

- `frames.npy (F, S, S, 3) uint8`: every frame (written through a memory map, so long videos
  never sit in memory whole), scaled to *cover* an S x S square and
  centre-cropped. Our choice over keeping the aspect (long side = S): the training loader and the
  models take square S x S inputs, and padding bars would be learnt as picture content; cover keeps
  the most pixels on a centred person and costs the left/right (or top/bottom) margins.
- `pose.npz`: keypoints (F, 133, 2) float32 in those S x S pixels (pixel centres at integers; a
  point cropped away keeps its position outside [0, S) and its score), scores (F, 133) float32.
- `masks.npy (F, S, S) bool`: the person.
- `tracks.npz`: tracks (F, N, 2) float32 in S x S pixels, visible (F, N) bool (False where the
  point is cropped away), origin (N, 2) float32 (first-frame positions from
  fgbg.tracks.track_origins, computed before the crop so re-seeded tracks keep theirs;
  finite for every track), queries (N, 3) [t, x, y].
- `meta.json` (written last, atomically, in a folder under work/ that is then renamed into
  videos/, so videos/ only ever holds complete samples): source path,
  fps, original size, frames, the crop, backends used. A video whose meta.json exists is skipped.

A reference frame for training is any frame of the same video, so no separate photo is stored.
A video's id is its relative path with separators and odd characters replaced, plus 8 hex digits
of the path's sha1 (two paths never share an id after sanitising). One bad video never stops the
batch: its error goes to `failed-<i>-of-<n>.json` ({id, path, what, cause}; rewritten by every
run, `[]` when none failed) and the next starts; a rerun retries failed and missing videos.
`index-<i>-of-<n>.jsonl` has one line (the meta) per finished video of the shard, so machines
write disjoint files; `load_index(dataset_dir)` merges them. The stage cache of a finished video is
deleted unless keep_work (it holds pose maps at the video's processing size: bulky).

The videos still to do go in batches of up to BATCH through `prepare_batch`, stage by stage (each
stage's model built once per batch, one model held at a time), in this process (`engine="local"`)
or on Ray worker actors (`engine="ray"`, fgbg.engines): the same code, the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from pathlib import Path

import numpy as np

from ..errors import InputError, StageError

EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi")


def find_videos(videos_dir: Path, exclude: Path | None = None) -> list[tuple[Path, str]]:
    """(path, relative posix path) of every video under videos_dir, sorted by relative path;
    files under `exclude` (the dataset folder, when it lies inside) are left out."""
    root = Path(videos_dir)
    ex = exclude.resolve() if exclude is not None else None
    out = []
    for p in root.rglob("*"):
        if p.suffix.lower() in EXTENSIONS and p.is_file():
            if ex is not None and p.resolve().is_relative_to(ex):
                continue
            out.append((p, p.relative_to(root).as_posix()))
    return sorted(out, key=lambda x: x[1])


def video_id(rel: str) -> str:
    """'dance/take 1.mp4' -> 'dance__take_1.mp4-1a2b3c4d'."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", rel.replace("/", "__")).strip("._-")[:80] or "video"
    return f"{stem}-{hashlib.sha1(rel.encode()).hexdigest()[:8]}"


def check_shard(shard) -> tuple[int, int]:
    i, n = shard
    if not (isinstance(i, int) and isinstance(n, int)) or n < 1 or not 0 <= i < n:
        raise InputError(f"bad shard {i}/{n}", cause="a shard is i/N with N >= 1 and 0 <= i < N",
                         hint="use --shard 0/1 for one machine, or 0/4 ... 3/4 on four")
    return i, n


def parse_shard(text: str) -> tuple[int, int]:
    """'2/8' -> (2, 8); anything else is an InputError (exit 2)."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if m is None:
        raise InputError(f"bad --shard '{text}'", cause="a shard is written i/N, e.g. 0/4",
                         hint="use --shard 0/1 for one machine, or 0/4 ... 3/4 on four")
    return check_shard((int(m.group(1)), int(m.group(2))))


def _write_json(path: Path, data, lines: bool = False) -> None:
    from ..artifacts import atomic_write_bytes

    text = "".join(json.dumps(d, sort_keys=True) + "\n" for d in data) if lines else \
        json.dumps(data, indent=1, sort_keys=True) + "\n"
    atomic_write_bytes(path, text.encode())


def _read_meta(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None


def _crop(width: int, height: int, size: int):
    """Cover geometry: resized (rw, rh), crop offset (ox, oy), and video px -> sample px."""
    s = max(size / width, size / height)
    rw, rh = max(size, round(width * s)), max(size, round(height * s))
    ox, oy = (rw - size) // 2, (rh - size) // 2
    scale = np.array([rw / width, rh / height])

    def to_px(p: np.ndarray) -> np.ndarray:
        return ((p + 0.5) * scale - 0.5 - [ox, oy]).astype(np.float32)

    return (rw, rh), (ox, oy), to_px


def _write_sample(job, recs: dict, out: Path, size: int, meta: dict) -> dict:
    """The training sample of a job whose stages are done, into folder `out` (meta.json last)."""
    import cv2

    from .. import artifacts
    from ..tracks import track_origins
    from ..video import read_frames, resize_frame

    info = job.video
    pose = artifacts.load_pose(recs["pose"].folder / "pose.npz")
    masks = artifacts.open_masks(recs["segment"].folder / "masks")
    tr = artifacts.load_tracks(recs["track-bg"].folder / "tracks.npz")
    n = len(pose.keypoints)
    if len(masks) != n or len(tr.tracks) != n:
        raise StageError(f"stage results of {info.path} disagree on the frame count",
                         cause=f"pose {n}, masks {len(masks)}, tracks {len(tr.tracks)} frames",
                         hint=f"delete {job.workdir.root} and rerun prepare")
    (rw, rh), (ox, oy), to_px = _crop(info.width, info.height, size)
    out.mkdir(parents=True)
    w = artifacts.PreparedWriter(out, n, size)
    t = 0
    for chunk in read_frames(info, chunk=job.chunk(32)):
        for f in chunk[:max(n - t, 0)]:
            w.frames[t] = resize_frame(f, (rw, rh))[oy:oy + size, ox:ox + size]
            t += 1
    if t != n:
        raise StageError(f"decoded {t} frames of {info.path}, the stages saw {n}",
                         cause="the video's frame count is not stable between reads",
                         hint="re-encode the video (e.g. ffmpeg -i in.mp4 out.mp4) and rerun")
    area = 0.0
    for t0, m in zip(range(0, n, 64), masks.chunks(64)):
        for k, mk in enumerate(m):
            big = cv2.resize(mk.astype(np.float32), (rw, rh), interpolation=cv2.INTER_LINEAR)
            w.masks[t0 + k] = big[oy:oy + size, ox:ox + size] >= 0.5
            area += float(w.masks[t0 + k].mean())
    w.write_pose(to_px(pose.keypoints), pose.scores)
    origin = track_origins(tr.tracks, tr.visible, tr.queries)
    tracks = to_px(tr.tracks)
    inside = np.all((tracks >= -0.5) & (tracks < size - 0.5), axis=-1)
    queries = tr.queries.astype(np.float32).copy()
    queries[:, 1:] = to_px(queries[:, 1:])
    w.write_tracks(tracks, tr.visible & inside, to_px(origin), queries)
    meta = {**meta, "frames": n, "size": size, "tracks": int(tracks.shape[1]),
            "person_share": round(area / max(n, 1), 4),
            "crop": {"resized": [rw, rh], "offset": [ox, oy]},
            "backends": {k: r.meta.get("backend") for k, r in recs.items()}}
    w.finish(meta)
    return meta


STAGES = ("pose", "segment", "track-bg")  # run in this order over a batch of videos
STEPS = STAGES + ("sample",)  # what a video's progress counts
BATCH = 8  # videos a process takes at a time: each stage's model is loaded once per batch


def _open_video(item: dict, dataset_dir: Path, device: str):
    """The job of one video (probed: a file that is no video fails here), its work dir locked."""
    from ..report import Reporter
    from ..stages.base import Job
    from ..video import probe
    from ..workdir import Workdir

    info = probe(Path(item["path"]))
    job = Job(video=info, workdir=Workdir(dataset_dir / "work" / item["id"]),
              report=Reporter(quiet=True), device=device)
    job.workdir.acquire()
    return job


def _run_stage(job, stage: str):
    from ..stages import pose, segment, track

    return {"pose": pose.record, "segment": segment.record, "track-bg": track.record}[stage](job)


def _finish_video(job, item: dict, recs: dict, dataset_dir: Path, size: int) -> dict:
    """Write the sample of a video whose stages are done and move it into videos/ (atomic)."""
    info, vid = job.video, item["id"]
    final = dataset_dir / "videos" / vid
    tmp = job.workdir.root / "sample.tmp"  # outside videos/: a loader never sees a half-written sample
    shutil.rmtree(tmp, ignore_errors=True)  # left by a process killed while writing it
    meta = {"id": vid, "source": item["rel"], "path": str(Path(item["path"]).resolve()),
            "fps": info.fps, "width": info.width, "height": info.height, "rotation": info.rotation,
            "codec": info.codec}
    try:
        meta = _write_sample(job, recs, tmp, size, meta)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(final, ignore_errors=True)  # a folder without meta.json is not a sample
    tmp.rename(final)
    return meta


def prepare_batch(items: list[dict], dataset_dir: str, size: int, keep_work: bool,
                  device: str = "auto"):
    """Prepare a batch of videos ({id, path, rel} each) stage by stage: every video's pose, then
    every video's masks, then tracks, then the samples. With fgbg.backends.pool.reuse() around it
    (both engines, see fgbg.engines) each stage's model is built once for the batch and one model
    is held at a time. The same code for the local engine and for every Ray worker.

    Yields events: ("step", id, stage) after each stage of a video, then ("done", id, {meta,
    seconds}) or ("failed", id, {what, cause, traceback, seconds}); one bad video never stops the
    others. Each video's work dir (dataset/work/<id>/) is locked while the batch holds it."""
    from ..engines import failure

    dataset_dir = Path(dataset_dir)
    jobs, recs, seconds = {}, {}, {}

    def timed(vid, fn, *args):
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            seconds[vid] = seconds.get(vid, 0.0) + time.perf_counter() - start

    def failed(vid, exc):
        job = jobs.pop(vid, None)
        if job is not None:
            job.workdir.release()
        return "failed", vid, {**failure(exc), "seconds": seconds.get(vid, 0.0)}

    try:
        for item in items:
            try:
                jobs[item["id"]] = timed(item["id"], _open_video, item, dataset_dir, device)
                recs[item["id"]] = {}
            except Exception as exc:  # one bad video never stops the batch (Ctrl-C still does)
                yield failed(item["id"], exc)
        for stage in STAGES:
            for item in items:
                vid = item["id"]
                if vid not in jobs:
                    continue
                try:
                    recs[vid][stage] = timed(vid, _run_stage, jobs[vid], stage)
                except Exception as exc:
                    yield failed(vid, exc)
                    continue
                yield "step", vid, stage
        for item in items:
            vid = item["id"]
            if vid not in jobs:
                continue
            try:
                meta = timed(vid, _finish_video, jobs[vid], item, recs[vid], dataset_dir, size)
            except Exception as exc:
                yield failed(vid, exc)
                continue
            job = jobs.pop(vid)
            job.workdir.release()
            if not keep_work:
                shutil.rmtree(job.workdir.root, ignore_errors=True)
            yield "done", vid, {"meta": meta, "seconds": seconds[vid]}
    finally:  # a generator closed early (Ctrl-C, the consumer gone) frees its locks
        for job in jobs.values():
            job.workdir.release()


def prepare(videos_dir: Path, dataset_dir: Path, shard=(0, 1), size: int = 128, report=None,
            device: str = "auto", keep_work: bool = False, engine: str = "local",
            address: str | None = None, workers: int | None = None,
            gpus_per_worker: float = 0.0) -> dict:
    """Prepare shard (i, n) of the videos -> summary {dataset, shard, videos, done: [id],
    skipped: [id], failed: [{id, path, what, cause}], seconds: {id: time its work took}}.
    engine "local" works in this process; "ray" on Ray worker actors (fgbg.engines: address,
    workers, gpus_per_worker)."""
    from ..devices import check_device
    from ..engines import check_engine, run_items
    from ..report import Reporter

    i, n = check_shard(tuple(shard))
    check_device(device)
    check_engine(engine, address=address, workers=workers, gpus_per_worker=gpus_per_worker,
                 device=device)
    report = report or Reporter(quiet=True)
    videos_dir, dataset_dir = Path(videos_dir), Path(dataset_dir)
    if not videos_dir.is_dir():
        raise InputError(f"videos folder not found: {videos_dir}", cause="no folder at that path",
                         hint="give the folder that holds the videos (searched recursively)")
    if not 16 <= size <= 4096:
        raise InputError(f"size {size} is out of range", cause="samples are 16..4096 px square",
                         hint="use --size 128 (or 256, 512)")
    found = find_videos(videos_dir, exclude=dataset_dir)
    if not found:
        raise InputError(f"no videos in {videos_dir}",
                         cause=f"no {', '.join(EXTENSIONS)} files anywhere under it",
                         hint="give the folder that holds the videos")
    mine = [v for k, v in enumerate(found) if k % n == i]
    (dataset_dir / "videos").mkdir(parents=True, exist_ok=True)
    tag = f"{i}-of-{n}"
    index_path, failed_path = dataset_dir / f"index-{tag}.jsonl", dataset_dir / f"failed-{tag}.json"
    summary = {"dataset": str(dataset_dir), "shard": [i, n], "videos": len(mine), "done": [],
               "skipped": [], "failed": [], "seconds": {}}  # seconds: id -> time spent on it
    position, metas, todo = {}, {}, []
    for k, (path, rel) in enumerate(mine, 1):
        vid = video_id(rel)
        position[vid] = k
        meta = _read_meta(dataset_dir / "videos" / vid)
        if meta is not None:
            summary["skipped"].append(vid)
            metas[vid] = meta
            report.debug(f"[{k}/{len(mine)}] {rel}: already prepared")
            continue
        todo.append({"id": vid, "path": str(Path(path).resolve()), "rel": rel, "ids": [vid]})
    rel_of = {it["id"]: it["rel"] for it in todo}
    steps = {}
    kwargs = {"dataset_dir": str(dataset_dir.resolve()), "size": size, "keep_work": keep_work}
    events = run_items("fgbg.training.prepare:prepare_batch", todo, kwargs, engine=engine,
                       device=device, report=report, batch=BATCH, address=address,
                       workers=workers, gpus_per_worker=gpus_per_worker)
    with report.progress(f"prepare ({engine})", len(todo)) as advance:
        for kind, vid, payload in events:
            k, rel = position[vid], rel_of[vid]
            if kind == "step":
                steps[vid] = steps.get(vid, 0) + 1
                advance(1 / len(STEPS))
                continue
            advance(1 - steps.get(vid, 0) / len(STEPS))
            summary["seconds"][vid] = round(payload.get("seconds", 0.0), 3)
            if kind == "failed":
                if report.verbose and payload.get("traceback"):
                    report.debug(payload["traceback"])
                summary["failed"].append({"id": vid, "path": rel, "what": payload["what"],
                                          "cause": payload["cause"]})
                summary["failed"].sort(key=lambda f: position[f["id"]])
                _write_json(failed_path, summary["failed"])
                report.warn(f"[{k}/{len(mine)}] {rel}: failed: {payload['what']}")
                continue
            meta = payload["meta"]
            metas[vid] = meta
            summary["done"].append(vid)
            with open(index_path, "a") as f:  # progress is visible while the shard runs
                f.write(json.dumps(meta, sort_keys=True) + "\n")
            report.info(f"[{k}/{len(mine)}] {rel}: {meta['frames']} frames ({payload['seconds']:.1f}s)")
    summary["done"].sort(key=position.get)
    metas = [metas[vid] for vid in sorted(metas, key=position.get)]
    _write_json(index_path, metas, lines=True)  # complete and in order, finished earlier or now
    _write_json(failed_path, summary["failed"])
    return summary


def format_summary(summary: dict) -> str:
    i, n = summary["shard"]
    lines = [f"prepare shard {i}/{n}: {summary['videos']} videos: {len(summary['done'])} done, "
             f"{len(summary['skipped'])} skipped (already prepared), {len(summary['failed'])} failed"]
    for f in summary["failed"]:
        lines.append(f"  failed {f['path']}: {f['what']}" + (f" ({f['cause']})" if f["cause"] else ""))
    return "\n".join(lines)


def load_index(dataset_dir: Path) -> list[dict]:
    """Every shard's index merged: one meta per video id, sorted by source path."""
    merged = {}
    for path in sorted(Path(dataset_dir).glob("index-*-of-*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                meta = json.loads(line)
            except ValueError:  # a line cut short by a crash mid-append
                continue
            if isinstance(meta, dict) and "id" in meta:
                merged[meta["id"]] = meta
    return sorted(merged.values(), key=lambda m: (m.get("source", ""), m["id"]))
