"""TinyAutoencoder (fgbg/diffusion/taef2.py): the TAEF2 autoencoder as a diffusers model of ours.

Everything reads the repository's copy (fgbg/demo_pipeline/vae) or, for one optional test,
the model store. The upstream .pth inputs are rebuilt from that copy (`write_original`), byte for
byte: their sha256 is the one models.lock pins, so the loader's lock check runs for real.
"""

import copy
import fnmatch
import functools
import hashlib
import http.server
import threading
import time
import tomllib
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from fgbg.diffusion import taef2  # noqa: E402
from fgbg.diffusion.taef2 import TinyAutoencoder  # noqa: E402
from fgbg.errors import InputError, ModelError  # noqa: E402
from tests.conftest import fgbg  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
MIN_PSNR_DB = 24.0  # measured 25.6 dB on the sample's first frame at 128 px (fp32)


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / mse))


def to_x(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 127.5 - 1


def to_uint8(y: torch.Tensor) -> np.ndarray:
    return ((y[0].float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return TinyAutoencoder.shipped()


@pytest.fixture(scope="module")
def originals(vae, tmp_path_factory):
    """taef2_encoder.pth / taef2_decoder.pth rebuilt from the shipped copy."""
    return taef2.write_original(vae, tmp_path_factory.mktemp("taef2"))


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """The first frames of the built-in sample at 128 px (uint8 (N, 128, 128, 3))."""
    from fgbg.sample import make_sample
    from fgbg.video import probe, read_frames

    sample = make_sample(tmp_path_factory.mktemp("sample"), preset="dance", seed=0, num_frames=4,
                         width=128, height=128, audio=False)
    return np.concatenate(list(read_frames(probe(sample.driving), chunk=4)))


def lock_entry(half):
    from fgbg.store import load_lock

    return load_lock()[taef2.LOCK_NAMES[half]]


# ----------------------------------------------------------------------------- the shipped copy


def test_shipped_copy_has_licence_source_and_pipeline_config(vae):
    files = {p.name for p in taef2.SHIPPED.iterdir()}
    assert {"config.json", "diffusion_pytorch_model.safetensors", "LICENSE", "SOURCE.md"} <= files
    licence = (taef2.SHIPPED / "LICENSE").read_text()
    assert licence.startswith("MIT License") and "Ollin Boer Bohan" in licence
    cfg = vae.config
    assert cfg.latent_channels == 32 and cfg.scaling_factor == 1.0
    assert 2 ** (len(cfg.block_out_channels) - 1) == 8  # FgbgPipeline's vae_scale_factor
    assert cfg.latents_mean == [0.0] * 32 and cfg.latents_std == [1.0] * 32
    assert vae.dtype == torch.float32
    assert sum(p.numel() for p in vae.parameters()) == 1338528 + 1338499
    # every shipped file is package data (a wheel carries it)
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    rel = [str(p.relative_to(REPO / "fgbg")) for p in taef2.SHIPPED.iterdir()]
    for r in rel:
        assert any(fnmatch.fnmatch(r, pat) for pat in data["fgbg"]), f"{r} is not package data"


def test_shipped_copy_rebuilds_the_upstream_files_byte_for_byte(originals):
    for half, path in originals.items():
        entry = lock_entry(half)
        assert path.name == entry.filename
        assert path.stat().st_size == entry.size
        assert sha256(path) == entry.sha256, (
            f"{half}: the rebuilt file differs from the pinned upstream one (did torch.save's "
            "format change?)")
        assert "5cccb12dc72074a4be35680c3b108548a7c69978" in entry.url and entry.licence == "MIT"


# ----------------------------------------------------------------------------- strict loading


def test_from_original_loads_strictly_and_matches_the_copy(vae, originals):
    m = TinyAutoencoder.from_original(originals["encoder"], originals["decoder"])  # lock hashes
    assert m.dtype == torch.float32
    mine, ref = m.state_dict(), vae.state_dict()
    assert mine.keys() == ref.keys()
    assert all(torch.equal(mine[k], ref[k]) for k in ref)
    # the upstream layout is a flat Sequential: key `K` is ours `encoder.K` / `decoder.K`
    up = torch.load(originals["encoder"], map_location="cpu", weights_only=True)
    assert up["11.pool.1.bias"].dtype == torch.float16
    assert torch.equal(up["11.pool.1.bias"].float(), ref["encoder.11.pool.1.bias"])


def _edited(originals, tmp_path, half, edit):
    state = torch.load(originals[half], map_location="cpu", weights_only=True)
    state = OrderedDict(state)
    edit(state)
    path = tmp_path / taef2.UPSTREAM_FILES[half]
    torch.save(state, path)
    other = "decoder" if half == "encoder" else "encoder"
    paths = {half: path, other: originals[other]}
    expected = {half: sha256(path)}
    return paths, expected


@pytest.mark.parametrize("half, edit, named", [
    ("encoder", lambda s: s.pop("11.pool.1.bias"), "missing keys: 11.pool.1.bias"),
    ("decoder", lambda s: s.pop("19.weight"), "missing keys: 19.weight"),
    ("encoder", lambda s: s.__setitem__("15.weight", torch.zeros(3)), "unexpected keys: 15.weight"),
    ("decoder", lambda s: s.__setitem__("1.conv.0.weight", torch.zeros(3)),
     "unexpected keys: 1.conv.0.weight"),
    ("encoder", lambda s: s.__setitem__("14.bias", torch.zeros(16, dtype=torch.float16)),
     "wrong shapes: 14.bias (16,) (the layout has (32,))"),
])
def test_missing_extra_or_misshapen_key_refused_by_name(originals, tmp_path, half, edit, named):
    paths, expected = _edited(originals, tmp_path, half, edit)
    with pytest.raises(ModelError) as err:
        TinyAutoencoder.from_original(paths["encoder"], paths["decoder"], expected_sha256=expected)
    text = "\n".join(err.value.lines())
    assert named in text and f"TAEF2 {half} layout" in text


def test_wrong_sha256_refused_before_loading(originals, tmp_path, monkeypatch):
    # a loadable file with the right layout, but not the pinned bytes
    paths, _ = _edited(originals, tmp_path, "decoder", lambda s: s["1.bias"].add_(1))
    loads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    with pytest.raises(ModelError) as err:
        TinyAutoencoder.from_original(paths["encoder"], paths["decoder"])
    text = "\n".join(err.value.lines())
    assert "refusing to load" in text and "not the TAEF2 decoder" in text
    assert sha256(paths["decoder"]) in text and lock_entry("decoder").sha256 in text
    assert len(loads) == 1  # the encoder (pinned) was read; the decoder never reached torch.load
    with pytest.raises(ModelError, match="does not exist"):
        TinyAutoencoder.from_original(tmp_path / "nope.pth", paths["decoder"])


def test_not_a_state_dict_refused(originals, tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(ModelError, match="is not a state dict"):
        TinyAutoencoder.from_original(path, originals["decoder"],
                                      expected_sha256={"encoder": sha256(path)})


# ----------------------------------------------------------------------------- what it computes


def test_round_trip_of_the_sample_frame(vae, frames):
    frame = frames[0]
    with torch.no_grad():
        t = time.perf_counter()
        z = vae.encode(to_x(frame)).latent_dist.mean
        y = vae.decode(z).sample
        seconds = time.perf_counter() - t
    assert z.shape == (1, 32, 16, 16) and y.shape == (1, 3, 128, 128)
    value = psnr(frame, to_uint8(y))
    print(f"taef2 round trip, sample frame 128 px, fp32: {value:.2f} dB, {seconds:.2f} s")
    assert value >= MIN_PSNR_DB


def test_the_interface_the_pipeline_uses(vae):
    # FgbgPipeline: encode(x).latent_dist.mean * scaling_factor, decode(z / scaling_factor).sample
    x = to_x(np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8))
    with torch.no_grad():
        out = vae.encode(x)
        z = out.latent_dist.mean
        y = vae.decode(z / vae.config.scaling_factor).sample
        assert torch.equal(out.latent_dist.mode(), z) and torch.equal(out.latent_dist.sample(), z)
        assert torch.equal(vae.encode(x, return_dict=False)[0].mean, z)
        assert torch.equal(vae.decode(z, return_dict=False)[0], y)
        assert torch.equal(vae(x).sample, y)
    assert z.shape == (1, 32, 2, 2) and y.shape == x.shape


def test_fp16_and_fp32_both_run(vae):
    # fp16 convolutions are slow on a CPU: a small image
    x = to_x(np.random.default_rng(0).integers(0, 256, (8, 16, 3), dtype=np.uint8))
    ref = None
    for dtype in (torch.float32, torch.float16):
        m = TinyAutoencoder.shipped(dtype)
        assert m.dtype == dtype
        with torch.no_grad():
            z = m.encode(x).latent_dist.mean  # x is fp32: encode casts to the model's dtype
            y = m.decode(z).sample
        assert z.dtype == dtype and y.dtype == dtype and y.shape == (1, 3, 8, 16)
        assert torch.isfinite(y).all()
        if ref is None:
            ref = (z, y)
        else:
            assert torch.allclose(z.float(), ref[0], atol=0.05)
            assert torch.allclose(y.float(), ref[1], atol=0.05)


def test_size_not_a_multiple_of_8_refused(vae):
    with pytest.raises(InputError, match="cannot encode a 16x20 image") as err:
        vae.encode(torch.zeros(1, 3, 20, 16))
    assert "multiples of 8" in err.value.cause
    with pytest.raises(InputError, match="32, h, w"):
        vae.decode(torch.zeros(1, 4, 2, 2))


def test_measured_latent_stats_normalise_and_round_trip(vae, frames, tmp_path):
    frames = np.ascontiguousarray(frames[:, ::4, ::4])  # 4 frames at 32 px: quick
    cfg = taef2.measure_latent_stats(vae, frames)
    assert len(cfg["latents_mean"]) == 32 and all(s > 0 for s in cfg["latents_std"])
    assert vae.config.latents_mean == [0.0] * 32  # the measured model is left as it was
    norm = taef2.with_latent_stats(vae, cfg)
    x = torch.cat([to_x(f) for f in frames])
    with torch.no_grad():
        raw = vae.encode(x).latent_dist.mean
        z = norm.encode(x).latent_dist.mean
        # normalised latents: per channel mean 0, std 1 on the frames measured
        assert torch.allclose(z.mean(dim=(0, 2, 3)), torch.zeros(32), atol=1e-3)
        assert torch.allclose(z.std(dim=(0, 2, 3), correction=0), torch.ones(32), atol=1e-3)
        assert raw.std(dim=(0, 2, 3)).min() < 0.9 or raw.std(dim=(0, 2, 3)).max() > 1.1
        # decode undoes the normalisation: same images as the unnormalised model
        assert torch.allclose(norm.decode(z).sample, vae.decode(raw).sample, atol=1e-4)
    # the statistics live in the config: save_pretrained / from_pretrained keep them
    norm.save_pretrained(tmp_path / "vae")
    again = TinyAutoencoder.from_pretrained(tmp_path / "vae")
    assert again.config.latents_mean == cfg["latents_mean"]
    assert again.config.latents_std == cfg["latents_std"]
    with pytest.raises(ValueError, match="32 values"):
        TinyAutoencoder(latents_mean=[0.0] * 4)


def test_save_pretrained_from_pretrained_round_trip(vae, tmp_path):
    for dtype in (torch.float32, torch.float16):
        folder = tmp_path / str(dtype)
        torch.nn.Module.to(copy.deepcopy(vae), dtype).save_pretrained(folder)
        again = TinyAutoencoder.from_pretrained(folder, torch_dtype=dtype)
        assert ({k: v for k, v in again.config.items() if k != "_name_or_path"}
                == {k: v for k, v in vae.config.items() if k != "_name_or_path"})
        a, b = again.state_dict(), vae.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k].float(), b[k]) for k in b)
        assert all(v.dtype == dtype for v in a.values())
    x = to_x(np.full((8, 8, 3), 128, np.uint8))
    fp32 = TinyAutoencoder.from_pretrained(tmp_path / str(torch.float32))
    with torch.no_grad():  # bit-equal weights; the CPU kernels may round differently (~4e-7)
        assert torch.allclose(fp32(x).sample, vae(x).sample, rtol=0, atol=1e-5)


