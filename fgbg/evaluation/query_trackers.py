"""Trackers that follow GIVEN query points [t, x, y] through a (generated) video, for the eval's
background-track error: the conditioning tracks' queries, tracked in the generated video, are
compared with the conditioning tracks (fgbg.evaluation.metrics.background_track_error).

Both return (tracks (F, N, 2) float32, visible (F, N) bool): before its query frame a point holds
its query position, invisible; with person masks given, a point within `mask_margin` pixels of the
person is invisible there.

  LKQueryTracker          weight-free pyramidal Lucas-Kanade (the default without CoTracker);
  CoTrackerQueryTracker   the conditioning tracker itself, CoTracker3 offline, when its code and
                          weights are in the store (`fgbg eval --tracker`): the whole video in one
                          call (eval videos are short), queries scaled to the model's resolution
                          and back (corner-aligned, as fgbg.backends.track.cotracker does).
"""

from __future__ import annotations

import numpy as np


class LKQueryTracker:
    """Track given query points [t, x, y] through a video, forward from each query frame.

    Returns (tracks (F, N, 2) float32, visible (F, N) bool): before its query frame a point holds
    its query position, invisible; it is lost (and stays lost, at its last position) where LK
    fails, the forward-backward error exceeds `fb_threshold` pixels, it leaves the frame, or (when
    person masks are given) it comes within `mask_margin` pixels of the person, as the
    conditioning tracks do: the person's motion drags a window that sees it.

    Defaults suit the small (64-128 px) eval frames: a 7 px window and 3 pyramid levels track the
    real held-out videos to 0.18 px mean error against their exact tracks (64 px, 8 scenes); a
    15 px window without the mask rule, 2.0 px.
    """

    def __init__(self, window: int = 7, levels: int = 3, fb_threshold: float = 0.5, mask_margin: int = 4):
        self.window, self.levels, self.fb, self.margin = window, levels, fb_threshold, mask_margin

    def track_queries(self, frames: np.ndarray, queries: np.ndarray,
                      masks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        import cv2

        frames = np.asarray(frames)
        n, h, w = frames.shape[:3]
        near_person = None
        if masks is not None:
            k = np.ones((2 * self.margin + 1,) * 2, np.uint8)
            near_person = np.stack([cv2.dilate(np.asarray(m, np.uint8), k) > 0 for m in masks])
        q = np.asarray(queries, np.float32).reshape(-1, 3)
        k = len(q)
        tracks = np.repeat(q[None, :, 1:], n, axis=0).astype(np.float32)
        visible = np.zeros((n, k), bool)
        gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
        from ..backends.track.lk import LK_CRITERIA

        lk = dict(winSize=(self.window, self.window), maxLevel=self.levels, criteria=LK_CRITERIA)
        alive = np.zeros(k, bool)
        qt = np.rint(q[:, 0]).astype(int)
        for t in range(n):
            start = qt == t
            alive |= start
            if t > 0:
                idx = np.flatnonzero(alive & ~start)
                if len(idx):
                    p0 = tracks[t - 1, idx].reshape(-1, 1, 2)
                    p1, st, _ = cv2.calcOpticalFlowPyrLK(gray[t - 1], gray[t], p0, None, **lk)
                    pb, st2, _ = cv2.calcOpticalFlowPyrLK(gray[t], gray[t - 1], p1, None, **lk)
                    p1, pb = p1.reshape(-1, 2), pb.reshape(-1, 2)
                    ok = (st.ravel() == 1) & (st2.ravel() == 1)
                    ok &= np.linalg.norm(pb - p0.reshape(-1, 2), axis=1) <= self.fb
                    ok &= (p1[:, 0] >= 0) & (p1[:, 0] <= w - 1) & (p1[:, 1] >= 0) & (p1[:, 1] <= h - 1)
                    tracks[t, idx] = np.where(ok[:, None], p1, tracks[t - 1, idx])
                    alive[idx[~ok]] = False
            later = np.flatnonzero(qt > t)
            tracks[t, later] = q[later, 1:]
            if near_person is not None:
                idx = np.flatnonzero(alive)
                xi = np.clip(np.rint(tracks[t, idx, 0]).astype(int), 0, w - 1)
                yi = np.clip(np.rint(tracks[t, idx, 1]).astype(int), 0, h - 1)
                alive[idx[near_person[t, yi, xi]]] = False
            lost = np.flatnonzero(~alive & (qt < t))
            tracks[t, lost] = tracks[t - 1, lost] if t > 0 else tracks[t, lost]
            visible[t] = alive
        return tracks, visible


class CoTrackerQueryTracker:
    def __init__(self, model=None, device: str = "cpu", mask_margin: int = 4):
        from ..backends.track.cotracker import CoTracker
        from ..params import TrackParams

        # the backend loads the model (store artifacts, or the injected one) and resizes frames
        # exactly as track-bg does
        self._backend = CoTracker(TrackParams(), device=device, model=model)
        self.margin = mask_margin

    def close(self) -> None:
        self._backend.close()

    def track_queries(self, frames: np.ndarray, queries: np.ndarray,
                      masks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        import torch

        frames = np.asarray(frames)
        n, h, w = frames.shape[:3]
        q = np.asarray(queries, np.float32).reshape(-1, 3)
        tracks = np.repeat(q[None, :, 1:], n, axis=0).astype(np.float32)
        visible = np.zeros((n, len(q)), bool)
        if not len(q):
            return tracks, visible
        b = self._backend
        mh, mw = b.resolution
        scale = np.array([(mw - 1) / (w - 1), (mh - 1) / (h - 1)], np.float32)
        video = torch.stack(b.to_model(frames)).float()[None]
        mq = np.concatenate([q[:, :1], q[:, 1:] * scale], 1)
        with torch.no_grad():
            pred, vis = b.model(video, queries=torch.from_numpy(mq)[None].to(video.device))
        pred = pred[0].float().cpu().numpy() / scale
        vis = vis[0].bool().cpu().numpy()
        qt = np.rint(q[:, 0]).astype(int)
        after = np.arange(n)[:, None] >= qt[None, :]
        ok = np.isfinite(pred).all(-1)
        x, y = np.nan_to_num(pred[..., 0], nan=-1.0), np.nan_to_num(pred[..., 1], nan=-1.0)
        ok &= (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
        if masks is not None:
            from ..backends.track.cotracker import dilate

            near = np.stack([dilate(np.asarray(m, bool), self.margin) for m in masks])
            xi = np.clip(np.rint(x).astype(int), 0, w - 1)
            yi = np.clip(np.rint(y).astype(int), 0, h - 1)
            ok &= ~near[np.arange(n)[:, None], yi, xi]
        tracks = np.where(after[..., None] & np.isfinite(pred), pred, tracks).astype(np.float32)
        visible = after & vis & ok
        return tracks, visible
