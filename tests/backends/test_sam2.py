"""sam2 segment backend on the real SAM 2.1 video predictor (sam2 1.1.0), built from the package's
own hiera_t Hydra config with random weights at a reduced size (256 px input; fewer Hiera blocks,
one memory-attention layer, one fuser layer: the same classes, 16.7 M parameters). Random
weights give random masks, so these tests check the wiring: prompts and their coordinates,
propagation over every frame, re-prompting where mask and pose disagree (the disagreement is
forced by replacing the propagated masks), chunks carrying the last mask, loading, the registry
and the stage, not mask quality. The video is the built-in procedural sample with its exact
keypoints."""

import hashlib

import numpy as np
import pytest

from fgbg.errors import InputError, ModelError
from fgbg.params import SegmentParams

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
pytest.importorskip("sam2.build_sam")

from sam2.build_sam import build_sam2_video_predictor  # noqa: E402

from fgbg.backends import resolve  # noqa: E402
from fgbg.backends.segment import sam2 as sam2_video  # noqa: E402
from fgbg.backends.segment.sam import MAX_BRIDGE, Prompt, mask_prompt, pose_prompt  # noqa: E402
from fgbg.backends.segment.sam2 import (MIN_BOX_IOU, OVERRIDES, Sam2Segmenter, box_iou,  # noqa: E402
                                      disagrees, load_sam2)

SIZE = 256  # the small predictor's square input (SAM 2's is 1024)
SMALL = ("++model.image_size=256",
         "++model.image_encoder.trunk.stages=[1,1,2,1]",
         "++model.image_encoder.trunk.global_att_blocks=[3]",
         "++model.memory_attention.num_layers=1",
         "++model.memory_attention.layer.dim_feedforward=256",
         "++model.memory_encoder.fuser.num_layers=1")
CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
W, H = 128, 96  # frames: not the model's size and not square, so the coordinate mapping matters
N = 8


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a busy 2-core machine two threads wait on each other (measured 10-20x
    slower here), and these models are small."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_predictor(seed=0):
    torch.manual_seed(seed)
    return build_sam2_video_predictor(CONFIG, None, device="cpu",
                                      hydra_overrides_extra=[*OVERRIDES, *SMALL])


@pytest.fixture(scope="module")
def predictor():
    return small_predictor()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """8 frames of the built-in sample at 128 x 96 -> frames, keypoints, scores, true masks."""
    from fgbg.sample import make_sample
    from fgbg.video import probe, read_frames

    paths = make_sample(tmp_path_factory.mktemp("sample2"), preset="dance", seed=0, num_frames=N,
                        width=W, height=H, audio=False)
    truth = np.load(paths.truth)
    frames = next(read_frames(probe(paths.driving), chunk=N))
    return frames, truth["keypoints"], truth["scores"], truth["masks"].astype(bool)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """The small predictor's weights saved as Meta ships SAM 2's: {"model": state dict}."""
    path = tmp_path_factory.mktemp("sam2") / "small_sam2.pt"
    torch.save({"model": small_predictor(seed=1).state_dict()}, path)
    return path


class Spy:
    """Records what one segmenter's predictor is asked (the real methods still run), and can
    replace the masks propagation yields: `force(t) -> (H, W) bool or None` (None: keep SAM 2's)."""

    def __init__(self, seg, monkeypatch, force=None):
        self.prompts, self.masks, self.starts, self.yielded, self.states = [], [], [], [], []
        self.encoded = []
        pred = seg.predictor
        real_points, real_mask = pred.add_new_points_or_box, pred.add_new_mask
        real_propagate = pred.propagate_in_video

        def add_new_points_or_box(state, frame_idx, obj_id, **kw):
            out = real_points(state, frame_idx, obj_id, **kw)
            self.prompts.append((frame_idx, kw, (out[2][0, 0] > 0).numpy()))
            return out

        def add_new_mask(state, frame_idx, obj_id, mask):
            self.masks.append((frame_idx, np.array(mask), state))
            return real_mask(state, frame_idx, obj_id, mask)

        def propagate_in_video(state, start_frame_idx=None, **kw):
            self.starts.append(start_frame_idx)
            if not self.states or self.states[-1] is not state:
                self.states.append(state)
            for t, ids, logits in real_propagate(state, start_frame_idx=start_frame_idx, **kw):
                self.yielded.append(t)
                forced = force(t) if force is not None else None
                if forced is not None:
                    logits = torch.where(torch.as_tensor(forced)[None, None], 10.0, -10.0)
                yield t, ids, logits

        monkeypatch.setattr(pred, "add_new_points_or_box", add_new_points_or_box)
        monkeypatch.setattr(pred, "add_new_mask", add_new_mask)
        monkeypatch.setattr(pred, "propagate_in_video", propagate_in_video)
        # what reaches the model: the prompt encoder's inputs, in model input pixels
        self._hook = pred.sam_prompt_encoder.register_forward_pre_hook(
            lambda mod, args, kwargs: self.encoded.append(kwargs), with_kwargs=True)

    def close(self):
        self._hook.remove()


