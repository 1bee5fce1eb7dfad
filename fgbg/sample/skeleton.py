"""The sample character's skeleton: proportions, dance / walk / A-pose joint angles, forward
kinematics, and the 133 COCO-WholeBody keypoints it defines.

Body units: the head is 1.1 units tall and the standing figure about 7.9 (head ~1/7 of height);
x to the image right, y down, origin at the hip centre. The character faces the camera, so its own
left side is on the image right: `s = +1` is the person's left, `s = -1` its right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..pose import layout as L

SIDES = {"left": 1.0, "right": -1.0}

# lengths and positions, body units
SHOULDER = np.array([0.95, -2.55])  # the person's left shoulder joint (x mirrored for the right)
HIP = np.array([0.48, 0.0])
NECK_BASE = np.array([0.0, -2.62])
HEAD_UP = 0.9  # neck base to head centre
HEAD_RX, HEAD_RY = 0.42, 0.55
UPPER_ARM, FOREARM, HAND = 1.35, 1.2, 0.8
THIGH, SHIN = 1.75, 1.72
FOOT_DROP = 0.3  # ankle to sole
STANDING_HEIGHT = 2.62 + HEAD_UP + HEAD_RY + THIGH + SHIN + FOOT_DROP

# iBUG-68 face template in head units (x right, y down, head centre at 0); drawn and stored alike
_jaw = np.linspace(np.pi - 0.1, 0.1, 17)
FACE = np.concatenate([
    np.stack([0.98 * HEAD_RX * np.cos(_jaw), -0.02 + 0.98 * HEAD_RY * np.sin(_jaw)], 1),  # 0-16
    [[-0.30, -0.12], [-0.25, -0.16], [-0.19, -0.17], [-0.13, -0.16], [-0.07, -0.14]],  # 17-21
    [[0.07, -0.14], [0.13, -0.16], [0.19, -0.17], [0.25, -0.16], [0.30, -0.12]],  # 22-26
    [[0.0, -0.06], [0.0, 0.02], [0.0, 0.09], [0.0, 0.16]],  # 27-30 bridge to tip
    [[-0.07, 0.19], [-0.035, 0.205], [0.0, 0.21], [0.035, 0.205], [0.07, 0.19]],  # 31-35
    [[-0.26, -0.04], [-0.22, -0.075], [-0.16, -0.075], [-0.11, -0.04],
     [-0.16, -0.015], [-0.22, -0.015]],  # 36-41 the person's right eye (image left)
    [[0.11, -0.04], [0.16, -0.075], [0.22, -0.075], [0.26, -0.04],
     [0.22, -0.015], [0.16, -0.015]],  # 42-47
    [[-0.14, 0.32], [-0.09, 0.29], [-0.04, 0.28], [0.0, 0.29], [0.04, 0.28], [0.09, 0.29],
     [0.14, 0.32], [0.09, 0.36], [0.04, 0.38], [0.0, 0.385], [-0.04, 0.38], [-0.09, 0.36]],
    [[-0.12, 0.32], [-0.04, 0.31], [0.0, 0.315], [0.04, 0.31], [0.12, 0.32], [0.04, 0.335],
     [0.0, 0.34], [-0.04, 0.335]],  # 60-67
]).astype(np.float64)
EYE_CENTRES = np.array([[-0.185, -0.045], [0.185, -0.045]])  # person's right, left
EARS = np.array([[-0.44, -0.01], [0.44, -0.01]])

# 21 hand points in hand units: (along the hand from the wrist, across towards the thumb side)
HAND_POINTS = np.array([
    [0.0, 0.0],
    [0.10, 0.16], [0.22, 0.25], [0.33, 0.31], [0.43, 0.35],  # thumb
    [0.48, 0.15], [0.64, 0.16], [0.74, 0.17], [0.84, 0.18],  # index
    [0.50, 0.05], [0.68, 0.05], [0.79, 0.05], [0.90, 0.05],  # middle
    [0.48, -0.05], [0.65, -0.06], [0.75, -0.065], [0.84, -0.07],  # ring
    [0.44, -0.14], [0.57, -0.16], [0.65, -0.17], [0.72, -0.18],  # little
])
FINGERS = [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16], [17, 18, 19, 20]]


@dataclass
class Angles:
    """Joint angles of one frame, radians; per-side values are dicts {"left": .., "right": ..}.
    An arm/leg angle of 0 hangs straight down; positive turns it away from the body midline."""

    arm: dict
    elbow: dict  # added to the upper arm's angle
    arm_fore: dict  # apparent length share of the upper arm (a forward swing foreshortens it)
    wrist: dict
    thigh: dict
    knee: dict  # the shin turns back in by this much
    lift: dict  # forward knee lift: the thigh shows cos(lift) of its length
    lean: float = 0.0
    head_tilt: float = 0.0
    sway: float = 0.0  # pelvis x offset, units


def _both(left, right) -> dict:
    return {"left": float(left), "right": float(right)}


def a_pose() -> Angles:
    """The neutral reference pose: arms 25 degrees out, legs a little apart."""
    return Angles(arm=_both(0.42, 0.42), elbow=_both(0.12, 0.12), arm_fore=_both(1, 1),
                  wrist=_both(0, 0), thigh=_both(0.07, 0.07), knee=_both(0.0, 0.0),
                  lift=_both(0, 0))


def dance(t: float, phase: float) -> Angles:
    """Arm waves on a 2 s cycle, knee bounce on the 0.5 s beat, torso sway, head tilt."""
    w = 2 * np.pi * t / 2.0 + phase
    beat = 0.5 * (1 - np.cos(2 * np.pi * t / 0.5 + phase))
    return Angles(
        arm=_both(1.15 + 0.9 * np.sin(w), 1.15 + 0.9 * np.sin(w + 2.2)),
        elbow=_both(0.45 + 0.35 * np.sin(w + 1.0), 0.45 + 0.35 * np.sin(w + 3.2)),
        arm_fore=_both(1, 1), wrist=_both(0.2 * np.sin(2 * w), 0.2 * np.sin(2 * w + 1)),
        thigh=_both(0.10 + 0.05 * np.sin(w / 2) + 0.1 * beat, 0.10 - 0.05 * np.sin(w / 2) + 0.1 * beat),
        knee=_both(0.2 * beat, 0.2 * beat), lift=_both(0, 0),
        lean=0.07 * np.sin(w), head_tilt=0.1 * np.sin(w + 0.8), sway=0.15 * np.sin(w))


def walk(t: float, phase: float) -> Angles:
    """A 1.1 s stride seen from the front: alternating knee lifts, opposite arm swings."""
    w = 2 * np.pi * t / 1.1 + phase
    s = np.sin(w)
    return Angles(
        arm=_both(0.16, 0.16), elbow=_both(0.15 + 0.15 * max(-s, 0), 0.15 + 0.15 * max(s, 0)),
        arm_fore=_both(np.cos(0.55 * s), np.cos(0.55 * s)), wrist=_both(0, 0),
        thigh=_both(0.06, 0.06), knee=_both(0.05, 0.05),
        lift=_both(0.9 * max(s, 0), 0.9 * max(-s, 0)),
        lean=0.03 * s, head_tilt=0.03 * np.sin(w + 0.5), sway=0.08 * s)


def _dir(s: float, angle: float, lean: float = 0.0) -> np.ndarray:
    d = np.array([s * np.sin(angle), np.cos(angle)])
    c, n = np.cos(lean), np.sin(lean)
    return np.array([c * d[0] - n * d[1], n * d[0] + c * d[1]])


def _rot(angle: float) -> np.ndarray:
    c, n = np.cos(angle), np.sin(angle)
    return np.array([[c, -n], [n, c]])


@dataclass
class Skeleton:
    """Joint positions of one frame in frame pixels (all (2,) float64 unless said) and the frames
    of the head and hands. `unit` is pixels per body unit."""

    unit: float
    joints: dict  # name -> (2,) e.g. "left_shoulder", "pelvis", "neck", "head"
    head_rot: np.ndarray  # (2, 2) head-unit -> pixel direction (times unit)
    hands: dict  # side -> (origin (2,), along (2,), across (2,)) in pixels per hand unit
    keypoints: np.ndarray  # (133, 2)


def pose_skeleton(a: Angles, root: np.ndarray, unit: float) -> Skeleton:
    """Forward kinematics. `root` is the pixel position of the ground point below the hip centre;
    the lower foot stands on that ground line. `unit` is pixels per body unit."""
    j: dict[str, np.ndarray] = {}
    up = _rot(a.lean)
    j["pelvis"] = np.array([a.sway, 0.0])
    j["neck"] = j["pelvis"] + up @ NECK_BASE
    j["head"] = j["neck"] + up @ np.array([0.0, -HEAD_UP])
    for side, s in SIDES.items():
        hip = j["pelvis"] + np.array([s * HIP[0], 0.0])
        knee = hip + THIGH * np.cos(a.lift[side]) * _dir(s, a.thigh[side])
        ankle = knee + SHIN * _dir(s, a.thigh[side] - a.knee[side])
        sh = j["pelvis"] + up @ np.array([s * SHOULDER[0], SHOULDER[1]])
        elbow = sh + UPPER_ARM * a.arm_fore[side] * _dir(s, a.arm[side], a.lean)
        fore = a.arm[side] + a.elbow[side]
        wrist = elbow + FOREARM * a.arm_fore[side] * _dir(s, fore, a.lean)
        j.update({f"{side}_hip": hip, f"{side}_knee": knee, f"{side}_ankle": ankle,
                  f"{side}_shoulder": sh, f"{side}_elbow": elbow, f"{side}_wrist": wrist})
        j[f"{side}_hand_dir"] = _dir(s, fore + a.wrist[side], a.lean)
    ground = np.array([0.0, max(j["left_ankle"][1], j["right_ankle"][1]) + FOOT_DROP])
    px = {k: (root + (v - ground) * unit if not k.endswith("_dir") else v) for k, v in j.items()}
    head_rot = _rot(a.lean + a.head_tilt) * unit
    hands = {}
    for side, s in SIDES.items():
        d = px[f"{side}_hand_dir"]
        across = s * np.array([d[1], -d[0]])  # thumb side: outward for an arm hanging down
        hands[side] = (px[f"{side}_wrist"], d * HAND * unit, across * HAND * unit)
    return Skeleton(unit, px, head_rot, hands, _keypoints(px, head_rot, hands, unit))


def _keypoints(j: dict, head_rot: np.ndarray, hands: dict, unit: float) -> np.ndarray:
    k = np.zeros((L.NUM_KEYPOINTS, 2))
    head = j["head"]
    face = head + FACE @ head_rot.T
    k[L.FACE] = face
    k[L.NOSE] = face[30]
    k[L.RIGHT_EYE], k[L.LEFT_EYE] = head + EYE_CENTRES @ head_rot.T
    k[L.RIGHT_EAR], k[L.LEFT_EAR] = head + EARS @ head_rot.T
    for side, s in SIDES.items():
        for part in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle"):
            k[getattr(L, f"{side.upper()}_{part.upper()}")] = j[f"{side}_{part}"]
        ankle = j[f"{side}_ankle"]
        big, small, heel = (getattr(L, f"{side.upper()}_{n}") for n in ("BIG_TOE", "SMALL_TOE", "HEEL"))
        k[big] = ankle + np.array([-s * 0.04, 0.34]) * unit
        k[small] = ankle + np.array([s * 0.2, 0.3]) * unit
        k[heel] = ankle + np.array([0.0, 0.2]) * unit
        origin, along, across = hands[side]
        start = L.LEFT_HAND_START if s > 0 else L.RIGHT_HAND_START
        k[start:start + 21] = origin + HAND_POINTS[:, :1] * along + HAND_POINTS[:, 1:] * across
    return k
