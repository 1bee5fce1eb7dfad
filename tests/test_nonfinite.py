"""No NaN reaches a model, and none passes in silence.

A track without a known first-frame position once gave NaN origins (re-seeded LK tracks whose
camera could not be fitted), `render_track_maps` turned one of them into NaN everywhere, and the
demo model wrote black videos that eval scored as numbers. Here: origins are always finite,
track maps are finite for any tracks, and a model that computes NaN stops the run by name."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from fgbg.tracks import track_origins  # noqa: E402
from fgbg.diffusion.track_maps import render_track_maps  # noqa: E402
from fgbg.errors import NonFiniteError  # noqa: E402
from tests.conftest import fgbg  # noqa: E402


def _panning_tracks(T=24, seed=0):
    """Tracks on a background panning 1.5 px a frame, where the frame-0 tracks are all lost by
    frame 6 and each later seed lives only a few frames: the camera can never be fitted from
    tracks whose origin is known (the case that gave NaN), only chained frame to frame."""
    rng = np.random.default_rng(seed)
    shift = np.array([1.5, 0.5], np.float32)
    rows, vis, queries = [], [], []
    for t0, life in [(0, 6)] + [(t, 5) for t in range(5, T, 4)]:
        pts = rng.uniform(20, 100, (4, 2)).astype(np.float32)  # positions in frame t0
        for p in pts:
            track = np.zeros((T, 2), np.float32)
            v = np.zeros(T, bool)
            for t in range(T):
                track[t] = p + (t - t0) * shift
                v[t] = t0 <= t < t0 + life
            rows.append(track)
            vis.append(v)
            queries.append([t0, *p])
    tracks = np.stack(rows, 1)
    truth_origin = np.array([q[1:] - q[0] * shift for q in queries], np.float32)
    return tracks, np.stack(vis, 1), np.array(queries, np.float32), truth_origin


def test_origins_are_finite_and_follow_the_camera_when_no_direct_fit_exists():
    tracks, visible, queries, truth = _panning_tracks()
    origin = track_origins(tracks, visible, queries)
    assert np.isfinite(origin).all()
    assert np.abs(origin - truth).max() < 0.05  # chained through every seeding frame


def test_track_maps_are_finite_for_nan_origins_and_positions():
    tracks, visible, queries, _ = _panning_tracks()
    origin = track_origins(tracks, visible, queries)
    nan_origin = origin.copy()
    nan_origin[5:9] = np.nan  # what old prepared datasets hold
    nan_tracks = tracks.copy()
    nan_tracks[3, 0] = np.nan
    maps = render_track_maps(nan_tracks, visible, nan_origin, (128, 128), (32, 32))
    assert np.isfinite(maps).all()
    # the same as leaving those tracks out
    keep = visible.copy()
    keep[:, 5:9] = False
    keep[3, 0] = False
    ref = render_track_maps(np.nan_to_num(tracks), keep, np.nan_to_num(origin), (128, 128), (32, 32))
    np.testing.assert_allclose(maps, ref, atol=1e-6)
    # and torch in, torch out
    tmaps = render_track_maps(torch.from_numpy(nan_tracks), torch.from_numpy(visible),
                              torch.from_numpy(nan_origin), (128, 128), (32, 32))
    assert torch.isfinite(tmaps).all()


def test_one_training_step_on_a_dataset_with_nan_origins(tmp_path):
    from fgbg.training.config import TrainConfig
    from fgbg.artifacts import write_prepared
    from fgbg.training.loop import train

    tracks, visible, queries, _ = _panning_tracks(T=8)
    tracks = tracks * 0.5  # into a 64 px frame
    origin = np.full((tracks.shape[1], 2), np.nan, np.float32)  # every origin unknown
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (8, 64, 64, 3), dtype=np.uint8)
    kps = rng.uniform(10, 54, (8, 133, 2)).astype(np.float32)
    write_prepared(tmp_path / "ds" / "videos" / "v", frames, kps, np.ones((8, 133), np.float32),
                   np.zeros((8, 64, 64), bool), tracks, visible, origin, {"source": "test"})
    cfg = TrainConfig(datasets=[str(tmp_path / "ds")], output_dir=str(tmp_path / "run"), resolution=64,
                      batch_size=2, learning_rate=1e-3, max_steps=1, checkpoint_every=100, log_every=1,
                      seed=0).check()
    train(cfg, progress=None)
    loss = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])["loss"]
    assert np.isfinite(loss)


@pytest.fixture(scope="module")
def tiny_pipe():
    from fgbg.diffusion.build import build_pipeline

    return build_pipeline("tiny", seed=0, perturb_zero_init=True)


def _clip(n=4, size=64):
    rng = np.random.default_rng(1)
    ref = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    pose = np.zeros((n, size, size, 3), np.uint8)
    tracks, visible, queries, _ = _panning_tracks(T=n)
    origin = np.full((tracks.shape[1], 2), np.nan, np.float32)
    return ref, pose, tracks * size / 128, visible, origin


def test_generate_clip_with_nan_origins_is_finite(tiny_pipe):
    from fgbg.backends.base import ClipInputs, Reference
    from fgbg.backends.generate.diffusion import DiffusionGenerator
    from fgbg.params import GenerateParams

    ref, pose, tracks, visible, origin = _clip()
    gen = DiffusionGenerator.__new__(DiffusionGenerator)  # the stage's generator around this pipeline
    gen.params, gen.pipe, gen.ctx, gen.mode = GenerateParams(steps=2, guidance_scale=1.0), tiny_pipe, None, "free"
    gen.prepare(Reference(ref, np.zeros((133, 2), np.float32), np.zeros(133, np.float32),
                          np.zeros((64, 64), bool)), 64, 64)
    lat_frames = tiny_pipe.generate_clip(gen.ctx, pose, render_track_maps(tracks, visible, origin, (64, 64), (64, 64)),
                                         None, 0, num_inference_steps=2, guidance_scale=1.0)
    frames = gen.generate_clip(ClipInputs(keypoints=np.zeros((4, 133, 2), np.float32),
                                          scores=np.zeros((4, 133), np.float32), pose_maps=pose,
                                          tracks=tracks, visible=visible, tracks_origin=origin,
                                          prev_frame=None, seed=0))
    assert frames.shape == (4, 64, 64, 3) and frames.std() > 0  # not a black (NaN -> 0) clip
    np.testing.assert_array_equal(frames, lat_frames)
    gen.close()


def test_nan_track_maps_are_refused_by_name(tiny_pipe):
    ref, pose, *_ = _clip()
    maps = np.zeros((4, 3, 64, 64), np.float32)
    maps[2, 1, 5, 5] = np.nan
    from fgbg.errors import InputError

    with pytest.raises(InputError, match="track maps hold NaN"):
        tiny_pipe(ref, pose, maps, clip_length=4, num_inference_steps=1, guidance_scale=1.0)


@pytest.fixture
def broken_pipe(tmp_path):
    """A saved tiny pipeline whose denoising UNet computes NaN (one weight is NaN)."""
    from fgbg.diffusion.build import build_pipeline

    pipe = build_pipeline("tiny", seed=0, perturb_zero_init=True)
    with torch.no_grad():
        pipe.unet.conv_out.weight[0, 0, 0, 0] = float("nan")
    pipe.save_pretrained(tmp_path / "broken")
    return tmp_path / "broken"


def test_non_finite_latents_stop_the_clip_by_name(broken_pipe, tiny_pipe):
    from fgbg.diffusion.pipeline import FgbgPipeline

    pipe = FgbgPipeline.from_pretrained(broken_pipe, local_files_only=True)
    ref, pose, *_ = _clip()
    with pytest.raises(NonFiniteError, match="latents after denoising step 1 of 2"):
        pipe(ref, pose, None, clip_length=4, num_inference_steps=2, guidance_scale=1.0)
    assert NonFiniteError.exit_code == 1


def test_generate_stage_exits_1_naming_the_clip_and_writes_no_video(sample, tmp_path, broken_pipe):
    out = tmp_path / "o.mp4"
    r = fgbg("run", sample.driving, "--ref", sample.ref, "-w", tmp_path / "w", "-o", out,
             "--backend", "diffusion", "--pipeline", broken_pipe, "--steps", "1", "--clip-length", "8",
             "--width", "64", "--height", "64", env={"FGBG_MODELS": str(tmp_path / "store")})
    assert r.returncode == 1, r.stderr
    assert "error: clip 0 (frames 0-7)" in r.stderr and "not finite" in r.stderr, r.stderr
    assert "hint: " in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()
    # nothing computed before is lost: the preprocessing stages are committed
    assert all((tmp_path / "w" / s / "record.json").is_file() for s in ("pose", "segment", "track-bg"))


def test_eval_reports_a_non_finite_variant_as_failed(tmp_path, broken_pipe):
    from fgbg.evaluation.runner import evaluate, write_report
    from fgbg.diffusion.pipeline import FgbgPipeline
    from fgbg.artifacts import write_prepared

    tracks, visible, queries, _ = _panning_tracks(T=8)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (8, 64, 64, 3), dtype=np.uint8)
    write_prepared(tmp_path / "ds" / "videos" / "v", frames, rng.uniform(10, 54, (8, 133, 2)).astype(np.float32),
                   np.ones((8, 133), np.float32), np.zeros((8, 64, 64), bool), tracks * 0.5, visible,
                   track_origins(tracks * 0.5, visible, queries * [1, 0.5, 0.5]), {"source": "test"})
    pipe = FgbgPipeline.from_pretrained(broken_pipe, local_files_only=True)
    res = evaluate(pipe, tmp_path / "ds", ["full"], clip_length=4, steps=1, guidance=1.0)
    assert "full" not in res["variants"] and "not finite" in res["failed"]["full"]
    table = write_report(res, tmp_path / "report")
    assert "| full | failed:" in table
