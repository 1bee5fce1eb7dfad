"""SAM segment backend on a tiny random-weight Sam built from segment-anything's own modeling
classes (64 px input, 8 px patches: an 8x8 image embedding, 32x32 low-res masks). Random weights
give random masks, so these tests check the wiring: prompts, coordinates, one image embedding per
frame, loading, the registry and the stage, not mask quality."""

import hashlib
from functools import partial

import numpy as np
import pytest

from fgbg.errors import InputError, ModelError
from fgbg.params import SegmentParams
from fgbg.pose import layout as L

from drawn_people import background, draw_person

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
segment_anything = pytest.importorskip("segment_anything")

from segment_anything.modeling import (ImageEncoderViT, MaskDecoder, PromptEncoder,  # noqa: E402
                                       Sam, TwoWayTransformer)

from fgbg.backends import resolve  # noqa: E402
from fgbg.backends.segment.sam import (MAX_BRIDGE, PROMPT_MARGIN, TORSO_PULL, SamSegmenter,  # noqa: E402
                               load_sam, mask_prompt, pose_prompt)

IMG = 64  # the tiny Sam's input size (SAM's is 1024)
PATCH = 8
DIM = 32  # prompt / transformer embedding size (SAM's is 256)
H, W = 120, 200  # frames: not SAM's size and not square, so the coordinate transform matters


def tiny_sam(checkpoint=None, seed=0, dim=DIM):
    """A Sam with the real architecture at toy size; `checkpoint` is accepted (and must be None)
    like segment-anything's registry builders."""
    assert checkpoint is None
    emb = IMG // PATCH
    torch.manual_seed(seed)
    return Sam(
        image_encoder=ImageEncoderViT(
            img_size=IMG, patch_size=PATCH, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2,
            out_chans=dim, qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True, window_size=4, global_attn_indexes=(1,)),
        prompt_encoder=PromptEncoder(embed_dim=dim, image_embedding_size=(emb, emb),
                                     input_image_size=(IMG, IMG), mask_in_chans=4),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=dim, mlp_dim=64, num_heads=2),
            transformer_dim=dim, iou_head_depth=2, iou_head_hidden_dim=32),
    ).eval()


def pose_of(joints, n=1):
    """{coco index: (x, y)} -> keypoints (n, 133, 2), scores (n, 133) with those points at 0.9."""
    k = np.zeros((n, 133, 2), np.float32)
    s = np.zeros((n, 133), np.float32)
    for i, xy in joints.items():
        k[:, i], s[:, i] = xy, 0.9
    return k, s


@pytest.fixture(scope="module")
def scene():
    """Three 120x200 frames of one drawn person walking right -> frames, keypoints, scores."""
    frames, ks, ss = [], [], []
    for t in range(3):
        img = background(W, H, t)
        joints, _ = draw_person(img, 80 + 6 * t, 62, 12)
        k, s = pose_of(joints)
        frames.append(img), ks.append(k[0]), ss.append(s[0])
    return np.stack(frames), np.stack(ks), np.stack(ss)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny Sam's state dict saved as the official checkpoints are (a plain state dict)."""
    path = tmp_path_factory.mktemp("sam") / "tiny_sam.pth"
    torch.save(tiny_sam(seed=1).state_dict(), path)
    return path


class Spy:
    """Records SamPredictor calls on one segmenter (the real methods still run)."""

    def __init__(self, seg, monkeypatch):
        self.set_image, self.predict, self.encoded = [], [], []
        pred = seg.predictor
        real_set, real_predict = pred.set_image, pred.predict

        def set_image(image, image_format="RGB"):
            self.set_image.append((image.copy(), image_format))
            return real_set(image, image_format)

        def predict(**kw):
            self.predict.append(kw)
            return real_predict(**kw)

        monkeypatch.setattr(pred, "set_image", set_image)
        monkeypatch.setattr(pred, "predict", predict)
        # what reaches the model: the prompt encoder's inputs, in SAM input pixels
        seg.model.prompt_encoder.register_forward_pre_hook(
            lambda mod, args, kwargs: self.encoded.append(kwargs), with_kwargs=True)


