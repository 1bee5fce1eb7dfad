"""Segment backends: the person's mask per frame, prompted from (or restricted to) the pose.

sam2: the SAM 2.1 video predictor; sam: Segment Anything per frame (its prompts, `pose_prompt`,
serve sam2 too); mediapipe: selfie segmentation, weight-free.
"""

from .. import BackendSpec

# sam2, then sam: auto takes the first whose checkpoint of the chosen --sam2-variant /
# --sam-variant is in the store (finders, because that artifact depends on the params). sam2
# first: its video predictor follows the person through the video (temporally stable), and its
# tiny model is faster than sam's vit_b (CPU, 1024 px: about 4.5 s a frame against 15 s)
ENTRIES = {
    "sam2": BackendSpec("fgbg.backends.segment.sam2:Sam2Segmenter", finder="fgbg.backends.segment.sam2:find"),
    "sam": BackendSpec("fgbg.backends.segment.sam:SamSegmenter", finder="fgbg.backends.segment.sam:find"),
    "mediapipe": BackendSpec("fgbg.backends.segment.mediapipe:MediapipeSegmenter"),
}
