"""`diffusion` generator: the fgbg video diffusion model (fgbg.diffusion) behind the generate stage.

Loads a pipeline folder (diffusers layout): `--pipeline PATH`, else $FGBG_PIPELINE, else the one
`fgbg models convert animateanyone` writes under the model store (pipelines/animateanyone). The
generate stage owns the clip plan and the per-clip commit; this backend makes one clip at a time:
clip c > 0 continues from the previous clip's last frame as committed (uint8), so a resumed run
gives the same bytes as an uninterrupted one. The reference (CLIP embedding, ReferenceNet bank) is
encoded once in `prepare` and reused by every clip.

Sizes (our choice where the user gives none): the model needs multiples of 64 pixels; the canvas
keeps the driving video's aspect with its long side at most MAX_SIDE (AnimateAnyone's 768), and the
stitch stage scales the frames back to the video's size. An explicit --width/--height that does not
fit is an error before anything loads.

Anchored background and SDEdit start (ours, not the paper's: the paper trains its track encoder):
the anchor and the warp start of each clip are built from the warp generator in
`fgbg.backends.generate.anchor`; `--background auto` is resolved here (`background_mode`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ...errors import InputError, ModelError
from ..base import ClipInputs, Reference

MAX_SIDE = 768
DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}


def default_pipeline_dir() -> Path:
    from ...store import models_dir

    return models_dir() / "pipelines" / "animateanyone"


# the built-in demo generator: a tiny model trained on synthetic scenes (`make train-demo`), so
# `--backend diffusion` works on a fresh machine; `auto` never picks it (a toy at 64 px)
DEMO_DIR = Path(__file__).resolve().parents[2] / "demo_pipeline"


def pipeline_dir(params=None, allow_demo: bool = True) -> Path:
    """--pipeline, else $FGBG_PIPELINE, else the converted one in the store, else the demo."""
    explicit = getattr(params, "pipeline", "") if params is not None else ""
    if explicit or os.environ.get("FGBG_PIPELINE"):
        return Path(explicit or os.environ["FGBG_PIPELINE"])
    store = default_pipeline_dir()
    if not (store / "model_index.json").is_file() and allow_demo and (DEMO_DIR / "model_index.json").is_file():
        return DEMO_DIR
    return store


def _multiple(params) -> int:
    """Pixels a size must be a multiple of: the VAE's and the UNet's downsampling together."""
    folder = pipeline_dir(params)
    try:
        vae = json.loads((folder / "vae" / "config.json").read_text())["block_out_channels"]
        unet = json.loads((folder / "unet" / "config.json").read_text())["block_out_channels"]
        return 2 ** (len(vae) - 1) * 2 ** (len(unet) - 1)
    except (OSError, ValueError, KeyError):
        return 64


def find(params=None, explicit: bool = False) -> dict[str, str] | None:
    """{"pipeline": identity} when a pipeline folder is there, else None. `auto` (explicit False)
    does not take the demo pipeline.

    Identity: the sha256 of the converter's manifest (it lists every file's sha256); else of the
    files' contents for folders under 256 MB (the demo, small trained ones); else a fingerprint of
    file names, sizes and mtimes."""
    import hashlib

    folder = pipeline_dir(params, allow_demo=explicit)
    if not (folder / "model_index.json").is_file():
        return None
    manifest = folder / "fgbg_manifest.json"
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    h = hashlib.sha256()
    if manifest.is_file():
        h.update(manifest.read_bytes())
    elif sum(p.stat().st_size for p in files) < 256 << 20:
        for p in files:
            h.update(str(p.relative_to(folder)).encode() + b"\0" + p.read_bytes())
    else:
        for p in files:
            st = p.stat()
            h.update(f"{p.relative_to(folder)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return {"pipeline": h.hexdigest()}


def missing_hint() -> str:
    return ("run `fgbg models fetch animateanyone-reference-unet animateanyone-denoising-unet "
            "animateanyone-motion-module animateanyone-pose-guider sd15-unet-config sd-vae-ft-mse "
            "sd-vae-ft-mse-config sd-image-variations-image-encoder sd-image-variations-image-encoder-config`, "
            "then `fgbg models convert animateanyone`; or pass --pipeline PATH; or use --backend warp")


def training_record(folder) -> dict:
    """fgbg_pipeline.json (written by `fgbg train`), or {} for a pipeline without one."""
    try:
        info = json.loads((Path(folder) / "fgbg_pipeline.json").read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _max_side(params) -> int:
    """Long side of automatic canvases: what the pipeline was trained at, else AnimateAnyone's 768."""
    try:
        return int(training_record(pipeline_dir(params))["trained_resolution"])
    except (KeyError, TypeError, ValueError):
        return MAX_SIDE