@pytest.fixture
def spy_on(monkeypatch):
    made = []

    def make(seg, force=None):
        made.append(Spy(seg, monkeypatch, force))
        return made[-1]

    yield make
    for s in made:
        s.close()


# ------------------------------------------------------------------------------------- prompting


def test_pose_prompts_the_first_frame_in_the_model_input_coordinates(predictor, clip, spy_on,
                                                                      monkeypatch):
    frames, kps, scores, _ = clip
    monkeypatch.setattr(sam2_video, "disagrees", lambda mask, p: False)  # no re-prompts here
    seg = Sam2Segmenter(SegmentParams(), model=predictor)
    spy = spy_on(seg)
    masks = seg.segment(frames, kps, scores)

    assert masks.shape == (N, H, W) and masks.dtype == bool
    # one prompt, on frame 0, in frame pixels: the sam backend's pose prompt
    p = pose_prompt(kps[0], scores[0], (H, W))
    assert len(spy.prompts) == 1 and spy.prompts[0][0] == 0
    kw = spy.prompts[0][1]
    np.testing.assert_allclose(kw["box"], p.box, atol=1e-4)
    np.testing.assert_allclose(kw["points"], p.points, atol=1e-4)
    assert kw["labels"].tolist() == [1] * len(p.points) and len(p.points) >= 5
    # at the prompt encoder: box corners (labels 2, 3) then the points, scaled to 256 x 256
    coords, labels = spy.encoded[0]["points"]
    scale = [SIZE / W, SIZE / H]
    expect = np.concatenate([p.box.reshape(2, 2), p.points]) * scale
    np.testing.assert_allclose(coords[0].numpy(), expect, atol=1e-3)
    assert labels[0].tolist() == [2, 3] + [1] * len(p.points)
    # one propagation over every frame, each once; the state holds the frames, preprocessed
    assert spy.starts == [0] and spy.yielded == list(range(N))
    state = spy.states[0]
    assert state["num_frames"] == N and (state["video_height"], state["video_width"]) == (H, W)
    assert tuple(state["images"].shape) == (N, 3, SIZE, SIZE)
    # the output is SAM 2's mask clipped to the grown keypoint box
    x0, y0, x1, y1 = p.clip
    outside = np.ones((H, W), bool)
    outside[y0:y1 + 1, x0:x1 + 1] = False
    assert not masks[0][outside].any()
    assert seg.reprompted == []


def test_state_is_what_init_state_makes_from_a_file(predictor, clip, tmp_path):
    """new_state (frames in memory) against sam2's own init_state on the same frames as JPEG
    files: same keys and values; the images differ only by the JPEG compression."""
    from PIL import Image

    frames = clip[0][:2]
    for i, f in enumerate(frames):
        Image.fromarray(f).save(tmp_path / f"{i}.jpg", quality=100)
    seg = Sam2Segmenter(SegmentParams(), model=predictor)
    with sam2_video._quiet_progress():
        real = predictor.init_state(str(tmp_path))
    ours = seg.new_state(frames)
    assert set(ours) == set(real)
    for k in real:
        if k == "images":
            assert ours[k].shape == real[k].shape and ours[k].dtype == real[k].dtype
            assert (ours[k] - real[k]).abs().mean() < 0.05  # normalised units
        elif k != "cached_features":  # init_state warms up frame 0's features; ours leaves it
            assert ours[k] == real[k] and type(ours[k]) is type(real[k]), k


# ------------------------------------------------------------------------------------- re-prompting


