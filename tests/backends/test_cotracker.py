"""CoTracker background tracker: the real upstream model code with random weights (mechanics only),
and the window joining on a fake model whose tracks are exact (accuracy).

The upstream code comes from a local torch.hub directory built by cotracker_hub.py (the `cotracker`
package extracted from a pinned wheel, plus our hubconf.py). If that wheel cannot be had, the tests
that need it FAIL with the fix in the message; they never skip.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from fgbg.backends.track.cotracker import CoTracker, dilate, grid_candidates, spread_pick
from fgbg.errors import ModelError
from fgbg.params import TrackParams

H, W = 64, 96
COMMIT = "82e02e8029753ad4ef13cf06be7f4fc5facdda4d"


def chunked(frames, masks, size=5):
    return ((frames[i:i + size], masks[i:i + size]) for i in range(0, len(frames), size))


def person_masks(num_frames: int, step: float = 4.0) -> np.ndarray:
    """An ellipse "person" walking left to right across the frame."""
    masks = np.zeros((num_frames, H, W), bool)
    for t in range(num_frames):
        m = np.zeros((H, W), np.uint8)
        cv2.ellipse(m, (int(20 + step * t), H // 2), (9, 20), 0, 0, 360, 1, -1)
        masks[t] = m > 0
    return masks


def textured_video(num_frames: int, shift=(1, 0), seed: int = 0):
    """A random texture moved by an integer `shift` px per frame, the person drawn flat on it."""
    rng = np.random.default_rng(seed)
    pad = num_frames * max(abs(shift[0]), abs(shift[1])) + 1
    small = rng.integers(0, 256, ((H + 2 * pad) // 4 + 1, (W + 2 * pad) // 4 + 1, 3), np.uint8)
    big = cv2.resize(small, ((W + 2 * pad) // 4 * 4 + 4, (H + 2 * pad) // 4 * 4 + 4),
                     interpolation=cv2.INTER_CUBIC)
    masks = person_masks(num_frames)
    frames = np.zeros((num_frames, H, W, 3), np.uint8)
    for t in range(num_frames):
        y0, x0 = pad - shift[1] * t, pad - shift[0] * t
        frames[t] = big[y0:y0 + H, x0:x0 + W]
        frames[t][masks[t]] = (200, 50, 50)
    return frames, masks


def check_layout(res, num_frames: int, params: TrackParams, masks: np.ndarray):
    """What every TrackResult of this backend must satisfy."""
    T, N = num_frames, len(res.queries)
    assert res.tracks.shape == (T, N, 2) and res.tracks.dtype == np.float32
    assert res.visible.shape == (T, N) and res.visible.dtype == bool
    assert res.queries.shape == (N, 3) and res.queries.dtype == np.float32
    assert 0 < N <= params.max_tracks
    assert np.isfinite(res.tracks).all()
    assert res.visible.sum(1).max() <= params.num_points
    for n in range(N):
        t0, x, y = res.queries[n]
        t0 = int(t0)
        # seeded on the background: off the person dilated by mask_erode
        assert not dilate(masks[t0], params.mask_erode)[int(round(y)), int(round(x))]
        assert res.visible[t0, n]
        np.testing.assert_allclose(res.tracks[: t0 + 1, n], np.broadcast_to([x, y], (t0 + 1, 2)),
                                   atol=1e-3)
        vis = np.flatnonzero(res.visible[:, n])
        assert vis[0] == t0 and (np.diff(vis) == 1).all()  # one run: a lost track stays lost
        last = vis[-1]
        np.testing.assert_array_equal(res.tracks[last:, n], np.broadcast_to(res.tracks[last, n],
                                                                           (T - last, 2)))
    t, n = np.nonzero(res.visible)
    xi = np.round(res.tracks[t, n, 0]).astype(int)
    yi = np.round(res.tracks[t, n, 1]).astype(int)
    assert ((xi >= 0) & (xi < W) & (yi >= 0) & (yi < H)).all()
    assert not masks[t, yi, xi].any()  # no visible point on the person, in any frame


# ----------------------------------------------------------------------------- real model code


@pytest.fixture(scope="module")
def hub_dir(tmp_path_factory):
    from cotracker_hub import build_hub_dir

    return build_hub_dir(tmp_path_factory.mktemp("cotracker-hub"))  # raises (fails) when no wheel


@pytest.fixture(scope="module")
def random_checkpoint(hub_dir, tmp_path_factory):
    """A state dict of the real architecture with random weights, its visibility bias raised so the
    random model calls points visible (with the init bias 0 it calls nothing visible)."""
    import torch

    pred = torch.hub.load(str(hub_dir), "cotracker3_offline", source="local", pretrained=False)
    state = pred.model.state_dict()
    assert "updateformer.vis_conf_head.bias" in state
    state["updateformer.vis_conf_head.bias"] = torch.full_like(
        state["updateformer.vis_conf_head.bias"], 2.0)
    path = tmp_path_factory.mktemp("ckpt") / "scaled_offline.pth"
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def real_run(hub_dir, random_checkpoint):
    """One tracked video: 12 frames, windows of 6 overlapping by 2: [0,6) [4,10) [8,12)."""
    import torch

    calls = []
    real_load = torch.hub.load

    def spy(repo_or_dir, model, *args, **kwargs):
        calls.append((repo_or_dir, model, args, kwargs))
        return real_load(repo_or_dir, model, *args, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(torch.hub, "load", spy)
    try:
        params = TrackParams(num_points=8, min_points=6, mask_erode=3)
        tracker = CoTracker(params, device="cpu", hub_dir=hub_dir, checkpoint=random_checkpoint,
                            window_len=6, overlap=2, seed_every=3)
    finally:
        mp.undo()
    frames, masks = textured_video(12)
    model_calls = []
    real_forward = tracker.model.forward

    def counting_forward(video, *args, **kwargs):
        model_calls.append((tuple(video.shape), kwargs["queries"].clone()))
        return real_forward(video, *args, **kwargs)

    tracker.model.forward = counting_forward
    res = tracker.track(chunked(frames, masks), len(frames))
    return dict(tracker=tracker, calls=calls, res=res, masks=masks, params=params,
                model_calls=model_calls)


def test_hub_loads_locally_and_reads_the_checkpoint(real_run, hub_dir):
    calls = real_run["calls"]
    assert len(calls) == 1
    repo, entry, args, kwargs = calls[0]
    assert Path(repo) == Path(hub_dir) and Path(repo).is_dir() and entry == "cotracker3_offline"
    assert kwargs.get("source") == "local" and kwargs.get("pretrained") is False
    model = real_run["tracker"].model
    assert type(model).__name__ == "CoTrackerPredictor"
    assert type(model.model).__name__ == "CoTrackerThreeOffline"
    assert tuple(model.interp_shape) == (384, 512)
    bias = model.model.updateformer.vis_conf_head.bias.detach().numpy()
    np.testing.assert_array_equal(bias, 2.0)  # the value written into the checkpoint


def test_random_model_mechanics(real_run):
    res, masks, params = real_run["res"], real_run["masks"], real_run["params"]
    check_layout(res, 12, params, masks)
    assert res.visible[0].sum() == params.num_points  # seeded to num_points on frame 0
    # three model runs at the model's resolution, never more than a window of frames
    shapes = [s for s, _ in real_run["model_calls"]]
    assert shapes == [(1, 6, 3, 384, 512), (1, 6, 3, 384, 512), (1, 4, 3, 384, 512)]
    # later windows re-query the surviving tracks on their anchor (window frame overlap-1 = 1)
    for _, q in real_run["model_calls"][1:]:
        assert (q[0, :, 0] == 1).any()
    # tracks continue across both joins (frames 5 and 9): one index spans all three windows
    spans = res.visible[0] & res.visible[11]
    assert spans.any()
    # the walking person removed some tracks it came over
    assert (res.visible[0] & ~res.visible[11]).any()


# ----------------------------------------------------------------------------- joining, exactly


class FakeShift:
    """Stands in for the predictor: every query moves by exactly `shift` processing px per frame.
    It reads each frame's global index from its pixel values (frame g is filled with 10*g + 5), so
    it knows nothing of the windows. Model resolution (127, 191) = 2x (64, 96) in corner-aligned
    coordinates, so the scaling to and from the model is checked too."""

    interp_shape = (127, 191)

    def __init__(self, shift=(3.0, 0.0), blind=None):
        self.shift = np.asarray(shift, np.float32)
        self.blind = blind  # (global frame, x below which queries are called occluded there)
        self.calls = []

    def __call__(self, video, queries):
        import torch

        v = video[0].numpy()
        assert v.shape[1:] == (3, *self.interp_shape)
        g = np.round((v[:, 0, 0, 0] - 5) / 10).astype(int)  # global frame of each window frame
        assert (v == v[:, :1, :1, :1]).all()
        q = queries[0].numpy()
        self.calls.append((g.copy(), q.copy()))
        gq = g[q[:, 0].astype(int)]
        tracks = q[None, :, 1:] + 2 * self.shift * (g[:, None, None] - gq[None, :, None])
        vis = np.ones(tracks.shape[:2], bool)
        if self.blind is not None:
            frame, xmax = self.blind
            vis[g == frame] = (q[:, 1] / 2 >= xmax)[None]
        return torch.from_numpy(tracks.astype(np.float32))[None], torch.from_numpy(vis)[None]


def flat_video(num_frames):
    frames = np.zeros((num_frames, H, W, 3), np.uint8)
    for t in range(num_frames):
        frames[t] = 10 * t + 5
    return frames, person_masks(num_frames, step=2.0)


def test_joined_tracks_follow_the_exact_shift():
    T = 20
    frames, masks = flat_video(T)
    params = TrackParams(num_points=10, min_points=6, mask_erode=3)
    fake = FakeShift(shift=(3.0, 0.0))
    tracker = CoTracker(params, model=fake, window_len=8, overlap=2, seed_every=2)
    res = tracker.track(chunked(frames, masks, size=3), T)
    check_layout(res, T, params, masks)
    # windows [0,8) [6,14) [12,20): each a window's worth at most, in order
    assert [list(g) for g, _ in fake.calls] == [list(range(0, 8)), list(range(6, 14)),
                                                list(range(12, 20))]
    # accuracy of the joined result: every visible point is its query moved by the exact shift
    t, n = np.nonzero(res.visible)
    expect = res.queries[n, 1:] + np.float32([3.0, 0.0]) * (t - res.queries[n, 0])[:, None]
    np.testing.assert_allclose(res.tracks[t, n], expect, atol=1e-3)
    # tracks continue over the joins (frames 7 and 13) under the same index
    assert (res.visible[5] & res.visible[9]).any()
    assert (res.visible[11] & res.visible[15]).any()
    # continued tracks are re-queried on the anchor at the position the previous window gave them
    for w, (_, q) in enumerate(fake.calls[1:], start=1):
        cont = q[q[:, 0] == 1]
        anchor = 6 * w + 1
        prev = res.tracks[anchor][res.visible[anchor]] * 2  # model px
        assert len(prev) >= 1
        for x, y in prev:
            assert np.abs(cont[:, 1:] - [x, y]).sum(1).min() < 1e-3
    # the 3 px/frame pan pushes points out of the frame: new ones are started along the way, and
    # the count is back at num_points after every top-up
    starts = np.unique(res.queries[:, 0]).astype(int)
    assert len(starts) > 1 and starts[0] == 0
    for s in starts:
        assert res.visible[s].sum() == params.num_points
    # the top-up looks ahead within the window: the count never falls below min_points
    assert res.visible.sum(1).min() >= params.min_points
    # spread: the first seeds are not crowded together
    first = res.queries[res.queries[:, 0] == 0, 1:]
    d = np.linalg.norm(first[:, None] - first[None], axis=2) + np.eye(len(first)) * 1e9
    assert d.min() >= 4.0


def test_occluded_tracks_stay_lost_and_model_invisibility_counts():
    T = 12
    frames, masks = flat_video(T)
    masks[:] = False  # no person: only the model's own occlusion call removes points
    params = TrackParams(num_points=10, min_points=3, mask_erode=3)
    # frame 9 (second window, after the join at 7): points left of x=40 called occluded there
    fake = FakeShift(shift=(0.0, 0.0), blind=(9, 40.0))
    res = CoTracker(params, model=fake, window_len=8, overlap=2, seed_every=4).track(
        chunked(frames, masks), T)
    check_layout(res, T, params, masks)
    first = res.queries[:, 0] == 0
    left, right = first & (res.queries[:, 1] < 40), first & (res.queries[:, 1] >= 40)
    assert left.any() and right.any()
    # lost at 9 and never resurrected, although the model sees them again at 10 and 11
    assert res.visible[:9, left].all() and not res.visible[9:, left].any()
    assert res.visible[:, right].all()


def test_seeds_prefer_candidates_that_survive_the_window():
    T = 8
    frames, masks = flat_video(T)
    masks[:] = False
    params = TrackParams(num_points=10, min_points=3, mask_erode=3)
    fake = FakeShift(shift=(0.0, 0.0), blind=(4, 40.0))  # inside the first window
    res = CoTracker(params, model=fake, window_len=8, overlap=2, seed_every=8).track(
        chunked(frames, masks), T)
    seeds = res.queries[res.queries[:, 0] == 0]
    assert len(seeds) == params.num_points and (seeds[:, 1] >= 40).all()
    assert res.visible.all()


def test_short_stream_and_frames_beyond_num_frames():
    frames, masks = flat_video(10)
    params = TrackParams(num_points=5, min_points=2, mask_erode=2)
    # the stream ends early: rows after it repeat the last positions, invisible
    res = CoTracker(params, model=FakeShift((1.0, 0.0)), window_len=4, overlap=1).track(
        chunked(frames[:7], masks[:7]), 9)
    assert res.tracks.shape[0] == 9
    assert not res.visible[7:].any()
    np.testing.assert_array_equal(res.tracks[7], res.tracks[6])
    # frames beyond num_frames are ignored
    fake = FakeShift((1.0, 0.0))
    res = CoTracker(params, model=fake, window_len=4, overlap=1).track(chunked(frames, masks), 6)
    assert res.tracks.shape[0] == 6 and max(g.max() for g, _ in fake.calls) == 5


def test_candidates_and_spread_pick():
    mask = np.zeros((H, W), bool)
    mask[:, :48] = True
    cand = grid_candidates(mask, margin=4, spacing=8.0, border=2)
    assert len(cand) and (cand[:, 0] > 48 + 4 - 0.5).all()
    pts = np.float32([[0, 0], [1, 0], [50, 0], [100, 0], [51, 0]])
    score = np.float32([4, 4, 4, 4, 1])
    pick = spread_pick(pts, score, np.zeros((0, 2), np.float32), 3, min_distance=5.0)
    assert sorted(pick.tolist()) == [0, 2, 3]  # far apart, best score first; 1 is too close to 0
    pick = spread_pick(pts, score, np.float32([[100, 1]]), 5, min_distance=5.0)
    assert 3 not in pick.tolist() and len(pick) == 2


def test_missing_store_artifacts_name_the_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("FGBG_MODELS", str(tmp_path / "empty"))
    monkeypatch.delenv("FGBG_LOCK", raising=False)
    with pytest.raises(ModelError) as err:
        CoTracker(TrackParams())
    assert "fgbg models fetch cotracker-code" in err.value.hint


def store_lock(tmp_path, weights: bytes) -> Path:
    """A models.lock with the real cotracker-code entry and a cotracker3-offline entry pinned to
    `weights` (so a random checkpoint verifies)."""
    import hashlib

    lock = tmp_path / "models.lock"
    lock.write_text(f"""lock_version = 1

