"""FgbgPipeline on a tiny random model (CPU): clip chaining, seeding, reference reuse, round trip,
input checks, the window alternative, and the zero-init guarantee."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from fgbg.diffusion.build import build_pipeline  # noqa: E402
from fgbg.diffusion.pipeline import FgbgPipeline, plan_clips  # noqa: E402
from fgbg.errors import InputError  # noqa: E402

S = 64  # pixels; the tiny model needs multiples of 64 (VAE 8x, UNet 8x)


@pytest.fixture(scope="module")
def pipe():
    return build_pipeline("tiny", seed=0, perturb_zero_init=True)


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.RandomState(0)
    ref = (rng.rand(S, S, 3) * 255).astype(np.uint8)
    pose = (rng.rand(7, S, S, 3) * 255).astype(np.uint8)
    tracks = rng.rand(7, 3, S, S).astype(np.float32)
    return ref, pose, tracks


def test_plan_clips_overlap_one():
    assert plan_clips(7, 4) == [(0, 4), (3, 7)]
    assert plan_clips(4, 4) == [(0, 4)]
    assert plan_clips(10, 4) == [(0, 4), (3, 7), (6, 10)]


def test_clip_chaining_conditions_and_frame_count(pipe, inputs, monkeypatch):
    ref, pose, tracks = inputs
    seen = []
    real = pipe.unet.forward

    def spy(sample, timestep, ehs, condition=None, **kw):
        seen.append(condition.detach().clone())
        return real(sample, timestep, ehs, condition=condition, **kw)

    monkeypatch.setattr(pipe.unet, "forward", spy)
    encoded = []
    real_latents = pipe._images_to_latents

    def spy_latents(images):
        out = real_latents(images)
        encoded.append(out.clone())
        return out

    monkeypatch.setattr(pipe, "_images_to_latents", spy_latents)
    decoded = []
    real_decode = pipe.decode_latents

    def spy_decode(latents):
        out = real_decode(latents)
        decoded.append(out)
        return out

    monkeypatch.setattr(pipe, "decode_latents", spy_decode)
    frames = pipe(ref, pose, tracks, clip_length=4, num_inference_steps=2, guidance_scale=3.5, seed=3)
    assert frames.shape == (7, S, S, 3) and frames.dtype == np.uint8  # 4 + (4 - 1 overlap)
    assert len(decoded) == 2
    np.testing.assert_array_equal(frames[:4], decoded[0])
    np.testing.assert_array_equal(frames[4:], decoded[1][1:])  # the overlap frame dropped once
    steps_per_clip = 2
    first, second = seen[:steps_per_clip], seen[steps_per_clip:]
    for cond in first:  # clip 0: nothing to continue from
        assert torch.count_nonzero(cond) == 0
    # clip 1: frame 0 holds the VAE latent of clip 0's last frame (as decoded), mask 1 there only
    prev_latent = real_latents(pipe._to_unit(decoded[0][-1][None], S, S))[0]
    assert len(encoded) == 2  # the reference, then clip 0's last frame
    for cond in second:
        assert cond.shape[0] == 2  # CFG batch [uncond, cond]: both branches keep the condition
        torch.testing.assert_close(cond[1, :4, 0], prev_latent, rtol=0, atol=0)
        assert torch.all(cond[:, 4, 0] == 1) and torch.count_nonzero(cond[:, 4, 1:]) == 0
        assert torch.count_nonzero(cond[:, :4, 1:]) == 0


def test_reference_pass_runs_once_per_video(pipe, inputs, monkeypatch):
    ref, pose, tracks = inputs
    calls = []
    real = pipe.reference_net.forward
    monkeypatch.setattr(pipe.reference_net, "forward", lambda *a, **k: calls.append(1) or real(*a, **k))
    pipe(ref, pose, tracks, clip_length=3, num_inference_steps=2, seed=0)  # 3 clips x 2 steps
    assert len(calls) == 1


def test_same_seed_same_video_at_once_or_resumed(pipe, inputs):
    ref, pose, tracks = inputs
    at_once = pipe(ref, pose, tracks, clip_length=4, num_inference_steps=2, seed=5)
    # resumed: clip 0 was committed as uint8 frames; a new context continues from its last frame
    ctx = pipe.encode_reference(ref, S, S)
    clip0 = pipe.generate_clip(ctx, pose[0:4], tracks[0:4], None, seed=5, num_inference_steps=2)
    ctx2 = pipe.encode_reference(ref, S, S)
    clip1 = pipe.generate_clip(ctx2, pose[3:7], tracks[3:7], clip0[-1].copy(), seed=6, num_inference_steps=2)
    np.testing.assert_array_equal(at_once, np.concatenate([clip0, clip1[1:]]))


def test_seed_and_guidance_matter(pipe, inputs):
    ref, pose, tracks = inputs
    a = pipe(ref, pose[:4], tracks[:4], clip_length=4, num_inference_steps=2, seed=0, output_type="latent")[0]
    b = pipe(ref, pose[:4], tracks[:4], clip_length=4, num_inference_steps=2, seed=1, output_type="latent")[0]
    c = pipe(ref, pose[:4], tracks[:4], clip_length=4, num_inference_steps=2, seed=0, guidance_scale=1.0,
             output_type="latent")[0]
    assert a.shape == (1, 4, 4, S // 8, S // 8)
    assert not torch.equal(a, b) and not torch.equal(a, c)


def test_low_memory_cfg_equals_batched_cfg(pipe, inputs):
    ref, pose, tracks = inputs
    kw = dict(clip_length=4, num_inference_steps=2, seed=0, output_type="latent")
    a = pipe(ref, pose[:4], tracks[:4], **kw)[0]
    b = pipe(ref, pose[:4], tracks[:4], low_memory=True, **kw)[0]
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_tracks_reach_the_model(pipe, inputs):
    ref, pose, tracks = inputs
    kw = dict(clip_length=4, num_inference_steps=2, seed=0, output_type="latent")
    a = pipe(ref, pose[:4], tracks[:4], **kw)[0]
    b = pipe(ref, pose[:4], None, **kw)[0]
    assert not torch.equal(a, b)


def test_window_mode(pipe, inputs):
    ref, pose, tracks = inputs
    frames = pipe(ref, pose, tracks, clip_length=4, num_inference_steps=2, long_video="window",
                  context_overlap=2)
    assert frames.shape == (7, S, S, 3)
    pil = pipe(ref, pose[:4], tracks[:4], clip_length=4, num_inference_steps=1, output_type="pil")
    assert len(pil) == 4 and pil[0].size == (S, S)


def test_save_and_load_round_trip(pipe, inputs, tmp_path):
    ref, pose, tracks = inputs
    pipe.save_pretrained(tmp_path / "p")
    loaded = FgbgPipeline.from_pretrained(tmp_path / "p")
    loaded.set_progress_bar_config(disable=True)
    for name in ("vae", "image_encoder", "reference_net", "unet", "pose_encoder", "track_encoder"):
        a, b = getattr(pipe, name).state_dict(), getattr(loaded, name).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert dict(loaded.scheduler.config)["prediction_type"] == "v_prediction"
    kw = dict(clip_length=4, num_inference_steps=2, seed=0, output_type="latent")
    # same weights; transformers' CLIP may take another kernel path after loading (~2e-7)
    torch.testing.assert_close(pipe(ref, pose[:4], tracks[:4], **kw)[0],
                               loaded(ref, pose[:4], tracks[:4], **kw)[0], rtol=0, atol=1e-4)
    # and a loaded pipeline is deterministic on its own
    assert torch.equal(loaded(ref, pose[:4], tracks[:4], **kw)[0], loaded(ref, pose[:4], tracks[:4], **kw)[0])


@pytest.mark.parametrize("change, fragment", [
    (dict(height=60), "multiples of 64"),
    (dict(width=0), "multiples of 64"),
    (dict(clip_length=33), "at most 32 frames"),
    (dict(clip_length=1), "at most 32 frames"),
    (dict(num_inference_steps=0), "DDIM needs"),
    (dict(guidance_scale=0.5), "below 1"),
    (dict(output_type="jpg"), "np, pil or latent"),
    (dict(long_video="loop"), "concat"),
])
def test_check_inputs(pipe, inputs, change, fragment):
    ref, pose, tracks = inputs
    kw = dict(reference_image=ref, pose_maps=pose, track_maps=tracks, height=S, width=S, clip_length=4,
              num_inference_steps=2, guidance_scale=3.5)
    kw.update(change)
    with pytest.raises(InputError) as err:
        pipe.check_inputs(**kw)
    assert fragment in err.value.cause + err.value.what


def test_check_inputs_shapes(pipe, inputs):
    ref, pose, tracks = inputs
    with pytest.raises(InputError, match="reference image"):
        pipe.check_inputs(ref.astype(np.float32), pose, tracks, S, S, 4, 2, 3.5)
    with pytest.raises(InputError, match="pose maps"):
        pipe.check_inputs(ref, pose[:, :32], tracks, S, S, 4, 2, 3.5)
    with pytest.raises(InputError, match="track maps"):
        pipe.check_inputs(ref, pose, tracks[:3], S, S, 4, 2, 3.5)


def test_zero_init_guarantee_bit_for_bit():
    """With the converted (zero) track encoder and zero extra conv_in channels, any track map and
    any conditioning latent give exactly the AnimateAnyone computation (no condition, pose only)."""
    from fgbg.diffusion.encoders import ConditionEncoder

    from .moore import loaded_tiny_models, tiny_io

    ref, vid, pose = loaded_tiny_models()
    io = tiny_io()
    track = ConditionEncoder(conditioning_embedding_channels=32).eval()
    x, t, ehs = io["input.noisy_latents"], io["input.timestep"], io["input.encoder_hidden_states"]
    state = ref.encode(io["input.ref_latents"], ehs)
    pose_fea = pose(io["input.pose_images"])
    plain = vid(x, t, ehs, features=pose_fea, reference=state)
    g = torch.Generator().manual_seed(0)
    tm = torch.randn(1, 3, 4, 64, 64, generator=g)
    cond = torch.randn(1, 5, 4, 8, 8, generator=g)
    ours = vid(x, t, ehs, condition=cond, features=pose_fea + track(tm), reference=state)
    assert torch.equal(ours, plain)
