"""The stages on frames held in memory: no work directory, no cache, no files.

For hosts that hold a video as an array (the ComfyUI nodes in `comfyui/`). Each function does to
one video what its stage in `fgbg/stages/` does, with the same backends (`fgbg.backends` build /
resolve / release), parameters (`fgbg.params`) and geometry (`fgbg.canvas`, the track stage's
upscaling of small frames), and returns arrays instead of committing a record:

    frames (T, H, W, 3) uint8 RGB ──estimate_pose──► Pose + pose maps ─┐
           ├──────────segment(frames, pose)──► masks (T, H, W) bool ───┤
           └──track_background(frames, masks)──► Tracks ───────────────┤
    photo (h, w, 3) uint8 ──────────────────────────────────────────────┴─► generate ─► frames

Every coordinate is pixel x,y in the driving frames (x right, y down), as in the stage artifacts
(`fgbg.artifacts.Pose`, `fgbg.artifacts.Tracks`). `progress(done, total)`, when given, is called
as work advances (frames for the preprocessing, clips for generate). A person missing in the
frames or the photo raises the same `InputError` the stages raise.
"""

from __future__ import annotations

from typing import Callable, Iterator, Optional

import numpy as np

from . import artifacts
from .backends import build, release, resolve
from .backends.base import ClipInputs, Reference
from .errors import InputError
from .params import GenerateParams, PoseParams, SegmentParams, TrackParams

Progress = Optional[Callable[[int, int], None]]


def check_frames(frames, what: str = "frames") -> np.ndarray:
    """(T, H, W, 3) uint8 RGB with T >= 1, or an InputError naming what came instead."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise InputError(f"{what} are not a video", cause=f"expected (T, H, W, 3) uint8 RGB, got "
                                                          f"{frames.dtype}{tuple(frames.shape)}",
                         hint="give one batch of RGB frames (a video)")
    return frames


def _fit(block: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Frames (n, H, W, 3) at size (W, H), resized as the stages' decoder resizes them."""
    from .video import resize_frame

    if (block.shape[2], block.shape[1]) == size:
        return block
    return np.stack([resize_frame(f, size) for f in block])


def _chunks(frames: np.ndarray, chunk: int, size: tuple[int, int]) -> Iterator[np.ndarray]:
    """Consecutive chunks of `chunk` frames at size (W, H), as the stages decode them."""
    for start in range(0, len(frames), chunk):
        yield _fit(frames[start:start + chunk], size)


def _tick(progress: Progress, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)


def estimate_pose(frames, params: PoseParams = PoseParams(), device: str = "auto",
                  progress: Progress = None, fps: float = 0.0) -> tuple[artifacts.Pose, np.ndarray]:
    """The pose stage: -> (Pose with keypoints (T, 133, 2) float32 pixel x,y in the frames and
    scores (T, 133), pose maps (T, H, W, 3) uint8 in the DWPose drawing convention). Frames larger
    than 1280 px are estimated at the processing size, as the stage does."""
    from .canvas import processing_size
    from .pose.draw import draw_pose_maps
    from .stages.pose import MIN_PERSON_SHARE, person_present

    frames = check_frames(frames)
    total, fh, fw = frames.shape[:3]
    pw, ph = processing_size(fw, fh)
    scale = fw / pw
    name, _ = resolve("pose", params.backend)
    est = build("pose", name, params, device)
    kps, scs, maps = [], [], []
    try:
        for block in _chunks(frames, params.chunk, (pw, ph)):
            k, s = est.estimate(block)
            k = k.astype(np.float32) * scale
            maps.append(draw_pose_maps(k, s, fw, fh))
            kps.append(k)
            scs.append(s.astype(np.float32))
            _tick(progress, sum(map(len, scs)), total)
    finally:
        release(est)
    keypoints, scores = np.concatenate(kps), np.concatenate(scs)
    found = int(person_present(scores, params.min_score).sum())
    if found < MIN_PERSON_SHARE * total:
        raise InputError("no person found in the frames",
                         cause=f"the pose estimator ({name}) found a person in only {found} of {total} frames",
                         hint="use a driving video in which one person is fully visible in most frames")
    return artifacts.Pose(keypoints, scores, (fw, fh), fps), np.concatenate(maps)


