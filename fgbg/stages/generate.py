"""generate: the output frames, clip by clip, resumable clip by clip.

The clip plan is written first into `.generate.partial-<key>/`; each clip is committed as soon as it
is made. A rerun after an interruption finds that folder (same key), keeps the finished clips and
starts at the first missing one, so it ends with the same bytes as an uninterrupted run. When all
clips exist, the completion record is written and the folder becomes `generate/`.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np

from .. import artifacts
from ..backends import build, release, resolve
from ..backends.base import ClipInputs, Reference
from ..errors import InputError, NonFiniteError
from ..params import GenerateParams
from ..report import StageRow, Timer
from . import pose as pose_stage
from . import reference as reference_stage
from . import track as track_stage
from ..canvas import generation_canvas, to_canvas
from .base import Job, make_key

import os
import time

NAME = "generate"
VERSION = 2  # 2: the anchored background at --anchor-steps 1.0 is the plate's own pixels (Anchor.paste)
_DELAY = float(os.environ.get("FGBG_CLIP_DELAY_S", "0") or 0)
OVERLAP = 1  # clip c > 0 starts on the last frame of clip c-1 (PAPER.md, condition concatenation)


def check(job: Job) -> None:
    check_params(job.generate)
    track_stage.check(job)


BG_HINT = "give a photo of the background you want (PNG or JPEG) with --background-image"


def read_background(path: str, width: int, height: int) -> np.ndarray:
    """--background-image fitted to the canvas as the reference photo is (cover, centred crop)."""
    from ..canvas import apply_cover
    from ..video import read_image

    return apply_cover(read_image(path, "background image", BG_HINT), width, height)


def with_background(ref: Reference, background: np.ndarray) -> Reference:
    """The reference photo's person over another background: the person's pixels (mask feathered
    by a pixel) composited onto `background`, which becomes the plate every generator moves."""
    import cv2

    alpha = cv2.GaussianBlur(ref.mask.astype(np.float32), (3, 3), 0)[..., None]
    image = (alpha * ref.image + (1 - alpha) * background).round().astype(np.uint8)
    return dataclasses.replace(ref, image=image, background=background)


def check_params(p: GenerateParams) -> None:
    """The generate options that need no video or model (the stage, and fgbg.inmemory)."""
    if p.clip_length < 2:
        raise InputError(f"--clip-length {p.clip_length} is too short",
                         cause="a clip continues from one frame of the previous clip, so it needs >= 2",
                         hint="use --clip-length 16 (or any value >= 2)")
    for what, v in (("--width", p.width), ("--height", p.height)):
        if v < 0 or v == 1 or v > 4096:
            raise InputError(f"{what} {v} is out of range", cause="sizes are 0 (auto) or 2..4096 pixels",
                             hint=f"leave {what} out to use the driving video's size")
    if p.background_image:
        from ..video import read_image

        read_image(p.background_image, "background image", BG_HINT)  # named before any work


DIFFUSION_ONLY = ("steps", "guidance_scale", "dtype", "low_memory", "offload", "pipeline")
# added after the first release of the key: left out of other backends' keys altogether, so their
# cached results stay valid
DIFFUSION_ONLY_NEW = ("background", "anchor_steps", "init", "strength")


def keyed_params(p: GenerateParams, backend: str) -> GenerateParams:
    """The params as the cache key sees them: the resolved backend (auto and its choice are the
    same work) and, for other backends, the diffusion-only fields at their defaults (they change
    nothing there)."""
    reset = {} if backend == "diffusion" else {f: getattr(GenerateParams(), f) for f in DIFFUSION_ONLY}
    return dataclasses.replace(p, backend=backend, **reset)


def record(job: Job):
    check(job)
    pose_rec = pose_stage.record(job)
    track_rec = track_stage.record(job)
    ref_rec = reference_stage.record(job)
    name, models = resolve("generate", job.generate.backend, job.generate)
    w, h = generation_canvas(job, name)
    keyed = dataclasses.asdict(keyed_params(job.generate, name))
    if name != "diffusion":
        for f in DIFFUSION_ONLY_NEW:
            keyed.pop(f)
    # added later: absent when unused (existing caches stay valid); keyed by content, not by path
    bg_path = keyed.pop("background_image")
    if bg_path:
        keyed["background_image_sha256"] = job.workdir.file_hash(Path(bg_path))
    if name == "diffusion":  # what `auto` resolves to is the work done (with a background image too)
        from ..backends.generate.diffusion import background_mode

        keyed["background"] = background_mode(job.generate)
    key = make_key(NAME, VERSION, None, {},
                   {"pose": pose_rec.key, "track-bg": track_rec.key, "ref": ref_rec.key}, models,
                   extra={**keyed, "backend": name, "canvas": [w, h], "overlap": OVERLAP})
    wd = job.workdir
    if (NAME, key) in job._done:
        return job._done[(NAME, key)]
    if NAME not in job.force and "all" not in job.force:
        rec, reason = wd.completed(NAME, key)
        if rec is not None:
            job.report.add(StageRow(NAME, "cached", 0.0, str(rec.folder / "clips")))
            job._done[(NAME, key)] = rec
            return rec
    timer = Timer()
    partial = wd.root / f".{NAME}.partial-{key[:16]}"
    for stale in wd.root.glob(f".{NAME}.partial-*"):
        if stale != partial or NAME in job.force or "all" in job.force:
            shutil.rmtree(stale, ignore_errors=True)
    clips_dir = partial / "clips"
    clips_dir.mkdir(parents=True, exist_ok=True)

    plan_path = partial / "plan.json"
    plan = None
    if plan_path.is_file():
        try:
            plan = artifacts.ClipPlan.from_json(plan_path.read_text(), plan_path)
        except artifacts.ArtifactError:
            plan = None
    if plan is None:
        plan = artifacts.ClipPlan.make(job.video.num_frames, job.generate.clip_length, OVERLAP,
                                       job.generate.seed, w, h, job.video.fps,
                                       {"backend": name, "models": models})
        artifacts.atomic_write_bytes(plan_path, plan.to_json().encode())

    # conditions on the canvas
    pose = artifacts.load_pose(pose_rec.folder / "pose.npz")
    tracks = artifacts.load_tracks(track_rec.folder / "tracks.npz")
    ref = artifacts.load_reference(ref_rec.folder / "ref.npz")
    kps = to_canvas(pose.keypoints, pose.frame_size, (w, h))
    if job.generate.retarget:
        from ..pose.retarget import retarget

        kps = retarget(kps, pose.scores, ref["keypoints"], ref["scores"], min_score=job.pose.min_score)
    tr = to_canvas(tracks.tracks, tracks.frame_size, (w, h))
    # frame-0 positions for every track, re-seeded ones included (mapped back through the camera
    # motion at their start), so every clip sees one frame of reference
    from ..tracks import track_origins

    queries = tracks.queries.copy()
    queries[:, 1:] = to_canvas(queries[:, 1:], tracks.frame_size, (w, h))
    origin = track_origins(tr, tracks.visible, queries)

    from ..pose.draw import draw_pose_maps

    reference = Reference(ref["image"], ref["keypoints"], ref["scores"], ref["mask"].astype(bool))
    if bg_path:
        reference = with_background(reference, read_background(bg_path, w, h))
    gen = build("generate", name, job.generate, job.device)
    try:
        gen.prepare(reference, w, h)
        done_before = 0
        prev = None
        with job.report.progress(f"generate ({name})", len(plan.clips)) as advance:
            for clip in plan.clips:
                try:
                    frames = artifacts.load_clip(clips_dir, clip, w, h)
                    done_before += 1
                except artifacts.ArtifactError:
                    sl = slice(clip.start, clip.stop)
                    try:
                        frames = gen.generate_clip(ClipInputs(
                            keypoints=kps[sl], scores=pose.scores[sl],
                            pose_maps=draw_pose_maps(kps[sl], pose.scores[sl], w, h),
                            tracks=tr[sl], visible=tracks.visible[sl], tracks_origin=origin,
                            prev_frame=prev, seed=clip.seed))
                    except NonFiniteError as exc:
                        # the clips committed so far stay: a rerun resumes here
                        raise NonFiniteError(f"clip {clip.index} (frames {clip.start}-{clip.stop - 1}) "
                                             f"of {len(plan.clips)} failed: {exc.what}",
                                             cause=exc.cause, hint=exc.hint) from exc
                    artifacts.save_clip(clips_dir, clip.index, frames)
                    if _DELAY:  # debugging/tests: widen the window in which a run can be interrupted
                        time.sleep(_DELAY)
                prev = frames[-1]
                advance(1)
    finally:
        release(gen)
    rec = wd.commit(NAME, partial, key, {"backend": name, "clips": len(plan.clips)})
    job._done[(NAME, key)] = rec
    status = "resumed" if done_before else "ran"
    mode = f", {keyed['background']} background" if name == "diffusion" else ""
    if bg_path:
        mode += f", background from {Path(bg_path).name}"
    detail = f"{name}{mode}, {len(plan.clips)} clips" + (f", {done_before} reused" if done_before else "")
    job.report.add(StageRow(NAME, status, timer.seconds, str(rec.folder / "clips"), detail))
    return rec


def iter_frames(rec, size: tuple[int, int] | None = None):
    """Frames of the whole video from committed clips, overlap frames dropped, in order."""
    plan = artifacts.ClipPlan.from_json((rec.folder / "plan.json").read_text(), rec.folder / "plan.json")
    for clip in plan.clips:
        frames = artifacts.load_clip(rec.folder / "clips", clip, plan.width, plan.height)
        if clip.index > 0:
            frames = frames[plan.overlap:]
        if size is not None and size != (plan.width, plan.height):
            import cv2

            frames = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_CUBIC) for f in frames])
        yield frames
