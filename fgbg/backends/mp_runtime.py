"""Import mediapipe quietly: its C++ runtime logs warnings and TFLite banners to stderr, which
would bury fgbg's own progress and errors. `-v` (FGBG_VERBOSE=1) keeps them."""

from __future__ import annotations

import os
import warnings


def import_mediapipe():
    if os.environ.get("FGBG_VERBOSE") != "1":
        os.environ.setdefault("GLOG_minloglevel", "2")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        warnings.filterwarnings("ignore", module="google.protobuf")
        try:
            from absl import logging as absl_logging

            absl_logging.set_verbosity(absl_logging.ERROR)
        except ImportError:  # pragma: no cover
            pass
    import cv2  # noqa: F401  (cv2 before anything that may bring its own zlib; see fgbg.video)
    import mediapipe as mp

    return mp
