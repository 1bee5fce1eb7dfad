"""Background tracker on CoTracker3 (offline), loaded through torch.hub from a local checkout.

From the paper: background motion is given to the generator as sparse point tracks on the
background, found with CoTracker, 5 to 50 points at a time (`num_points`).

Our choices (not in the paper):

Model and loading. The hub entry `cotracker3_offline` of the co-tracker checkout in the model store
(lock entry `cotracker-code`, pinned commit) is built with
`torch.hub.load(dir, "cotracker3_offline", source="local", pretrained=False)`, so no code comes
from GitHub at run time, and the weights are read from the store's `scaled_offline.pth` (lock
entry `cotracker3-offline`, sha256-checked by fgbg.store) into `predictor.model`. fp32, on the
run's device. Upstream's module seeds torch's global RNG when imported; the load runs inside
`torch.random.fork_rng` so that does not leak into the run.

Windows: overlapping windows of the offline model, not the online model. The offline model
attends over all frames of its input jointly and in both directions, which handles occlusion and
re-appearance better than the online model's causal 16-frame sliding windows (the CoTracker3
paper finds offline tracking stronger on points through occlusion), and this stage has the whole
video anyway (it is not latency-bound). But its cost and memory grow with the frames given to
it, and its time embedding is trained for 60 frames (`window_len`; other lengths are
interpolated), so a long video is cut into windows of `window_len` frames overlapping by
`overlap` frames (default window_len // 4).
Joining: the last frame of window k is frame `overlap - 1` of window k+1 (its "anchor"); every
track still visible there is re-queried at that frame at the position window k gave it and keeps
its track index, so rows up to the anchor come from window k and later rows from window k+1, and a
track is continuous at the join (the predictor returns a query point exactly on its own frame).
The overlap frames before the anchor give the re-queried points temporal context in the new window.
Only one window of frames is held, already resized to the model's input size (384x512 for
CoTracker3, the predictor's `interp_shape`; bilinear with corner alignment, as the predictor
resizes itself) as uint8, plus the window's person masks at processing size.

Queries: built by us from the masks (not the predictor's `grid_size`/`segm_mask`, which seeds one
grid on one frame and cannot keep away from points already tracked). Candidates lie on a regular
grid of about 3 * num_points cells over the frame, kept where the background is: outside the person
mask dilated by `mask_erode` pixels (= the background eroded by it) and at least max(H, W) / 64
pixels inside the frame (the margin upstream's own grid keeps). Candidates are queried at the
window's seed frames: the anchor (frame 0 for the first window) and every `seed_every` frames after
it (default window_len // 4); the predictor adds its own 6x6 support grid and strips it again.
Unused candidates cost model time (the per-frame feature network dominates; on the CPU 8 frames at
384x512 take about 7 s with 40 queries and 8 s with 120), which is why there are only a few seed
frames per window.

Track life: a track is visible from its query frame until the first frame where the model calls it
occluded, it leaves the frame, or it lies inside the person mask dilated by mask_erode // 2 pixels
(half the seeding margin: seeds start a little away from the person and are dropped once they
come close to it); from then on it stays invisible (a resurrected track may have drifted). Rows
before a track's query frame hold its query position, rows after it is lost hold its last visible
position, both invisible, so `tracks` has no NaN (the convention of fgbg.backends.track.lk).

Selection ("well tracked and spread"): after each window's model run, seed frames are visited in
order. At frame 0 of the video, and at every seed frame from which fewer than
min(min_points, num_points) selected tracks would be visible at some frame before the next seed
frame (the offline run already knows the whole window, so the top-up comes before the count
drops, not after), candidates queried there are added until num_points are visible: greedily,
the candidate that survives the longest share of the rest of the window (in quarters: the whole
rest first) and, among those, lies farthest from the points already visible there (farthest-point
sampling);
candidates closer than about half the point spacing to a visible point are skipped. Unselected
candidates are dropped. So at most num_points tracks are visible in any frame. N, the number of
tracks started over the video, is capped at `max_tracks` (then no track starts). `fb_threshold`
is not used (it is Lucas-Kanade's forward-backward check; CoTracker's visibility replaces it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from ...errors import InputError, ModelError, StageError
from ...params import TrackParams
from ..base import TrackResult
from .lk import check_params

HUB_ENTRY = "cotracker3_offline"
CODE_ARTIFACT = "cotracker-code"
WEIGHTS_ARTIFACT = "cotracker3-offline"
WINDOW_LEN = 60  # the window length upstream's hub entry builds cotracker3_offline with
MODEL_RESOLUTION = (384, 512)  # (H, W) CoTracker3 resizes to; read from the predictor when it says
CANDIDATES_PER_POINT = 3  # grid candidates per seed frame, per kept point
LIFE_BUCKETS = 4  # survival is compared in quarters of the rest of the window
RESIZE_BATCH = 8  # frames resized at a time (bounds the float copy of a large chunk)


def load_predictor(hub_dir=None, checkpoint=None, device: str = "cpu"):
    """CoTrackerPredictor from the local hub checkout `hub_dir` with the state dict at
    `checkpoint`; either None -> the model store's artifact (ModelError when missing)."""
    import torch

    from ...store import require

    hub_dir = Path(hub_dir) if hub_dir is not None else require(CODE_ARTIFACT)
    checkpoint = Path(checkpoint) if checkpoint is not None else require(WEIGHTS_ARTIFACT)
    if not (hub_dir / "hubconf.py").is_file():
        raise ModelError(f"{hub_dir} is not a co-tracker checkout", cause="it has no hubconf.py",
                         hint=f"run `fgbg models fetch {CODE_ARTIFACT}`")
    try:
        # upstream seeds torch's global RNG when imported: keep the caller's RNG state (CPU, and
        # the run's GPU when it has one; forking every GPU would wake them all)
        dev = torch.device(device)
        gpus = [dev.index or 0] if dev.type == "cuda" and torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=gpus):
            predictor = torch.hub.load(str(hub_dir), HUB_ENTRY, source="local", pretrained=False)
    except Exception as exc:  # noqa: BLE001 - any import/build failure of foreign code
        raise ModelError(f"cannot build CoTracker from {hub_dir}",
                         cause=f"{type(exc).__name__}: {exc}",
                         hint=f"run `fgbg models fetch {CODE_ARTIFACT}` to restore the checkout"
                         ) from exc
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and isinstance(state.get("model"), dict):
            state = state["model"]
        predictor.model.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - unreadable or mismatched weights
        raise ModelError(f"cannot load the CoTracker weights {checkpoint}",
                         cause=f"{type(exc).__name__}: {exc}",
                         hint=f"run `fgbg models fetch {WEIGHTS_ARTIFACT}`") from exc
    return predictor.to(device).eval()


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """(H, W) bool -> the same grown by `radius` pixels (elliptic kernel)."""
    if radius <= 0:
        return mask.astype(bool)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask.astype(np.uint8), k) > 0


