"""A training dataset straight from the procedural sample's exact ground truth (no estimators).

Used for the built-in demo model: scenes rendered by fgbg.sample with every preset (pan, zoom,
shake, static camera; dance and walk), written in the `fgbg prepare` layout with the TRUE pose,
masks and background tracks. Training and held-out scenes use disjoint seed ranges (the seed draws
outfit, background, objects and motion), so held-out scenes are never seen in training.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

TRAIN_SEEDS = 1000
HOLDOUT_SEEDS = 900000


def write_synthetic(out: Path, count: int, *, holdout: bool = False, size: int = 64, render: int = 128,
                    frames: int = 24, first: int = 0, mix: bool = False) -> list[Path]:
    """Scenes first..first+count-1 of the split into out/videos/<name>/ (skips finished ones).

    `mix` (the demo model v2's training set): every motion with every camera move (scene i has
    the motion of preset i and the camera of preset i // 4, so 16 scenes hold all 8 pairs twice)
    and 0..3 moving objects (i % 4), instead of each preset's own camera and the seed's objects;
    the outfit, palette and motion details still come from the seed."""
    import cv2

    from ..tracks import track_origins
    from ..sample import PRESETS, make_sample
    from ..video import probe, read_frames
    from ..artifacts import write_prepared

    presets = list(PRESETS)
    base = HOLDOUT_SEEDS if holdout else TRAIN_SEEDS
    done = []
    for i in range(first, first + count):
        seed, preset = base + i, presets[i % len(presets)]
        extra = {}
        if mix:
            from ..sample import scene as S

            extra = dict(camera=PRESETS[presets[(i // len(presets)) % len(presets)]].camera,
                         num_objects=i % 4)
            assert extra["camera"] in S.CAMERAS
        name = preset + (f"-{extra['camera']}-o{extra['num_objects']}" if mix else "")
        folder = Path(out) / "videos" / f"{'holdout' if holdout else 'train'}-{i:05d}-{name}"
        if (folder / "meta.json").is_file():
            done.append(folder)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            paths = make_sample(Path(tmp), preset=preset, seed=seed, num_frames=frames, width=render,
                                height=render, audio=False, **extra)
            truth = np.load(paths.truth)
            video = np.concatenate(list(read_frames(probe(paths.driving), chunk=32)))
            ref = cv2.cvtColor(cv2.imread(str(paths.ref)), cv2.COLOR_BGR2RGB)
        s = size / render

        def small(img, interp=cv2.INTER_AREA):
            return cv2.resize(img, (size, size), interpolation=interp)

        pix = lambda p: ((p + 0.5) * s - 0.5).astype(np.float32)  # noqa: E731
        tracks = pix(truth["tracks"])
        queries = truth["queries"].copy()
        queries[:, 1:] = pix(queries[:, 1:])
        origin = track_origins(tracks, truth["visible"], queries)
        masks = np.stack([small(m.astype(np.uint8) * 255, cv2.INTER_LINEAR) > 127 for m in truth["masks"]])
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "ref.npy", small(ref))
        np.savez(folder / "ref_pose.npz", keypoints=pix(truth["ref_keypoints"]), scores=truth["ref_scores"],
                 mask=small(truth["ref_mask"].astype(np.uint8) * 255, cv2.INTER_LINEAR) > 127)
        write_prepared(folder, np.stack([small(f) for f in video]), pix(truth["keypoints"]), truth["scores"],
                       masks, tracks, truth["visible"], origin,
                       {"source": "fgbg.sample", "preset": preset, "seed": int(seed), "split":
                        "holdout" if holdout else "train", "size": size, "frames": frames, **extra,
                        "ref_image": "ref.npy"})  # meta.json last: the scene is complete
        done.append(folder)
    return done


def main(argv=None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description="write synthetic training/held-out scenes (ground truth)")
    ap.add_argument("out")
    ap.add_argument("--count", type=int, default=96)
    ap.add_argument("--holdout", action="store_true")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--frames", type=int, default=24)
    a = ap.parse_args(argv)
    n = len(write_synthetic(Path(a.out), a.count, holdout=a.holdout, size=a.size, frames=a.frames))
    print(f"{n} scenes in {a.out}")


if __name__ == "__main__":
    main()