def segment(frames, pose: artifacts.Pose, params: SegmentParams = SegmentParams(), device: str = "auto",
            progress: Progress = None) -> np.ndarray:
    """The segment stage: -> masks (T, H, W) bool, True on the person the pose follows (frames
    larger than 1280 px are segmented at the processing size and the masks scaled back)."""
    from .canvas import processing_size

    frames = check_frames(frames)
    total, fh, fw = frames.shape[:3]
    if len(pose.keypoints) != total:
        raise InputError(f"the pose has {len(pose.keypoints)} frames, the video {total}",
                         cause="pose and frames must come from the same video",
                         hint="connect the frames the pose was extracted from")
    pw, ph = processing_size(fw, fh)
    kps = pose.keypoints / (fw / pw)
    name, _ = resolve("segment", params.backend, params)
    seg = build("segment", name, params, device)
    out, t = [], 0
    try:
        for block in _chunks(frames, params.chunk, (pw, ph)):
            n = len(block)
            out.append(np.asarray(seg.segment(block, kps[t:t + n], pose.scores[t:t + n]), bool))
            t += n
            _tick(progress, t, total)
    finally:
        release(seg)
    masks = np.concatenate(out)
    if (pw, ph) != (fw, fh):
        import cv2

        masks = np.stack([cv2.resize(m.astype(np.uint8), (fw, fh), interpolation=cv2.INTER_NEAREST)
                          for m in masks]).astype(bool)
    return masks