[cotracker-code]
kind = "git"
url = "https://github.com/facebookresearch/co-tracker.git"
revision = "{COMMIT}"
filename = ""
size = 0
sha256 = ""
licence = "CC-BY-NC-4.0"
backend = "cotracker"
role = "required"
file = "cotracker/co-tracker"
unverified = []

[cotracker3-offline]
kind = "hf"
repo = "facebook/cotracker3"
revision = "a304f912a43a3f37a81256e55243137d60d223b7"
filename = "scaled_offline.pth"
size = {len(weights)}
sha256 = "{hashlib.sha256(weights).hexdigest()}"
licence = "CC-BY-NC-4.0"
backend = "cotracker"
role = "required"
file = "cotracker/scaled_offline.pth"
unverified = []
""")
    return lock


def test_store_artifacts_are_used_when_no_paths_are_given(hub_dir, random_checkpoint, tmp_path,
                                                           monkeypatch):
    """With hub_dir/checkpoint None, the checkout and weights come from the model store (a lock
    pointing at the random checkpoint, so its sha256 verifies)."""
    import shutil

    import torch

    models = tmp_path / "models"
    code = models / "cotracker" / "co-tracker"
    shutil.copytree(hub_dir, code)
    (code / ".fgbg-revision").write_text(COMMIT)
    shutil.copy(random_checkpoint, models / "cotracker" / "scaled_offline.pth")
    data = (models / "cotracker" / "scaled_offline.pth").read_bytes()
    lock = store_lock(tmp_path, data)
    monkeypatch.setenv("FGBG_MODELS", str(models))
    monkeypatch.setenv("FGBG_LOCK", str(lock))
    seen = []
    real_load = torch.hub.load
    monkeypatch.setattr(torch.hub, "load", lambda d, m, *a, **k: seen.append((d, k)) or
                        real_load(d, m, *a, **k))
    rng_before = torch.random.get_rng_state()
    tracker = CoTracker(TrackParams())
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # building left the RNG alone
    assert Path(seen[0][0]) == code and seen[0][1]["source"] == "local"
    bias = tracker.model.model.updateformer.vis_conf_head.bias.detach().numpy()
    np.testing.assert_array_equal(bias, 2.0)


def test_auto_takes_lk_without_the_store(tmp_path, monkeypatch):
    from fgbg.backends import resolve

    monkeypatch.setenv("FGBG_MODELS", str(tmp_path / "empty"))
    monkeypatch.delenv("FGBG_LOCK", raising=False)
    assert resolve("track", "auto") == ("lk", {})
    with pytest.raises(ModelError) as err:
        resolve("track", "cotracker")
    assert "fgbg models fetch cotracker-code" in err.value.hint


def test_imported_source_archive_is_what_auto_builds(hub_dir, random_checkpoint, tmp_path,
                                                      monkeypatch):
    """The code installed the way `fgbg models fetch/import cotracker-code` installs it (a
    GitHub-style source archive, extracted, top folder stripped): `auto` then picks cotracker and
    the registry builds it from the store; without the weights auto falls back to lk."""
    import shutil
    import tarfile

    from fgbg.backends import build, resolve
    from fgbg.store.fetch import import_file
    from fgbg.store import check, load_lock

    archive = tmp_path / "co-tracker.tar.gz"
    with tarfile.open(archive, "w:gz", format=tarfile.PAX_FORMAT,
                      pax_headers={"comment": COMMIT}) as tf:
        tf.add(hub_dir, arcname=f"co-tracker-{COMMIT}",
               filter=lambda ti: None if "__pycache__" in ti.name else ti)
    models = tmp_path / "models"
    (models / "cotracker").mkdir(parents=True)
    shutil.copy(random_checkpoint, models / "cotracker" / "scaled_offline.pth")
    lock = store_lock(tmp_path, Path(random_checkpoint).read_bytes())
    monkeypatch.setenv("FGBG_MODELS", str(models))
    monkeypatch.setenv("FGBG_LOCK", str(lock))
    entry = load_lock()["cotracker-code"]
    path = import_file(entry, archive, warn=lambda m: None)
    assert path == models / "cotracker" / "co-tracker" and (path / "hubconf.py").is_file()

    name, used = resolve("track", "auto")
    assert name == "cotracker" and set(used) == {"cotracker-code", "cotracker3-offline"}
    # the code checkout has no sha256: its pinned commit is what keys the stage cache
    from fgbg.store import load_lock

    assert used["cotracker-code"] == f"git:{load_lock()['cotracker-code'].revision}"
    assert used["cotracker3-offline"]
    tracker = build("track", name, TrackParams(), "cpu")
    assert isinstance(tracker, CoTracker)
    bias = tracker.model.model.updateformer.vis_conf_head.bias.detach().numpy()
    np.testing.assert_array_equal(bias, 2.0)
    assert check(entry, use_cache=False).state == "present"  # importing it left bytecode only

    (models / "cotracker" / "scaled_offline.pth").unlink()
    assert resolve("track", "auto")[0] == "lk"


# ------------------------------------------------------------------ eval: tracking given queries


def test_eval_query_tracker_follows_the_exact_shift():
    """fgbg eval's CoTracker tracker: given queries [t, x, y] in frame pixels come back as the
    model's tracks in frame pixels (scaled to the model and back), invisible before their frame
    and near the person."""
    from fgbg.evaluation.query_trackers import CoTrackerQueryTracker

    frames, masks = flat_video(10)
    fake = FakeShift(shift=(1.5, 0.0))
    tr = CoTrackerQueryTracker(model=fake)
    q = np.float32([[0, 10, 20], [4, 30, 40], [2, 60, 50]])
    tracks, visible = tr.track_queries(frames, q)
    assert len(fake.calls) == 1 and len(fake.calls[0][0]) == 10  # the whole video in one call
    t = np.arange(10)[:, None]
    expect = q[None, :, 1:] + np.float32([1.5, 0])[None, None] * (t - q[None, :, 0])[..., None]
    after = t >= q[None, :, 0]
    np.testing.assert_allclose(tracks[after], expect[after], atol=1e-3)
    np.testing.assert_allclose(tracks[~after], np.broadcast_to(q[None, :, 1:], tracks.shape)[~after])
    inside = (expect[..., 0] <= W - 1)
    np.testing.assert_array_equal(visible, after & inside)
    # with person masks: a point within the margin of the person is invisible there
    _, vis_m = tr.track_queries(frames, q, masks)
    xi = np.clip(np.rint(tracks[..., 0]).astype(int), 0, W - 1)
    yi = np.clip(np.rint(tracks[..., 1]).astype(int), 0, H - 1)
    near = np.stack([dilate(m, 4) for m in masks])[t, yi, xi]
    np.testing.assert_array_equal(vis_m, visible & ~near)


def test_eval_query_tracker_runs_the_real_model(hub_dir, random_checkpoint):
    from fgbg.backends.track.cotracker import load_predictor
    from fgbg.evaluation.query_trackers import CoTrackerQueryTracker

    frames, _ = textured_video(6)
    tr = CoTrackerQueryTracker(model=load_predictor(hub_dir, random_checkpoint))
    tracks, visible = tr.track_queries(frames, np.float32([[0, 20, 20], [3, 50, 30]]))
    assert tracks.shape == (6, 2, 2) and visible.shape == (6, 2) and np.isfinite(tracks).all()
    assert not visible[:3, 1].any()