def expected_points(joints):
    torso = [L.LEFT_SHOULDER, L.RIGHT_SHOULDER, L.LEFT_HIP, L.RIGHT_HIP]
    centre = np.mean([joints[i] for i in torso], 0)
    pts = [centre] + [np.add(joints[i], TORSO_PULL * (centre - joints[i])) for i in torso]
    return np.array(pts + [joints[L.NOSE]])


# ------------------------------------------------------------------------------------- prompts


def test_prompts_from_the_pose_reach_sam_in_its_input_coordinates(scene, monkeypatch):
    frames, kps, scores = scene
    seg = SamSegmenter(SegmentParams(), model=tiny_sam())
    spy = Spy(seg, monkeypatch)
    seg.segment(frames[:1], kps[:1], scores[:1])

    # frame pixels, at SamPredictor.predict
    joints = {i: kps[0, i] for i in np.nonzero(scores[0])[0]}
    call = spy.predict[0]
    np.testing.assert_allclose(call["point_coords"], expected_points(joints), atol=1e-4)
    assert call["point_labels"].tolist() == [1] * 6 and call["multimask_output"] is False
    pts = np.array(list(joints.values()))
    lo, hi = pts.min(0), pts.max(0)
    grow = PROMPT_MARGIN * (hi - lo)
    np.testing.assert_allclose(call["box"], [*(lo - grow), *(hi + grow)], atol=1e-4)
    # the box sits on the drawn person: the keypoints inside, and not the whole frame
    x0, y0, x1, y1 = call["box"]
    assert x0 > 0 and y0 > 0 and x1 < W - 1 and y1 < H - 1

    # SAM input pixels, at the prompt encoder: the frame is resized to 64 x 38 (long side 64)
    sx, sy = 64 / W, 38 / H
    enc = spy.encoded[0]
    coords, labels = enc["points"]
    np.testing.assert_allclose(coords[0].numpy(), call["point_coords"] * [sx, sy], atol=1e-3)
    assert labels[0].tolist() == [1] * 6
    np.testing.assert_allclose(enc["boxes"].numpy().reshape(4), call["box"] * [sx, sy, sx, sy], atol=1e-3)
    assert enc["masks"] is None


def test_pose_prompt_rules():
    joints = {L.LEFT_SHOULDER: (60, 40), L.RIGHT_SHOULDER: (40, 40), L.LEFT_HIP: (58, 80),
              L.RIGHT_HIP: (42, 80), L.LEFT_KNEE: (58, 100), L.NOSE: (50, 20)}
    k, s = pose_of(joints)
    p = pose_prompt(k[0], s[0], (H, W))
    assert len(p.points) == 6 and (p.labels == 1).all()
    # four body points are too few: no person
    s4 = s.copy()
    s4[0, [L.NOSE, L.LEFT_KNEE]] = 0
    assert pose_prompt(k[0], s4[0], (H, W)) is None
    # the threshold is inclusive, like the mediapipe segmenter's
    assert pose_prompt(k[0], np.where(s[0] > 0, 0.3, 0), (H, W), min_score=0.3) is not None
    assert pose_prompt(k[0], np.where(s[0] > 0, 0.29, 0), (H, W), min_score=0.3) is None
    # no nose: one point fewer; points outside the frame are dropped; the box stays in the frame
    k2, s2 = k.copy(), s.copy()
    s2[0, L.NOSE] = 0
    assert len(pose_prompt(k2[0], s2[0], (H, W)).points) == 5
    k2[0, L.LEFT_SHOULDER] = (250, 40)
    p2 = pose_prompt(k2[0], s2[0], (H, W))
    assert len(p2.points) == 4 and p2.box[2] == W - 1
    # the clip box is the keypoint box grown by box_margin
    p3 = pose_prompt(k[0], s[0], (H, W), box_margin=0.5)
    assert p3.clip.tolist() == [30, 0, 70, 120 - 1]