def fit_canvas(params, width: int, height: int) -> tuple[int, int]:
    """The output canvas for the model: explicit sizes must fit; automatic ones are fitted."""
    m = _multiple(params)
    if params.width or params.height:
        w, h = params.width or width, params.height or height
        if w % m or h % m:
            raise InputError(f"--width {w} --height {h} does not fit the diffusion model",
                             cause=f"its sizes are multiples of {m} pixels (8 in latent space)",
                             hint=f"use --width {max(m, round(w / m) * m)} --height {max(m, round(h / m) * m)}, "
                                  "or leave both out to fit the video automatically")
        return w, h
    s = min(1.0, _max_side(params) / max(width, height))
    return max(m, round(width * s / m) * m), max(m, round(height * s / m) * m)


def check(params, num_frames: int) -> None:
    """Checks that need only the pipeline's config files (nothing is loaded)."""
    from importlib.util import find_spec  # asked, not imported: a cached run must stay instant

    check_background(params)
    if find_spec("torch") is None or find_spec("diffusers") is None:
        raise InputError("the diffusion generator needs torch and diffusers",
                         cause="they are not installed in this environment",
                         hint="pip install 'fgbg[diffusion]' (or use --backend warp)")
    folder = pipeline_dir(params)
    if not (folder / "model_index.json").is_file():
        raise ModelError(f"no diffusion pipeline at {folder}", cause="the diffusion backend needs a "
                         "converted or trained pipeline folder (model_index.json)", hint=missing_hint())
    try:
        cfg = json.loads((folder / "unet" / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"the pipeline at {folder} is incomplete", cause=f"unet/config.json: {exc}",
                         hint="convert it again: fgbg models convert animateanyone") from None
    longest = cfg.get("motion_max_seq_length", 32)
    if params.clip_length > longest:
        raise InputError(f"--clip-length {params.clip_length} is longer than the model allows",
                         cause=f"its temporal blocks hold positions for {longest} frames",
                         hint=f"use --clip-length {min(24, longest)} (AnimateAnyone's) or at most {longest}")


def background_mode(params) -> str:
    """--background resolved: auto is what the pipeline's training record recommends
    (fgbg_pipeline.json "inference": {"background"}: the shipped demo model says anchored, as its
    track encoder knows synthetic scenes only), else anchored for a pipeline whose track encoder was
    never trained (the converter records it zero-initialised, and no training record says
    otherwise), else free (trained with tracks, or of unknown history)."""
    mode = getattr(params, "background", "auto")
    if mode != "auto":
        return mode
    folder = pipeline_dir(params)
    recommended = (training_record(folder).get("inference") or {}).get("background")
    if recommended in ("anchored", "free"):
        return recommended
    try:
        manifest = json.loads((folder / "fgbg_manifest.json").read_text())
    except (OSError, ValueError):
        return "free"
    untrained = "track_encoder" in manifest.get("new_zero_initialised", [])
    return "anchored" if untrained and not (folder / "fgbg_pipeline.json").is_file() else "free"


def check_background(params) -> None:
    """Bad --background / --anchor-steps / --init / --strength, named before anything loads."""
    if params.background not in ("auto", "anchored", "free"):
        raise InputError(f"--background {params.background} is unknown", cause="auto, anchored or free",
                         hint="use --background anchored (the photo's background, moved by the tracks) "
                              "or free")
    if not 0.0 <= params.anchor_steps <= 1.0:
        raise InputError(f"--anchor-steps {params.anchor_steps} is out of range",
                         cause="it is a share of the denoising steps, from 0 to 1",
                         hint="use --anchor-steps 1.0 (every step) or e.g. 0.8")
    if params.init not in ("noise", "warp"):
        raise InputError(f"--init {params.init} is unknown", cause="noise or warp",
                         hint="use --init warp --strength 0.6 to refine the warp preview")
    if not 0.0 < params.strength <= 1.0:
        raise InputError(f"--strength {params.strength} is out of range",
                         cause="it is the noise level the preview is started from, above 0 and at most 1",
                         hint="use --strength 0.6 (lower keeps more of the preview)")


def demo_summary(folder) -> str:
    """'a 128 px model trained on synthetic scenes only', from the folder's training record."""
    res = training_record(folder).get("trained_resolution")
    size = f"a {res} px model" if res else "a small model"
    return f"{size} trained on synthetic scenes only, not on people or real footage"


class DiffusionGenerator:
    name = "diffusion"

    def __init__(self, params, device: str = "cpu"):
        import torch

        from ...diffusion.backends_util import quiet_diffusers
        from ...diffusion.pipeline import FgbgPipeline

        quiet_diffusers()

        self.params = params
        check_background(params)
        self.mode = background_mode(params)
        self.warp = None
        folder = pipeline_dir(params)
        dtype_name = params.dtype if params.dtype != "auto" else ("fp16" if device.startswith("cuda") else "fp32")
        if dtype_name not in DTYPES:
            raise InputError(f"--dtype {params.dtype} is unknown", cause="fp16, bf16, fp32 or auto",
                             hint="use --dtype auto (fp16 on a GPU, fp32 on the CPU)")
        dtype = getattr(torch, DTYPES[dtype_name])
        if not (folder / "model_index.json").is_file():
            raise ModelError(f"no diffusion pipeline at {folder}", cause="model_index.json is missing",
                             hint=missing_hint())
        if folder.resolve() == DEMO_DIR.resolve():
            import sys

            print(f"warning: using fgbg's built-in demo generator, {demo_summary(folder)} "
                  "(for real videos: fgbg models convert animateanyone, or --pipeline DIR)", file=sys.stderr)
        self.pipe = FgbgPipeline.from_pretrained(folder, torch_dtype=dtype, local_files_only=True)
        if params.offload and device.startswith("cuda"):
            self.pipe.enable_model_cpu_offload(device=device)
        else:
            self.pipe.to(device)
        self.pipe.set_progress_bar_config(disable=True)
        self.ctx = None

    def prepare(self, ref: Reference, width: int, height: int) -> None:
        self.size = (width, height)
        self.ctx = self.pipe.encode_reference(ref.image, height, width)
        self.warp = None
        if self.mode == "anchored" or self.params.init == "warp":
            from .warp import WarpGenerator

            self.warp = WarpGenerator(self.params)
            self.warp.prepare(ref, width, height)

    def generate_clip(self, clip: ClipInputs) -> np.ndarray:
        from ...diffusion.track_maps import render_track_maps

        w, h = self.size
        maps = render_track_maps(clip.tracks, clip.visible, clip.tracks_origin, (w, h), (w, h))
        p = self.params
        anchor = init = None
        if self.warp is not None:
            from .anchor import warp_conditions

            anchor, init = warp_conditions(self.pipe, self.warp, clip, p, self.mode)
        return self.pipe.generate_clip(self.ctx, clip.pose_maps, maps, clip.prev_frame, clip.seed,
                                       num_inference_steps=p.steps, guidance_scale=p.guidance_scale,
                                       low_memory=p.low_memory, anchor=anchor, init=init)

    def close(self) -> None:
        if self.ctx is not None:
            self.ctx.reference.clear()
        self.ctx = None
        self.pipe = None
