"""Generate backends: the output frames, clip by clip, from the reference, the pose and the tracks.

diffusion: the fgbg video model (`fgbg/diffusion/`), a converted, trained or the built-in demo
pipeline; warp: a weight-free classical preview (the background plate moved by the tracks'
camera, the person moved limb by limb).
"""

from .. import BackendSpec

ENTRIES = {
    "diffusion": BackendSpec("fgbg.backends.generate.diffusion:DiffusionGenerator",
                             finder="fgbg.backends.generate.diffusion:find",
                             missing_hint="fgbg.backends.generate.diffusion:missing_hint"),
    "warp": BackendSpec("fgbg.backends.generate.warp:WarpGenerator"),
}
