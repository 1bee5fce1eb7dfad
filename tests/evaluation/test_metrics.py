"""Each eval metric on constructed inputs with known answers."""

import numpy as np
import pytest

from fgbg.evaluation import metrics as M
from fgbg.evaluation.query_trackers import LKQueryTracker


def textured(h=64, w=96, seed=0):
    """A smooth random texture (LK needs gradients, not white noise)."""
    import cv2

    rng = np.random.default_rng(seed)
    img = rng.uniform(0, 255, (h // 4, w // 4, 3)).astype(np.float32)
    return np.clip(cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)


def pan(n=10, speed=1.0, h=48, w=64, seed=0):
    """A camera pan over a bigger texture: content moves left by `speed` px per frame.
    Returns frames and the true position of a grid of background points over time."""
    import cv2

    big = textured(h + 8, w + 8 + int(np.ceil(speed * n)), seed)
    frames = []
    for t in range(n):
        m = np.float32([[1, 0, -speed * t - 4], [0, 1, -4]])
        frames.append(cv2.warpAffine(big, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    ys, xs = np.mgrid[12:h - 12:8, 20:w - 12:8]
    q = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
    tracks = np.stack([q - [speed * t, 0] for t in range(n)]).astype(np.float32)
    return np.stack(frames), tracks


def test_image_metrics_known_values():
    a = np.full((2, 8, 8, 3), 100, np.uint8)
    b = a.copy()
    assert M.l1(a, b) == 0 and M.psnr(a, b) == float("inf")
    assert M.ssim(a, b) == pytest.approx(1.0, abs=1e-6)
    b = a + np.uint8(51)  # 0.2 on [0, 1] everywhere
    assert M.l1(a, b) == pytest.approx(0.2)
    assert M.psnr(a, b) == pytest.approx(10 * np.log10(1 / 0.04))
    noisy = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)
    assert M.ssim(noisy, textured(32, 32)[None].repeat(2, 0)) < 0.2
    with pytest.raises(ValueError):
        M.l1(a, a[:1])


def test_person_ssim_reads_only_the_masked_region():
    real = textured(32, 32)[None].repeat(2, 0)
    gen = real.copy()
    gen[:, :, :16] = 0  # the left half wrecked
    person = np.zeros((2, 32, 32), bool)
    person[:, 4:28, 22:30] = True  # on the right half, beyond the window's reach of the left
    assert M.ssim_person(gen, real, person) == pytest.approx(1.0, abs=1e-4)
    assert M.ssim_person(gen, real, np.roll(person, -20, axis=2)) < 0.2  # moved onto the wreck
    assert M.ssim(gen, real) < 0.7
    assert np.isnan(M.ssim_person(gen, real, np.zeros_like(person)))


def test_track_error_exact_and_one_pixel():
    rng = np.random.default_rng(1)
    tr = rng.uniform(0, 60, (6, 5, 2)).astype(np.float32)
    vis = np.ones((6, 5), bool)
    assert M.background_track_error(tr, vis, tr, vis) == 0.0
    shifted = tr + np.float32([1, 0])
    assert M.background_track_error(shifted, vis, tr, vis) == pytest.approx(1.0)
    # points on the person are not counted: put every reference point of track 0 inside the mask
    masks = np.zeros((6, 64, 64), bool)
    off = tr.copy()
    off[:, 0] += 10  # track 0 is 10 px off...
    for t in range(6):
        x, y = np.rint(tr[t, 0]).astype(int)
        masks[t, max(y - 1, 0):y + 2, max(x - 1, 0):x + 2] = True  # ...but it is on the person
    assert M.background_track_error(off, vis, tr, vis, masks) == 0.0
    assert M.background_track_error(off, vis, tr, vis) > 1.0
    # the query frame (first visible reference frame) is excluded; nothing comparable -> nan
    one = np.zeros((6, 5), bool)
    one[2] = True
    assert np.isnan(M.background_track_error(tr, one, tr, one))


def test_video_tracked_against_itself_has_zero_error_and_shift_gives_one_pixel():
    frames, truth = pan(n=10, speed=1.0)
    queries = np.concatenate([np.zeros((len(truth[0]), 1), np.float32), truth[0]], 1)
    tracks, visible = LKQueryTracker().track_queries(frames, queries)
    vis_ref = np.ones(truth.shape[:2], bool)
    assert visible[-1].mean() > 0.9
    assert M.background_track_error(tracks, visible, truth, vis_ref) < 0.1
    # a generated video whose background moves one pixel more than the conditioning tracks say:
    # frames 1.. shifted by one more pixel
    import cv2

    moved = np.stack([frames[0]] + [cv2.warpAffine(f, np.float32([[1, 0, -1], [0, 1, 0]]), f.shape[1::-1],
                                                   borderMode=cv2.BORDER_REFLECT) for f in frames[1:]])
    tracks2, visible2 = LKQueryTracker().track_queries(moved, queries)
    assert M.background_track_error(tracks2, visible2, truth, vis_ref) == pytest.approx(1.0, abs=0.1)


def test_queries_later_than_frame_zero_start_there():
    frames, truth = pan(n=8, speed=2.0)
    q = np.float32([[3, *truth[3, 0]], [0, *truth[0, 1]]])
    tracks, visible = LKQueryTracker().track_queries(frames, q)
    assert not visible[:3, 0].any() and visible[3:, 0].all()
    np.testing.assert_allclose(tracks[:4, 0], np.repeat(truth[3:4, 0], 4, 0))
    np.testing.assert_allclose(tracks[-1, 0], truth[-1, 0], atol=0.15)
    np.testing.assert_allclose(tracks[-1, 1], truth[-1, 1], atol=0.15)


def test_pck():
    kp = np.zeros((2, 4, 2))
    sc = np.ones((2, 4))
    assert M.pck(kp, kp, sc, (100, 100)) == 1.0
    off = kp.copy()
    off[:, :2] += [6, 0]  # 6 px > 0.05 * 100
    assert M.pck(off, kp, sc, (100, 100)) == 0.5
    sc2 = sc.copy()
    sc2[:, :2] = 0  # the missed keypoints are not confident in the reference: not counted
    assert M.pck(off, kp, sc2, (100, 100)) == 1.0
    assert M.pck(kp, kp, sc, (100, 100), scores=np.zeros((2, 4))) == 0.0


def test_seam_jump():
    frames, _ = pan(n=16, speed=1.0)
    assert M.seam_jump(frames, [8]) == pytest.approx(1.0, rel=0.25)
    # brightness ramp: every step changes each pixel by exactly 1, the seam into frame 8 by 6
    ramp = np.stack([np.full((4, 4, 3), 50 + t + (5 if t >= 8 else 0), np.uint8) for t in range(16)])
    assert M.seam_jump(ramp, [8]) == pytest.approx(6.0)
    assert M.seam_jump(ramp, [8, 12]) == pytest.approx(3.5)  # (6 + 1) / 2 over a median of 1
    const = np.zeros((6, 4, 4, 3), np.uint8)
    assert M.seam_jump(const, [3]) == 1.0
    assert np.isnan(M.seam_jump(frames, []))


def test_colour_drift():
    ref = np.full((8, 8, 3), 100, np.uint8)
    video = np.repeat(ref[None], 6, 0)
    video[3:] += 10  # the second clip drifted by 10 in every channel
    masks = np.zeros((6, 8, 8), bool)
    masks[:, :4] = True
    video[:, :4] = 250  # the person (excluded) is different: no effect
    np.testing.assert_allclose(M.colour_drift(video, ref, masks, [(0, 3), (3, 6)]), [0.0, 10.0])
    assert M.colour_drift(video, ref, None, [(0, 3)])[0] > 50  # without the mask the person counts


def test_write_plot(tmp_path):
    p = M.write_plot({"a": [1.0, 2.0, 3.0], "b": [0.5, 0.5]}, tmp_path / "p.png")
    assert p.stat().st_size > 1000 and p.read_bytes()[:4] == b"\x89PNG"
