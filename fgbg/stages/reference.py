"""reference: the photo fitted to the output canvas, with its person's pose and mask."""

from __future__ import annotations

from pathlib import Path

from .. import artifacts
from ..backends import build, release, resolve
from ..errors import InputError
from ..video import read_image
from ..canvas import apply_cover, generation_canvas
from .base import Job, ensure, make_key
from .pose import person_present

NAME = "ref"
VERSION = 1


def check(job: Job) -> None:
    """Fail early (before any model loads) on a missing or unreadable photo."""
    if job.ref_path is None:
        raise InputError("no reference photo given", cause="generate needs the person to animate",
                         hint="add --ref person.png")
    read_image(job.ref_path)


def run(job: Job) -> dict:
    return artifacts.load_reference(record(job).folder / "ref.npz")


def record(job: Job):
    check(job)
    pose_name, pose_models = resolve("pose", job.pose.backend)
    seg_name, seg_models = resolve("segment", job.segment.backend, job.segment)
    w, h = generation_canvas(job)
    key = make_key(NAME, VERSION, None, {"ref": job.workdir.file_hash(job.ref_path)}, {},
                   {**pose_models, **seg_models},
                   extra={"pose": {**vars(job.pose), "backend": pose_name},
                          "segment": {**vars(job.segment), "backend": seg_name}, "canvas": [w, h]})

    def build_ref(tmp: Path) -> dict:
        image = apply_cover(read_image(job.ref_path), w, h)
        est = build("pose", pose_name, job.pose, job.device)
        try:
            est.reset()
            k, s = est.estimate(image[None])
        finally:
            release(est)
        if not person_present(s, job.pose.min_score)[0]:
            raise InputError(f"no person found in the reference photo {job.ref_path}",
                             cause=f"the pose estimator ({pose_name}) found no full body in it "
                                   f"(after fitting it to {w}x{h})",
                             hint="use a photo of one person, whole body visible, facing the camera")
        seg = build("segment", seg_name, job.segment, job.device)
        try:
            mask = seg.segment(image[None], k, s)[0]
        finally:
            release(seg)
        artifacts.save_reference(tmp / "ref.npz", image, k[0], s[0], mask)
        return {"summary": f"{w}x{h}, person covers {100 * mask.mean():.0f}%"}

    return ensure(job, NAME, key, build_ref, "ref.npz")
