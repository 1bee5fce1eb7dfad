import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


import json
import os
import subprocess
import sys
from pathlib import Path

# the team's shared folder (docs, fixtures) sits beside the repository, in CI too
SHARED = Path(os.environ.get("FGBG_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))

SAMPLE_FRAMES = 40
SAMPLE_SIZE = 256


@pytest.fixture(scope="session")
def sample(tmp_path_factory):
    """The built-in sample, made once per test session."""
    from fgbg.sample import make_sample

    return make_sample(tmp_path_factory.mktemp("sample"), preset="dance", seed=0,
                       num_frames=SAMPLE_FRAMES, width=SAMPLE_SIZE, height=SAMPLE_SIZE)


def fgbg(*args, cwd=None, env=None, timeout=300):
    """Run the installed CLI as a user would; returns CompletedProcess (text)."""
    import os

    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "fgbg.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=full_env, timeout=timeout)


def records(workdir: Path) -> dict[str, float]:
    """stage -> creation time of its completion record."""
    out = {}
    for rec in Path(workdir).glob("*/record.json"):
        out[rec.parent.name] = json.loads(rec.read_text())["created"]
    return out
