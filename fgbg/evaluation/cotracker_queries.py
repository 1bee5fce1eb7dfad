"""Background-track error with the conditioning tracker itself: CoTracker3 offline from given queries.

The eval's default tracker is LKQueryTracker (fgbg.evaluation.metrics), weight-free. When the
CoTracker code and weights are in the store, `fgbg eval --tracker cotracker` (or `auto`) tracks the
generated video with the same model `track-bg` uses, as the paper's metric asks: the whole video in
one call (eval videos are short), queries [t, x, y] in frame pixels scaled to the model's
resolution and back (corner-aligned, as fgbg.backends.cotracker does).

Same output as LKQueryTracker: (tracks (F, N, 2) float32, visible (F, N) bool); before its query
frame a point holds its query position, invisible; points outside the frame, NaN, or (when person
masks are given) within `mask_margin` pixels of the person are invisible there.
"""

from __future__ import annotations

import numpy as np


class CoTrackerQueryTracker:
    def __init__(self, model=None, device: str = "cpu", mask_margin: int = 4):
        from ..backends.cotracker import CoTracker
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
            from ..backends.cotracker import dilate

            near = np.stack([dilate(np.asarray(m, bool), self.margin) for m in masks])
            xi = np.clip(np.rint(x).astype(int), 0, w - 1)
            yi = np.clip(np.rint(y).astype(int), 0, h - 1)
            ok &= ~near[np.arange(n)[:, None], yi, xi]
        tracks = np.where(after[..., None] & np.isfinite(pred), pred, tracks).astype(np.float32)
        visible = after & vis & ok
        return tracks, visible
