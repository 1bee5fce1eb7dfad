"""Our networks with the tiny Moore-AnimateAnyone weights reproduce Moore's own outputs.

Reference data: tests/fixtures/animateanyone (one denoising step of Moore's code, fp32 and
fp64). Measured here: pose features 1.8e-6, banks <= 3.3e-6, noise prediction 1.7e-6 (with the
fp16 bank rounding Moore applies) / 1.2e-5 (without it), CFG batch 2.2e-6, guided 6.7e-6.
Tolerances: 1e-5 where we reproduce the fp16 rounding, 1e-4 (the issue's bound) where not.
"""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from fgbg.diffusion.attention import ReferenceState  # noqa: E402

from .moore import loaded_tiny_models, tiny_config, tiny_io  # noqa: E402


@pytest.fixture(scope="module")
def models():
    torch.set_num_threads(1)
    return loaded_tiny_models()


@pytest.fixture(scope="module")
def io():
    return tiny_io()


def maxdiff(a, b) -> float:
    return (a.double() - b.double()).abs().max().item()


def test_pose_encoder(models, io):
    _, _, pose = models
    assert maxdiff(pose(io["input.pose_images"]), io["output.pose_fea"]) < 1e-5


def test_reference_banks(models, io):
    ref, _, _ = models
    state = ref.encode(io["input.ref_latents"], io["input.encoder_hidden_states"])
    names = tiny_config()["bank_shapes_nocfg"]
    assert len(state.bank) == len(names) == 10
    for index, (name, shape) in names.items():
        assert list(state.bank[name].shape) == shape
        assert maxdiff(state.bank[name], io[f"output.bank_nocfg.{index}"]) < 1e-5, name


def test_reference_banks_cfg_batch(models, io):
    ref, _, _ = models
    ehs = io["input.encoder_hidden_states"]
    state = ref.encode(io["input.ref_latents"].repeat(2, 1, 1, 1), torch.cat([torch.zeros_like(ehs), ehs]))
    for index, (name, _) in tiny_config()["bank_shapes_cfg"].items():
        assert maxdiff(state.bank[name], io[f"output.bank_cfg.{index}"]) < 1e-5, name


def _step(models, io, *, cfg: bool, bank_dtype=None):
    ref, vid, pose = models
    x, t, ehs = io["input.noisy_latents"], io["input.timestep"], io["input.encoder_hidden_states"]
    feats = pose(io["input.pose_images"])
    state = ref.encode(io["input.ref_latents"], ehs, state=ReferenceState(bank_dtype=bank_dtype))
    if not cfg:
        return vid(x, t, ehs, features=feats, reference=state)
    return vid(torch.cat([x, x]), t, torch.cat([torch.zeros_like(ehs), ehs]),
               features=torch.cat([feats, feats]), reference=state, plain_batches=1)


def test_one_step_no_cfg(models, io):
    assert maxdiff(_step(models, io, cfg=False), io["output.noise_pred_nocfg"]) < 1e-4
    assert maxdiff(_step(models, io, cfg=False), io["aux.noise_pred_nocfg_bank_not_rounded_to_fp16"]) < 1e-5
    exact = _step(models, io, cfg=False, bank_dtype=torch.float16)
    assert maxdiff(exact, io["output.noise_pred_nocfg"]) < 1e-5


def test_one_step_cfg(models, io):
    out = _step(models, io, cfg=True, bank_dtype=torch.float16)
    assert maxdiff(out, io["output.noise_pred_cfg_batch"]) < 1e-5
    guided = out[:1] + 3.5 * (out[1:] - out[:1])
    assert maxdiff(guided, io["output.noise_pred_cfg_guided"]) < 1e-4
    assert maxdiff(_step(models, io, cfg=True)[1:], io["output.noise_pred_cfg_batch"][1:]) < 1e-4


def test_no_reference_path(models, io):
    _, vid, pose = models
    out = vid(io["input.noisy_latents"], io["input.timestep"], io["input.encoder_hidden_states"],
              features=pose(io["input.pose_images"]))
    assert maxdiff(out, io["aux.denoising_unet_no_reference"]) < 1e-5


def test_float64_matches_moore_float64(models, io):
    """In float64, with Moore's fp16 bank rounding, the step agrees with Moore's fp64 run far
    below fp32 noise: the computation is the same, not merely close."""
    import copy

    io64 = tiny_io(f64=True)
    m64 = tuple(copy.deepcopy(m).double() for m in models)
    inputs = {k: (v.double() if v.is_floating_point() else v) for k, v in io.items() if k.startswith("input.")}
    out = _step(m64, inputs, cfg=False, bank_dtype=torch.float16)
    assert maxdiff(out, io64["output.noise_pred_nocfg"]) < 1e-9


def test_ddim_step_with_animateanyone_settings(io):
    from fgbg.diffusion.pipeline import make_scheduler

    cfg = tiny_config()["step"]
    sched = make_scheduler()
    sched.set_timesteps(cfg["num_inference_steps"])
    assert sched.timesteps.tolist() == cfg["scheduler_timesteps"]
    prev = sched.step(io["output.noise_pred_nocfg"], int(io["input.timestep"]), io["input.noisy_latents"],
                      eta=0.0).prev_sample
    assert maxdiff(prev, io["aux.ddim_prev_latents_nocfg"]) < 1e-5