def test_disagreement_rules():
    p = Prompt(box=np.array([40.0, 20, 80, 90]), points=np.array([[60.0, 50], [60, 30], [55, 70]]),
               labels=np.ones(3, np.int64), clip=np.array([30, 10, 90, 95]))
    good = np.zeros((H, W), bool)
    good[22:89, 42:79] = True
    assert not disagrees(good, p)
    assert disagrees(np.zeros((H, W), bool), p)  # empty
    hole = good.copy()
    hole[25:75, 50:70] = False  # two of the three points off the mask
    assert disagrees(hole, p)
    leak = good.copy()
    leak[:, :] = True  # the whole frame: points on it, but its box is far bigger
    assert box_iou(np.array([0, 0, W - 1, H - 1.0]), p.box) < MIN_BOX_IOU and disagrees(leak, p)
    part = np.zeros((H, W), bool)
    part[28:72, 52:68] = True  # all the points on it, but only a part of the person
    assert part[[50, 30, 70], [60, 60, 55]].all() and disagrees(part, p)
    no_points = Prompt(p.box, np.zeros((0, 2)), np.zeros(0, np.int64), p.clip)
    assert not disagrees(good, no_points)
    assert box_iou(np.array([0, 0, 9, 9.0]), np.array([0, 0, 9, 9.0])) == 1.0
    assert box_iou(np.array([0, 0, 9, 9.0]), np.array([20, 20, 29, 29.0])) == 0.0


def test_a_mask_that_misses_the_pose_is_re_prompted(predictor, clip, spy_on):
    """Propagation yields the true masks, except frame 3: a block in the corner, off the person.
    Frame 3 is re-prompted from its pose, becomes a conditioning frame, and propagation resumes
    at frame 4; every frame comes out once."""
    frames, kps, scores, truth = clip
    corner = np.zeros((H, W), bool)
    corner[:12, :12] = True
    seg = Sam2Segmenter(SegmentParams(), model=predictor)
    spy = spy_on(seg, force=lambda t: corner if t == 3 else truth[t])
    assert not any(disagrees(truth[t], pose_prompt(kps[t], scores[t], (H, W))) for t in range(N))
    masks = seg.segment(frames, kps, scores)

    assert seg.reprompted == [3]
    assert [t for t, *_ in spy.prompts] == [0, 3]
    p3 = pose_prompt(kps[3], scores[3], (H, W))
    np.testing.assert_allclose(spy.prompts[1][1]["box"], p3.box, atol=1e-4)
    np.testing.assert_allclose(spy.prompts[1][1]["points"], p3.points, atol=1e-4)
    assert spy.starts == [0, 4]
    assert spy.yielded == list(range(N))
    cond = spy.states[0]["output_dict_per_obj"][0]["cond_frame_outputs"]
    assert sorted(cond) == [0, 3]
    assert masks.shape == (N, H, W)
    # frame 3 is the re-prompt's mask (clipped), not the forced one
    assert np.array_equal(masks[3], sam2_video._clip(spy.prompts[1][2], p3.clip))
    for t in (1, 2, 4, 5, 6, 7):  # the forced true masks, clipped to the grown keypoint box
        x0, y0, x1, y1 = pose_prompt(kps[t], scores[t], (H, W)).clip
        expect = np.zeros((H, W), bool)
        expect[y0:y1 + 1, x0:x1 + 1] = truth[t][y0:y1 + 1, x0:x1 + 1]
        assert np.array_equal(masks[t], expect)


# ------------------------------------------------------------------------------------- chunks


def test_the_next_chunk_starts_from_the_last_mask(predictor, clip, spy_on):
    frames, kps, scores, truth = clip
    seg = Sam2Segmenter(SegmentParams(), model=predictor)
    base = [0]  # the video frame at the state's frame 0 (the second chunk's is the carried 3)
    spy = spy_on(seg, force=lambda t: truth[base[0] + t])
    first = seg.segment(frames[:4], kps[:4], scores[:4])
    base[0] = 3
    assert spy.masks == [] and [t for t, *_ in spy.prompts] == [0]
    second = seg.segment(frames[4:], kps[4:], scores[4:])
    assert second.shape == (4, H, W) and first[-1].any()
    # the carried frame (frame 3) in front of the chunk, prompted with frame 3's mask; no pose
    # prompt in the second chunk
    (t0, mask, state), = spy.masks
    assert t0 == 0 and np.array_equal(mask, first[-1])
    assert state["num_frames"] == 5 and len(spy.prompts) == 1
    np.testing.assert_allclose(state["images"][0].numpy(), seg._images(frames[3:4])[0].numpy())
    np.testing.assert_allclose(state["images"][1].numpy(), seg._images(frames[4:5])[0].numpy())
    assert spy.yielded[-5:] == [0, 1, 2, 3, 4]  # all five, the carried one dropped from the output

    # a new video starts from its pose again
    seg.reset()
    base[0] = 4
    seg.segment(frames[4:6], kps[4:6], scores[4:6])
    assert len(spy.masks) == 1 and [t for t, *_ in spy.prompts] == [0, 0]


