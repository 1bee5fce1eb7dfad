"""Whole-body pose: the COCO-WholeBody layout, drawing in the DWPose convention, retargeting."""
