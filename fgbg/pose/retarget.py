"""Retargeting: the driving person's motion on the reference person's body.

The output pose has the reference person's bone lengths and starting position and the driving
person's bone directions and root motion. (Our choice; the paper says nothing about retargeting.)

- The body is a kinematic tree rooted at the hip centre (mean of the hips), with the neck (mean of
  the shoulders) as the first joint above it; the tree is walked root outward, and every bone keeps
  its driving direction in frame t and gets the reference's length.
- The root moves as the driving root moves, scaled to the reference's size:
  root(t) = ref_root + (drv_root(t) - drv_root(t0)) * s, with s = ref body size / driving body
  size (body size = neck-to-hip-centre length, the driving one a median over the video) and t0 the
  first frame whose root is known.
- Hands move rigidly with their wrist, face points with the nose, scaled by s.
- Missing points (score < min_score): a bone whose driving end is missing in frame t has no
  direction, so its child is placed by scaling about the root, new = root(t) + s * (drv - drv_root);
  a bone missing in the reference keeps the driving length times s. A missing driving root is
  estimated from the neck (plus the video's median neck-to-hip offset), else carried over from the
  last frame that had one. The caller keeps the driving scores, so missing points stay undrawn.
"""

from __future__ import annotations

import numpy as np

from . import layout as L

HIP_CENTRE = L.NUM_KEYPOINTS  # virtual joints appended after the 133 points
NECK = L.NUM_KEYPOINTS + 1

# (parent, child), root outward; every parent appears as a child before it is used as a parent
TREE = (
    (HIP_CENTRE, NECK), (HIP_CENTRE, L.LEFT_HIP), (HIP_CENTRE, L.RIGHT_HIP),
    (NECK, L.LEFT_SHOULDER), (NECK, L.RIGHT_SHOULDER), (NECK, L.NOSE),
    (L.NOSE, L.LEFT_EYE), (L.NOSE, L.RIGHT_EYE), (L.LEFT_EYE, L.LEFT_EAR),
    (L.RIGHT_EYE, L.RIGHT_EAR),
    (L.LEFT_SHOULDER, L.LEFT_ELBOW), (L.LEFT_ELBOW, L.LEFT_WRIST),
    (L.RIGHT_SHOULDER, L.RIGHT_ELBOW), (L.RIGHT_ELBOW, L.RIGHT_WRIST),
    (L.LEFT_HIP, L.LEFT_KNEE), (L.LEFT_KNEE, L.LEFT_ANKLE),
    (L.RIGHT_HIP, L.RIGHT_KNEE), (L.RIGHT_KNEE, L.RIGHT_ANKLE),
    (L.LEFT_ANKLE, L.LEFT_BIG_TOE), (L.LEFT_ANKLE, L.LEFT_SMALL_TOE), (L.LEFT_ANKLE, L.LEFT_HEEL),
    (L.RIGHT_ANKLE, L.RIGHT_BIG_TOE), (L.RIGHT_ANKLE, L.RIGHT_SMALL_TOE),
    (L.RIGHT_ANKLE, L.RIGHT_HEEL),
)

# rigid parts: (points, anchor joint in the tree, fallback anchor inside the part)
RIGID_PARTS = (
    (L.LEFT_HAND, L.LEFT_WRIST, L.LEFT_HAND_START + L.HAND_WRIST),
    (L.RIGHT_HAND, L.RIGHT_WRIST, L.RIGHT_HAND_START + L.HAND_WRIST),
    (L.FACE, L.NOSE, L.FACE_START + 30),  # iBUG 30: tip of the nose
)


def _extend(kps: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., 133, 2), (..., 133) -> (..., 135, 2), (..., 135) with hip centre and neck appended."""
    hip = (kps[..., L.LEFT_HIP, :] + kps[..., L.RIGHT_HIP, :]) / 2
    neck = (kps[..., L.LEFT_SHOULDER, :] + kps[..., L.RIGHT_SHOULDER, :]) / 2
    hip_ok = valid[..., L.LEFT_HIP] & valid[..., L.RIGHT_HIP]
    neck_ok = valid[..., L.LEFT_SHOULDER] & valid[..., L.RIGHT_SHOULDER]
    kps = np.concatenate([kps, hip[..., None, :], neck[..., None, :]], axis=-2)
    valid = np.concatenate([valid, hip_ok[..., None], neck_ok[..., None]], axis=-1)
    return kps, valid


def _body_size(kps: np.ndarray, valid: np.ndarray) -> float | None:
    """Median neck-to-hip-centre length over frames (..., 135, 2); shoulder width x 1.5 (a typical
    torso/shoulder ratio) when the hips are never seen; None when neither is."""
    ok = valid[..., NECK] & valid[..., HIP_CENTRE]
    if ok.any():
        return float(np.median(np.linalg.norm(kps[..., NECK, :] - kps[..., HIP_CENTRE, :], axis=-1)[ok]))
    ok = valid[..., L.LEFT_SHOULDER] & valid[..., L.RIGHT_SHOULDER]
    if ok.any():
        width = np.linalg.norm(kps[..., L.LEFT_SHOULDER, :] - kps[..., L.RIGHT_SHOULDER, :], axis=-1)
        return 1.5 * float(np.median(width[ok]))
    return None


def _fill_root(kps: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Driving root per frame, (T, 2) and (T,) known: the hip centre, else the neck plus the median
    neck-to-hip offset, else the last known root (or the first, before any is known)."""
    root = kps[:, HIP_CENTRE].copy()
    known = valid[:, HIP_CENTRE].copy()
    both = known & valid[:, NECK]
    if both.any():
        offset = np.median(kps[both, HIP_CENTRE] - kps[both, NECK], axis=0)
        est = ~known & valid[:, NECK]
        root[est] = kps[est, NECK] + offset
        known |= est
    if known.any() and not known.all():
        idx = np.where(known, np.arange(len(root)), -1)
        idx = np.maximum.accumulate(idx)
        idx[idx < 0] = int(np.argmax(known))  # before the first known frame: use the first
        root = root[idx]
    return root, known


