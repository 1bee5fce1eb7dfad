"""The ComfyUI nodes (comfyui/): loaded as ComfyUI loads a custom-node folder, with stand-in
`comfy` and `folder_paths` modules (no real ComfyUI here: `comfyui` on PyPI has only a yanked
placeholder, and ComfyUI itself installs from its git repository), every node's declaration
checked, and the example workflow run on the built-in sample: warp, and the demo diffusion
model at 64 px with one step."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "comfyui"
WORKFLOW = PACKAGE / "workflows" / "fgbg_warp.json"
NAME = "fgbg_nodes_under_test"  # ComfyUI names the module after the folder's path


class ProgressBar:
    """comfy.utils.ProgressBar as the nodes use it."""

    made: list["ProgressBar"] = []

    def __init__(self, total, node_id=None):
        self.total, self.updates = total, []
        ProgressBar.made.append(self)

    def update_absolute(self, value, total=None, preview=None):
        self.updates.append((value, total))

    def update(self, value):
        self.updates.append((value, None))


class Interrupted(Exception):
    """comfy.model_management.InterruptProcessingException"""


def _stand_ins(tmp: Path) -> dict[str, types.ModuleType]:
    comfy = types.ModuleType("comfy")
    comfy.__path__ = []
    utils = types.ModuleType("comfy.utils")
    utils.ProgressBar = ProgressBar
    mm = types.ModuleType("comfy.model_management")
    mm.device = torch.device("cpu")
    mm.interrupted = False
    mm.get_torch_device = lambda: mm.device

    def throw_exception_if_processing_interrupted():
        if mm.interrupted:
            mm.interrupted = False
            raise Interrupted()

    mm.throw_exception_if_processing_interrupted = throw_exception_if_processing_interrupted
    comfy.utils, comfy.model_management = utils, mm
    fp = types.ModuleType("folder_paths")
    (tmp / "input").mkdir(exist_ok=True)
    (tmp / "output").mkdir(exist_ok=True)
    fp.get_input_directory = lambda: str(tmp / "input")
    fp.get_output_directory = lambda: str(tmp / "output")

    def get_save_image_path(prefix, output_dir, width=0, height=0):
        counter = 1 + len(list(Path(output_dir).glob(f"{prefix}_*")))
        return output_dir, prefix, counter, "", prefix

    fp.get_save_image_path = get_save_image_path
    return {"comfy": comfy, "comfy.utils": utils, "comfy.model_management": mm, "folder_paths": fp}


def _load_package():
    """What ComfyUI's nodes.load_custom_node does with a folder in custom_nodes/."""
    spec = importlib.util.spec_from_file_location(NAME, PACKAGE / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[NAME] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("comfy")
    with pytest.MonkeyPatch.context() as mp:
        for name, module in _stand_ins(tmp).items():
            mp.setitem(sys.modules, name, module)
        package = _load_package()
        yield types.SimpleNamespace(package=package, nodes=sys.modules[f"{NAME}.nodes"],
                                    hostmod=sys.modules[f"{NAME}.host"], tmp=tmp,
                                    mm=sys.modules["comfy.model_management"])
        for key in [k for k in sys.modules if k == NAME or k.startswith(NAME + ".")]:
            del sys.modules[key]


# ---- declarations -----------------------------------------------------------------------------
def test_every_node_declares_what_comfyui_reads(host):
    mappings = host.package.NODE_CLASS_MAPPINGS
    assert set(mappings) == set(host.package.NODE_DISPLAY_NAME_MAPPINGS)
    assert set(mappings) == {"FgbgLoadVideo", "FgbgLoadPipeline", "FgbgExtractPose", "FgbgSegment",
                             "FgbgTrackBackground", "FgbgGenerate", "FgbgSaveVideo"}
    for name, cls in mappings.items():
        spec = cls.INPUT_TYPES()
        assert set(spec) <= {"required", "optional", "hidden"} and spec["required"], name
        assert isinstance(cls.RETURN_TYPES, tuple) and all(isinstance(t, str) for t in cls.RETURN_TYPES)
        assert len(cls.RETURN_NAMES) == len(cls.RETURN_TYPES), name
        assert callable(getattr(cls, cls.FUNCTION)), name
        assert cls.CATEGORY == "fgbg" and cls.DESCRIPTION
        for group in ("required", "optional"):
            for inp, decl in spec.get(group, {}).items():
                kind, opts = decl[0], (decl[1] if len(decl) > 1 else {})
                assert isinstance(kind, (str, list)), (name, inp)
                if isinstance(kind, list):  # a menu: its default is one of its choices
                    assert opts.get("default", kind[0]) in kind, (name, inp)
                elif kind in ("INT", "FLOAT"):
                    assert opts["min"] <= opts["default"] <= opts["max"], (name, inp)
    assert mappings["FgbgSaveVideo"].OUTPUT_NODE is True
    assert mappings["FgbgExtractPose"].RETURN_TYPES == ("FGBG_POSE", "IMAGE")
    assert mappings["FgbgSegment"].RETURN_TYPES == ("MASK",)
    assert mappings["FgbgTrackBackground"].RETURN_TYPES == ("FGBG_TRACKS", "IMAGE")
    assert mappings["FgbgGenerate"].RETURN_TYPES == ("IMAGE",)
    # the backend menus are the library's registries
    from fgbg.backends import REGISTRY

    assert mappings["FgbgExtractPose"].INPUT_TYPES()["required"]["backend"][0] == ["auto", *REGISTRY["pose"]]


def test_loading_the_package_imports_nothing_heavy():
    code = ("import importlib.util, sys; "
            f"s = importlib.util.spec_from_file_location('fgbg_nodes', {str(PACKAGE / '__init__.py')!r}); "
            "m = importlib.util.module_from_spec(s); sys.modules['fgbg_nodes'] = m; s.loader.exec_module(m); "
            "print(len(m.NODE_CLASS_MAPPINGS), sorted(x for x in ('torch', 'cv2', 'mediapipe', 'diffusers') "
            "if x in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert r.stdout.strip() == "7 []", r.stderr


# ---- conversions and the host -----------------------------------------------------------------
def test_image_and_mask_layouts_round_trip(host, rng):
    n = host.nodes
    frames = rng.integers(0, 256, (3, 5, 7, 3), dtype=np.uint8)
    image = n.frames_to_image(frames)
    assert image.dtype == torch.float32 and image.shape == (3, 5, 7, 3)
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert np.array_equal(n.image_to_frames(image), frames)
    rgba = torch.cat([image, torch.ones(3, 5, 7, 1)], -1)
    assert np.array_equal(n.image_to_frames(rgba), frames)
    assert n.image_to_frames(image[0]).shape == (1, 5, 7, 3)
    masks = rng.random((3, 5, 7)) > 0.5
    mask = n.masks_to_mask(masks)
    assert mask.dtype == torch.float32 and mask.shape == (3, 5, 7)
    assert np.array_equal(n.mask_to_masks(mask), masks)
    with pytest.raises(n.FgbgNodeError, match="error:"):
        n.image_to_frames(torch.zeros(2, 3))


def test_device_and_progress_come_from_comfy(host, monkeypatch):
    h, mm = host.hostmod, host.mm
    assert h.device() == "cpu"
    monkeypatch.setattr(mm, "device", torch.device("cuda", 1))
    assert h.device() == "cuda:1"
    monkeypatch.setattr(mm, "device", torch.device("mps"))
    assert h.device() == "auto"  # fgbg runs on cpu or cuda: auto picks one
    monkeypatch.setitem(sys.modules, "comfy.model_management", None)
    assert h.device() == "auto"  # outside ComfyUI: fgbg's own choice
    monkeypatch.setitem(sys.modules, "comfy.model_management", mm)
    ProgressBar.made.clear()
    tick = h.progress()
    tick(1, 4)
    tick(4, 4)
    assert len(ProgressBar.made) == 1 and ProgressBar.made[0].total == 4
    assert ProgressBar.made[0].updates == [(1, 4), (4, 4)]
    mm.interrupted = True
    with pytest.raises(Interrupted):
        tick(2, 4)


def test_errors_read_error_cause_hint(host, tmp_path):
    n = host.nodes
    with pytest.raises(n.FgbgNodeError) as e:
        n.FgbgLoadPipeline().load("folder", str(tmp_path / "nothing"), "auto")
    text = str(e.value)
    assert text.startswith("error: no diffusion pipeline") and "\nhint: " in text
    with pytest.raises(n.FgbgNodeError, match="error: no person found in the frames"):
        n.FgbgExtractPose().extract(torch.full((4, 128, 128, 3), 0.5), "auto")
    with pytest.raises(n.FgbgNodeError, match="cannot read video|does not exist|not found"):
        n.FgbgLoadVideo().load("missing.mp4", 0)


# ---- the example workflow on the built-in sample ---------------------------------------------
class LoadImage:
    """ComfyUI's core LoadImage, as far as the workflow uses it: a picture of the input folder ->
    (IMAGE (1, H, W, 3), MASK)."""

    FUNCTION = "load_image"

    def __init__(self, input_dir: Path, nodes):
        self.input_dir, self.nodes = input_dir, nodes

    def load_image(self, image):
        from fgbg.video import read_image

        picture = read_image(self.input_dir / image)
        return self.nodes.frames_to_image(picture[None]), torch.zeros(1, *picture.shape[:2])


def run_workflow(graph: dict, host, extra: dict | None = None) -> dict:
    """A small API-format executor: each node once, inputs from [node, output] links, the node's
    declared required inputs checked (present, menu values offered)."""
    mappings = host.package.NODE_CLASS_MAPPINGS
    results: dict[str, tuple] = {}

    def value(v):
        if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str):
            return run(v[0])[v[1]]
        return v

    def run(node_id: str):
        if node_id in results:
            return results[node_id]
        node = graph[node_id]
        kind = node["class_type"]
        inputs = {k: value(v) for k, v in node["inputs"].items()}
        if kind == "LoadImage":
            out = LoadImage(host.tmp / "input", host.nodes).load_image(**inputs)
        else:
            cls = mappings[kind]
            spec = cls.INPUT_TYPES()
            for inp, decl in spec["required"].items():
                assert inp in inputs, (kind, inp)
                if isinstance(decl[0], list):
                    assert inputs[inp] in decl[0], (kind, inp, inputs[inp])
            assert set(inputs) <= set(spec["required"]) | set(spec.get("optional", {})), kind
            out = getattr(cls(), cls.FUNCTION)(**inputs)
            if isinstance(out, dict):
                out = out["result"]
            assert len(out) == len(cls.RETURN_TYPES), kind
        results[node_id] = tuple(out)
        return results[node_id]

    for node_id in graph:
        run(node_id)
    return results


def _assert_image(image, shape):
    assert isinstance(image, torch.Tensor) and image.dtype == torch.float32
    assert tuple(image.shape) == shape, image.shape
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0 and torch.isfinite(image).all()


@pytest.fixture(scope="module")
def warp_run(host, sample):
    shutil.copyfile(sample.driving, host.tmp / "input" / "driving.mp4")
    shutil.copyfile(sample.ref, host.tmp / "input" / "person.png")
    ProgressBar.made.clear()
    graph = json.loads(WORKFLOW.read_text())
    return run_workflow(graph, host), list(ProgressBar.made)


def test_warp_workflow_on_the_sample(host, sample, warp_run):
    from conftest import SAMPLE_FRAMES, SAMPLE_SIZE
    from fgbg.video import probe

    out, bars = warp_run
    t, s = SAMPLE_FRAMES, SAMPLE_SIZE
    frames, fps, path = out["1"]
    _assert_image(frames, (t, s, s, 3))
    assert fps == pytest.approx(24.0) and Path(path).name == "driving.mp4"
    _assert_image(out["2"][0], (1, s, s, 3))
    pose, pose_maps = out["3"]
    assert pose.keypoints.shape == (t, 133, 2) and pose.scores.shape == (t, 133)
    assert pose.keypoints.dtype == np.float32 and pose.fps == pytest.approx(24.0)
    _assert_image(pose_maps, (t, s, s, 3))
    assert float(pose_maps.max()) > 0.5  # a skeleton is drawn
    (masks,) = out["4"]
    assert masks.dtype == torch.float32 and tuple(masks.shape) == (t, s, s)
    assert set(torch.unique(masks).tolist()) == {0.0, 1.0}
    assert 0.03 < float(masks.mean()) < 0.5  # the person, not the frame
    tracks, preview = out["5"]
    assert tracks.tracks.shape[0] == t and tracks.tracks.shape[2] == 2 and tracks.visible.shape == tracks.tracks.shape[:2]
    assert (tracks.visible.sum(1) >= 5).all()
    _assert_image(preview, (t, s, s, 3))
    (generated,) = out["6"]
    _assert_image(generated, (t, s, s, 3))
    (saved,) = out["7"]
    info = probe(saved)
    assert Path(saved).parent == host.tmp / "output" and Path(saved).name == "fgbg_00001_.mp4"
    assert info.num_frames == t and info.has_audio and (info.width, info.height) == (s, s)
    # every heavy node drove a progress bar to its end
    assert len(bars) >= 4 and all(b.updates and b.updates[-1][0] == b.updates[-1][1] for b in bars), [b.updates for b in bars]


def test_nodes_make_what_the_stages_make(host, sample, warp_run, tmp_path):
    """The nodes add nothing of their own: the same frames as `fgbg generate --backend warp`."""
    from fgbg.cli.common import _job
    from fgbg.params import GenerateParams
    from fgbg.stages import generate as gen_stage

    job = _job(sample.driving, tmp_path / "work", ref=sample.ref, generate=GenerateParams(backend="warp"),
               quiet=True)
    with job.workdir:
        rec = gen_stage.record(job)
    expected = np.concatenate(list(gen_stage.iter_frames(rec)))
    got = host.nodes.image_to_frames(warp_run[0]["6"][0])
    assert np.array_equal(got, expected)


def test_demo_diffusion_in_the_chain(host, warp_run):
    """Load Pipeline (demo) -> Generate (diffusion, 1 step, 64 px) on the first 9 frames."""
    pytest.importorskip("diffusers")
    n = host.nodes
    (pipeline,) = n.FgbgLoadPipeline().load("demo", "", "fp32")
    frames, fps, _ = n.FgbgLoadVideo().load("driving.mp4", 9)
    pose, _ = n.FgbgExtractPose().extract(frames, "auto", fps)
    (masks,) = n.FgbgSegment().segment(frames, pose, "auto")
    tracks, _ = n.FgbgTrackBackground().track(frames, masks, "auto", 32)
    (out,) = n.FgbgGenerate().generate(warp_run[0]["2"][0], pose, tracks, "diffusion", 1, 1.0, 3, 8, 64, 64,
                                       True, pipeline=pipeline)
    _assert_image(out, (9, 64, 64, 3))
    assert float(out.std()) > 0.01  # not a flat picture