def grid_candidates(mask: np.ndarray, margin: int, spacing: float, border: int) -> np.ndarray:
    """(k, 2) float32 x,y on a grid of `spacing` pixels where the background is: outside the
    person mask dilated by `margin` and at least `border` pixels inside the frame."""
    h, w = mask.shape
    xs = np.arange(spacing / 2, w, spacing)
    ys = np.arange(spacing / 2, h, spacing)
    gx, gy = np.meshgrid(xs, ys)
    pts = np.stack([gx.ravel(), gy.ravel()], 1)
    xi = np.round(pts[:, 0]).astype(np.int64)
    yi = np.round(pts[:, 1]).astype(np.int64)
    ok = (xi >= border) & (xi <= w - 1 - border) & (yi >= border) & (yi <= h - 1 - border)
    pts, xi, yi = pts[ok], xi[ok], yi[ok]
    return pts[~dilate(mask, margin)[yi, xi]].astype(np.float32)


def spread_pick(cand: np.ndarray, score: np.ndarray, existing: np.ndarray, count: int,
                min_distance: float) -> np.ndarray:
    """Indices of up to `count` candidates (k, 2): greedily the highest `score`, ties broken by
    the largest distance to the points picked so far and `existing` (e, 2) (farthest-point
    sampling); candidates closer than `min_distance` to a picked or existing point are skipped."""
    k = len(cand)
    if count <= 0 or k == 0:
        return np.zeros(0, np.int64)
    dist = np.full(k, np.inf)
    if len(existing):
        dist = np.linalg.norm(cand[:, None] - existing[None], axis=2).min(1)
    picked: list[int] = []
    free = dist >= min_distance
    while len(picked) < count and free.any():
        key = np.where(free, score * 1e9 + np.minimum(dist, 1e8), -np.inf)
        j = int(np.argmax(key))
        picked.append(j)
        dist = np.minimum(dist, np.linalg.norm(cand - cand[j], axis=1))
        free &= dist >= min_distance
        free[j] = False
    return np.asarray(picked, np.int64)


