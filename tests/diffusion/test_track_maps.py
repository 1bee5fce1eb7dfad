"""Track maps: splats where visible tracks are, carrying displacement from the video's first
frame, the same values at any resolution, numpy and torch alike."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fgbg.diffusion.track_maps import render_track_maps  # noqa: E402


def test_single_track_peak_and_displacement():
    tracks = np.array([[[10.0, 20.0]], [[30.0, 40.0]]], np.float32)  # (T=2, N=1, 2)
    visible = np.array([[True], [True]])
    maps = render_track_maps(tracks, visible, tracks[0], (64, 48), (64, 48))
    assert maps.shape == (2, 3, 48, 64) and maps.dtype == np.float32
    for t, (x, y) in enumerate([(10, 20), (30, 40)]):
        occ = maps[t, 0]
        assert np.unravel_index(occ.argmax(), occ.shape) == (y, x)
        assert occ[y, x] == pytest.approx(1.0)
    # displacement (20, 20) px over a 64 x 48 frame, carried where the splat is
    assert maps[1, 1, 40, 30] == pytest.approx(20 / 64, rel=1e-5)
    assert maps[1, 2, 40, 30] == pytest.approx(20 / 48, rel=1e-5)
    assert maps[0, 1:, 20, 10] == pytest.approx([0.0, 0.0], abs=1e-7)
    assert abs(maps[1, 1, 0, 63]) < 1e-6  # far from the track: nothing


def test_invisible_tracks_leave_no_mark():
    tracks = np.array([[[10.0, 20.0], [50.0, 10.0]]], np.float32)
    maps = render_track_maps(tracks, np.array([[True, False]]), tracks[0], (64, 48), (64, 48))
    assert maps[0, 0, 10, 50] < 1e-6 and maps[0, 0, 20, 10] == pytest.approx(1.0)


def test_resolution_independent():
    """Displacement per occupancy at a track's pixel is the same at any output size."""
    origin = np.array([[20.0, 20.0], [100.0, 20.0], [20.0, 70.0], [100.0, 70.0]], np.float32)
    moved = origin + np.array([[6.0, -3.0], [-10.0, 4.0], [0.0, 8.0], [12.0, 12.0]], np.float32)
    tracks = np.stack([origin, moved])
    vis = np.ones((2, 4), bool)
    for scale in (0.5, 1.0, 2.0):
        size = (int(128 * scale), int(96 * scale))
        maps = render_track_maps(tracks, vis, origin, (128, 96), size)
        for k in range(4):
            x, y = np.round((moved[k] + 0.5) * scale - 0.5).astype(int)
            occ = maps[1, 0, y, x]
            assert occ > 0.3
            got = maps[1, 1:, y, x] / occ
            assert np.allclose(got, (moved[k] - origin[k]) / [128, 96], atol=1e-4), (scale, k)


def test_torch_matches_numpy_and_no_tracks():
    rng = np.random.RandomState(1)
    tracks = (rng.rand(4, 7, 2) * 64).astype(np.float32)
    vis = rng.rand(4, 7) > 0.5
    a = render_track_maps(tracks, vis, tracks[0], (64, 64), (32, 32))
    b = render_track_maps(torch.from_numpy(tracks), torch.from_numpy(vis), torch.from_numpy(tracks[0]),
                          (64, 64), (32, 32))
    assert torch.is_tensor(b) and np.allclose(a, b.numpy())
    empty = render_track_maps(np.zeros((2, 0, 2), np.float32), np.zeros((2, 0), bool), np.zeros((0, 2)),
                              (64, 64), (32, 32))
    assert empty.shape == (2, 3, 32, 32) and not empty.any()
