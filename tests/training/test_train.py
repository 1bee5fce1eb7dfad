"""Training on a tiny config (CPU): the loss falls on a fixed batch (both stages), resuming from a
checkpoint continues bit for bit, and config errors are named."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("accelerate")

from fgbg.errors import InputError  # noqa: E402
from fgbg.training.config import TrainConfig, load_config  # noqa: E402
from fgbg.artifacts import load_prepared as load_videos, write_prepared  # noqa: E402
from fgbg.training.data import make_batch  # noqa: E402
from fgbg.training.loop import train  # noqa: E402
from tests.conftest import fgbg  # noqa: E402


@pytest.fixture(scope="module")
def dataset(sample, tmp_path_factory):
    """The session sample's ground truth written in the `fgbg prepare` layout at 64 px."""
    import cv2

    from fgbg.tracks import track_origins
    from fgbg.video import probe, read_frames

    truth = np.load(sample.truth)
    frames = np.concatenate(list(read_frames(probe(sample.driving), chunk=16)))[:12]
    s = 64 / frames.shape[1]
    small = np.stack([cv2.resize(f, (64, 64), interpolation=cv2.INTER_AREA) for f in frames])
    tracks = (truth["tracks"][:12] + 0.5) * s - 0.5
    queries = truth["queries"].copy()
    queries[:, 1:] = (queries[:, 1:] + 0.5) * s - 0.5
    origin = track_origins(tracks, truth["visible"][:12], queries)
    root = tmp_path_factory.mktemp("ds")
    write_prepared(root / "videos" / "sample", small, (truth["keypoints"][:12] + 0.5) * s - 0.5,
                   truth["scores"][:12], np.zeros((12, 64, 64), bool), tracks, truth["visible"][:12],
                   origin, {"source": str(sample.driving)})
    return root


def cfg(dataset, tmp_path, **kw):
    base = dict(datasets=[str(dataset)], output_dir=str(tmp_path / "run"), resolution=64, batch_size=2,
                learning_rate=1e-3, max_steps=6, checkpoint_every=100, log_every=1, seed=0)
    base.update(kw)
    return TrainConfig(**base).check()


def losses(run_dir):
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_batches_are_a_function_of_seed_and_step(dataset):
    videos = load_videos([str(dataset)])
    kw = dict(seed=0, batch_size=2, frames=4, size=64, cond_prob=0.5, uncond_prob=0.1)
    a, b = make_batch(videos, 3, **kw), make_batch(videos, 3, **kw)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    others = [make_batch(videos, s, **kw)["target"] for s in (4, 5, 6, 7)]
    assert any(not np.array_equal(a["target"], o) for o in others)
    assert a["target"].shape == (2, 4, 64, 64, 3) and a["tracks"].shape == (2, 4, 3, 64, 64)
    assert a["pose"].max() > 0  # the skeleton is drawn


@pytest.mark.parametrize("stage", [1, 2])
def test_loss_falls_on_a_fixed_batch(dataset, tmp_path, stage):
    c = cfg(dataset, tmp_path, stage=stage, frames=4, fixed_batch=True, max_steps=8,
            learning_rate=2e-3 if stage == 1 else 5e-3, uncond_prob=0.0)
    final = train(c, log=lambda *a: None)
    ls = losses(tmp_path / "run")
    assert len(ls) == 8
    assert np.mean(ls[-2:]) < 0.8 * np.mean(ls[:2]), ls
    assert (final / "model_index.json").is_file()


def test_stage_2_moves_only_the_temporal_blocks(dataset, tmp_path):
    from fgbg.diffusion.pipeline import FgbgPipeline

    c = cfg(dataset, tmp_path, stage=1, max_steps=2)
    first = train(c, log=lambda *a: None)
    c2 = cfg(dataset, tmp_path, stage=2, frames=4, max_steps=2, init=str(first), output_dir=str(tmp_path / "s2"))
    second = train(c2, log=lambda *a: None)
    a, b = FgbgPipeline.from_pretrained(first), FgbgPipeline.from_pretrained(second)
    ua, ub = a.unet.state_dict(), b.unet.state_dict()
    moved = {k for k in ua if not torch.equal(ua[k], ub[k])}
    assert moved and all(".motion_modules." in k for k in moved)
    ra, rb = a.reference_net.state_dict(), b.reference_net.state_dict()
    assert all(torch.equal(ra[k], rb[k]) for k in ra)


def test_resume_continues_bit_for_bit(dataset, tmp_path):
    from fgbg.diffusion.pipeline import FgbgPipeline

    straight = train(cfg(dataset, tmp_path, max_steps=4, output_dir=str(tmp_path / "a")), log=lambda *a: None)
    train(cfg(dataset, tmp_path, max_steps=2, checkpoint_every=2, output_dir=str(tmp_path / "b")), log=lambda *a: None)
    resumed = train(cfg(dataset, tmp_path, max_steps=4, checkpoint_every=2, output_dir=str(tmp_path / "b")),
                    resume=True, log=lambda *a: None)
    a, b = FgbgPipeline.from_pretrained(straight), FgbgPipeline.from_pretrained(resumed)
    for name in ("reference_net", "unet", "pose_encoder", "track_encoder"):
        sa, sb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa), name
    assert losses(tmp_path / "a")[2:] == losses(tmp_path / "b")[2:]


def test_config_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('datasets = ["x"]\nresolution = 100\n')
    with pytest.raises(InputError, match="resolution"):
        load_config(bad)
    bad.write_text('datasets = ["x"]\nlearning_rte = 1\n')
    with pytest.raises(InputError, match="unknown keys"):
        load_config(bad)
    r = fgbg("train", tmp_path / "missing.toml")
    assert r.returncode == 2 and "no config file" in r.stderr
    ok = tmp_path / "ok.toml"
    ok.write_text(f'datasets = ["{tmp_path / "empty"}"]\noutput_dir = "{tmp_path / "o"}"\n')
    r = fgbg("train", ok)
    assert r.returncode == 2 and "fgbg prepare" in r.stderr
