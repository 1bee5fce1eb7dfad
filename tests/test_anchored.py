"""Anchored background and the warp start (ours): the diffusion generator holds the background to
the photo's plate moved by the tracks' camera, whatever its weights, and can start from the warp
preview (SDEdit)."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from fgbg.backends.base import ClipInputs, Reference  # noqa: E402
from fgbg.backends.generate.anchor import person_keep, warp_conditions  # noqa: E402
from fgbg.backends.generate.diffusion import background_mode, check_background  # noqa: E402
from fgbg.diffusion.pipeline import Anchor  # noqa: E402
from fgbg.errors import InputError  # noqa: E402
from fgbg.params import GenerateParams  # noqa: E402
from tests.conftest import cli_inproc, fgbg, kill_during_generate  # noqa: E402

S = 128


@pytest.fixture(scope="module")
def tiny():
    from fgbg.diffusion.build import build_pipeline

    return build_pipeline("tiny", seed=0, perturb_zero_init=True)


@pytest.fixture(scope="module")
def scene(sample):
    """The sample's reference and first frames' truth, on a 64 px canvas."""
    import cv2

    from fgbg.video import read_image

    truth = np.load(sample.truth)
    s = S / 256
    img = cv2.resize(read_image(sample.ref), (S, S), interpolation=cv2.INTER_AREA)
    mask = cv2.resize(truth["ref_mask"].astype(np.uint8), (S, S), interpolation=cv2.INTER_NEAREST) > 0
    ref = Reference(img, (truth["ref_keypoints"] + 0.5) * s - 0.5, truth["ref_scores"], mask)
    n = 4
    kps = ((truth["keypoints"][:n] + 0.5) * s - 0.5).astype(np.float32)
    tracks = ((truth["tracks"][:n] + 0.5) * s - 0.5).astype(np.float32)
    from fgbg.pose.draw import draw_pose_maps
    from fgbg.tracks import track_origins

    q = truth["queries"].copy()
    q[:, 1:] = (q[:, 1:] + 0.5) * s - 0.5
    origin = track_origins((truth["tracks"] + 0.5) * s - 0.5, truth["visible"], q)
    clip = ClipInputs(keypoints=kps, scores=truth["scores"][:n], pose_maps=draw_pose_maps(kps, truth["scores"][:n], S, S),
                      tracks=tracks, visible=truth["visible"][:n], tracks_origin=origin, prev_frame=None, seed=3)
    return ref, clip


def _warp(ref):
    from fgbg.backends.generate.warp import WarpGenerator

    w = WarpGenerator()
    w.prepare(ref, S, S)
    return w


def test_person_region_is_free_and_feathered_background_is_held():
    alpha = np.zeros((2, 64, 64), np.float32)
    alpha[:, 20:40, 28:36] = 1.0
    keep = person_keep(alpha, 4, 2)[0, 0].numpy()  # (F, 16, 16)
    assert keep.shape == (2, 16, 16)
    assert (keep[:, 5:10, 7:9] == 0).all()  # every latent pixel the person touches is free
    assert (keep[:, 0, :] == 1).all() and (keep[:, :, 0] == 1).all()  # far away: held
    ramp = keep[0, 8, 9:13]
    assert 0 <= ramp[0] < ramp[-1] <= 1  # a feathered border outward


def test_person_region_covers_the_retargeted_skeleton(scene):
    from fgbg.pose.retarget import retarget

    ref, clip = scene
    kps = retarget(clip.keypoints, clip.scores, ref.keypoints, ref.scores, min_score=0.3)
    clip = ClipInputs(**{**vars(clip), "keypoints": kps})
    w = _warp(ref)
    alpha = np.stack([w.render_layers(clip.keypoints[t], clip.scores[t], clip.tracks[t], clip.visible[t],
                                      clip.tracks_origin)[2] for t in range(len(kps))])
    keep = person_keep(alpha, 4, 2)[0, 0].numpy()
    body = clip.scores[:, :17] >= 0.3
    pts = np.clip(np.round((kps[:, :17] + 0.5) / 4 - 0.5).astype(int), 0, S // 4 - 1)
    vals = np.array([keep[t, y, x] for t in range(len(kps)) for (x, y), ok in zip(pts[t], body[t]) if ok])
    assert len(vals) > 20 and (vals < 0.5).mean() >= 0.95, vals


def test_fully_anchored_background_is_the_plate_whatever_the_model(tiny, scene, monkeypatch):
    """A model whose prediction ignores its input (zero), anchored for every step: the decoded
    background is the VAE round trip of the moved plate; the person's region is not."""
    ref, clip = scene
    w = _warp(ref)
    p = GenerateParams(background="anchored", anchor_steps=1.0, steps=4, guidance_scale=1.0)
    anchor, init = warp_conditions(tiny, w, clip, p, "anchored")
    f = tiny.vae_scale_factor
    assert init is None and anchor.keep.shape == (1, 1, 4, S // f, S // f)
    monkeypatch.setattr(type(tiny), "_predict", lambda self, *a, **k: torch.zeros_like(a[1]))
    ctx = tiny.encode_reference(ref.image, S, S)
    feats = tiny.encode_conditions(clip.pose_maps, None)
    lat = tiny.denoise_clip(ctx, feats, None, torch.Generator().manual_seed(0), 4, 1.0, anchor=anchor)
    keep = anchor.keep[0, 0].numpy()  # (F, h, w)
    held, free = keep == 1.0, keep == 0.0
    assert held.mean() > 0.1 and free.mean() > 0.05
    gap = (lat - anchor.latents)[0].abs().amax(0).numpy()  # (F, h, w)
    assert gap[held].max() < 1e-5  # the background latents are the plate's
    assert gap[free].mean() > 0.1  # the person's region is the model's
    # decoding is deterministic, so the decoded background is the plate's VAE round trip, up to
    # the decoder's receptive field reaching into the person's region (large for this tiny VAE)
    ctx.reference.clear()


def test_fully_anchored_frames_show_the_plates_own_pixels_outside_the_person(tiny, scene, monkeypatch):
    """At --anchor-steps 1.0 the decoded clip is laid over the moved plate: outside the person's
    pixel region the frames are the plate's pixels exactly (not their VAE round trip), on it they
    are the decoder's, blended over the feathered ramp; with fewer anchored steps nothing is pasted."""
    ref, clip = scene
    w = _warp(ref)
    p = GenerateParams(background="anchored", anchor_steps=1.0, steps=3, guidance_scale=1.0)
    anchor, _ = warp_conditions(tiny, w, clip, p, "anchored")
    assert anchor.pixels.shape == (4, S, S, 3) and anchor.pixel_keep.shape == (4, S, S)
    monkeypatch.setattr(type(tiny), "_predict", lambda self, *a, **k: torch.zeros_like(a[1]))
    ctx = tiny.encode_reference(ref.image, S, S)
    decoded, decode = [], type(tiny).decode_latents
    monkeypatch.setattr(type(tiny), "decode_latents", lambda self, lat: decoded.append(decode(self, lat)) or decoded[-1])
    args = (ctx, clip.pose_maps, None, None, 0)
    frames = tiny.generate_clip(*args, num_inference_steps=3, guidance_scale=1.0, anchor=anchor)
    held, person = anchor.pixel_keep == 1.0, anchor.pixel_keep == 0.0
    ramp = ~held & ~person
    assert held.mean() > 0.5 and person.mean() > 0.03 and ramp.mean() > 0.01
    np.testing.assert_array_equal(frames[held], anchor.pixels[held])
    assert np.abs(decoded[0][held].astype(int) - anchor.pixels[held]).mean() > 1  # a VAE round trip differs
    np.testing.assert_array_equal(frames[person], decoded[0][person])
    a = anchor.pixel_keep[ramp][:, None]  # in between: the blend of the two
    want = np.rint(a * anchor.pixels[ramp] + (1 - a) * decoded[0][ramp].astype(np.float32))
    np.testing.assert_array_equal(frames[ramp], want.astype(np.uint8))
    # the region covers the moved person: every pixel of its alpha is the decoder's
    alpha = np.stack([w.render_layers(clip.keypoints[t], clip.scores[t], clip.tracks[t], clip.visible[t],
                                      clip.tracks_origin)[2] for t in range(4)])
    assert (anchor.pixel_keep[alpha > 0.05] == 0).all()
    partly = Anchor(anchor.latents, anchor.keep, 0.8, anchor.pixels, anchor.pixel_keep)
    frames = tiny.generate_clip(*args, num_inference_steps=3, guidance_scale=1.0, anchor=partly)
    np.testing.assert_array_equal(frames, decoded[-1])  # the model's last steps stand
    ctx.reference.clear()


def test_window_mode_holds_the_whole_videos_background_too(tiny, scene, monkeypatch):
    """AnimateAnyone's window scheme with the anchor over every frame: with a model that predicts
    zero, the held latents are the plate's after the last step; the person's region is not."""
    ref, clip = scene
    w = _warp(ref)
    p = GenerateParams(background="anchored", anchor_steps=1.0, steps=3, guidance_scale=1.0)
    anchor, _ = warp_conditions(tiny, w, clip, p, "anchored")
    monkeypatch.setattr(type(tiny), "_predict", lambda self, *a, **k: torch.zeros_like(a[1]))
    tiny.set_progress_bar_config(disable=True)
    common = dict(clip_length=2, num_inference_steps=3, guidance_scale=1.0, long_video="window",
                  context_overlap=1, output_type="latent")
    lat = tiny(ref.image, clip.pose_maps, None, anchor=anchor, **common)[0]
    free_run = tiny(ref.image, clip.pose_maps, None, **common)[0]
    keep = anchor.keep[0, 0].numpy()
    held, free = keep == 1.0, keep == 0.0
    gap = (lat - anchor.latents)[0].abs().amax(0).numpy()
    assert held.mean() > 0.1 and gap[held].max() < 1e-5
    assert gap[free].mean() > 0.1
    np.testing.assert_array_equal(lat[0].amax(0).numpy()[free], free_run[0].amax(0).numpy()[free])
    frames = tiny(ref.image, clip.pose_maps, None, anchor=anchor, **{**common, "output_type": "np"})
    outside = anchor.pixel_keep == 1.0  # laid over the plate here too
    np.testing.assert_array_equal(frames[outside], anchor.pixels[outside])
    with pytest.raises(InputError, match="long_video='window'"):
        tiny(ref.image, clip.pose_maps, None, clip_length=2, num_inference_steps=1, anchor=anchor)


def test_anchor_steps_zero_is_free_generation(tiny, scene):
    ref, clip = scene
    w = _warp(ref)
    p = GenerateParams(background="anchored", anchor_steps=0.0, steps=2, guidance_scale=1.0)
    anchor, _ = warp_conditions(tiny, w, clip, p, "anchored")
    ctx = tiny.encode_reference(ref.image, S, S)
    a = tiny.generate_clip(ctx, clip.pose_maps, None, None, 5, num_inference_steps=2, guidance_scale=1.0,
                           anchor=anchor)
    b = tiny.generate_clip(ctx, clip.pose_maps, None, None, 5, num_inference_steps=2, guidance_scale=1.0)
    np.testing.assert_array_equal(a, b)
    ctx.reference.clear()


def test_warp_start_runs_the_last_share_of_the_schedule_from_the_noised_preview(tiny, scene, monkeypatch):
    ref, clip = scene
    w = _warp(ref)
    p = GenerateParams(background="free", init="warp", strength=0.5, steps=4, guidance_scale=1.0)
    anchor, init = warp_conditions(tiny, w, clip, p, "free")
    assert anchor is None and init is not None
    seen = []

    def record(self, ctx, latents, t, *a, **k):
        seen.append((int(t), latents.clone()))
        return torch.zeros_like(latents)

    monkeypatch.setattr(type(tiny), "_predict", record)
    ctx = tiny.encode_reference(ref.image, S, S)
    feats = tiny.encode_conditions(clip.pose_maps, None)
    tiny.denoise_clip(ctx, feats, None, torch.Generator().manual_seed(7), 4, 1.0, init=init)
    tiny.scheduler.set_timesteps(4)
    assert [t for t, _ in seen] == [int(t) for t in tiny.scheduler.timesteps[2:]]  # half the schedule
    noise = tiny._noise(init.latents.shape, torch.Generator().manual_seed(7))
    start = tiny.scheduler.add_noise(init.latents, noise, tiny.scheduler.timesteps[2:3])
    assert torch.allclose(seen[0][1], start, atol=1e-6)  # the preview noised to that level
    ctx.reference.clear()


def test_auto_is_anchored_for_an_untrained_track_encoder_or_when_the_pipeline_says_so(tmp_path):
    folder = tmp_path / "converted"
    folder.mkdir()
    (folder / "model_index.json").write_text("{}")
    (folder / "fgbg_manifest.json").write_text(json.dumps({"new_zero_initialised": ["track_encoder"]}))
    assert background_mode(GenerateParams(pipeline=str(folder))) == "anchored"
    assert background_mode(GenerateParams(pipeline=str(folder), background="free")) == "free"
    (folder / "fgbg_pipeline.json").write_text("{}")  # trained afterwards, with tracks
    assert background_mode(GenerateParams(pipeline=str(folder))) == "free"
    # a training record may recommend one (trained with tracks, but on scenes unlike the user's)
    (folder / "fgbg_pipeline.json").write_text(json.dumps({"inference": {"background": "anchored"}}))
    assert background_mode(GenerateParams(pipeline=str(folder))) == "anchored"
    assert background_mode(GenerateParams(pipeline=str(folder), background="free")) == "free"
    from fgbg.backends.generate.diffusion import DEMO_DIR

    # the demo model's track encoder knows synthetic scenes only: on a real photo, anchored
    assert background_mode(GenerateParams(pipeline=str(DEMO_DIR))) == "anchored"


@pytest.mark.parametrize("bad, match", [(dict(background="fixed"), "--background fixed"),
                                        (dict(anchor_steps=1.5), "--anchor-steps 1.5"),
                                        (dict(init="photo"), "--init photo"),
                                        (dict(strength=0.0), "--strength 0.0")])
def test_bad_options_are_named(bad, match):
    with pytest.raises(InputError, match=match):
        check_background(GenerateParams(**bad))


def test_eval_refuses_a_bad_anchor_share_before_loading(tmp_path):
    r = fgbg("eval", tmp_path, "--variants", "anchored", "--anchor-steps", "1.5")
    assert r.returncode == 2 and "--anchor-steps 1.5 is out of range" in r.stderr


def test_each_mode_has_its_own_cache_key_and_reruns_are_cached(sample, tmp_path, monkeypatch):
    from fgbg.diffusion.build import build_pipeline

    pipe_dir = tmp_path / "pipe"
    build_pipeline("tiny", seed=0, perturb_zero_init=True).save_pretrained(pipe_dir)
    common = ["generate", sample.driving, "--ref", sample.ref, "-w", tmp_path / "w", "--backend", "diffusion",
              "--pipeline", pipe_dir, "--steps", "1", "--clip-length", "8", "--width", "64", "--height", "64",
              "--tracker", "lk", "--pose-backend", "mediapipe", "--seg-backend", "mediapipe"]
    env = {"FGBG_MODELS": str(tmp_path / "store")}
    keys = []
    for extra in ([], ["--background", "anchored"], ["--background", "anchored", "--anchor-steps", "0.6"],
                  ["--init", "warp"]):
        r = cli_inproc(monkeypatch, *common, *extra, env=env)
        assert r.exit_code == 0, r.output
        keys.append(json.loads((tmp_path / "w" / "generate" / "record.json").read_text())["key"])
    assert len(set(keys)) == 4
    r = cli_inproc(monkeypatch, *common, "--background", "anchored", env=env)
    assert r.exit_code == 0 and "cached" in r.stderr and "anchored background" not in r.stderr.split("cached")[0]
    r = fgbg(*common, "--background", "fixed", env=env)  # the real exit status of the installed CLI
    assert r.returncode == 2 and "error: --background fixed is unknown" in r.stderr


def test_a_killed_anchored_run_resumes_to_the_same_bytes(sample, tmp_path, monkeypatch):
    from fgbg.diffusion.build import build_pipeline

    pipe_dir = tmp_path / "pipe"
    build_pipeline("tiny", seed=0, perturb_zero_init=True).save_pretrained(pipe_dir)
    env = {"FGBG_MODELS": str(tmp_path / "store"), "FGBG_PIPELINE": ""}
    common = ["run", sample.driving, "--ref", sample.ref, "--backend", "diffusion", "--pipeline", pipe_dir,
              "--steps", "2", "--clip-length", "8", "--width", "64", "--height", "64",
              "--background", "anchored", "--init", "warp", "--strength", "0.8"]
    whole = cli_inproc(monkeypatch, *common, "-w", tmp_path / "a", "-o", tmp_path / "a.mp4", env=env)
    assert whole.exit_code == 0, whole.output
    kill_during_generate([*common, "-o", tmp_path / "b.mp4"], tmp_path / "b", env)  # a real process, SIGKILLed
    again = cli_inproc(monkeypatch, *common, "-w", tmp_path / "b", "-o", tmp_path / "b.mp4", env=env)
    assert again.exit_code == 0, again.output
    assert "resumed" in again.stderr
    assert (tmp_path / "b.mp4").read_bytes() == (tmp_path / "a.mp4").read_bytes()
    done = sorted((tmp_path / "b" / "generate" / "clips").glob("*.npy"))
    assert [p.read_bytes() for p in done] == [p.read_bytes() for p in sorted((tmp_path / "a" / "generate" / "clips").glob("*.npy"))]


def test_eval_scores_the_anchored_and_refine_variants(tmp_path, tiny, scene):
    import cv2

    from fgbg.artifacts import write_prepared
    from fgbg.evaluation.runner import evaluate

    ref, clip = scene
    n = len(clip.keypoints)
    w = _warp(ref)
    frames = np.stack([w.render(clip.keypoints[t], clip.scores[t], clip.tracks[t], clip.visible[t], clip.tracks_origin)
                       for t in range(n)])
    masks = np.stack([cv2.resize(ref.mask.astype(np.uint8), (S, S)) > 0] * n)
    write_prepared(tmp_path / "ds" / "videos" / "v", frames, clip.keypoints, clip.scores, masks, clip.tracks,
                   clip.visible, clip.tracks_origin, {"source": "test"})
    res = evaluate(tiny, tmp_path / "ds", ["full", "anchored", "refine", "anchored-no-tracks", "anchored-window"],
                   clip_length=4, steps=2, guidance=1.0)
    rows = res["variants"]
    assert {"full", "anchored", "refine", "anchored-no-tracks", "anchored-window"} <= set(rows)
    assert not res.get("failed")
    assert all(np.isfinite(rows[v]["ssim"]) for v in ("anchored", "refine"))
    assert rows["anchored"]["l1"] != rows["full"]["l1"]  # the variant changes the output