def test_frames_before_the_first_person_are_empty_and_unencoded(predictor, clip, spy_on):
    frames, kps, scores, _ = clip
    seg = Sam2Segmenter(SegmentParams(), model=predictor)
    spy = spy_on(seg)
    lost = scores[:4].copy()
    lost[:2] = 0
    masks = seg.segment(frames[:4], kps[:4], lost)
    assert not masks[:2].any()
    assert spy.states[0]["num_frames"] == 2 and spy.prompts[0][0] == 0
    np.testing.assert_allclose(spy.prompts[0][1]["box"], pose_prompt(kps[2], lost[2], (H, W)).box)

    # no person at all and nothing to follow: nothing runs
    seg.reset()
    n_states = len(spy.states)
    empty = seg.segment(frames[:3], kps[:3], np.zeros_like(scores[:3]))
    assert not empty.any() and len(spy.states) == n_states


def test_frames_without_a_pose_are_bridged_for_max_bridge_frames(predictor):
    seg = Sam2Segmenter(SegmentParams(), model=predictor)
    full = np.ones((H, W), bool)
    p = Prompt(np.array([40.0, 20, 80, 90]), np.zeros((0, 2)), np.zeros(0, np.int64),
               np.array([30, 10, 90, 95]))
    out = [seg._output(full, p)]
    for _ in range(MAX_BRIDGE + 2):
        out.append(seg._output(full, None))
    assert all(m.any() for m in out[:MAX_BRIDGE + 1])
    assert not any(m.any() for m in out[MAX_BRIDGE + 1:])
    # each bridged mask is cut to the previous one's box grown by box_margin
    np.testing.assert_array_equal(out[1], sam2_video._clip(full, mask_prompt(out[0]).clip))
    assert seg._output(full, p).any()  # the pose is back


def test_bad_inputs(predictor):
    seg = Sam2Segmenter(SegmentParams(), model=predictor)
    with pytest.raises(ValueError):
        seg.segment(np.zeros((2, 8, 8, 3), np.float32), np.zeros((2, 133, 2)), np.zeros((2, 133)))
    with pytest.raises(ValueError):
        seg.segment(np.zeros((2, 8, 8, 3), np.uint8), np.zeros((1, 133, 2)), np.zeros((2, 133)))
    assert seg.segment(np.zeros((0, 8, 8, 3), np.uint8), np.zeros((0, 133, 2)),
                       np.zeros((0, 133))).shape == (0, 8, 8)
    with pytest.raises(InputError):
        Sam2Segmenter(SegmentParams(sam2_variant="huge"), model=predictor)
    from fgbg.cli.common import _seg_params

    with pytest.raises(InputError) as err:
        _seg_params("auto", "vit_b", "huge")
    assert "--sam2-variant" in err.value.hint
    assert _seg_params("sam2", "vit_b", "large").sam2_variant == "large"
    seg.close()
    with pytest.raises(RuntimeError):
        seg.segment(np.zeros((1, 8, 8, 3), np.uint8), np.zeros((1, 133, 2)), np.zeros((1, 133)))


def test_the_variant_is_in_the_cache_key():
    from fgbg.stages.base import make_key

    keys = {make_key("segment", 1, SegmentParams(backend="sam2", sam2_variant=v), {}, {}, {})
            for v in sam2_video.VARIANTS}
    assert len(keys) == 4


# ------------------------------------------------------------------------------------- loading


