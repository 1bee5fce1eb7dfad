"""`fgbg eval`: reconstruct held-out videos and measure what the paper claims.

Each held-out video (a `fgbg prepare` folder) is reconstructed from its FIRST frame (the reference)
and its own pose and tracks, clip by clip as `generate` does, in up to four variants (ablations):

  full         tracks, last-frame conditioning, reference features injected in every clip
  no-tracks    the track maps zeroed: the pose-only model
  no-cond      every clip starts from noise alone (no previous-frame conditioning latent)
  no-reinject  clip c > 0 takes its reference features from the previous clip's last generated
               frame instead of the original photo (what re-injection prevents: drift)
  window       not an ablation: AnimateAnyone's long-video scheme instead of clip chaining (all
               frames denoised together, overlapping context windows of clip_length frames sharing
               half of them, predictions averaged); scored at the same clip boundaries, so its
               seam jump and drift compare with `full` on the same input

and scored against the real frames (fgbg.evaluation.metrics): L1, PSNR, SSIM (whole frame, and
inside the real person's mask); background-track
error (the generated video tracked from the conditioning tracks' query points, compared with the
conditioning tracks on the background); seam jump; colour drift per clip; and the generation time
per output frame of each variant (a ratio between variants of one run is what to read).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

VARIANTS = ("full", "no-tracks", "no-cond", "no-reinject", "window", "anchored", "refine",
            "anchored-no-tracks", "anchored-window")
# anchored: the background held to the first frame's plate moved by the tracks' camera (for the
# first anchor_steps of the schedule, fgbg.backends.generate.diffusion); refine: every clip started
# from the warp preview (noised to `strength`); anchored-no-tracks: anchored with the track maps
# zeroed (the model has no track signal: what a converted AnimateAnyone pipeline gets);
# anchored-window: the window scheme with the whole video's background anchored. anchor_steps and
# strength are generate's defaults unless `fgbg eval --anchor-steps/--strength` says otherwise.
WARP_VARIANTS = {"anchored": dict(background="anchored"),
                 "anchored-window": dict(background="anchored"),
                 "refine": dict(background="free", init="warp"),
                 "anchored-no-tracks": dict(background="anchored")}
DEFAULT_VARIANTS = VARIANTS[:4]


def load_scenes(dataset: Path, limit: int | None = None):
    """The held-out videos of a `fgbg prepare` folder (fgbg.artifacts.PreparedVideo, masks included)."""
    from ..artifacts import load_prepared

    return load_prepared([str(dataset)])[:limit]


def clip_starts(n: int, clip_length: int) -> list[int]:
    """Each clip's first new frame in the stitched video (the overlap frame is dropped once)."""
    from ..diffusion.pipeline import plan_clips

    return [a if c == 0 else a + 1 for c, (a, _) in enumerate(plan_clips(n, clip_length))]


