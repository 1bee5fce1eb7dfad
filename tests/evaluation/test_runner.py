"""`fgbg eval` end to end on a tiny random pipeline and one held-out synthetic scene: every variant
runs the real clip-by-clip reconstruction, and the report (JSON, table, plot) is written."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("diffusers")

from fgbg.evaluation import runner  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from fgbg.diffusion.build import build_pipeline
    from fgbg.training.synthetic import write_synthetic

    root = tmp_path_factory.mktemp("eval")
    write_synthetic(root / "holdout", 1, holdout=True, frames=10)
    build_pipeline("tiny", seed=0, perturb_zero_init=True).save_pretrained(root / "pipe")
    return root


@pytest.fixture(scope="module")
def pipe(setup):
    from fgbg.diffusion.pipeline import FgbgPipeline

    p = FgbgPipeline.from_pretrained(setup / "pipe")
    p.set_progress_bar_config(disable=True)
    return p


def test_reconstruct_variants(setup, pipe):
    scene = runner.load_scenes(setup / "holdout")[0]
    calls, refs = [], []
    real_generate, real_encode = pipe.generate_clip, pipe.encode_reference

    def spy(ctx, pose, tracks, prev, seed, **kw):
        frames = real_generate(ctx, pose, tracks, prev, seed, **kw)
        calls.append((np.abs(tracks).sum(), None if prev is None else prev.copy(), frames[-1].copy()))
        return frames

    def spy_ref(image, h, w):
        refs.append(image.copy())
        return real_encode(image, h, w)

    pipe.generate_clip, pipe.encode_reference = spy, spy_ref
    try:
        out = {}
        for v in runner.DEFAULT_VARIANTS:
            calls.clear()
            refs.clear()
            gen, starts = runner.reconstruct(pipe, scene, v, clip_length=4, steps=1, guidance=1.0)
            out[v] = (list(calls), list(refs))
            assert gen.shape == scene.frames.shape and gen.dtype == np.uint8
            assert starts == [0, 4, 7]  # clips [0,4) [3,7) [6,10): overlaps dropped once
    finally:
        pipe.generate_clip, pipe.encode_reference = real_generate, real_encode
    (full, full_refs), (notr, _), (nocond, _), (noreinj, noreinj_refs) = (out[v] for v in runner.DEFAULT_VARIANTS)
    assert all(t > 0 for t, _, _ in full) and all(t == 0 for t, _, _ in notr)
    # clip c > 0 is conditioned on exactly the last frame clip c - 1 generated
    assert full[0][1] is None
    for c in (1, 2):
        np.testing.assert_array_equal(full[c][1], full[c - 1][2])
    assert all(prev is None for _, prev, _ in nocond)
    # the reference pass: once per video from the first real frame; without re-injection, again
    # from each previous clip's last generated frame
    assert len(full_refs) == 1
    np.testing.assert_array_equal(full_refs[0], scene.frames[0])
    assert len(noreinj_refs) == 3
    for c in (1, 2):
        np.testing.assert_array_equal(noreinj_refs[c], noreinj[c - 1][2])


def test_score_and_report(setup, pipe, tmp_path):
    scene = runner.load_scenes(setup / "holdout")[0]
    # the real video scored against itself: perfect image metrics, ~0 track error, no drift
    s = runner.score(scene, scene.frames.copy(), [0, 4, 7])
    assert s["l1"] == 0 and s["ssim"] == pytest.approx(1.0, abs=1e-5)
    assert s["ssim_person"] == pytest.approx(1.0, abs=1e-5)
    assert s["bg_track_error_px"] < 0.5
    assert len(s["colour_drift"]) == 3 and max(s["colour_drift"]) < 5

    results = runner.evaluate(pipe, setup / "holdout", ("full", "no-tracks"), clip_length=4, steps=1,
                              guidance=1.0)
    assert set(results["variants"]) == {"full", "no-tracks", "real video (floor)"}
    assert results["variants"]["real video (floor)"]["l1"] == 0
    assert results["variants"]["full"]["seconds_per_frame"] > 0  # generation timed per variant
    assert "lpips" in results["skipped"]
    table = runner.write_report(results, tmp_path / "r")
    assert "| full |" in table and "| no-tracks |" in table
    saved = json.loads((tmp_path / "r" / "results.json").read_text())
    assert saved["variants"]["full"]["l1"] == results["variants"]["full"]["l1"]
    assert (tmp_path / "r" / "per_clip.png").stat().st_size > 1000


def test_eval_cli(setup, tmp_path):
    cmd = [sys.executable, "-m", "fgbg.cli", "eval", str(setup / "holdout"), "--pipeline", str(setup / "pipe"),
           "-o", str(tmp_path / "out"), "--variants", "full", "--clip-length", "4", "--steps", "1",
           "--frames", "7", "--pose-backend", "none", "--device", "cpu", "--quiet"]
    env = {**os.environ, "FGBG_MODELS": str(tmp_path / "empty-store")}  # no CoTracker/DWPose weights
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("results.json")
    settings = json.loads((tmp_path / "out" / "results.json").read_text())["settings"]
    assert settings["clip_length"] == 4 and settings["tracker"] == "lk"  # auto without CoTracker weights
    bad = subprocess.run(cmd[:-1] + ["--variants", "full,bogus"], capture_output=True, text=True, timeout=300,
                         env=env)
    assert bad.returncode != 0 and "bogus" in bad.stderr and "no-tracks" in bad.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = subprocess.run([sys.executable, "-m", "fgbg.cli", "eval", str(empty), "--pipeline",
                              str(setup / "pipe"), "--pose-backend", "none"], capture_output=True, text=True,
                             timeout=300, env=env)
    assert nothing.returncode != 0 and "fgbg prepare" in nothing.stderr


def test_window_variant_denoises_all_frames_at_once(setup, pipe):
    """AnimateAnyone's scheme: one reference pass, no clip chaining, the same clip boundaries scored."""
    scene = runner.load_scenes(setup / "holdout")[0]
    calls = []
    real_window = pipe._window_video

    def spy(ctx, pose, tracks, seed, steps, guidance, clip_length, overlap, low_memory, anchor=None):
        calls.append((len(pose), clip_length, overlap, anchor is None))
        return real_window(ctx, pose, tracks, seed, steps, guidance, clip_length, overlap, low_memory, anchor)

    pipe._window_video = spy
    try:
        gen, starts = runner.reconstruct(pipe, scene, "window", clip_length=4, steps=1, guidance=1.0)
    finally:
        pipe._window_video = real_window
    assert calls == [(10, 4, 2, True)]
    assert gen.shape == scene.frames.shape and gen.dtype == np.uint8
    assert starts == [0, 4, 7]


class FakePose:
    """Returns the scene's true keypoints moved by `shift` px; counts resets."""

    def __init__(self, scene, shift):
        self.scene, self.shift, self.resets = scene, shift, 0

    def reset(self):
        self.resets += 1

    def estimate(self, frames):
        n = len(frames)
        return self.scene.keypoints[:n] + self.shift, np.ones_like(self.scene.scores[:n])


def test_pck_on_body_keypoints(setup):
    scene = runner.load_scenes(setup / "holdout")[0]
    exact = FakePose(scene, 0.0)
    s = runner.score(scene, scene.frames.copy(), [0, 4, 7], exact)
    assert s["pck"] == 1.0 and s["pck_real"] == 1.0 and exact.resets == 2
    far = FakePose(scene, 0.06 * scene.frames.shape[1])  # beyond alpha 0.05 of the frame size
    assert runner.score(scene, scene.frames.copy(), [0, 4, 7], far)["pck"] == 0.0