def test_missing_weights_name_the_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("FGBG_MODELS", str(tmp_path / "empty"))
    monkeypatch.delenv("FGBG_LOCK", raising=False)
    with pytest.raises(ModelError) as err:
        Sam2Segmenter(SegmentParams())
    assert err.value.exit_code == 3 and "fgbg models fetch sam2.1-hiera-tiny" in err.value.hint
    with pytest.raises(ModelError) as err:
        Sam2Segmenter(SegmentParams(sam2_variant="base_plus"))
    assert "fgbg models fetch sam2.1-hiera-base-plus" in err.value.hint


def test_checkpoint_loads_through_the_real_loader(checkpoint):
    """sam2's config builds the architecture (no checkpoint); torch.load(weights_only=True) of
    the {"model": ...} file, strict load: the result equals the saved model, not the builder's
    own random init (seed 0 vs 1), and the caller's RNG is untouched."""
    torch.manual_seed(5)
    before = torch.random.get_rng_state()
    seg = Sam2Segmenter(SegmentParams(), checkpoint=checkpoint, overrides=SMALL)
    assert torch.equal(torch.random.get_rng_state(), before)
    saved = torch.load(checkpoint, weights_only=True)["model"]
    got = seg.predictor.state_dict()
    assert set(got) == set(saved) and all(torch.equal(got[k], saved[k]) for k in saved)
    assert not seg.predictor.training and seg.predictor.image_size == SIZE
    assert seg.predictor.add_all_frames_to_correct_as_cond and seg.predictor.fill_hole_area == 0
    assert type(seg.predictor).__name__ == "SAM2VideoPredictor"


def test_bad_checkpoints_are_model_errors(checkpoint, tmp_path):
    state = torch.load(checkpoint, weights_only=True)["model"]
    dropped = dict(state)
    del dropped["obj_ptr_proj.layers.0.weight"]
    dropped["extra.weight"] = torch.zeros(1)
    bad = tmp_path / "bad.pt"
    torch.save({"model": dropped}, bad)
    with pytest.raises(ModelError) as err:
        load_sam2("tiny", bad, overrides=SMALL)
    assert "obj_ptr_proj.layers.0.weight" in err.value.cause and "extra.weight" in err.value.cause
    assert "--sam2-variant tiny" in err.value.hint

    plain = tmp_path / "plain.pt"  # a bare state dict: not how SAM 2 checkpoints are stored
    torch.save({"a.weight": torch.zeros(1)}, plain)
    with pytest.raises(ModelError) as err:
        load_sam2("small", plain, overrides=SMALL)
    assert "not a SAM 2 checkpoint" in err.value.what and "a.weight" in err.value.cause
    assert "fgbg models fetch sam2.1-hiera-small" in err.value.hint

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError) as err:
        load_sam2("tiny", junk, overrides=SMALL)
    assert "fgbg models fetch sam2.1-hiera-tiny" in err.value.hint


# ------------------------------------------------------------------------------------- registry


def _entry(name, fname, size, sha, backend, folder, url):
    return f"""[{'"' + name + '"' if '.' in name else name}]
kind = "url"
url = "{url}/{fname}"
revision = ""
filename = "{fname}"
size = {size}
sha256 = "{sha}"
licence = "Apache-2.0"
backend = "{backend}"
role = "required"
file = "{folder}/{fname}"
unverified = []
"""


def _store(tmp_path, checkpoint, monkeypatch, with_sam=True):
    """A model store holding sam2.1-hiera-tiny (the small checkpoint, pinned by its sha256) and,
    with_sam, sam-vit-b (any bytes, pinned); the lock also lists sam2.1-hiera-small (absent)."""
    data = checkpoint.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    models = tmp_path / "models"
    (models / "sam2").mkdir(parents=True)
    (models / "sam2" / "sam2.1_hiera_tiny.pt").write_bytes(data)
    sam2_url = "https://dl.fbaipublicfiles.com/segment_anything_2/092824"
    entries = [_entry("sam2.1-hiera-tiny", "sam2.1_hiera_tiny.pt", len(data), sha, "sam2", "sam2",
                      sam2_url),
               _entry("sam2.1-hiera-small", "sam2.1_hiera_small.pt", 184416285,
                      "6d1aa6f30de5c92224f8172114de081d104bbd23dd9dc5c58996f0cad5dc4d38", "sam2",
                      "sam2", sam2_url)]
    if with_sam:
        other = b"sam vit_b stand-in"
        (models / "sam").mkdir()
        (models / "sam" / "sam_vit_b_01ec64.pth").write_bytes(other)
        entries.append(_entry("sam-vit-b", "sam_vit_b_01ec64.pth", len(other),
                              hashlib.sha256(other).hexdigest(), "sam", "sam",
                              "https://dl.fbaipublicfiles.com/segment_anything"))
    lock = tmp_path / "models.lock"
    lock.write_text("lock_version = 1\n\n" + "\n".join(entries))
    monkeypatch.setenv("FGBG_MODELS", str(models))
    monkeypatch.setenv("FGBG_LOCK", str(lock))
    return sha


