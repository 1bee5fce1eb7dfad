"""Many procedural scenes at once: a synthetic training set with a held-out split.

`make_samples(out_dir, count, seed, num_frames, size, holdout)` renders `count` scenes with
`fgbg.sample.make_sample` into `out_dir/<split>/<name>/` (driving.mp4, person.png, truth.npz,
scene.json); the last `holdout` scenes form the "holdout" split, the others "train". The index
`out_dir/index.json` lists every scene (name, split, preset, camera, seed, frames, size, ...).

Each scene's look is drawn from its own generator, seeded with (seed, scene index, split), so a
scene does not change when `count` or `holdout` changes the others (choices of ours):
- motion (dance | walk) x camera move (pan | zoom | shake | static): uniform over the 8 pairs;
  `preset` in the index is the motion's preset, `camera` the move actually used;
- outfit: shirt and trouser colours drawn in HSV (stripes and checks in the same hue, lighter or
  darker), skin and hair from the sample's own lists, stripe and check sizes;
- background: wall plaster and brick colours, floor wood colour (the layout of bricks, posters and
  the window comes from the scene's make_sample seed);
- 0 to 3 objects moving in front of the wall.

Held-out scenes differ from training ones in two ways, by construction:
- disjoint hues: the shirt, trousers, bricks and plaster of a held-out scene have hues inside
  HOLDOUT_HUES (150-210 degrees: teal to sky blue); a training scene's hues all lie outside it.
  Skin, hair and the floor's wood are shared (every skin tone appears in both splits);
- disjoint make_sample seeds: training scenes use seeds below 2**30, held-out ones at or above, so
  no held-out wall layout, motion phase or background object path is one a training scene has.

A scene folder appears complete or not at all (rendered beside it, then renamed); rerunning with
the same arguments keeps finished scenes and renders only the missing ones.
"""

from __future__ import annotations

import colorsys
import json
import shutil
from pathlib import Path

import numpy as np

from ..errors import InputError
from . import figure as F
from .scene import CAMERAS

HOLDOUT_HUES = (150.0, 210.0)  # degrees: held-out scenes' clothing and wall hues, never in training
MOTIONS = ("dance", "walk")
SEED_SPLIT = 2 ** 30  # training make_sample seeds are below it, held-out seeds at or above


def _hue(rng: np.random.Generator, holdout: bool) -> float:
    lo, hi = HOLDOUT_HUES
    if holdout:
        return float(rng.uniform(lo, hi))
    return float((hi + rng.uniform(0, 360 - (hi - lo))) % 360)


def _rgb(h: float, s: float, v: float) -> tuple:
    return tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb((h % 360) / 360, s, v))


def _outfit(rng: np.random.Generator, holdout: bool) -> tuple[F.Outfit, dict]:
    hs, ht = _hue(rng, holdout), _hue(rng, holdout)
    s, v = rng.uniform(0.55, 0.85), rng.uniform(0.6, 0.9)
    shirt = _rgb(hs, s, v)
    stripe = _rgb(hs, rng.uniform(0.08, 0.25), 0.95) if rng.random() < 0.5 else _rgb(hs, s, v * 0.4)
    ts, tv = rng.uniform(0.35, 0.7), rng.uniform(0.2, 0.45)
    outfit = F.Outfit(skin=F.SKINS[rng.integers(len(F.SKINS))], hair=F.HAIRS[rng.integers(len(F.HAIRS))],
                      shirt=shirt, shirt_stripe=stripe, trousers=_rgb(ht, ts, tv),
                      trouser_check=_rgb(ht, ts * 0.8, tv + 0.15),
                      shoes=_rgb(_hue(rng, holdout), rng.uniform(0.1, 0.3), rng.uniform(0.08, 0.2)),
                      stripe_period=float(rng.uniform(0.28, 0.4)),
                      check_period=float(rng.uniform(0.3, 0.45)))
    return outfit, {"shirt_hue": round(hs, 1), "trousers_hue": round(ht, 1)}