class CoTracker:
    """PointTracker on CoTracker3 offline (see the module docstring for the method and the output
    layout). Frames are RGB uint8 at the processing size; coordinates are pixel x,y there.

    `model`: a ready predictor (callable `(video (1, T, 3, h, w) float 0-255, queries=(1, N, 3))
    -> (tracks (1, T, N, 2), visible (1, T, N) bool)` with `interp_shape` (h, w)); when given,
    hub_dir and checkpoint are not used. `window_len`, `overlap`, `seed_every`: frames per model
    run, frames shared by consecutive runs, frames between seed frames."""

    name = "cotracker"

    def __init__(self, params: TrackParams | None = None, device: str = "cpu", hub_dir=None,
                 checkpoint=None, model=None, *, window_len: int = WINDOW_LEN,
                 overlap: int | None = None, seed_every: int | None = None):
        self.params = params or TrackParams()
        check_params(self.params)
        overlap = max(1, window_len // 4) if overlap is None else overlap
        seed_every = max(1, window_len // 4) if seed_every is None else seed_every
        if window_len < 2 or not 1 <= overlap < window_len or seed_every < 1:
            raise InputError(f"CoTracker windows of {window_len} frames overlapping by {overlap} "
                             f"(seeds every {seed_every}) cannot work",
                             cause="a window needs >= 2 frames and 1 <= overlap < window",
                             hint=f"use window_len {WINDOW_LEN}, overlap {WINDOW_LEN // 4}")
        self.window_len, self.overlap, self.seed_every = window_len, overlap, seed_every
        self.device = device
        self.model = model if model is not None else load_predictor(hub_dir, checkpoint, device)
        shape = getattr(self.model, "interp_shape", MODEL_RESOLUTION)
        self.resolution = (int(shape[0]), int(shape[1]))

    def close(self) -> None:
        self.model = None

    # ------------------------------------------------------------------------ streaming

    def track(self, chunks: Iterable[tuple[np.ndarray, np.ndarray]],
              num_frames: int) -> TrackResult:
        """chunks: consecutive (frames (n, H, W, 3) uint8 RGB, masks (n, H, W) bool person=True).
        -> TrackResult with T = num_frames rows (frames beyond num_frames are ignored; if the
        chunks end early, the missing rows repeat the last positions, invisible)."""
        if self.model is None:
            raise StageError("the CoTracker backend was closed", hint="build a new one")
        T = int(num_frames)
        if T <= 0:
            raise StageError("track-bg got no frames", cause=f"num_frames is {num_frames}",
                             hint="check the driving video with `ffprobe`")
        cap = self.params.max_tracks
        self._tracks = np.zeros((T, cap, 2), np.float32)
        self._visible = np.zeros((T, cap), bool)
        self._queries = np.zeros((cap, 3), np.float32)
        self._n = 0  # tracks started
        self._alive = np.zeros(0, np.int64)  # visible on the last frame written
        self._written = 0  # global frames written so far
        self._size: tuple[int, int] | None = None
        L, O = self.window_len, self.overlap
        buf_frames: list = []  # model-resolution uint8 (3, h, w) tensors of the current window
        buf_masks: list[np.ndarray] = []
        start, anchor, t = 0, 0, 0  # window's first global frame, its anchor, frames received
        for frames, masks in chunks:
            if t >= T:
                break
            frames, masks = self._check_chunk(frames, masks)
            take = min(len(frames), T - t)
            buf_frames.extend(self.to_model(frames[:take]))
            buf_masks.extend(np.asarray(masks[:take], bool))
            t += take
            while len(buf_frames) >= L:
                self._window(buf_frames[:L], buf_masks[:L], start, anchor)
                if start + L >= T:
                    break
                buf_frames, buf_masks = buf_frames[L - O:], buf_masks[L - O:]
                start, anchor = start + L - O, O - 1
        if t == 0:
            raise StageError("track-bg got no frames", cause="the video yielded no frames to track",
                             hint="check the driving video with `ffprobe`")
        if self._written < t:  # the last, shorter window
            self._window(buf_frames, buf_masks, start, anchor)
        if t < T:
            self._tracks[t:, : self._n] = self._tracks[t - 1, : self._n]
        n = self._n
        return TrackResult(self._tracks[:, :n].copy(), self._visible[:, :n].copy(),
                           self._queries[:n].copy())

    def _check_chunk(self, frames: np.ndarray, masks: np.ndarray):
        frames, masks = np.asarray(frames), np.asarray(masks)
        if frames.ndim != 4 or frames.shape[-1] != 3 or masks.shape != frames.shape[:3]:
            raise StageError("track-bg got frames and masks that disagree",
                             cause=f"frames {frames.shape}, masks {masks.shape}",
                             hint="rerun with --force segment to remake the masks")
        size = frames.shape[1:3]
        if self._size is None:
            if min(size) < 2:
                raise StageError("track-bg got frames too small to track",
                                 cause=f"frames are {size[1]}x{size[0]} pixels",
                                 hint="check the driving video with `ffprobe`")
            self._size = size
        elif size != self._size:
            raise StageError("track-bg got frames of changing size",
                             cause=f"{self._size[1]}x{self._size[0]}, then {size[1]}x{size[0]}",
                             hint="rerun with --force decode")
        return frames, masks

    def to_model(self, frames: np.ndarray) -> list:
        """(n, H, W, 3) uint8 -> n tensors (3, h, w) uint8 at the model's resolution, on device,
        resized as the predictor resizes (bilinear, corners aligned)."""
        import torch
        import torch.nn.functional as F

        out = []
        for i in range(0, len(frames), RESIZE_BATCH):
            x = torch.from_numpy(np.ascontiguousarray(frames[i : i + RESIZE_BATCH]))
            x = x.to(self.device).permute(0, 3, 1, 2).float()
            if tuple(x.shape[-2:]) != self.resolution:
                x = F.interpolate(x, size=self.resolution, mode="bilinear", align_corners=True)
            out.extend(x.round_().clamp_(0, 255).to(torch.uint8).unbind(0))
        return out

    # ------------------------------------------------------------------------ one window

    def _window(self, frames: list, masks: list[np.ndarray], start: int, anchor: int) -> None:
        """Track one window (global frames start .. start+len-1, rows up to start+anchor already
        written), choose the tracks to keep, and write the rows after the anchor."""
        import torch

        p = self.params
        n = len(frames)
        H, W = masks[0].shape
        mh, mw = self.resolution
        # processing pixels -> model pixels (corner-aligned, as the predictor scales queries)
        scale = np.array([(mw - 1) / (W - 1), (mh - 1) / (H - 1)], np.float32)
        spacing = np.sqrt(H * W / (CANDIDATES_PER_POINT * p.num_points))
        min_distance = max(4.0, 0.5 * np.sqrt(H * W / p.num_points))
        border = max(1, int(round(max(H, W) / 64)))

        # queries: the continued tracks at the anchor, then grid candidates at each seed frame
        cont_ids = self._alive
        cont_pos = self._tracks[start + anchor, cont_ids]
        seed_frames = [anchor] + list(range(anchor + self.seed_every, n - 1, self.seed_every))
        q_frame = [np.full(len(cont_ids), anchor, np.int64)]
        q_pos = [cont_pos.astype(np.float32)]
        for f in seed_frames:
            cand = grid_candidates(masks[f], p.mask_erode, spacing, border)
            q_frame.append(np.full(len(cand), f, np.int64))
            q_pos.append(cand)
        q_frame_a, q_pos_a = np.concatenate(q_frame), np.concatenate(q_pos)
        nc, nq = len(cont_ids), len(q_frame_a)
        if nq == 0:  # nothing to track: only carry the rows forward
            empty = np.zeros(0, np.int64)
            self._write(start, n, np.zeros((n, 0, 2), np.float32), empty, empty, empty)
            return

        queries = np.concatenate([q_frame_a[:, None].astype(np.float32), q_pos_a * scale], 1)
        video = torch.stack(frames).float()[None]  # (1, n, 3, h, w), 0-255, already at model size
        with torch.no_grad():
            pred, vis = self.model(video, queries=torch.from_numpy(queries)[None].to(video.device))
        pred = pred[0].float().cpu().numpy() / scale  # (n, nq, 2) in processing pixels
        vis = vis[0].bool().cpu().numpy()  # (n, nq)
        del video

        # valid: model-visible, inside the frame, off the (slightly dilated) person
        x, y = np.nan_to_num(pred[..., 0], nan=-1.0), np.nan_to_num(pred[..., 1], nan=-1.0)
        inside = (x >= 0) & (x <= W - 1) & (y >= 0) & (y <= H - 1)
        xi = np.clip(np.round(x), 0, W - 1).astype(np.int64)
        yi = np.clip(np.round(y), 0, H - 1).astype(np.int64)
        kill_margin = p.mask_erode // 2
        valid = vis & inside
        for i in range(n):
            if i < anchor:
                continue
            person = dilate(masks[i], kill_margin)
            valid[i] &= ~person[yi[i], xi[i]]
        # a query is alive from its frame up to (not including) its first invalid frame after it
        frames_idx = np.arange(n)[:, None]
        after = frames_idx >= q_frame_a[None]
        bad = after & ~valid
        bad[q_frame_a, np.arange(nq)] = False  # its own frame: the query itself (model forces it)
        first_bad = np.where(bad.any(0), np.argmax(bad, 0), n)
        last_alive = first_bad - 1  # (nq,)

        # selection: continued tracks, then candidates at each seed frame from which the count
        # is low before the next seed frame (the offline run knows the whole window)
        chosen = list(range(nc))
        ids = list(cont_ids)
        for f, until in zip(seed_frames, seed_frames[1:] + [n]):
            ch = np.asarray(chosen, np.int64)
            span = np.arange(f, until)[:, None]
            counts = ((q_frame_a[ch] <= span) & (span <= last_alive[ch])).sum(1)
            floor = p.num_points if self._n == 0 else min(p.min_points, p.num_points)
            if counts.min() >= floor:
                continue
            alive_f = ch[(q_frame_a[ch] <= f) & (f <= last_alive[ch])]
            want = min(p.num_points - len(alive_f), p.max_tracks - self._n)
            cand = nc + np.flatnonzero(q_frame_a[nc:] == f)  # the candidates queried at f
            if want <= 0 or len(cand) == 0:
                continue
            life = (last_alive[cand] - f + 1) / (n - f)
            score = np.floor(np.clip(life, 0, 1) * LIFE_BUCKETS)
            existing = pred[f, alive_f]
            pick = cand[spread_pick(q_pos_a[cand], score, existing, want, min_distance)]
            for j in pick:
                self._queries[self._n] = (start + f, *q_pos_a[j])
                self._tracks[: start + f, self._n] = q_pos_a[j]  # rows before the query
                ids.append(self._n)
                chosen.append(int(j))
                self._n += 1
        chosen_a = np.asarray(chosen, np.int64)
        self._write(start, n, pred[:, chosen_a], q_frame_a[chosen_a], last_alive[chosen_a],
                    np.asarray(ids, np.int64))

    def _write(self, start: int, n: int, pos: np.ndarray, q_frame: np.ndarray,
               last_alive: np.ndarray, ids: np.ndarray) -> None:
        """Write global rows from the first unwritten one to start+n-1: every started track keeps
        its previous row (lost, or not started yet), then the chosen ones (pos (n, k, 2) in
        processing pixels, track indices `ids`) are set, visible, from their query window-frame
        `q_frame` to `last_alive`."""
        N = self._n
        for i in range(self._written - start, n):
            g = start + i
            self._tracks[g, :N] = self._tracks[g - 1, :N] if g > 0 else self._tracks[0, :N]
            live = (q_frame <= i) & (i <= last_alive)
            self._tracks[g, ids[live]] = pos[i, live]
            self._visible[g, ids[live]] = True
        self._written = start + n
        self._alive = ids[last_alive == n - 1]
