"""The 133-point COCO-WholeBody keypoint layout that DWPose outputs and fgbg stores.

Index ranges: body 0-16 (COCO order), feet 17-22, face 23-90 (the 68-point iBUG layout), left hand
91-111, right hand 112-132 (21 points each: wrist, then thumb, index, middle, ring, little finger,
4 points each from the palm out). "Left"/"right" are the person's own sides.
"""

from __future__ import annotations

NUM_KEYPOINTS = 133

BODY = slice(0, 17)
FEET = slice(17, 23)
FACE = slice(23, 91)
LEFT_HAND = slice(91, 112)
RIGHT_HAND = slice(112, 133)

BODY_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)
FEET_NAMES = (
    "left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel",
)

# named indices into the 133 points
NOSE, LEFT_EYE, RIGHT_EYE, LEFT_EAR, RIGHT_EAR = 0, 1, 2, 3, 4
LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_ELBOW, RIGHT_ELBOW, LEFT_WRIST, RIGHT_WRIST = 5, 6, 7, 8, 9, 10
LEFT_HIP, RIGHT_HIP, LEFT_KNEE, RIGHT_KNEE, LEFT_ANKLE, RIGHT_ANKLE = 11, 12, 13, 14, 15, 16
LEFT_BIG_TOE, LEFT_SMALL_TOE, LEFT_HEEL = 17, 18, 19
RIGHT_BIG_TOE, RIGHT_SMALL_TOE, RIGHT_HEEL = 20, 21, 22

FACE_START = 23  # face point i (0..67 in iBUG numbering) is at FACE_START + i
LEFT_HAND_START = 91
RIGHT_HAND_START = 112
# within a hand: 0 wrist; thumb 1-4; index 5-8; middle 9-12; ring 13-16; little 17-20
HAND_WRIST, HAND_THUMB_MCP, HAND_INDEX_MCP, HAND_MIDDLE_MCP, HAND_PINKY_MCP = 0, 2, 5, 9, 17

# body bones (index pairs) used for retargeting and limb-wise warping, root outward
BODY_BONES = (
    (LEFT_SHOULDER, LEFT_ELBOW), (LEFT_ELBOW, LEFT_WRIST),
    (RIGHT_SHOULDER, RIGHT_ELBOW), (RIGHT_ELBOW, RIGHT_WRIST),
    (LEFT_HIP, LEFT_KNEE), (LEFT_KNEE, LEFT_ANKLE),
    (RIGHT_HIP, RIGHT_KNEE), (RIGHT_KNEE, RIGHT_ANKLE),
)
