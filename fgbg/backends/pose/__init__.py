"""Pose backends: whole-body keypoints (133, COCO-WholeBody) per frame of the driving video.

dwpose: DWPose (YOLOX-L detector + DWPose-L, ONNX), the paper's estimator; `dwpose_ops.py` holds its
pre/post-processing. mediapipe: BlazePose mapped to the 133 layout, weight-free (bundled model).
"""

from .. import BackendSpec

ENTRIES = {
    "dwpose": BackendSpec("fgbg.backends.pose.dwpose:DWPose", ("dwpose-yolox-l", "dwpose-ll-ucoco-384")),
    "mediapipe": BackendSpec("fgbg.backends.pose.mediapipe:MediapipePose"),
}