def test_auto_prefers_sam2_over_sam(tmp_path, checkpoint, monkeypatch):
    sha = _store(tmp_path, checkpoint, monkeypatch)
    assert resolve("segment", "auto", SegmentParams()) == ("sam2", {"sam2.1-hiera-tiny": sha})
    assert resolve("segment", "sam2", SegmentParams()) == ("sam2", {"sam2.1-hiera-tiny": sha})
    assert resolve("segment", "auto") == ("sam2", {"sam2.1-hiera-tiny": sha})  # no params
    # another variant is another artifact: absent, so auto takes sam, and asking for it fails
    assert resolve("segment", "auto", SegmentParams(sam2_variant="small"))[0] == "sam"
    with pytest.raises(ModelError) as err:
        resolve("segment", "sam2", SegmentParams(sam2_variant="small"))
    assert "fgbg models fetch sam2.1-hiera-small" in err.value.hint
    # without the sam2 package auto passes it by
    monkeypatch.setattr(sam2_video, "_importable", lambda: False)
    assert resolve("segment", "auto", SegmentParams())[0] == "sam"
    monkeypatch.undo()
    # a corrupt file is not taken by auto
    sha = _store(tmp_path / "b", checkpoint, monkeypatch, with_sam=False)
    assert resolve("segment", "auto", SegmentParams())[0] == "sam2"
    (tmp_path / "b" / "models" / "sam2" / "sam2.1_hiera_tiny.pt").write_bytes(b"x" * 10)
    assert resolve("segment", "auto", SegmentParams())[0] == "mediapipe"


def test_segment_stage_with_sam2_from_the_store(sample, tmp_path, checkpoint, monkeypatch):
    """The segment stage end to end on the start of the built-in sample: auto resolves to sam2,
    the registry builds the predictor from sam2's config (made small here) and loads the store's
    checkpoint, masks come out per frame."""
    pytest.importorskip("mediapipe")  # the pose stage's weight-free backend
    from fgbg.report import Reporter
    from fgbg.stages import segment as segment_stage
    from fgbg.stages.base import Job
    from fgbg.video import probe, read_frames, write_video
    from fgbg.workdir import Workdir

    sha = _store(tmp_path, checkpoint, monkeypatch)
    monkeypatch.setattr(sam2_video, "OVERRIDES", OVERRIDES + SMALL)
    segmented, ran = [], []
    real, real_run = Sam2Segmenter.segment, Sam2Segmenter._run
    monkeypatch.setattr(Sam2Segmenter, "segment",
                        lambda self, f, k, s: segmented.append(len(f)) or real(self, f, k, s))
    monkeypatch.setattr(Sam2Segmenter, "_run",
                        lambda self, *a: ran.append(self.predictor.image_size)
                        or real_run(self, *a))
    clip = tmp_path / "clip.mp4"
    write_video(clip, next(read_frames(probe(sample.driving), chunk=6)), 24)
    info = probe(clip)
    job = Job(video=info, workdir=Workdir(tmp_path / "wd"), device="cpu",
              report=Reporter(quiet=True))
    with job.workdir:
        rec = segment_stage.record(job)
        masks = segment_stage.run(job)
    assert rec.meta["backend"] == "sam2"
    arr = masks.read(0, len(masks))
    assert arr.shape == (info.num_frames, info.height, info.width) and arr.dtype == np.uint8
    assert set(np.unique(arr)) <= {0, 1}
    assert sum(segmented) == info.num_frames
    assert ran == [SIZE]  # the pose found the person: SAM 2 (the small one) ran, in one chunk
    assert resolve("segment", "auto", job.segment)[1] == {"sam2.1-hiera-tiny": sha}