# ----------------------------------------------------------------------------- the store


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_fgbg_models_fetch_taef2_then_from_original(originals, tmp_path, monkeypatch):
    """`fgbg models fetch taef2` fetches both halves (from a loopback copy of the pinned URLs,
    same sizes and hashes), and from_original loads them from the store with the lock's hashes."""
    served = tmp_path / "served"
    for half, entry in ((h, lock_entry(h)) for h in originals):
        dest = served / entry.url.split("://", 1)[1].split("/", 1)[1]
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(originals[half].read_bytes())
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        lock = tmp_path / "models.lock"
        lock.write_text((REPO / "models.lock").read_text().replace(
            "https://raw.githubusercontent.com/", f"http://127.0.0.1:{httpd.server_port}/"))
        env = {"FGBG_LOCK": str(lock), "FGBG_MODELS": str(tmp_path / "models"),
               "FGBG_FETCH_TIMEOUT": "5"}
        r = fgbg("models", "fetch", "taef2", env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.split()
        assert [Path(p).name for p in lines] == ["taef2_encoder.pth", "taef2_decoder.pth"]
    finally:
        httpd.shutdown()
        httpd.server_close()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    from fgbg.store import require

    m = TinyAutoencoder.from_original(require("taef2-encoder"), require("taef2-decoder"))
    assert m.state_dict().keys() == TinyAutoencoder().state_dict().keys()


def test_store_copy_matches_the_shipped_copy_when_present(vae):
    """On a machine that ran `fgbg models fetch taef2`: the store's files are the shipped weights."""
    from fgbg.store import artifact_path, load_lock, state

    lock = load_lock()
    entries = [lock[n] for n in taef2.LOCK_NAMES.values()]
    if not all(state(e) == "present" for e in entries):
        pytest.skip("the TAEF2 files are not in the model store (fgbg models fetch taef2)")
    m = TinyAutoencoder.from_original(artifact_path("taef2-encoder"), artifact_path("taef2-decoder"))
    a, b = m.state_dict(), vae.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in b)


def test_a_name_prefix_names_its_group():
    from fgbg.cli.models import _lock_entries

    _, entries = _lock_entries(["taef2", "taef2-encoder"])
    assert [e.name for e in entries] == ["taef2-encoder", "taef2-decoder"]
    _, entries = _lock_entries(["dwpose"])  # a group leaves out what no backend loads
    assert [e.name for e in entries] == ["dwpose-yolox-l", "dwpose-ll-ucoco-384"]
    with pytest.raises(ModelError, match="unknown model artifact 'taef'"):
        _lock_entries(["taef"])