def reconstruct(pipe, scene, variant: str, *, clip_length: int, steps: int, guidance: float,
                seed: int = 0, num_frames: int | None = None, anchor_steps: float | None = None,
                strength: float | None = None) -> tuple[np.ndarray, list[int]]:
    """-> generated frames (F, S, S, 3) uint8 (overlaps dropped) and each clip's first new frame."""
    from ..diffusion.pipeline import plan_clips
    from ..diffusion.track_maps import render_track_maps
    from ..pose.draw import draw_pose_maps

    n = min(len(scene.frames), num_frames or len(scene.frames))
    size = scene.frames.shape[1]
    pose = draw_pose_maps(scene.keypoints[:n], scene.scores[:n], size, size)
    tracks = render_track_maps(scene.tracks[:n], scene.visible[:n], scene.origin, (size, size), (size, size))
    if variant in ("no-tracks", "anchored-no-tracks"):
        tracks = np.zeros_like(tracks)
    warp = params = None
    if variant in WARP_VARIANTS:
        from ..backends.base import ClipInputs, Reference
        from ..backends.generate.anchor import warp_conditions
        from ..backends.generate.warp import WarpGenerator
        from ..params import GenerateParams

        given = {k: v for k, v in (("anchor_steps", anchor_steps), ("strength", strength)) if v is not None}
        params = GenerateParams(backend="diffusion", **WARP_VARIANTS[variant], **given)
        warp = WarpGenerator(params)
        warp.prepare(Reference(np.array(scene.frames[0]), scene.keypoints[0], scene.scores[0],
                               np.asarray(scene.masks[0]).astype(bool)), size, size)
    ref = np.array(scene.frames[0])  # a writable copy (prepared frames are memory-mapped read-only)
    if variant in ("window", "anchored-window"):
        anchor = None
        if warp is not None:  # one anchor over every frame
            whole = ClipInputs(keypoints=scene.keypoints[:n], scores=scene.scores[:n], pose_maps=pose,
                               tracks=scene.tracks[:n], visible=scene.visible[:n], tracks_origin=scene.origin,
                               prev_frame=None, seed=seed)
            anchor, _ = warp_conditions(pipe, warp, whole, params, params.background)
        frames = pipe(ref, pose, tracks, height=size, width=size, clip_length=clip_length,
                      num_inference_steps=steps, guidance_scale=guidance, seed=seed, long_video="window",
                      context_overlap=clip_length // 2, anchor=anchor)
        return frames, clip_starts(n, clip_length)
    ctx = pipe.encode_reference(ref, size, size)
    parts, prev = [], None
    for c, (a, b) in enumerate(plan_clips(n, clip_length)):
        if variant == "no-reinject" and prev is not None:
            ctx.reference.clear()
            ctx = pipe.encode_reference(prev, size, size)
        anchor = init = None
        if warp is not None:
            clip = ClipInputs(keypoints=scene.keypoints[a:b], scores=scene.scores[a:b], pose_maps=pose[a:b],
                              tracks=scene.tracks[a:b], visible=scene.visible[a:b], tracks_origin=scene.origin,
                              prev_frame=prev, seed=seed + c)
            anchor, init = warp_conditions(pipe, warp, clip, params, params.background)
        frames = pipe.generate_clip(ctx, pose[a:b], tracks[a:b], None if variant == "no-cond" else prev,
                                    seed + c, num_inference_steps=steps, guidance_scale=guidance,
                                    anchor=anchor, init=init)
        prev = frames[-1]
        parts.append(frames if c == 0 else frames[1:])
    ctx.reference.clear()
    return np.concatenate(parts), clip_starts(n, clip_length)


def score(scene, generated: np.ndarray, starts: list[int], pose_estimator=None, tracker=None) -> dict:
    from . import metrics as M
    from .query_trackers import LKQueryTracker

    n = len(generated)
    real = np.asarray(scene.frames[:n])
    masks = np.asarray(scene.masks[:n]).astype(bool)
    out = {"l1": M.l1(generated, real), "psnr": M.psnr(generated, real), "ssim": M.ssim(generated, real),
           "ssim_person": M.ssim_person(generated, real, masks)}
    if pose_estimator is not None:
        # the driving keypoints are the scene's own; the estimator's PCK on the REAL frames is the
        # ceiling a generated video can reach with this estimator (a weak estimator on small frames
        # scores low on both)
        # on the 17 COCO body keypoints: face and hands are a few pixels at eval sizes, and the
        # weight-free estimator has only 7 face and 4 points per hand (the rest would be misses
        # on the real video too)
        size = real.shape[1:3]
        body = slice(0, 17)
        kp_ref, sc_ref = scene.keypoints[:n, body], scene.scores[:n, body]
        # estimators follow one person across calls: each video starts afresh
        pose_estimator.reset()
        kp, sc = pose_estimator.estimate(generated)
        out["pck"] = M.pck(kp[:, body], kp_ref, sc_ref, size, scores=sc[:, body])
        pose_estimator.reset()
        kp, sc = pose_estimator.estimate(real)
        out["pck_real"] = M.pck(kp[:, body], kp_ref, sc_ref, size, scores=sc[:, body])
    queries = _queries(scene, n)
    if len(queries):
        # the tracks seen within the first n frames (all of them unless --frames cuts the video)
        seen = scene.visible[:n].any(0)
        tracks, visible = (tracker or LKQueryTracker()).track_queries(generated, queries, masks)
        out["bg_track_error_px"] = M.background_track_error(tracks, visible, scene.tracks[:n][:, seen],
                                                            scene.visible[:n][:, seen], masks)
    out["seam_jump"] = M.seam_jump(generated, starts[1:]) if len(starts) > 1 else float("nan")
    ranges = [(s, (starts[i + 1] if i + 1 < len(starts) else n)) for i, s in enumerate(starts)]
    out["colour_drift"] = M.colour_drift(generated, np.asarray(scene.frames[0]), masks, ranges,
                                         ref_mask=masks[0])
    return out


def _queries(scene, n: int) -> np.ndarray:
    """[t, x, y] of each conditioning track at the first frame it is visible (within n)."""
    vis = scene.visible[:n]
    rows = []
    for k in range(vis.shape[1]):
        t = np.flatnonzero(vis[:, k])
        if len(t):
            rows.append([t[0], *scene.tracks[t[0], k]])
    return np.array(rows, np.float32).reshape(-1, 3)


def evaluate(pipe, dataset: Path, variants=DEFAULT_VARIANTS, *, clip_length: int = 8, steps: int = 10,
             guidance: float = 3.5, limit: int | None = None, num_frames: int | None = None,
             progress=None, pose_estimator=None, tracker=None, anchor_steps: float | None = None,
             strength: float | None = None) -> dict:
    scenes = load_scenes(dataset, limit)
    results: dict = {"scenes": [s.id for s in scenes], "variants": {}, "skipped": {
        "lpips": "not implemented: no LPIPS weights are pinned in models.lock",
        "fvd": "not implemented: no I3D weights are pinned in models.lock"}}
    if pose_estimator is None:
        results["skipped"]["pck"] = "no pose estimator given"
    from ..errors import NonFiniteError

    for v in variants:
        per_scene, seconds, frames = [], 0.0, 0
        for s in scenes:
            try:
                t0 = time.perf_counter()
                gen, starts = reconstruct(pipe, s, v, clip_length=clip_length, steps=steps,
                                          guidance=guidance, num_frames=num_frames,
                                          anchor_steps=anchor_steps, strength=strength)
                seconds, frames = seconds + time.perf_counter() - t0, frames + len(gen)
            except NonFiniteError as exc:
                # a variant whose output is not finite has no figures: it failed, and says where
                results.setdefault("failed", {})[v] = f"{s.id}: {exc.what}"
                per_scene = None
                break
            per_scene.append(score(s, gen, starts, pose_estimator, tracker))
            if progress:
                progress(f"{v}: {s.id}")
        if per_scene is not None:
            # generation only (scoring excluded): compare variants as ratios within one run
            results["variants"][v] = {**_mean(per_scene), "seconds_per_frame": seconds / max(frames, 1)}
    # the metrics' floor: the real video scored as if it were generated (track error of the
    # evaluation tracker itself, the real seam jump and colour change at the same clip starts)
    floor = []
    for s in scenes:
        n = min(len(s.frames), num_frames or len(s.frames))
        floor.append(score(s, np.asarray(s.frames[:n]), clip_starts(n, clip_length), pose_estimator, tracker))
    results["variants"]["real video (floor)"] = _mean(floor)
    return results


def _mean(rows: list[dict]) -> dict:
    out = {}
    for k in rows[0]:
        vals = [r[k] for r in rows]
        if isinstance(vals[0], list):
            width = min(len(x) for x in vals)
            out[k] = [float(np.nanmean([x[i] for x in vals])) for i in range(width)]
        else:
            out[k] = float(np.nanmean(vals))
    return out


def write_report(results: dict, out_dir: Path) -> str:
    """A markdown table (returned), results.json and a per-clip plot in out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=1))
    cols = ("l1", "psnr", "ssim", "ssim_person", "bg_track_error_px", "seam_jump", "pck", "pck_real",
            "seconds_per_frame")
    lines = ["| variant | " + " | ".join(cols) + " | colour drift (first -> last clip) |",
             "|---" * (len(cols) + 2) + "|"]
    for v, r in results["variants"].items():
        drift = r.get("colour_drift", [])
        d = f"{drift[0]:.2f} -> {drift[-1]:.2f}" if drift else "-"
        lines.append(f"| {v} | " + " | ".join(f"{r.get(c, float('nan')):.4g}" for c in cols) + f" | {d} |")
    for v, why in results.get("failed", {}).items():
        lines.append(f"| {v} | failed: {why} |" + " |" * len(cols))
    for name, why in results.get("skipped", {}).items():
        lines.append(f"\n{name}: skipped ({why})")
    table = "\n".join(lines)
    (out_dir / "results.md").write_text(table + "\n")
    from . import metrics as M

    M.write_plot({f"colour drift ({v})": r.get("colour_drift", []) for v, r in results["variants"].items()},
                 out_dir / "per_clip.png")
    return table