def test_mask_prompt_is_the_mask_box():
    m = np.zeros((H, W), bool)
    m[20:61, 50:91] = True
    p = mask_prompt(m, box_margin=0.25)
    np.testing.assert_allclose(p.box, [46, 16, 94, 64])
    assert len(p.points) == 0 and p.clip.tolist() == [40, 10, 100, 70]
    assert mask_prompt(np.zeros((H, W), bool)) is None


# ------------------------------------------------------------------------------------- running


def test_one_image_embedding_per_frame_and_bridging(scene, monkeypatch):
    frames, kps, scores = scene
    seg = SamSegmenter(SegmentParams(), model=tiny_sam())
    spy = Spy(seg, monkeypatch)
    # frame 1 has no pose: prompted from frame 0's mask (its box, no points)
    lost = scores.copy()
    lost[1] = 0
    masks = seg.segment(frames, kps, lost)
    assert len(spy.set_image) == 3 and len(spy.predict) == 3
    for (img, fmt), frame in zip(spy.set_image, frames):
        assert fmt == "RGB" and np.array_equal(img, frame)
    assert spy.predict[1]["point_coords"] is None
    assert masks[0].any()  # (these random weights do find something in frame 0)
    np.testing.assert_allclose(spy.predict[1]["box"], mask_prompt(masks[0]).box, atol=1e-4)
    assert masks.shape == (3, H, W) and masks.dtype == bool

    # no pose and no previous mask: empty masks, nothing encoded
    seg.reset()
    spy.set_image.clear()
    empty = seg.segment(frames, kps, np.zeros_like(scores))
    assert not empty.any() and spy.set_image == []


def test_bridging_stops_after_max_bridge_frames(scene, monkeypatch):
    frames, kps, scores = scene
    seg = SamSegmenter(SegmentParams(), model=tiny_sam())
    spy = Spy(seg, monkeypatch)
    full = np.ones((H, W), bool)
    monkeypatch.setattr(seg, "predict", lambda frame, p: full.copy())  # a model that finds all
    n = MAX_BRIDGE + 3
    many = np.repeat(frames[:1], n, 0)
    sc = np.zeros((n, 133), np.float32)
    sc[0] = scores[0]
    masks = seg.segment(many, np.repeat(kps[:1], n, 0), sc)
    assert masks[:MAX_BRIDGE + 1].all(axis=(1, 2)).all() and not masks[MAX_BRIDGE + 1:].any()
    assert spy.set_image == []  # predict was replaced


def test_masks_are_cut_to_the_grown_keypoint_box(scene, monkeypatch):
    frames, kps, scores = scene
    seg = SamSegmenter(SegmentParams(box_margin=0.0), model=tiny_sam())
    monkeypatch.setattr(seg.predictor, "predict",
                        lambda **kw: (np.ones((1, H, W), bool), np.ones(1), None))
    mask = seg.segment(frames[:1], kps[:1], scores[:1])[0]
    pts = kps[0][scores[0] > 0]
    ys, xs = np.nonzero(mask)
    assert xs.min() == np.floor(pts[:, 0].min()) and xs.max() == np.ceil(pts[:, 0].max())
    assert ys.min() == np.floor(pts[:, 1].min()) and ys.max() == np.ceil(pts[:, 1].max())


def test_bad_inputs():
    seg = SamSegmenter(SegmentParams(), model=tiny_sam())
    with pytest.raises(ValueError):
        seg.segment(np.zeros((2, 8, 8, 3), np.float32), np.zeros((2, 133, 2)), np.zeros((2, 133)))
    with pytest.raises(ValueError):
        seg.segment(np.zeros((2, 8, 8, 3), np.uint8), np.zeros((1, 133, 2)), np.zeros((2, 133)))
    assert seg.segment(np.zeros((0, 8, 8, 3), np.uint8), np.zeros((0, 133, 2)),
                       np.zeros((0, 133))).shape == (0, 8, 8)
    with pytest.raises(InputError):
        SamSegmenter(SegmentParams(sam_variant="vit_x"), model=tiny_sam())


# ------------------------------------------------------------------------------------- loading


