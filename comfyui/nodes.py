"""The fgbg nodes: thin adapters between ComfyUI's types and fgbg.inmemory (the stages on frames
in memory). They convert, call the library, and convert back; the work is the library's.

ComfyUI's types: IMAGE (B, H, W, C) float32 torch in [0, 1] (a video is a batch of frames, C = 3;
a fourth channel is dropped); MASK (B, H, W) float32 in [0, 1]. fgbg's own types travel between
the nodes as the library's objects: FGBG_POSE (fgbg.artifacts.Pose: keypoints (T, 133, 2)
float32 pixel x,y, scores (T, 133)), FGBG_TRACKS (fgbg.artifacts.Tracks: tracks (T, N, 2),
visible (T, N), queries (N, 3)), FGBG_PIPELINE (fgbg.params.GenerateParams naming a diffusion
pipeline folder; the model loads when Generate runs and is released after, as in `fgbg run`).

An fgbg error (no person in the frames, a missing pipeline, ...) stops the node with its
error/cause/hint lines as the message ComfyUI shows.

No camera/motion node yet: the background's motion comes from the tracks themselves (the tracker's
options are on Track Background). The CLI's --camera, --background-image, --background-from and
the --background/--anchor-steps/--init knobs have no node; the generator node runs with their
defaults (so `auto` background: anchored with the built-in demo model).
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np

from . import host

CATEGORY = "fgbg"
POSE, TRACKS, PIPELINE = "FGBG_POSE", "FGBG_TRACKS", "FGBG_PIPELINE"


class FgbgNodeError(RuntimeError):
    """An fgbg error as ComfyUI shows it: the error/cause/hint lines."""


def _fgbg_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from fgbg.errors import FgbgError

        try:
            return fn(*args, **kwargs)
        except FgbgError as err:
            raise FgbgNodeError("\n".join(err.lines())) from err

    return wrapper


# ---- conversions ----------------------------------------------------------------------------
def image_to_frames(image) -> np.ndarray:
    """IMAGE (B, H, W, C) float in [0, 1] (or one (H, W, C)) -> (B, H, W, 3) uint8 RGB."""
    import torch

    if image.ndim == 3:
        image = image[None]
    if image.ndim != 4 or image.shape[-1] not in (1, 3, 4):
        raise FgbgNodeError(f"error: an IMAGE of shape {tuple(image.shape)} is not a batch of pictures\n"
                            "cause: ComfyUI images are (B, H, W, C) with C = 3\n"
                            "hint: connect an IMAGE output (a loaded video or picture)")
    if image.shape[-1] == 1:
        image = image.expand(*image.shape[:3], 3)
    x = image[..., :3].detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return np.ascontiguousarray(x.cpu().numpy())


def frames_to_image(frames: np.ndarray):
    """(B, H, W, 3) uint8 -> IMAGE (B, H, W, 3) float32 in [0, 1] on the CPU."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(frames, np.uint8)).float().div(255.0)


def mask_to_masks(mask) -> np.ndarray:
    """MASK (B, H, W) (or one (H, W)) -> (B, H, W) bool, person = True where > 0.5."""
    if mask.ndim == 2:
        mask = mask[None]
    return (mask.detach().float().cpu().numpy() > 0.5)


def masks_to_mask(masks: np.ndarray):
    import torch

    return torch.from_numpy(np.asarray(masks, bool).astype(np.float32))


def _choices(kind: str) -> list[str]:
    from fgbg.backends import REGISTRY

    return ["auto", *REGISTRY[kind]]


# ---- nodes ----------------------------------------------------------------------------------
class FgbgLoadVideo:
    """A video file -> its frames (IMAGE batch), frame rate and path (for the audio)."""

    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "FLOAT", "STRING")
    RETURN_NAMES = ("frames", "fps", "video_path")
    FUNCTION = "load"
    DESCRIPTION = "Decode a driving video (mp4/mov/webm) into a batch of frames."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "video": ("STRING", {"default": "driving.mp4",
                                 "tooltip": "path of the video; relative paths are in ComfyUI's input folder"}),
            "frame_limit": ("INT", {"default": 0, "min": 0, "max": 100000,
                                    "tooltip": "load at most this many frames (0: all)"}),
        }}

    @classmethod
    def IS_CHANGED(cls, video, frame_limit):
        path = cls._path(video)
        try:
            st = path.stat()
            return f"{path}:{st.st_size}:{st.st_mtime_ns}:{frame_limit}"
        except OSError:
            return f"{path}:missing"

    @staticmethod
    def _path(video: str) -> Path:
        path = Path(video).expanduser()
        return path if path.is_absolute() else host.input_dir() / path

    @_fgbg_errors
    def load(self, video, frame_limit):
        from fgbg.video import probe, read_frames

        info = probe(self._path(video))
        stop = min(info.num_frames, frame_limit) if frame_limit else None
        frames = np.concatenate(list(read_frames(info, stop=stop)))
        return frames_to_image(frames), float(info.fps), info.path


