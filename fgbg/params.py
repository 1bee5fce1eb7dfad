"""Every stage's parameters, with their defaults, in one place.

The CLI reads these dataclasses (their field docstrings become --help text); it never repeats a
default. Each stage's cache key hashes its parameters, so changing any field reruns that stage and
everything downstream of it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


@dataclass(frozen=True)
class PoseParams:
    backend: str = "auto"
    """pose backend: auto | dwpose (DWPose ONNX, weights from `fgbg models fetch`) | mediapipe
    (weight-free)"""
    min_score: float = 0.3
    """keypoints scored below this are treated as missing (drawing, person checks)"""
    chunk: int = 32
    """frames decoded and processed at a time"""


@dataclass(frozen=True)
class SegmentParams:
    backend: str = "auto"
    """segmentation backend: auto | sam2 (SAM 2.1 video predictor prompted from the pose and
    propagated through the video; weights from `fgbg models fetch sam2.1-hiera-tiny`) | sam
    (Segment Anything per frame, prompted from the pose; weights from `fgbg models fetch
    sam-vit-b`) | mediapipe (weight-free). auto: the first of these whose weights are in the store"""
    threshold: float = 0.5
    """foreground probability above which a pixel belongs to the person"""
    morph_size: float = 0.02
    """mask clean-up kernel (open, then close) as a share of the frame's shorter side"""
    box_margin: float = 0.25
    """the person's mask is clipped to its keypoint box grown by this share of the box size"""
    sam_variant: str = "vit_b"
    """SAM model size: vit_b (fastest) | vit_l | vit_h (best, slowest); each is its own download"""
    sam2_variant: str = "tiny"
    """SAM 2.1 model size for the sam2 backend: tiny (fastest) | small | base_plus | large (best,
    slowest); each is its own download (sam2.1-hiera-<size>)"""
    chunk: int = 32
    """frames decoded and processed at a time"""


@dataclass(frozen=True)
class TrackParams:
    backend: str = "auto"
    """background tracker: auto | cotracker (CoTracker3 offline; code and weights from `fgbg
    models fetch cotracker-code cotracker3-offline`; about 0.9 s a frame on a CPU) | lk
    (Lucas-Kanade, weight-free, fast). auto: cotracker when both are in the store, else lk"""
    num_points: int = 32
    """background tracks kept (the paper uses 5 to 50)"""
    min_points: int = 16
    """top up with new points when fewer than this many tracks are still visible (capped at
    num_points); half of num_points keeps the background covered through a pan"""
    fb_threshold: float = 1.0
    """forward-backward error (pixels, at processing size) above which a point is lost"""
    mask_erode: int = 7
    """pixels by which the background is shrunk away from the person before seeding"""
    max_tracks: int = 256
    """most tracks started over a whole video, re-seeds included (the N of tracks.npz)"""
    chunk: int = 32
    """frames decoded and processed at a time"""
    camera: str = ""
    """the background's motion from a camera path instead of tracking: static | pan:DX,DY |
    zoom:RATE | shake:AMP[,HZ] | orbit:DEG[,DEPTH] (pixels, degrees and frames of the driving
    video; empty: track the video)"""
    background_from: str = ""
    """another video whose background motion the output takes (tracked like the driving video,
    its person masked out); the person still moves as in the driving video. It needs at least as
    many frames as the driving video (its first ones are used)"""


@dataclass(frozen=True)
class GenerateParams:
    backend: str = "auto"
    """generator: auto | diffusion (the fgbg video model; needs a pipeline) | warp (weight-free
    classical preview)"""
    clip_length: int = 16
    """frames per clip; clip c>0 starts on the last frame of clip c-1 (one frame of overlap)"""
    seed: int = 0
    """base seed; clip c uses seed + c"""
    width: int = 0
    """output width in pixels (0: from the driving video; the diffusion model fits it to multiples of 64)"""
    height: int = 0
    """output height in pixels (0: from the driving video; the diffusion model fits it to multiples of 64)"""
    retarget: bool = True
    """move the driving pose onto the reference person's body proportions and position"""
    steps: int = 25
    """diffusion: denoising steps per clip (DDIM)"""
    guidance_scale: float = 3.5
    """diffusion: classifier-free guidance on the reference (1 = off)"""
    dtype: str = "auto"
    """diffusion: fp16 | bf16 | fp32 | auto (fp16 on a GPU, fp32 on the CPU)"""
    low_memory: bool = False
    """diffusion: run the two guidance branches one after the other (less GPU memory, slower)"""
    offload: bool = False
    """diffusion: keep models on the CPU and move each to the GPU only while it runs"""
    pipeline: str = ""
    """diffusion: pipeline folder (empty: $FGBG_PIPELINE, else the converted AnimateAnyone one)"""
    background: str = "auto"
    """diffusion: anchored (the background outside the person's region is held to the photo's plate
    moved by the tracks' camera for the first --anchor-steps of denoising; works with any weights) |
    free (the model paints it from the track maps) | auto (what the pipeline's training record
    recommends, e.g. the demo model's anchored; else anchored for a pipeline whose track encoder
    was never trained, e.g. converted AnimateAnyone; free for one trained with tracks)"""
    anchor_steps: float = 1.0
    """diffusion, anchored: share of the denoising steps during which the background is held (1:
    every step; the model then paints only the person's region and its feathered border). Measured
    with bench/eval_anchored.py on 8 held-out scenes, 0.5 / 0.8 / 1.0: background-track error 1.66 /
    0.88 / 0.37 px with the demo model (floor 0.16), SSIM 0.515 / 0.566 / 0.598, the person's SSIM
    and PCK unchanged; the later steps are where a model repaints the photo's background (the demo
    repainted all of a real photo's at 0.5). At 1.0 the frames are also laid over the plate's own
    pixels outside the person (Anchor.paste): 0.20 px, SSIM 0.650. Lower it for a model whose last
    steps blend better (nothing is pasted then)."""
    init: str = "noise"
    """diffusion: noise (the usual start) | warp (start each clip from the warp preview noised to
    --strength: the model keeps the photo's person and background and repairs the warp)"""
    strength: float = 0.6
    """diffusion, --init warp: noise level to start from (1: pure noise; lower keeps more of the preview)"""
    background_image: str = ""
    """a photo whose look becomes the background (fitted to the canvas like --ref); the person comes
    from --ref, the motion from the tracks (empty: the --ref photo's own background)"""


@dataclass(frozen=True)
class StitchParams:
    crf: int = 18
    """H.264 constant rate factor (lower is better quality, bigger file)"""
    audio: bool = True
    """mux the driving video's audio track in when it has one"""


def to_dict(params) -> dict:
    return asdict(params)


def field_help(cls) -> dict[str, str]:
    """Field docstrings (the string literal after each field) as --help text."""
    import ast
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    out: dict[str, str] = {}
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr):
            if isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
                out[node.target.id] = nxt.value.value.strip()
    return out


__all__ = [
    "PoseParams",
    "SegmentParams",
    "TrackParams",
    "GenerateParams",
    "StitchParams",
    "to_dict",
    "field_help",
    "fields",
    "field",
]
