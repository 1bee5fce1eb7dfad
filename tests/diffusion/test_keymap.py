"""The AnimateAnyone key map on the full-size SD1.5 layout (built on the meta device: no memory,
no weights) and on the tiny fixture weights; strictness names what does not fit."""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from fgbg.diffusion.convert import KeyMapError, denoising_key, map_state_dict, shapes  # noqa: E402

from .moore import build_from, full_shapes, tiny_models, tiny_state_dicts  # noqa: E402


@pytest.fixture(scope="module")
def full():
    spec = full_shapes()
    with torch.device("meta"):
        ref, vid, pose = build_from(spec["sd15_unet_config_json"],
                                    spec["inference_v2_unet_additional_kwargs"]["motion_module_kwargs"],
                                    spec["models"]["pose_guider"]["constructor"])
    return spec, ref, vid, pose


def _moore(spec, name):
    return {key: tuple(shape) for key, shape, _ in spec["models"][name]["state_dict"]}


def test_every_full_size_key_lands_on_a_parameter_of_the_same_shape(full):
    spec, ref, vid, pose = full
    ours = {"reference_unet": shapes(ref), "denoising_unet": shapes(vid), "pose_guider": shapes(pose)}
    mapper = {"reference_unet": lambda k: k, "denoising_unet": denoising_key, "pose_guider": lambda k: k}
    for name in ours:
        theirs = _moore(spec, name)
        assert len(theirs) == spec["models"][name]["num_keys"]
        hit = set()
        for key, shape in theirs.items():
            target = mapper[name](key)
            assert target in ours[name], f"{name}: {key} -> {target} is not ours"
            if key == "conv_in.weight" and name == "denoising_unet":
                assert ours[name][target] == (shape[0], 9, *shape[2:])
            else:
                assert ours[name][target] == shape, key
            hit.add(target)
        left = set(ours[name]) - hit
        assert left == set(), f"{name}: ours left unmapped: {sorted(left)[:5]}"


def test_full_size_parameter_counts(full):
    spec, ref, vid, pose = full
    n_ref = sum(p.numel() for p in ref.parameters())
    assert n_ref == spec["models"]["reference_unet"]["num_parameters"]
    n_vid = sum(p.numel() for p in vid.parameters())
    extra_conv_in = 320 * 5 * 3 * 3  # the conditioning latent + mask channels
    assert n_vid == spec["models"]["denoising_unet"]["num_parameters"] + extra_conv_in


def test_strict_loading_names_the_bad_keys():
    ref, vid, pose = tiny_models()
    sds = tiny_state_dicts()
    bad = dict(sds["denoising_unet"])
    bad["down_blocks.0.surprise.weight"] = torch.zeros(1)
    del bad["conv_out.bias"]
    bad["conv_in.bias"] = torch.zeros(7)
    with pytest.raises(KeyMapError) as err:
        map_state_dict(bad, shapes(vid), denoising_key, "denoising UNet", padded={"conv_in.weight": 4})
    cause = err.value.cause
    assert "down_blocks.0.surprise.weight" in cause
    assert "conv_out.bias" in cause
    assert "conv_in.bias (7,)" in cause
    assert err.value.exit_code == 3


def test_duplicate_positional_tables_must_agree():
    _, vid, _ = tiny_models()
    sd = dict(tiny_state_dicts()["denoising_unet"])
    key = next(k for k in sd if k.endswith("attention_blocks.1.pos_encoder.pe"))
    sd[key] = sd[key] + 1
    with pytest.raises(KeyMapError) as err:
        map_state_dict(sd, shapes(vid), denoising_key, "denoising UNet", padded={"conv_in.weight": 4})
    assert "disagree" in err.value.cause and key in err.value.cause


def test_new_parameters_start_at_zero():
    from fgbg.diffusion.encoders import ConditionEncoder

    from .moore import loaded_tiny_models

    _, vid, _ = loaded_tiny_models()
    assert torch.count_nonzero(vid.conv_in.weight[:, 4:]) == 0
    assert torch.count_nonzero(vid.conv_in.weight[:, :4]) > 0
    track = ConditionEncoder(conditioning_embedding_channels=32)
    assert torch.count_nonzero(track.conv_out.weight) == 0 and torch.count_nonzero(track.conv_out.bias) == 0
