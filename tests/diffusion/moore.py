"""Build our networks from the Moore-AnimateAnyone fixture (tests/fixtures/animateanyone)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import FIXTURES as _ROOT

FIXTURES = _ROOT / "animateanyone"


def need_fixtures():
    if not (FIXTURES / "tiny_weights.safetensors").exists():
        pytest.fail(f"the AnimateAnyone reference fixtures are missing: {FIXTURES} "
                    "(they are part of the repository: restore tests/fixtures from git)")


def tiny_config() -> dict:
    need_fixtures()
    return json.loads((FIXTURES / "tiny_config.json").read_text())


def full_shapes() -> dict:
    need_fixtures()
    return json.loads((FIXTURES / "sd15_full_shapes.json").read_text())


def build_from(cfg_unet: dict, motion_kwargs: dict, pose_ctor: dict, *, track: bool = False):
    from fgbg.diffusion.encoders import ConditionEncoder
    from fgbg.diffusion.unets import ReferenceNet, VideoUNet, sd_config

    sd = sd_config(cfg_unet)
    ref = ReferenceNet(**sd)
    vid = VideoUNet(**sd, motion_num_attention_heads=motion_kwargs["num_attention_heads"],
                    motion_max_seq_length=motion_kwargs["temporal_position_encoding_max_len"])
    pose = ConditionEncoder(**pose_ctor)
    return ref, vid, pose


def tiny_models():
    cfg = tiny_config()
    return build_from(cfg["reference_unet"]["config_json"],
                      cfg["denoising_unet"]["unet_additional_kwargs"]["motion_module_kwargs"],
                      cfg["pose_guider"]["constructor"])


def tiny_state_dicts() -> dict[str, dict]:
    from safetensors.torch import load_file

    weights = load_file(FIXTURES / "tiny_weights.safetensors")
    out: dict[str, dict] = {"reference_unet": {}, "denoising_unet": {}, "pose_guider": {}}
    for key, value in weights.items():
        prefix, _, rest = key.partition(".")
        out[prefix][rest] = value
    return out


def loaded_tiny_models():
    from fgbg.diffusion.convert import load_animateanyone

    ref, vid, pose = tiny_models()
    sds = tiny_state_dicts()
    load_animateanyone(ref, vid, pose, reference=sds["reference_unet"],
                       denoising=sds["denoising_unet"], motion=None, pose=sds["pose_guider"])
    for m in (ref, vid, pose):
        m.eval().requires_grad_(False)
    return ref, vid, pose


def tiny_io(f64: bool = False) -> dict:
    from safetensors.torch import load_file

    return load_file(FIXTURES / ("tiny_io_f64.safetensors" if f64 else "tiny_io.safetensors"))
