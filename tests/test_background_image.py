"""--background-image BG.png (issue 11, mixed sources): the background's look from another photo,
the person from --ref, the motion from the tracks; keyed by the image's content."""

import json

import numpy as np
import pytest

from tests.conftest import fgbg, video_frames as frames


def stripes(path, width=300, height=200):
    """Saturated magenta/cyan vertical stripes, 20 px wide: no colour of the sample's scene."""
    from fgbg.video import write_image

    img = np.zeros((height, width, 3), np.uint8)
    band = (np.arange(width) // 20) % 2 == 0
    img[:, band] = (230, 20, 230)
    img[:, ~band] = (20, 230, 230)
    write_image(path, img)
    return img


def generate_key(workdir):
    return json.loads((workdir / "generate" / "record.json").read_text())["key"]


@pytest.fixture
def common(sample, tmp_path):
    return ["run", sample.driving, "--ref", sample.ref, "-w", tmp_path / "w", "--clip-length", "8",
            "--backend", "warp", "--tracker", "lk", "--pose-backend", "mediapipe",
            "--seg-backend", "mediapipe", "--camera", "static"]


def test_the_background_comes_from_the_image_and_the_person_from_the_ref(sample, tmp_path, common):
    from fgbg.canvas import apply_cover

    bg = stripes(tmp_path / "bg.png")
    r = fgbg(*common, "-o", tmp_path / "plain.mp4")
    assert r.returncode == 0, r.stderr
    r = fgbg(*common, "-o", tmp_path / "bg.mp4", "--background-image", tmp_path / "bg.png",
             env={"COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    assert "background from bg.png" in r.stderr  # the summary table says where it came from
    plain, moved = frames(tmp_path / "plain.mp4"), frames(tmp_path / "bg.mp4")
    want = apply_cover(bg, moved.shape[2], moved.shape[1]).astype(np.float32)
    top = slice(0, 30)  # rows above the person's head in every frame of the sample
    err = np.abs(moved[:, top] - want[None, top]).mean()
    assert err < 15, err  # H.264 on saturated 20 px stripes
    assert np.abs(plain[:, top] - want[None, top]).mean() > 60
    # the person is the same in both: where the outputs agree is at least most of the person's area
    ref_mask = np.load(tmp_path / "w" / "ref" / "ref.npz")["mask"].astype(bool)
    same = (np.abs(moved - plain).max(-1) < 20).mean(axis=(1, 2))
    assert (same > 0.6 * ref_mask.mean()).all(), (same.min(), ref_mask.mean())
    assert (same < 0.5).all()  # and the rest (the background) does differ


def test_the_key_follows_the_content_not_the_path(sample, tmp_path, common):
    import shutil

    stripes(tmp_path / "bg.png")
    w = tmp_path / "w"
    r = fgbg(*common, "-o", tmp_path / "a.mp4", "--background-image", tmp_path / "bg.png")
    assert r.returncode == 0, r.stderr
    key = generate_key(w)
    shutil.copy(tmp_path / "bg.png", tmp_path / "same.png")
    r = fgbg(*common, "-o", tmp_path / "b.mp4", "--background-image", tmp_path / "same.png")
    assert r.returncode == 0, r.stderr
    assert generate_key(w) == key and "cached" in r.stderr
    stripes(tmp_path / "other.png", width=180, height=260)
    r = fgbg(*common, "-o", tmp_path / "c.mp4", "--background-image", tmp_path / "other.png")
    assert r.returncode == 0, r.stderr
    assert generate_key(w) != key
    r = fgbg(*common, "-o", tmp_path / "d.mp4")
    assert r.returncode == 0, r.stderr
    assert generate_key(w) != key


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "background image not found"),
    (lambda p: p.write_text("not an image"), "cannot read background image"),
    (lambda p: p.mkdir(), "background image is a folder"),
])
def test_bad_background_images_are_refused_before_any_work(sample, tmp_path, common, make, message):
    bad = tmp_path / "bad.png"
    make(bad)
    r = fgbg(*common, "-o", tmp_path / "x.mp4", "--background-image", bad)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "hint:" in r.stderr
    assert not (tmp_path / "w" / "pose").exists()  # refused before the first stage ran


def test_auto_background_resolves_with_a_background_image_too(sample, tmp_path, monkeypatch):
    """The demo model recommends the anchored background: with --background-image, auto still
    resolves to it (in the key and in the summary), so a changed recommendation is not a stale hit."""
    from tests.conftest import cli_inproc

    stripes(tmp_path / "bg.png")
    r = cli_inproc(monkeypatch, "generate", sample.driving, "--ref", sample.ref, "-w", tmp_path / "w",
                   "--backend", "diffusion", "--steps", "1", "--clip-length", "8", "--tracker", "lk",
                   "--background-image", tmp_path / "bg.png",
                   env={"FGBG_MODELS": str(tmp_path / "store"), "FGBG_PIPELINE": "", "COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "anchored background" in r.stderr and "auto background" not in r.stderr
