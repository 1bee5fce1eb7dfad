"""Weight-free background tracker: pyramidal Lucas-Kanade on corners of the background.

All of this is our choice (the paper tracks with CoTracker; this backend lets the chain run without
weights). Per video, frames streamed in order, only the previous frame kept:

1. Background region of a frame = NOT (person mask dilated by `mask_erode` pixels plus half the LK
   window, so that LK's window around a point does not see the person, whose motion would drag
   the point along), minus a frame border of half the LK window. Seeds and kept points both live
   there.
2. Seeding: Shi-Tomasi corners (cv2.goodFeaturesToTrack) in the background region, then spread
   over the frame: the frame is cut into a grid of about `num_points` cells and corners are taken
   greedily from the cell holding the fewest tracks so far (strongest corner of that cell first),
   so points cover the frame instead of clustering on one textured patch.
3. Tracking frame t-1 -> t: cv2.calcOpticalFlowPyrLK forward, then backward from the result; a
   point is lost from the first frame where LK fails, the forward-backward error exceeds
   `fb_threshold`, it leaves the frame, or it lands in the background region's complement (the
   dilated person). A lost track stays lost: resurrecting it would let it drift onto something else.
4. Re-seeding: when fewer than `min_points` tracks are visible at frame t, new tracks are started at
   frame t (query [t, x, y]) to bring the visible count back to `num_points`, away from the
   points still visible.

Output layout: N = the number of tracks started over the whole video (the first seeds, then every
re-seed appended in order), at most `max_tracks`; once that cap is reached no more tracks start.
A track's rows before its query frame hold its query position with visible False; rows after it is
lost hold its last tracked position with visible False. So `tracks` has no NaN, and at most
`num_points` tracks are visible in any frame.
"""

from __future__ import annotations

from typing import Iterable

import cv2
import numpy as np

from ...errors import InputError, StageError
from ...params import TrackParams
from ..base import TrackResult

LK_WINDOW = (21, 21)
LK_LEVELS = 3
LK_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01)
BORDER = LK_WINDOW[0] // 2  # pixels: closer to the edge, LK's window leaves the frame and drifts
CORNER_QUALITY = 0.01  # goodFeaturesToTrack quality level (relative to the strongest corner)
MAX_CORNERS = 600  # candidates considered per seeding


def check_params(p: TrackParams) -> None:
    """Raise InputError naming the bad value when TrackParams cannot drive this tracker."""
    if not 5 <= p.num_points <= 50:
        raise InputError(f"--num-points {p.num_points} is out of range",
                         cause="background tracks are kept 5 to 50 at a time (the paper's range)",
                         hint="use --num-points between 5 and 50, e.g. --num-points 32")
    if p.min_points < 1:
        raise InputError(f"--min-points {p.min_points} is out of range",
                         cause="re-seeding needs min-points >= 1 (it is capped at num-points)",
                         hint="use --min-points 16")
    if not p.fb_threshold > 0:
        raise InputError(f"--fb-threshold {p.fb_threshold} must be positive",
                         cause="it is the forward-backward error in pixels above which a point is lost",
                         hint="use --fb-threshold 1.0")
    if p.mask_erode < 0:
        raise InputError(f"--mask-erode {p.mask_erode} must be >= 0",
                         cause="it is the margin in pixels kept between tracks and the person",
                         hint="use --mask-erode 7")
    if p.max_tracks < p.num_points:
        raise InputError(f"--max-tracks {p.max_tracks} is below --num-points {p.num_points}",
                         cause="the first seeding alone starts num-points tracks",
                         hint=f"use --max-tracks {max(256, p.num_points)}")


def background_region(mask: np.ndarray, margin: int) -> np.ndarray:
    """(H, W) bool person mask -> (H, W) uint8 255 where points may live: outside the person
    dilated by `margin` pixels and at least BORDER pixels inside the frame."""
    person = mask.astype(np.uint8)
    if margin > 0:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
        person = cv2.dilate(person, k)
    region = np.where(person > 0, 0, 255).astype(np.uint8)
    region[:BORDER] = 0
    region[-BORDER:] = 0
    region[:, :BORDER] = 0
    region[:, -BORDER:] = 0
    return region


def spread_corners(gray: np.ndarray, region: np.ndarray, count: int, existing: np.ndarray,
                   min_distance: float) -> np.ndarray:
    """Up to `count` corners (k, 2) float32 x,y in `region` (uint8 mask), spread over a grid of
    cells: each pick goes to the cell with the fewest points (existing ones included), taking that
    cell's strongest remaining corner. Corners closer than `min_distance` to an existing point are
    skipped."""
    if count <= 0:
        return np.zeros((0, 2), np.float32)
    region = region.copy()
    for x, y in existing:  # keep new seeds off the points still tracked
        cv2.circle(region, (int(round(x)), int(round(y))), int(min_distance), 0, -1)
    corners = cv2.goodFeaturesToTrack(gray, MAX_CORNERS, CORNER_QUALITY, min_distance, mask=region,
                                      blockSize=7)
    if corners is None:
        return np.zeros((0, 2), np.float32)
    corners = corners.reshape(-1, 2)  # strongest first
    h, w = gray.shape
    g = max(2, int(np.ceil(np.sqrt(count))))
    def cell_of(p):
        return min(int(p[1] * g / h), g - 1) * g + min(int(p[0] * g / w), g - 1)

    load = np.zeros(g * g, np.int64)
    for p in existing:
        load[cell_of(p)] += 1
    queues: dict[int, list[int]] = {}
    for i, p in enumerate(corners):
        queues.setdefault(cell_of(p), []).append(i)
    picked: list[int] = []
    while len(picked) < count and queues:
        # fewest points first; ties -> the cell whose next corner is strongest (lowest index)
        cell = min(queues, key=lambda c: (load[c], queues[c][0]))
        picked.append(queues[cell].pop(0))
        load[cell] += 1
        if not queues[cell]:
            del queues[cell]
    return corners[np.sort(np.asarray(picked, np.int64))].astype(np.float32)