def retarget(driving_kps: np.ndarray, driving_scores: np.ndarray, ref_kps: np.ndarray,
             ref_scores: np.ndarray, min_score: float = 0.3) -> np.ndarray:
    """Driving motion on the reference body.

    driving_kps (T, 133, 2) pixel x,y, driving_scores (T, 133); ref_kps (133, 2) and ref_scores
    (133,) in the same (output canvas) pixel frame. -> (T, 133, 2) float32 pixel x,y. Scores are
    not changed: use the driving scores with the result.
    """
    drv = np.asarray(driving_kps, dtype=np.float64)
    drv_scores = np.asarray(driving_scores, dtype=np.float64)
    ref = np.asarray(ref_kps, dtype=np.float64)
    ref_scores = np.asarray(ref_scores, dtype=np.float64)
    if drv.ndim != 3 or drv.shape[1:] != (L.NUM_KEYPOINTS, 2) or drv_scores.shape != drv.shape[:2]:
        raise ValueError(f"retarget needs driving keypoints (T, 133, 2) and scores (T, 133), got "
                         f"{drv.shape} and {drv_scores.shape}")
    if ref.shape != (L.NUM_KEYPOINTS, 2) or ref_scores.shape != (L.NUM_KEYPOINTS,):
        raise ValueError(f"retarget needs reference keypoints (133, 2) and scores (133,), got "
                         f"{ref.shape} and {ref_scores.shape}")
    num_frames = len(drv)
    if num_frames == 0:
        return np.zeros((0, L.NUM_KEYPOINTS, 2), np.float32)

    drv_valid = (drv_scores >= min_score) & np.isfinite(drv).all(-1)
    ref_valid = (ref_scores >= min_score) & np.isfinite(ref).all(-1)
    drv = np.where(np.isfinite(drv), drv, 0.0)
    ref = np.where(np.isfinite(ref), ref, 0.0)
    drv, drv_valid = _extend(drv, drv_valid)
    ref, ref_valid = _extend(ref, ref_valid)

    drv_size, ref_size = _body_size(drv, drv_valid), _body_size(ref, ref_valid)
    scale = ref_size / drv_size if drv_size and ref_size else 1.0

    drv_root, root_known = _fill_root(drv, drv_valid)
    drv[:, HIP_CENTRE] = drv_root
    drv_valid[:, HIP_CENTRE] = root_known
    if ref_valid[HIP_CENTRE]:
        ref_root = ref[HIP_CENTRE]
    elif ref_valid[NECK] and (drv_valid[:, NECK] & root_known).any():
        # the reference shows no hips (e.g. a half-body photo): hang the root below its neck
        both = drv_valid[:, NECK] & root_known
        ref_root = ref[NECK] + scale * np.median(drv[both, HIP_CENTRE] - drv[both, NECK], axis=0)
    else:
        ref_root = None
    t0 = int(np.argmax(root_known)) if root_known.any() else 0
    if ref_root is None:  # no anchor in the reference at all: stay where the driving person is
        ref_root = drv_root[t0]

    out = np.zeros_like(drv)
    out[:, HIP_CENTRE] = ref_root + (drv_root - drv_root[t0]) * scale

    def about_root(points: np.ndarray) -> np.ndarray:
        """(T, ..., 2) driving points placed by scaling about the root."""
        shape = (num_frames,) + (1,) * (points.ndim - 2) + (2,)
        return out[:, HIP_CENTRE].reshape(shape) + scale * (points - drv_root.reshape(shape))

    for parent, child in TREE:
        bone = drv[:, child] - drv[:, parent]
        length = np.linalg.norm(bone, axis=-1)
        ok = drv_valid[:, parent] & drv_valid[:, child]
        if ref_valid[parent] and ref_valid[child]:
            target = np.full(num_frames, np.linalg.norm(ref[child] - ref[parent]))
        else:
            typical = np.median(length[ok]) if ok.any() else None
            target = scale * (np.full(num_frames, typical) if typical is not None else length)
        direction = np.divide(bone, length[:, None], out=np.zeros_like(bone),
                              where=length[:, None] > 1e-9)
        placed = out[:, parent] + direction * target[:, None]
        out[:, child] = np.where(ok[:, None], placed, about_root(drv[:, child]))

    for part, anchor, fallback in RIGID_PARTS:
        anchor_ok = drv_valid[:, anchor]
        drv_anchor = np.where(anchor_ok[:, None], drv[:, anchor], drv[:, fallback])
        new_anchor = np.where(anchor_ok[:, None], out[:, anchor], about_root(drv[:, fallback]))
        out[:, part] = new_anchor[:, None] + scale * (drv[:, part] - drv_anchor[:, None])

    return out[:, : L.NUM_KEYPOINTS].astype(np.float32)