def track_background(frames, masks, params: TrackParams = TrackParams(), device: str = "auto",
                     progress: Progress = None) -> artifacts.Tracks:
    """The track-bg stage: -> Tracks (tracks (T, N, 2) float32 pixel x,y in the frames, visible
    (T, N) bool, queries (N, 3) [t, x, y]) of background points only. masks (T, H', W') person =
    True at any size (resized to the frames')."""
    import cv2

    from .canvas import processing_size
    from .stages.track import track_size

    frames = check_frames(frames)
    masks = np.asarray(masks)
    total, fh, fw = frames.shape[:3]
    if masks.ndim != 3 or len(masks) != total:
        raise InputError(f"the masks are {tuple(masks.shape)}, the video has {total} frames",
                         cause="track-bg needs one person mask (H, W) per frame",
                         hint="connect the masks segmented from these frames")
    proc = processing_size(fw, fh)
    w, h = track_size(proc)
    name, _ = resolve("track", params.backend)
    tracker = build("track", name, params, device)
    done = [0]

    def chunks():
        for start in range(0, total, params.chunk):
            block = _fit(frames[start:start + params.chunk], (w, h))
            m = masks[start:start + params.chunk]
            if m.shape[1:] != (h, w):
                m = np.stack([cv2.resize(k.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
                              for k in m])
            yield block, m.astype(bool)
            done[0] += len(block)
            _tick(progress, done[0], total)

    try:
        res = tracker.track(chunks(), total)
    finally:
        release(tracker)
    _tick(progress, total, total)  # a tracker may stop reading once it has num_frames frames
    # back to the frames' pixels, as the stage maps them (pixel centres onto pixel centres when
    # small frames were tracked upscaled)
    if (w, h) != proc:
        s = np.float32([fw / w, fh / h])

        def back(p):
            return ((p + 0.5) * s - 0.5).astype(np.float32)
    else:
        def back(p):
            return (p * np.float32(fw / proc[0])).astype(np.float32)
    q = res.queries.astype(np.float32).copy()
    q[:, 1:] = back(q[:, 1:])
    return artifacts.Tracks(back(res.tracks.astype(np.float32)), res.visible.astype(bool), q, (fw, fh))


def canvas_size(params: GenerateParams, frame_size: tuple[int, int], num_frames: int) -> tuple[int, int]:
    """(W, H) the generator makes (fgbg.canvas.generation_canvas for frames in memory):
    --width/--height, else the processing size; the diffusion model fits it to what it takes."""
    from .canvas import processing_size

    name, _ = resolve("generate", params.backend, params)
    pw, ph = processing_size(*frame_size)
    w, h = params.width or pw, params.height or ph
    if name == "diffusion":
        from .backends.generate import diffusion

        diffusion.check(params, num_frames)
        return diffusion.fit_canvas(params, w, h)
    return w, h


def prepare_reference(image, width: int, height: int, pose_params: PoseParams = PoseParams(),
                      segment_params: SegmentParams = SegmentParams(),
                      device: str = "auto") -> Reference:
    """The reference stage: the photo (h, w, 3) uint8 RGB cover-fitted to the canvas, with its
    person's pose and mask (InputError when it shows no person)."""
    from .canvas import apply_cover
    from .stages.pose import person_present

    image = check_frames(np.asarray(image)[None], "the reference photo")[0]
    image = apply_cover(image, width, height)
    name, _ = resolve("pose", pose_params.backend)
    est = build("pose", name, pose_params, device)
    try:
        est.reset()
        k, s = est.estimate(image[None])
    finally:
        release(est)
    if not person_present(s, pose_params.min_score)[0]:
        raise InputError("no person found in the reference photo",
                         cause=f"the pose estimator ({name}) found no full body in it "
                               f"(after fitting it to {width}x{height})",
                         hint="use a photo of one person, whole body visible, facing the camera")
    seg_name, _ = resolve("segment", segment_params.backend, segment_params)
    seg = build("segment", seg_name, segment_params, device)
    try:
        mask = np.asarray(seg.segment(image[None], k, s)[0], bool)
    finally:
        release(seg)
    return Reference(image, k[0].astype(np.float32), s[0].astype(np.float32), mask)


def generate(ref_image, pose: artifacts.Pose, tracks: artifacts.Tracks,
             params: GenerateParams = GenerateParams(), device: str = "auto", progress: Progress = None,
             pose_params: PoseParams = PoseParams(), segment_params: SegmentParams = SegmentParams(),
             ) -> np.ndarray:
    """The reference and generate stages, then stitch's scaling: -> frames (T, H, W, 3) uint8 RGB,
    at the driving frames' size when params give no width/height (as `fgbg run` writes them),
    else at the canvas asked for. Clip by clip: clip c > 0 starts on the last frame of clip c-1;
    clip c uses seed + c (the same clip plan as the generate stage)."""
    from .canvas import to_canvas
    from .pose.draw import draw_pose_maps
    from .stages.generate import OVERLAP, check_params
    from .tracks import track_origins

    num_frames = len(pose.keypoints)
    if tracks.tracks.shape[0] != num_frames:
        raise InputError(f"the pose has {num_frames} frames, the tracks {tracks.tracks.shape[0]}",
                         cause="pose and tracks must come from the same video",
                         hint="connect the pose and the tracks of one driving video")
    check_params(params)
    name, models = resolve("generate", params.backend, params)
    w, h = canvas_size(params, pose.frame_size, num_frames)
    ref = prepare_reference(ref_image, w, h, pose_params, segment_params, device)
    plan = artifacts.ClipPlan.make(num_frames, params.clip_length, OVERLAP, params.seed, w, h, pose.fps,
                                   {"backend": name, "models": models})

    kps = to_canvas(pose.keypoints, pose.frame_size, (w, h))
    if params.retarget:
        from .pose.retarget import retarget

        kps = retarget(kps, pose.scores, ref.keypoints, ref.scores, min_score=pose_params.min_score)
    tr = to_canvas(tracks.tracks, tracks.frame_size, (w, h))
    queries = tracks.queries.copy()
    queries[:, 1:] = to_canvas(queries[:, 1:], tracks.frame_size, (w, h))
    origin = track_origins(tr, tracks.visible, queries)

    gen = build("generate", name, params, device)
    out, prev = [], None
    try:
        gen.prepare(ref, w, h)
        for clip in plan.clips:
            sl = slice(clip.start, clip.stop)
            frames = gen.generate_clip(ClipInputs(
                keypoints=kps[sl], scores=pose.scores[sl],
                pose_maps=draw_pose_maps(kps[sl], pose.scores[sl], w, h),
                tracks=tr[sl], visible=tracks.visible[sl], tracks_origin=origin,
                prev_frame=prev, seed=clip.seed))
            prev = frames[-1]
            out.append(frames if clip.index == 0 else frames[plan.overlap:])
            _tick(progress, clip.index + 1, len(plan.clips))
    finally:
        release(gen)
    video = np.concatenate(out)
    if not params.width and not params.height and (w, h) != tuple(pose.frame_size):
        import cv2

        video = np.stack([cv2.resize(f, tuple(pose.frame_size), interpolation=cv2.INTER_CUBIC)
                          for f in video])
    return video