class FgbgLoadPipeline:
    """A diffusion pipeline folder for Generate: the built-in demo, the converted AnimateAnyone
    one in the model store, or a folder (a trained or converted pipeline)."""

    CATEGORY = CATEGORY
    RETURN_TYPES = (PIPELINE,)
    RETURN_NAMES = ("pipeline",)
    FUNCTION = "load"
    DESCRIPTION = "Choose the diffusion pipeline Generate uses (checked here, loaded when Generate runs)."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "source": (["demo", "converted", "folder"], {"default": "demo"}),
            "folder": ("STRING", {"default": "", "tooltip": "the pipeline folder when source is folder"}),
            "dtype": (["auto", "fp16", "bf16", "fp32"], {"default": "auto"}),
        }}

    @_fgbg_errors
    def load(self, source, folder, dtype):
        from fgbg.backends.generate.diffusion import DEMO_DIR, default_pipeline_dir, find, missing_hint
        from fgbg.errors import InputError, ModelError
        from fgbg.params import GenerateParams

        if source == "folder" and not folder:
            raise InputError("no pipeline folder given", cause="source is folder",
                             hint="type the folder `fgbg models convert` or `fgbg train` wrote")
        path = {"demo": DEMO_DIR, "converted": default_pipeline_dir()}.get(source) or Path(folder).expanduser()
        params = GenerateParams(backend="diffusion", pipeline=str(Path(path).resolve()), dtype=dtype)
        if find(params, explicit=True) is None:
            raise ModelError(f"no diffusion pipeline at {path}", cause="the folder has no model_index.json",
                             hint=missing_hint())
        return (params,)


class FgbgExtractPose:
    """Frames -> whole-body pose (133 COCO-WholeBody keypoints a frame) and DWPose-style pose maps."""

    CATEGORY = CATEGORY
    RETURN_TYPES = (POSE, "IMAGE")
    RETURN_NAMES = ("pose", "pose_maps")
    FUNCTION = "extract"
    DESCRIPTION = "Pose of the one most prominent person in every frame (fgbg extract-pose)."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"frames": ("IMAGE",),
                             "backend": (_choices("pose"), {"default": "auto"})},
                "optional": {"fps": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1000.0,
                                               "tooltip": "the video's frame rate (kept with the pose)"})}}

    @_fgbg_errors
    def extract(self, frames, backend, fps=0.0):
        from fgbg import inmemory
        from fgbg.params import PoseParams

        video = image_to_frames(frames)
        pose, maps = inmemory.estimate_pose(video, PoseParams(backend=backend), host.device(),
                                            host.progress(), fps=float(fps))
        return pose, frames_to_image(maps)


class FgbgSegment:
    """Frames + pose -> person masks (MASK batch, person = 1)."""

    CATEGORY = CATEGORY
    RETURN_TYPES = ("MASK",)
    RETURN_NAMES = ("masks",)
    FUNCTION = "segment"
    DESCRIPTION = "The mask of the person the pose follows, in every frame (fgbg segment)."

    @classmethod
    def INPUT_TYPES(cls):
        from fgbg.params import SegmentParams

        return {"required": {"frames": ("IMAGE",), "pose": (POSE,),
                             "backend": (_choices("segment"), {"default": "auto"})},
                "optional": {"sam_variant": (["vit_b", "vit_l", "vit_h"], {"default": SegmentParams.sam_variant}),
                             "sam2_variant": (["tiny", "small", "base_plus", "large"],
                                              {"default": SegmentParams.sam2_variant})}}

    @_fgbg_errors
    def segment(self, frames, pose, backend, sam_variant=None, sam2_variant=None):
        from fgbg import inmemory
        from fgbg.params import SegmentParams

        d = SegmentParams()
        params = SegmentParams(backend=backend, sam_variant=sam_variant or d.sam_variant,
                               sam2_variant=sam2_variant or d.sam2_variant)
        video = image_to_frames(frames)
        masks = inmemory.segment(video, pose, params, host.device(), host.progress())
        return (masks_to_mask(masks),)


class FgbgTrackBackground:
    """Frames + person masks -> sparse background point tracks, and a preview of them."""

    CATEGORY = CATEGORY
    RETURN_TYPES = (TRACKS, "IMAGE")
    RETURN_NAMES = ("tracks", "preview")
    FUNCTION = "track"
    DESCRIPTION = "Background points tracked through the video, the person masked out (fgbg track-bg)."

    @classmethod
    def INPUT_TYPES(cls):
        from fgbg.params import TrackParams

        return {"required": {"frames": ("IMAGE",), "masks": ("MASK",),
                             "backend": (_choices("track"), {"default": "auto"}),
                             "num_points": ("INT", {"default": TrackParams.num_points, "min": 5, "max": 50,
                                                    "tooltip": "background tracks visible at once (5 to 50)"})}}

    @_fgbg_errors
    def track(self, frames, masks, backend, num_points):
        from fgbg import inmemory
        from fgbg.params import TrackParams
        from fgbg.preview import overlay_tracks

        video = image_to_frames(frames)
        tracks = inmemory.track_background(video, mask_to_masks(masks),
                                           TrackParams(backend=backend, num_points=int(num_points)),
                                           host.device(), host.progress())
        preview = overlay_tracks(video, 0, tracks.tracks, tracks.visible)
        return tracks, frames_to_image(preview)