def _palette(rng: np.random.Generator, holdout: bool) -> tuple[dict, dict]:
    hw, hb = _hue(rng, holdout), _hue(rng, holdout)
    plaster = _rgb(hw, rng.uniform(0.08, 0.25), rng.uniform(0.72, 0.86))
    bricks = [_rgb(hb, rng.uniform(0.4, 0.62), rng.uniform(0.38, 0.66)) for _ in range(4)]
    wood = _rgb(rng.uniform(20, 38), rng.uniform(0.45, 0.6), rng.uniform(0.4, 0.6))
    return {"plaster": plaster, "bricks": bricks, "wood": wood}, {"wall_hue": round(hw, 1),
                                                                 "brick_hue": round(hb, 1)}


def plan_scene(seed: int, index: int, holdout: bool, num_frames: int, size: int):
    """-> (index entry, make_sample keyword arguments) of scene `index`; a pure function."""
    split = "holdout" if holdout else "train"
    rng = np.random.default_rng([seed, index, int(holdout), 5151])
    motion = MOTIONS[rng.integers(len(MOTIONS))]
    camera = CAMERAS[rng.integers(len(CAMERAS))]
    scene_seed = int(rng.integers(SEED_SPLIT)) + (SEED_SPLIT if holdout else 0)
    outfit, look = _outfit(rng, holdout)
    palette, wall = _palette(rng, holdout)
    objects = int(rng.integers(0, 4))
    name = f"{split}-{index:04d}-{motion}-{camera}"
    entry = {"name": name, "split": split, "path": f"{split}/{name}", "preset": motion,
             "motion": motion, "camera": camera, "seed": scene_seed, "frames": num_frames,
             "size": size, "objects": objects, **look, **wall}
    kwargs = dict(preset=motion, seed=scene_seed, num_frames=num_frames, width=size, height=size,
                  camera=camera, outfit=outfit, palette=palette, num_objects=objects)
    return entry, kwargs


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data) -> None:
    from ..artifacts import atomic_write_bytes

    atomic_write_bytes(path, (json.dumps(data, indent=1) + "\n").encode())


def make_samples(out_dir: Path, count: int, seed: int = 0, num_frames: int = 48, size: int = 128,
                 holdout: int = 0, *, audio: bool = False, on_scene=None) -> list[dict]:
    """Render `count` scenes (the last `holdout` held out) -> their index entries, in order.
    `on_scene(entry, made)` is called after each scene (made: False when it was already there)."""
    from . import make_sample

    if count < 1 or not 0 <= holdout <= count:
        raise InputError(f"cannot make {count} scenes with {holdout} held out",
                         cause="count must be at least 1 and holdout between 0 and count",
                         hint="use e.g. --count 64 --holdout 8")
    if num_frames < 2 or not 64 <= size <= 2048:
        raise InputError(f"scenes of {num_frames} frames at {size} px cannot be made",
                         cause="a scene needs at least 2 frames and a size of 64..2048 px",
                         hint="use --frames 48 --size 128")
    out_dir = Path(out_dir)
    entries = []
    for i in range(count):
        held = i >= count - holdout
        entry, kwargs = plan_scene(seed, i, held, num_frames, size)
        folder = out_dir / entry["path"]
        done = folder / "scene.json"
        made = _read_json(done) != entry
        if made:
            tmp = folder.with_name(f".{folder.name}.tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            make_sample(tmp, audio=audio, **kwargs)
            _write_json(tmp / "scene.json", entry)
            shutil.rmtree(folder, ignore_errors=True)  # a stale scene made with other arguments
            tmp.rename(folder)
        entries.append(entry)
        if on_scene is not None:
            on_scene(entry, made)
    _write_json(out_dir / "index.json", {"seed": seed, "count": count, "holdout": holdout,
                                         "holdout_hues": list(HOLDOUT_HUES), "scenes": entries})
    return entries
