"""`fgbg models convert animateanyone` on locally made files of the real formats: the tiny Moore
weights split as the public checkpoints are (.pth), a VAE and a CLIP image encoder folder."""

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from tests.conftest import fgbg  # noqa: E402

from .moore import tiny_config, tiny_io, tiny_state_dicts  # noqa: E402


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    from diffusers import AutoencoderKL
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    root = tmp_path_factory.mktemp("aa")
    sds = tiny_state_dicts()
    den = sds["denoising_unet"]
    spatial = {k: v for k, v in den.items() if ".motion_modules." not in k}
    motion = {k: v for k, v in den.items() if ".motion_modules." in k}
    torch.save(sds["reference_unet"], root / "reference_unet.pth")
    torch.save(spatial, root / "denoising_unet.pth")
    torch.save(motion, root / "motion_module.pth")
    torch.save(sds["pose_guider"], root / "pose_guider.pth")
    cfg = tiny_config()
    (root / "config.json").write_text(json.dumps(cfg["reference_unet"]["config_json"]))
    torch.manual_seed(0)
    AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                  block_out_channels=(8, 8, 16, 16), layers_per_block=1, norm_num_groups=4).save_pretrained(root / "vae")
    CLIPVisionModelWithProjection(CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                                                   num_attention_heads=4, image_size=32, patch_size=8,
                                                   projection_dim=32)).save_pretrained(root / "clip")
    return root


def _args(root, out):
    return ["models", "convert", "animateanyone", "--out", out, "--reference-unet", root / "reference_unet.pth",
            "--denoising-unet", root / "denoising_unet.pth", "--motion-module", root / "motion_module.pth",
            "--pose-guider", root / "pose_guider.pth", "--unet-config", root / "config.json",
            "--vae", root / "vae", "--image-encoder", root / "clip", "--motion-heads", "2"]


def test_convert_then_load_reproduces_moore(sources, tmp_path):
    out = tmp_path / "pipe"
    r = fgbg(*_args(sources, out))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(out.resolve())
    manifest = json.loads((out / "fgbg_manifest.json").read_text())
    assert manifest["mapped"] == {"reference": 436, "denoising": 791, "pose": 16}
    assert all(f.endswith((".json", ".safetensors")) for f in manifest["files"])

    from fgbg.diffusion.pipeline import FgbgPipeline

    pipe = FgbgPipeline.from_pretrained(out)
    io = tiny_io()
    ehs = io["input.encoder_hidden_states"]
    state = pipe.reference_net.encode(io["input.ref_latents"], ehs)
    feats = pipe.pose_encoder(io["input.pose_images"])
    assert torch.count_nonzero(pipe.track_encoder(torch.rand(1, 3, 4, 64, 64))) == 0
    with torch.no_grad():
        pred = pipe.unet(io["input.noisy_latents"], io["input.timestep"], ehs, features=feats, reference=state)
    assert (pred - io["output.noise_pred_nocfg"]).abs().max() < 1e-4


def test_convert_names_bad_keys_and_keeps_nothing(sources, tmp_path):
    bad = tmp_path / "pose_guider.pth"
    sd = dict(tiny_state_dicts()["pose_guider"])
    sd["extra.weight"] = torch.zeros(3)
    torch.save(sd, bad)
    args = _args(sources, tmp_path / "pipe")
    args[args.index("--pose-guider") + 1] = bad
    r = fgbg(*args)
    assert r.returncode == 3
    assert "extra.weight" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "pipe").exists()


def test_convert_without_files_names_fetch(tmp_path):
    r = fgbg("models", "convert", "animateanyone", "--out", tmp_path / "p",
             env={"FGBG_MODELS": str(tmp_path / "store")})
    assert r.returncode == 3
    assert "fgbg models fetch" in r.stderr
