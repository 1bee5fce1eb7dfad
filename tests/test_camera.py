"""--camera: the background's motion from a parametric camera path, written as tracks."""

import numpy as np
import pytest

from fgbg import camera
from fgbg.errors import InputError
from tests.conftest import fgbg


def test_pan_moves_every_point_dx_dy_per_frame():
    tracks, visible, queries = camera.camera_tracks("pan:2,-1", 10, 64, 48, 24.0, 16)
    step = tracks[1:] - tracks[:-1]
    np.testing.assert_allclose(step[..., 0], 2.0, atol=1e-5)
    np.testing.assert_allclose(step[..., 1], -1.0, atol=1e-5)
    np.testing.assert_allclose(tracks[0], queries[:, 1:])
    assert (queries[:, 0] == 0).all() and visible[0].all()
    assert not visible[-1].all()  # points that pan out of the frame are no longer visible


def test_zoom_scales_about_the_centre():
    tracks, _, _ = camera.camera_tracks("zoom:1.1", 3, 65, 49, 24.0, 25)
    c = np.array([32.0, 24.0])
    np.testing.assert_allclose(tracks[2] - c, 1.1 ** 2 * (tracks[0] - c), rtol=1e-5, atol=1e-4)


def test_static_and_shake():
    tracks, _, _ = camera.camera_tracks("static", 4, 64, 64, 24.0, 16)
    assert np.ptp(tracks, axis=0).max() == 0
    tracks, _, _ = camera.camera_tracks("shake:3,2", 24, 64, 64, 24.0, 16)
    moved = np.abs(tracks - tracks[0]).max()
    assert 1.0 < moved <= 3.0 * 1.0001


def test_orbit_turns_the_backdrop_about_the_person_with_parallax():
    import math

    centre = 12  # the middle point of the 5 x 5 grid on a 256 px frame sits on the frame centre
    # a far backdrop: the camera's yaw alone, f * angle px per frame (f = one frame width)
    far, vis, _ = camera.camera_tracks("orbit:1,1e6", 10, 256, 256, 24.0, 25)
    assert abs((far[1] - far[0])[centre, 0] - 256 * math.radians(1)) < 0.05
    # a backdrop at the person's depth turns about the centre: its middle stays, its sides move
    near, _, _ = camera.camera_tracks("orbit:1,1e-9", 10, 256, 256, 24.0, 25)
    assert np.abs(near[:, centre] - near[0, centre]).max() < 1e-3
    assert np.abs(near[5] - near[0]).max() > 1.0
    # in between the slide grows with depth; positive degrees move the backdrop right, negative left
    mid, _, _ = camera.camera_tracks("orbit:1,1", 10, 256, 256, 24.0, 25)
    back, _, _ = camera.camera_tracks("orbit:-1,1", 10, 256, 256, 24.0, 25)
    step = (mid[1] - mid[0])[centre, 0]
    assert 0 < step < (far[1] - far[0])[centre, 0] and abs((back[1] - back[0])[centre, 0] + step) < 1e-3
    # perspective: rows above and below the centre tilt in opposite directions (not an affine move)
    dy = (mid[1] - mid[0])[:, 1].reshape(5, 5)
    assert dy[0, 0] > 0.1 and dy[4, 0] < -0.1 and vis[0].all()


@pytest.mark.parametrize("spec", ["", "pan", "pan:1", "pan:a,b", "zoom:-1", "orbit:30", "orbit:1,-1", "orbit:", "shake:1,2,3", "pan:nan,0"])
def test_bad_specs_are_refused_with_the_grammar(spec):
    with pytest.raises(InputError) as err:
        camera.parse(spec)
    assert "pan:DX,DY" in err.value.hint and err.value.exit_code == 2


def test_run_with_a_camera_path_moves_the_background_and_has_its_own_key(sample, tmp_path):
    import json

    from fgbg.video import probe, read_frames

    common = ["run", sample.driving, "--ref", sample.ref, "-w", tmp_path / "w", "--clip-length", "8",
              "--backend", "warp", "--tracker", "lk", "--pose-backend", "mediapipe", "--seg-backend", "mediapipe"]
    r = fgbg(*common, "-o", tmp_path / "pan.mp4", "--camera", "pan:3,0")
    assert r.returncode == 0, r.stderr
    key_pan = json.loads((tmp_path / "w" / "track-bg" / "record.json").read_text())["key"]
    r = fgbg(*common, "-o", tmp_path / "static.mp4", "--camera", "static")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "w" / "track-bg" / "record.json").read_text())["key"] != key_pan
    pan = np.concatenate(list(read_frames(probe(tmp_path / "pan.mp4"), chunk=64))).astype(np.float32)
    still = np.concatenate(list(read_frames(probe(tmp_path / "static.mp4"), chunk=64))).astype(np.float32)
    # top rows (background only): the panned video's last frame is its first moved right by 3 px/frame
    t = 9
    band = slice(0, 40)
    shifted = np.abs(pan[t, band, 3 * t + 10:200] - pan[0, band, 10:200 - 3 * t]).mean()
    unshifted = np.abs(pan[t, band, 10:200] - pan[0, band, 10:200]).mean()
    assert shifted < 0.5 * unshifted, (shifted, unshifted)
    assert np.abs(still[t, band] - still[0, band]).mean() < 2.0  # static: the background stays
    r = fgbg(*common, "-o", tmp_path / "x.mp4", "--camera", "spin:2")
    assert r.returncode == 2 and "hint: use --camera static | pan:DX,DY" in r.stderr