def test_missing_weights_name_the_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("FGBG_MODELS", str(tmp_path / "empty"))
    monkeypatch.delenv("FGBG_LOCK", raising=False)
    with pytest.raises(ModelError) as err:
        SamSegmenter(SegmentParams())
    assert err.value.exit_code == 3 and "fgbg models fetch sam-vit-b" in err.value.hint
    with pytest.raises(ModelError) as err:
        SamSegmenter(SegmentParams(sam_variant="vit_h"))
    assert "fgbg models fetch sam-vit-h" in err.value.hint


def test_checkpoint_loads_through_the_real_loader(checkpoint):
    """torch.load(weights_only=True) + strict load into what the builder made; the result equals
    the saved model, not the builder's own random init (seed 0 vs 1)."""
    seg = SamSegmenter(SegmentParams(), checkpoint=checkpoint, builder=tiny_sam)
    saved = torch.load(checkpoint, weights_only=True)
    got = seg.model.state_dict()
    assert set(got) == set(saved)
    assert all(torch.equal(got[k], saved[k]) for k in saved)
    assert not seg.model.training
    # the builder's random init left the caller's RNG alone
    torch.manual_seed(5)
    before = torch.random.get_rng_state()
    load_sam("vit_b", checkpoint, builder=tiny_sam)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_real_builder_is_segment_anythings_registry(checkpoint, monkeypatch):
    """Without a builder the architecture comes from sam_model_registry[variant] (swapped here
    for the tiny one, so nothing full-size is built)."""
    seen = []
    monkeypatch.setitem(segment_anything.sam_model_registry, "vit_l",
                        lambda checkpoint=None: seen.append(checkpoint) or tiny_sam())
    load_sam("vit_l", checkpoint)
    assert seen == [None]  # the registry never loads the file itself (we do, weights_only)


def test_mismatched_weights_are_a_model_error(checkpoint, tmp_path):
    state = torch.load(checkpoint, weights_only=True)
    dropped = dict(state)
    del dropped["mask_decoder.iou_token.weight"]
    dropped["extra.weight"] = torch.zeros(1)
    bad = tmp_path / "bad.pth"
    torch.save(dropped, bad)
    with pytest.raises(ModelError) as err:
        load_sam("vit_b", bad, builder=tiny_sam)
    assert "mask_decoder.iou_token.weight" in err.value.cause and "extra.weight" in err.value.cause
    assert "--sam-variant vit_b" in err.value.hint

    other = tmp_path / "other.pth"  # same keys, other sizes (another variant's file)
    torch.save(tiny_sam(dim=16).state_dict(), other)
    with pytest.raises(ModelError) as err:
        load_sam("vit_b", other, builder=tiny_sam)
    assert "size mismatch" in err.value.cause

    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError) as err:
        load_sam("vit_b", junk, builder=tiny_sam)
    assert "fgbg models fetch sam-vit-b" in err.value.hint


# ------------------------------------------------------------------------------------- registry


def _store(tmp_path, checkpoint, monkeypatch):
    """A model store holding sam-vit-b (the tiny checkpoint, verified by a lock that pins its
    sha256) and a lock that also lists sam-vit-l (absent)."""
    data = checkpoint.read_bytes()
    models = tmp_path / "models"
    (models / "sam").mkdir(parents=True)
    (models / "sam" / "sam_vit_b_01ec64.pth").write_bytes(data)
    entries = []
    for name, fname, size, sha in (
            ("sam-vit-b", "sam_vit_b_01ec64.pth", len(data), hashlib.sha256(data).hexdigest()),
            ("sam-vit-l", "sam_vit_l_0b3195.pth", 1249524607,
             "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622")):
        entries.append(f"""[{name}]
kind = "url"
url = "https://dl.fbaipublicfiles.com/segment_anything/{fname}"
revision = ""
filename = "{fname}"
size = {size}
sha256 = "{sha}"
licence = "Apache-2.0"
backend = "sam"
role = "required"
file = "sam/{fname}"
unverified = []
""")
    lock = tmp_path / "models.lock"
    lock.write_text("lock_version = 1\n\n" + "\n".join(entries))
    monkeypatch.setenv("FGBG_MODELS", str(models))
    monkeypatch.setenv("FGBG_LOCK", str(lock))
    return hashlib.sha256(data).hexdigest()