class FgbgGenerate:
    """Reference photo + pose + tracks -> the output frames, clip by clip."""

    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)
    FUNCTION = "generate"
    DESCRIPTION = ("The person in the reference moved by the pose, the background by the tracks (fgbg "
                   "generate). warp: weight-free preview; diffusion: the fgbg model.")

    @classmethod
    def INPUT_TYPES(cls):
        from fgbg.params import GenerateParams as G

        return {"required": {
            "reference": ("IMAGE", {"tooltip": "the photo of the person (the first picture of the batch)"}),
            "pose": (POSE,), "tracks": (TRACKS,),
            "generator": (["warp", "diffusion"], {"default": "warp"}),
            "steps": ("INT", {"default": G.steps, "min": 1, "max": 200, "tooltip": "diffusion: denoising steps"}),
            "guidance": ("FLOAT", {"default": G.guidance_scale, "min": 1.0, "max": 20.0, "step": 0.1,
                                   "tooltip": "diffusion: guidance on the reference (1 = off)"}),
            "seed": ("INT", {"default": G.seed, "min": 0, "max": 2**32 - 1}),
            "clip_length": ("INT", {"default": G.clip_length, "min": 2, "max": 64}),
            "width": ("INT", {"default": 0, "min": 0, "max": 4096, "step": 2,
                              "tooltip": "0: the video's size (diffusion: multiples of 64)"}),
            "height": ("INT", {"default": 0, "min": 0, "max": 4096, "step": 2}),
            "retarget": ("BOOLEAN", {"default": G.retarget}),
        }, "optional": {"pipeline": (PIPELINE, {"tooltip": "diffusion: from Load Pipeline (default: "
                                                           "$FGBG_PIPELINE, the converted one, else the demo)"})}}

    @_fgbg_errors
    def generate(self, reference, pose, tracks, generator, steps, guidance, seed, clip_length, width, height,
                 retarget, pipeline=None):
        from fgbg import inmemory
        from fgbg.params import GenerateParams

        base = pipeline if (generator == "diffusion" and pipeline is not None) else GenerateParams()
        params = dataclasses.replace(base, backend=generator, steps=int(steps), guidance_scale=float(guidance),
                                     seed=int(seed), clip_length=int(clip_length), width=int(width),
                                     height=int(height), retarget=bool(retarget))
        ref = image_to_frames(reference)[0]
        frames = inmemory.generate(ref, pose, tracks, params, host.device(), host.progress())
        return (frames_to_image(frames),)


class FgbgSaveVideo:
    """Frames -> an H.264 mp4 in ComfyUI's output folder, with a video's audio when given."""

    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("path",)
    FUNCTION = "save"
    OUTPUT_NODE = True
    DESCRIPTION = "Encode the frames as mp4 (fgbg stitch's encoder), muxing in the driving audio."

    @classmethod
    def INPUT_TYPES(cls):
        from fgbg.params import StitchParams

        return {"required": {"frames": ("IMAGE",),
                             "fps": ("FLOAT", {"default": 24.0, "min": 1.0, "max": 240.0}),
                             "filename_prefix": ("STRING", {"default": "fgbg"}),
                             "crf": ("INT", {"default": StitchParams.crf, "min": 0, "max": 51})},
                "optional": {"audio_from": ("STRING", {"default": "", "forceInput": True,
                                                       "tooltip": "a video whose audio is muxed in (Load "
                                                                  "Video's video_path)"})}}

    @_fgbg_errors
    def save(self, frames, fps, filename_prefix, crf, audio_from=""):
        from fgbg.video import probe, write_video

        video = image_to_frames(frames)
        path, subfolder = host.output_path(filename_prefix)
        audio = audio_from if audio_from and probe(audio_from).has_audio else None
        write_video(path, [video], float(fps), crf=int(crf), audio=audio, duration=len(video) / float(fps))
        return {"ui": {"fgbg_video": [{"filename": path.name, "subfolder": subfolder, "type": "output"}]},
                "result": (str(path),)}


NODE_CLASS_MAPPINGS = {
    "FgbgLoadVideo": FgbgLoadVideo,
    "FgbgLoadPipeline": FgbgLoadPipeline,
    "FgbgExtractPose": FgbgExtractPose,
    "FgbgSegment": FgbgSegment,
    "FgbgTrackBackground": FgbgTrackBackground,
    "FgbgGenerate": FgbgGenerate,
    "FgbgSaveVideo": FgbgSaveVideo,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "FgbgLoadVideo": "fgbg Load Video",
    "FgbgLoadPipeline": "fgbg Load Pipeline",
    "FgbgExtractPose": "fgbg Extract Pose",
    "FgbgSegment": "fgbg Segment Person",
    "FgbgTrackBackground": "fgbg Track Background",
    "FgbgGenerate": "fgbg Generate",
    "FgbgSaveVideo": "fgbg Save Video",
}
