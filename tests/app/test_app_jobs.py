"""What a click on the page runs (fgbg.app.jobs), without gradio: default suite."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from fgbg.app import jobs
from fgbg.errors import FgbgError, InputError, ModelError


def test_generators_offer_warp_then_the_pipelines_found(tmp_path):
    choices = jobs.generators()
    assert choices[0].backend == "warp"
    demo = [g for g in choices if "demo" in g.label]
    assert demo and demo[0].backend == "diffusion" and (Path(demo[0].pipeline) / "model_index.json").is_file()
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "model_index.json").write_text("{}")
    extra = jobs.generators(str(folder))
    assert extra[-1].label == f"diffusion: --pipeline {folder}" and extra[-1].pipeline == str(folder.resolve())
    assert jobs.generators(str(tmp_path / "missing")) == choices  # only folders that are pipelines


def test_canvas_keeps_the_aspect_in_the_model_multiples():
    assert jobs.canvas("auto", "warp", 640, 360) == (0, 0)
    assert jobs.canvas("256", "warp", 640, 360) == (256, 144)
    assert jobs.canvas("256", "diffusion", 640, 360) == (256, 128)
    assert jobs.canvas("64", "diffusion", 256, 256) == (64, 64)
    with pytest.raises(InputError):
        jobs.canvas("100", "warp", 256, 256)


def test_key_ignores_what_warp_ignores(sample):
    base = jobs.PageOptions()
    key = jobs.job_key(sample.driving, sample.ref, base)
    assert jobs.job_key(sample.driving, sample.ref, jobs.PageOptions(steps=3, guidance_scale=1.0)) == key
    assert jobs.job_key(sample.driving, sample.ref, jobs.PageOptions(seed=1)) != key
    diff = jobs.PageOptions(backend="diffusion", pipeline="/x")
    assert jobs.job_key(sample.driving, sample.ref, diff) != jobs.job_key(
        sample.driving, sample.ref, jobs.PageOptions(backend="diffusion", pipeline="/x", steps=3))


def test_run_job_then_the_same_click_is_cached(sample, tmp_path):
    from fgbg.video import probe

    seen = []
    res = jobs.run_job(sample.driving, sample.ref, jobs.PageOptions(), root=tmp_path,
                       on_progress=lambda f, what: seen.append((f, what)))
    assert res.output.is_file() and res.output.name == "driving.fgbg.mp4"
    info = probe(res.output)
    assert info.num_frames == probe(sample.driving).num_frames and info.has_audio
    for stage, path in res.previews.items():
        assert probe(path).num_frames == info.num_frames, stage
    assert [r.stage for r in res.rows] == ["ref", "pose", "segment", "track-bg", "generate", "stitch"]
    assert not res.cached and "| generate | ran" in res.summary()
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("generate (warp): 1/" in what for _, what in seen)
    assert res.workdir.parent == tmp_path / "jobs"

    t0 = time.perf_counter()
    again = jobs.run_job(sample.driving, sample.ref, jobs.PageOptions(steps=5), root=tmp_path)
    assert time.perf_counter() - t0 < 3.0
    assert again.cached and again.workdir == res.workdir and "everything cached" in again.summary()
    assert again.output.read_bytes() == res.output.read_bytes()


def _lines(err: FgbgError) -> str:
    text = "\n".join(err.lines())
    assert text.startswith("error: ") and "\nhint: " in text
    return text


def test_bad_inputs_raise_error_cause_hint(sample, tmp_path):
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video\n" * 50)
    with pytest.raises(InputError) as e:
        jobs.run_job(notes, sample.ref, jobs.PageOptions(), root=tmp_path)
    assert "cannot read video" in _lines(e.value)
    with pytest.raises(InputError) as e:
        jobs.run_job(sample.driving, None, jobs.PageOptions(), root=tmp_path)
    assert "no reference photo was given" in _lines(e.value)
    with pytest.raises(InputError) as e:
        jobs.run_job(sample.driving, tmp_path / "gone.png", jobs.PageOptions(), root=tmp_path)
    assert "does not exist" in _lines(e.value)


def test_missing_weights_name_the_fix(sample, tmp_path):
    """A pipeline folder without its model files: a ModelError before anything is computed."""
    folder = tmp_path / "half-pipeline"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "FgbgPipeline"}))
    with pytest.raises(ModelError) as e:
        jobs.run_job(sample.driving, sample.ref, jobs.PageOptions(backend="diffusion", pipeline=str(folder)),
                     root=tmp_path)
    text = _lines(e.value)
    assert "incomplete" in text and "fgbg models convert" in text
    assert not list((tmp_path / "jobs").glob("*/pose"))


def test_sample_is_made_once(tmp_path):
    a = jobs.ensure_sample(tmp_path)
    mtime = a.driving.stat().st_mtime_ns
    b = jobs.ensure_sample(tmp_path)
    assert b.driving == a.driving and b.driving.stat().st_mtime_ns == mtime and b.ref.is_file()
    assert not list(tmp_path.glob(".sample.tmp-*"))


def test_app_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FGBG_APP_DIR", str(tmp_path / "x"))
    assert jobs.app_dir() == tmp_path / "x"
    monkeypatch.delenv("FGBG_APP_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert jobs.app_dir() == tmp_path / "fgbg" / "app"


def test_cli_imports_no_gradio_and_lists_app():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", "import sys, fgbg.cli; "
                        "print(sorted(m for m in ('gradio', 'fgbg.app.page', 'torch') if m in sys.modules))"],
                       capture_output=True, text=True)
    assert r.stdout.strip() == "[]", r.stderr
    r = subprocess.run([sys.executable, "-m", "fgbg.cli", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and " app " in r.stdout