class LKTracker:
    """PointTracker on pyramidal Lucas-Kanade (see the module docstring for the method and the
    output layout). Frames are RGB uint8 at the processing size; coordinates are pixel x,y there."""

    name = "lk"

    def __init__(self, params: TrackParams | None = None):
        self.params = params or TrackParams()
        check_params(self.params)

    def track(self, chunks: Iterable[tuple[np.ndarray, np.ndarray]], num_frames: int) -> TrackResult:
        """chunks: consecutive (frames (n, H, W, 3) uint8 RGB, masks (n, H, W) bool person=True).
        -> TrackResult with T = num_frames rows (frames beyond num_frames are ignored; if the
        chunks end early, the missing rows repeat the last positions, invisible)."""
        p = self.params
        T = int(num_frames)
        if T <= 0:
            raise StageError("track-bg got no frames", cause=f"num_frames is {num_frames}",
                             hint="check the driving video with `ffprobe`")
        cap = p.max_tracks
        tracks = np.zeros((T, cap, 2), np.float32)
        visible = np.zeros((T, cap), bool)
        queries = np.zeros((cap, 3), np.float32)
        n = 0  # tracks started
        alive = np.zeros(0, np.int64)  # indices of tracks visible in the previous frame
        pts = np.zeros((0, 2), np.float32)  # their positions in the previous frame
        prev_gray = None
        min_distance = 0.0
        t = 0
        for frames, masks in chunks:
            if frames.ndim != 4 or frames.shape[-1] != 3 or masks.shape != frames.shape[:3]:
                raise StageError("track-bg got frames and masks that disagree",
                                 cause=f"frames {frames.shape}, masks {masks.shape}",
                                 hint="rerun with --force segment to remake the masks")
            for frame, mask in zip(frames, masks):
                if t >= T:
                    break
                gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
                region = background_region(mask, p.mask_erode + LK_WINDOW[0] // 2)
                h, w = gray.shape
                if t == 0:
                    # spacing so num_points seeds could tile the frame, roughly
                    min_distance = max(4.0, 0.5 * np.sqrt(h * w / p.num_points))
                if len(alive):
                    new, ok = self._step(prev_gray, gray, pts, region)
                    alive, pts = alive[ok], new[ok]
                if len(alive) < (p.num_points if t == 0 else min(p.min_points, p.num_points)) and n < cap:
                    want = min(p.num_points - len(alive), cap - n)
                    seeds = spread_corners(gray, region, want, pts, min_distance)
                    k = len(seeds)
                    if k:
                        ids = np.arange(n, n + k)
                        queries[ids, 0] = t
                        queries[ids, 1:] = seeds
                        tracks[:t, ids] = seeds  # rows before the query: the query position
                        alive = np.concatenate([alive, ids])
                        pts = np.concatenate([pts, seeds])
                        n += k
                tracks[t, :n] = tracks[t - 1, :n] if t else 0.0  # lost ones keep their last position
                tracks[t, alive] = pts
                visible[t, alive] = True
                prev_gray = gray
                t += 1
            if t >= T:
                break
        if t == 0:
            raise StageError("track-bg got no frames", cause="the video yielded no frames to track",
                             hint="check the driving video with `ffprobe`")
        if t < T:
            tracks[t:, :n] = tracks[t - 1, :n]
        return TrackResult(tracks[:, :n].copy(), visible[:, :n].copy(), queries[:n].copy())

    def _step(self, prev_gray, gray, pts: np.ndarray, region: np.ndarray):
        """Track pts (k, 2) from the previous grey frame to this one -> (new (k, 2), ok (k,))."""
        p0 = pts.reshape(-1, 1, 2)
        p1, st1, _ = cv2.calcOpticalFlowPyrLK(prev_gray, gray, p0, None, winSize=LK_WINDOW,
                                              maxLevel=LK_LEVELS, criteria=LK_CRITERIA)
        p0b, st0, _ = cv2.calcOpticalFlowPyrLK(gray, prev_gray, p1, None, winSize=LK_WINDOW,
                                               maxLevel=LK_LEVELS, criteria=LK_CRITERIA)
        new = p1.reshape(-1, 2)
        fb = np.linalg.norm(p0b.reshape(-1, 2) - pts, axis=1)
        ok = (st1.ravel() == 1) & (st0.ravel() == 1) & (fb <= self.params.fb_threshold)
        ok &= np.isfinite(new).all(1)
        h, w = region.shape
        xi = np.clip(np.round(new[:, 0]).astype(np.int64), 0, w - 1)
        yi = np.clip(np.round(new[:, 1]).astype(np.int64), 0, h - 1)
        inside = (new[:, 0] >= 0) & (new[:, 0] <= w - 1) & (new[:, 1] >= 0) & (new[:, 1] <= h - 1)
        ok &= inside & (region[yi, xi] > 0)
        return new.astype(np.float32), ok