def test_auto_prefers_sam_when_the_variants_weights_are_present(tmp_path, checkpoint, monkeypatch):
    sha = _store(tmp_path, checkpoint, monkeypatch)
    assert resolve("segment", "auto", SegmentParams()) == ("sam", {"sam-vit-b": sha})
    assert resolve("segment", "sam", SegmentParams()) == ("sam", {"sam-vit-b": sha})
    # another variant is another artifact: absent, so auto falls back, and asking fails
    assert resolve("segment", "auto", SegmentParams(sam_variant="vit_l")) == ("mediapipe", {})
    with pytest.raises(ModelError) as err:
        resolve("segment", "sam", SegmentParams(sam_variant="vit_l"))
    assert "fgbg models fetch sam-vit-l" in err.value.hint
    # a corrupt file is not taken by auto
    (tmp_path / "models" / "sam" / "sam_vit_b_01ec64.pth").write_bytes(b"x" * 10)
    assert resolve("segment", "auto", SegmentParams())[0] == "mediapipe"


def test_auto_without_weights_is_mediapipe(tmp_path, monkeypatch):
    monkeypatch.setenv("FGBG_MODELS", str(tmp_path / "empty"))
    monkeypatch.delenv("FGBG_LOCK", raising=False)
    assert resolve("segment", "auto", SegmentParams()) == ("mediapipe", {})
    assert resolve("segment", "auto") == ("mediapipe", {})  # callers without params
    with pytest.raises(ModelError) as err:
        resolve("segment", "sam", SegmentParams())
    assert "fgbg models fetch sam-vit-b" in err.value.hint


def test_segment_stage_with_sam_from_the_store(sample, tmp_path, checkpoint, monkeypatch):
    """The segment stage end to end on (the start of) the built-in sample: auto resolves to sam, the registry's
    builder (swapped for the tiny one) gets the store's checkpoint, masks come out per frame; the
    variant is part of the cache key."""
    pytest.importorskip("mediapipe")  # the pose stage's weight-free backend
    from fgbg.report import Reporter
    from fgbg.stages import segment as segment_stage
    from fgbg.stages.base import Job
    from fgbg.video import probe
    from fgbg.workdir import Workdir

    sha = _store(tmp_path, checkpoint, monkeypatch)
    monkeypatch.setitem(segment_anything.sam_model_registry, "vit_b", tiny_sam)
    calls = []
    real = SamSegmenter.predict
    monkeypatch.setattr(SamSegmenter, "predict",
                        lambda self, frame, p: calls.append(frame.shape) or real(self, frame, p))
    from fgbg.video import read_frames, write_video

    clip = tmp_path / "clip.mp4"  # the sample's first 10 frames: enough to check the wiring
    write_video(clip, next(read_frames(probe(sample.driving), chunk=10)), 24)
    info = probe(clip)
    job = Job(video=info, workdir=Workdir(tmp_path / "wd"), device="cpu",
              report=Reporter(quiet=True))
    with job.workdir:
        rec = segment_stage.record(job)
        masks = segment_stage.run(job)
    assert rec.meta["backend"] == "sam"
    arr = masks.read(0, len(masks))
    assert arr.shape == (info.num_frames, info.height, info.width) and arr.dtype == np.uint8
    assert set(np.unique(arr)) <= {0, 1}
    assert calls and all(s == (info.height, info.width, 3) for s in calls)

    job_l = Job(video=info, workdir=job.workdir, device="cpu", report=Reporter(quiet=True),
                segment=SegmentParams(backend="sam", sam_variant="vit_l"))
    with pytest.raises(ModelError) as err:
        with job_l.workdir:
            segment_stage.record(job_l)
    assert "sam-vit-l" in err.value.hint
    assert resolve("segment", "auto", job.segment)[1] == {"sam-vit-b": sha}
