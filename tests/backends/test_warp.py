"""Warp generator on a synthetic stick person over a textured background."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fgbg.backends.base import ClipInputs, Reference
from fgbg.backends.generate.warp import WarpGenerator, fill_hole
from fgbg.errors import InputError
from fgbg.pose import layout as L

SIZE = 128
LIMB_COLOURS = {  # distinct flat colours per limb so tests can find each part
    (L.LEFT_SHOULDER, L.LEFT_ELBOW): (255, 255, 0),
    (L.LEFT_ELBOW, L.LEFT_WRIST): (255, 0, 255),
    (L.RIGHT_SHOULDER, L.RIGHT_ELBOW): (0, 255, 255),
    (L.RIGHT_ELBOW, L.RIGHT_WRIST): (255, 128, 0),
    (L.LEFT_HIP, L.LEFT_KNEE): (0, 0, 255),
    (L.LEFT_KNEE, L.LEFT_ANKLE): (0, 128, 255),
    (L.RIGHT_HIP, L.RIGHT_KNEE): (128, 0, 255),
    (L.RIGHT_KNEE, L.RIGHT_ANKLE): (128, 255, 0),
}
TORSO_COLOUR = (255, 0, 0)
HEAD_COLOUR = (0, 200, 0)


def stick_pose(size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """A standing person (arms out and down), -> keypoints (133, 2), scores (133,)."""
    s = size / 128
    kp = np.zeros((133, 2), np.float32)
    sc = np.zeros(133, np.float32)
    pts = {
        L.NOSE: (64, 22), L.LEFT_SHOULDER: (76, 40), L.RIGHT_SHOULDER: (52, 40),
        L.LEFT_ELBOW: (90, 56), L.RIGHT_ELBOW: (38, 56), L.LEFT_WRIST: (100, 72),
        L.RIGHT_WRIST: (28, 72), L.LEFT_HIP: (72, 76), L.RIGHT_HIP: (56, 76),
        L.LEFT_KNEE: (74, 96), L.RIGHT_KNEE: (54, 96), L.LEFT_ANKLE: (75, 116),
        L.RIGHT_ANKLE: (53, 116),
    }
    for i, (x, y) in pts.items():
        kp[i] = (x * s, y * s)
        sc[i] = 0.9
    return kp, sc


def textured(size: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size // 8 + 1, size // 8 + 1, 3), dtype=np.uint8)
    return cv2.GaussianBlur(cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC), (0, 0), 1.0)


def stick_person(size: int = SIZE) -> Reference:
    """Reference: flat-coloured limbs, torso and head over a texture."""
    kp, sc = stick_pose(size)
    image = textured(size)
    mask = np.zeros((size, size), np.uint8)
    s = size / 128
    canvas = image.copy()

    def draw(target, colour, fn):
        fn(target, colour)
        fn(mask, 1)

    torso = np.round(kp[[L.LEFT_SHOULDER, L.RIGHT_SHOULDER, L.RIGHT_HIP, L.LEFT_HIP]]).astype(np.int32)
    draw(canvas, TORSO_COLOUR, lambda im, c: cv2.fillConvexPoly(im, torso, c))
    for (a, b), colour in LIMB_COLOURS.items():
        pa, pb = tuple(np.round(kp[a]).astype(int)), tuple(np.round(kp[b]).astype(int))
        draw(canvas, colour, lambda im, c, pa=pa, pb=pb: cv2.line(im, pa, pb, c, int(7 * s)))
    head = tuple(np.round(kp[L.NOSE]).astype(int))
    draw(canvas, HEAD_COLOUR, lambda im, c: cv2.circle(im, head, int(10 * s), c, -1))
    neck = tuple(np.round(0.5 * (kp[L.LEFT_SHOULDER] + kp[L.RIGHT_SHOULDER])).astype(int))
    draw(canvas, HEAD_COLOUR, lambda im, c: cv2.line(im, head, neck, c, int(6 * s)))
    return Reference(canvas, kp, sc, mask > 0)


def clip_of(kps, scores, tracks, visible, origin, prev=None) -> ClipInputs:
    n = len(kps)
    return ClipInputs(keypoints=np.asarray(kps, np.float32), scores=np.asarray(scores, np.float32),
                      pose_maps=np.zeros((n, SIZE, SIZE, 3), np.uint8),
                      tracks=np.asarray(tracks, np.float32), visible=np.asarray(visible, bool),
                      tracks_origin=np.asarray(origin, np.float32), prev_frame=prev, seed=0)


def grid_tracks(shift: tuple[float, float], frames: int, size: int = SIZE):
    """Tracks on a 5x5 grid moving by `shift` per frame -> tracks (T, 25, 2), visible, origin."""
    g = np.linspace(0.1, 0.9, 5) * size
    origin = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2).astype(np.float32)
    t = np.arange(frames, dtype=np.float32)[:, None, None]
    tracks = origin[None] + t * np.asarray(shift, np.float32)
    return tracks, np.ones(tracks.shape[:2], bool), origin


@pytest.fixture(scope="module")
def ref():
    return stick_person()


@pytest.fixture(scope="module")
def gen(ref):
    g = WarpGenerator()
    g.prepare(ref, SIZE, SIZE)
    return g


def colour_centroid(frame, colour, tol=40):
    """Centroid and pixels of the largest blob of `colour` (texture specks of it are ignored)."""
    hit = (np.abs(frame.astype(int) - colour).max(-1) < tol).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(hit, connectivity=8)
    assert count > 1, f"colour {colour} not found"
    hit = labels == 1 + np.argmax(stats[1:, cv2.CC_STAT_AREA])
    ys, xs = np.nonzero(hit)
    assert len(xs) > 10, f"colour {colour} not found"
    return np.array([xs.mean(), ys.mean()]), hit


def test_identity_reproduces_the_reference(gen, ref):
    kp, sc = stick_pose()
    tracks, vis, origin = grid_tracks((0, 0), 2)
    out = gen.generate_clip(clip_of([kp, kp], [sc, sc], tracks, vis, origin))
    assert out.shape == (2, SIZE, SIZE, 3) and out.dtype == np.uint8
    diff = np.abs(out[0].astype(int) - ref.image).max(-1)
    # inside the person (away from its silhouette) and on the background beyond the plate's hole
    # (the mask grown by HOLE_GROW): the reference up to rounding. The seam between the two, a
    # few pixels wide, shows the filled plate.
    inner = cv2.erode(ref.mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    outer = cv2.dilate(ref.mask.astype(np.uint8), np.ones((13, 13), np.uint8)) == 0
    assert diff[inner].max() <= 1
    assert diff[outer].max() <= 1


def test_background_moves_with_the_tracks(gen, ref):
    kp, sc = stick_pose()
    shift = (3.0, -2.0)
    tracks, vis, origin = grid_tracks(shift, 4)
    out = gen.generate_clip(clip_of([kp] * 4, [sc] * 4, tracks, vis, origin))
    # away from the person and the frame border, frame t is the plate shifted by t * shift
    keep = cv2.dilate(ref.mask.astype(np.uint8), np.ones((31, 31), np.uint8)) == 0
    keep[:16], keep[-16:], keep[:, :16], keep[:, -16:] = False, False, False, False
    for t in (1, 3):
        m = np.float32([[1, 0, shift[0] * t], [0, 1, shift[1] * t]])
        expected = cv2.warpAffine(gen.plate, m, (SIZE, SIZE), borderMode=cv2.BORDER_REFLECT)
        assert np.abs(out[t].astype(int) - expected)[keep].max() <= 2


def test_robust_to_outlier_tracks_and_missing_origins(gen):
    kp, sc = stick_pose()
    tracks, vis, origin = grid_tracks((2.0, 0.0), 3)
    tracks[:, :4] += 25.0  # four tracks on something that moves on its own
    origin[4] = np.nan  # a track seeded later: unusable
    out = gen.generate_clip(clip_of([kp] * 3, [sc] * 3, tracks, vis, origin))
    clean_tracks, _, clean_origin = grid_tracks((2.0, 0.0), 3)
    ref_out = gen.generate_clip(clip_of([kp] * 3, [sc] * 3, clean_tracks, vis, clean_origin))
    assert np.abs(out.astype(int) - ref_out).max() <= 2


def test_too_few_tracks_keeps_the_background_still(gen):
    kp, sc = stick_pose()
    tracks, vis, origin = grid_tracks((5.0, 0.0), 2)
    vis[:, 2:] = False  # only two usable tracks
    out = gen.generate_clip(clip_of([kp] * 2, [sc] * 2, tracks, vis, origin))
    assert np.array_equal(out[0], out[1])


def test_person_follows_the_pose(gen):
    kp, sc = stick_pose()
    tracks, vis, origin = grid_tracks((0, 0), 2)
    moved = kp.copy()
    moved[sc > 0] += (10.0, 6.0)
    out = gen.generate_clip(clip_of([kp, moved], [sc, sc], tracks, vis, origin))
    c0, _ = colour_centroid(out[0], TORSO_COLOUR)
    c1, _ = colour_centroid(out[1], TORSO_COLOUR)
    np.testing.assert_allclose(c1 - c0, (10.0, 6.0), atol=0.75)
    h0, _ = colour_centroid(out[0], HEAD_COLOUR)
    h1, _ = colour_centroid(out[1], HEAD_COLOUR)
    np.testing.assert_allclose(h1 - h0, (10.0, 6.0), atol=0.75)


def test_lower_arm_rotates_with_its_bone(gen):
    kp, sc = stick_pose()
    tracks, vis, origin = grid_tracks((0, 0), 2)
    bent = kp.copy()
    elbow, wrist = kp[L.LEFT_ELBOW], kp[L.LEFT_WRIST]
    v = wrist - elbow
    ang = np.deg2rad(-90)  # raise the forearm: rotate it a quarter turn about the elbow
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    bent[L.LEFT_WRIST] = elbow + rot @ v
    out = gen.generate_clip(clip_of([kp, bent], [sc, sc], tracks, vis, origin))
    colour = LIMB_COLOURS[(L.LEFT_ELBOW, L.LEFT_WRIST)]

    def axis_angle(hit):
        ys, xs = np.nonzero(hit)
        pts = np.stack([xs, ys], 1).astype(float)
        pts -= pts.mean(0)
        _, vecs = np.linalg.eigh(pts.T @ pts)
        d = vecs[:, -1]
        return np.degrees(np.arctan2(d[1], d[0])) % 180

    c0, hit0 = colour_centroid(out[0], colour)
    c1, hit1 = colour_centroid(out[1], colour)
    turned = (axis_angle(hit1) - axis_angle(hit0)) % 180
    assert min(abs(turned - 90), abs(turned + 90 - 180)) < 8
    np.testing.assert_allclose(c1, elbow + rot @ (c0 - elbow), atol=1.5)
    # the upper arm did not move (it shows a little more of itself where the forearm left)
    up = LIMB_COLOURS[(L.LEFT_SHOULDER, L.LEFT_ELBOW)]
    up0, up1 = colour_centroid(out[0], up)[1], colour_centroid(out[1], up)[1]
    assert (up0 & up1).sum() >= 0.9 * up0.sum()  # the forearm's elbow disc covers a little


def test_missing_driving_points_follow_the_parent(gen):
    kp, sc = stick_pose()
    tracks, vis, origin = grid_tracks((0, 0), 2)
    moved = kp.copy()
    moved[sc > 0] += (8.0, 0.0)
    sc_missing = sc.copy()
    sc_missing[[L.LEFT_WRIST, L.LEFT_ELBOW]] = 0.0  # the whole left arm lost in frame 1
    out = gen.generate_clip(clip_of([kp, moved], [sc, sc_missing], tracks, vis, origin))
    colour = LIMB_COLOURS[(L.LEFT_ELBOW, L.LEFT_WRIST)]
    c0, _ = colour_centroid(out[0], colour)
    c1, _ = colour_centroid(out[1], colour)
    np.testing.assert_allclose(c1 - c0, (8.0, 0.0), atol=0.75)  # moved with the torso


def test_deterministic_and_continues(gen, ref):
    kp, sc = stick_pose()
    tracks, vis, origin = grid_tracks((1.5, 0.5), 3)
    drv = np.stack([kp + (i * 2.0, 0.0) for i in range(3)])
    a = gen.generate_clip(clip_of(drv, [sc] * 3, tracks, vis, origin))
    g2 = WarpGenerator()
    g2.prepare(ref, SIZE, SIZE)
    b = g2.generate_clip(clip_of(drv, [sc] * 3, tracks, vis, origin, prev=a[-1]))
    assert a.tobytes() == b.tobytes()
    # the next clip starts on the previous clip's last frame (one frame of overlap)
    c = g2.generate_clip(clip_of(drv[2:], [sc], tracks[2:], vis[2:], origin, prev=a[-1]))
    assert np.array_equal(c[0], a[-1])


def test_fill_hole_removes_the_person():
    image = np.zeros((32, 32, 3), np.uint8)
    image[:, :16] = (200, 0, 0)
    image[:, 16:] = (0, 0, 200)
    hole = np.zeros((32, 32), bool)
    hole[10:20, 4:12] = True
    image[hole] = 255
    out = fill_hole(image, hole)
    assert np.array_equal(out[~hole], image[~hole])
    assert out[hole][:, 0].min() > 150 and out[hole][:, 1].max() < 30  # red fills the red side


def test_canvas_mismatch_is_an_input_error(ref):
    with pytest.raises(InputError):
        WarpGenerator().prepare(ref, SIZE * 2, SIZE)


def test_track_origins_chain_reseeded_tracks():
    """LK re-seeds during a fast pan; the chained origins keep the camera fit right after the first
    tracks are gone."""
    from fgbg.backends.track.lk import LKTracker
    from fgbg.tracks import camera_transform, track_origins
    from fgbg.params import TrackParams
    from test_lk import textured_video

    shift = (4.0, 0.0)
    frames, masks = textured_video(40, 128, shift)
    res = LKTracker(TrackParams(num_points=16)).track([(frames, masks)], 40)
    origin = track_origins(res.tracks, res.visible, res.queries)
    assert np.isfinite(origin).all()
    first = res.queries[:, 0] == 0
    assert not res.visible[-1, first].any()  # only re-seeded tracks remain at the end
    cam = camera_transform(origin, res.tracks[-1], res.visible[-1], 1.0)
    assert cam is not None
    np.testing.assert_allclose(cam[:, 2], np.asarray(shift) * 39, atol=0.5)
    np.testing.assert_allclose(cam[:, :2], np.eye(2), atol=0.01)
