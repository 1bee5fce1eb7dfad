"""fgbg.inmemory: the stages on frames in memory (what the ComfyUI nodes call). Their results
against the stages' are checked in tests/comfyui (the node chain makes the stage chain's frames);
here, the checks that come before any model."""

from __future__ import annotations

import numpy as np
import pytest

from fgbg import artifacts, inmemory
from fgbg.errors import InputError
from fgbg.params import GenerateParams


def _pose(t, size=(64, 48)):
    return artifacts.Pose(np.zeros((t, 133, 2), np.float32), np.zeros((t, 133), np.float32), size, 24.0)


def _tracks(t, size=(64, 48)):
    return artifacts.Tracks(np.zeros((t, 4, 2), np.float32), np.ones((t, 4), bool),
                            np.zeros((4, 3), np.float32), size)


@pytest.mark.parametrize("frames", [np.zeros((4, 8, 8), np.uint8), np.zeros((4, 8, 8, 3), np.float32),
                                    np.zeros((0, 8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8)])
def test_frames_must_be_a_uint8_rgb_batch(frames):
    with pytest.raises(InputError, match="not a video"):
        inmemory.check_frames(frames)


def test_inputs_of_one_video_must_agree():
    frames = np.zeros((5, 48, 64, 3), np.uint8)
    with pytest.raises(InputError, match="the pose has 4 frames, the video 5"):
        inmemory.segment(frames, _pose(4))
    with pytest.raises(InputError, match="masks"):
        inmemory.track_background(frames, np.zeros((4, 48, 64), bool))
    with pytest.raises(InputError, match="the pose has 5 frames, the tracks 4"):
        inmemory.generate(frames[0], _pose(5), _tracks(4))
    with pytest.raises(InputError, match="too short"):
        inmemory.generate(frames[0], _pose(5), _tracks(5), GenerateParams(backend="warp", clip_length=1))


def test_canvas_is_the_stages_canvas():
    assert inmemory.canvas_size(GenerateParams(backend="warp"), (640, 360), 10) == (640, 360)
    assert inmemory.canvas_size(GenerateParams(backend="warp"), (2560, 1440), 10) == (1024, 576)
    assert inmemory.canvas_size(GenerateParams(backend="warp", width=128, height=96), (640, 360), 10) == (128, 96)
