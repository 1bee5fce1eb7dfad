import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# One CPU thread per test process (make test runs -n 2 on 2 cores, and the CLI runs the tests start
# inherit it): more would oversubscribe the cores, and with several threads MKL sums in an order
# that varies run to run (two identical training steps differed by 1e-12 in a gradient on 2
# threads), which bit-for-bit checks must not see. Set before torch loads; an explicit setting wins.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

# A clone of fgbg stands alone: nothing the suite runs in this process may open a file in a folder
# beside the repository (developers' and CI machines keep team folders there that a user's clone
# does not have). The audit hook sees every Python-level open (open, Path.read_*, numpy, json) and
# fails it by name. Hidden siblings (.cache, .config) are the tools' own; a clone directly in /, in
# the home folder or in the temporary folder (where pytest's own tmp_path folders are siblings) has
# no project siblings, so there the guard is off.
_REPO = os.path.realpath(os.path.join(os.path.dirname(__file__), "..")) + os.sep
_PARENT = os.path.dirname(_REPO.rstrip(os.sep)) + os.sep
_UNGUARDED = (os.sep, os.path.expanduser("~"), __import__("tempfile").gettempdir())
_GUARDED = _PARENT not in {os.path.join(os.path.realpath(p), "") for p in _UNGUARDED}


def _beside_the_clone(path: str) -> bool:
    if not _GUARDED or not path.startswith(_PARENT) or path.startswith(_REPO):
        return False
    return not path[len(_PARENT):].startswith(".")


def _stands_alone(event, args):
    if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.path.abspath(os.fsdecode(args[0]))
        if _beside_the_clone(path) or _beside_the_clone(os.path.realpath(path)):
            raise PermissionError(f"a test opened {path}: the repository must not read files beside "
                                  "the clone (copy what the test needs into tests/fixtures)")


import sys as _sys  # noqa: E402

_sys.addaudithook(_stands_alone)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


import json
import os
import subprocess
import sys
from pathlib import Path

# reference data the tests read, carried by the repository (a clone stands alone)
FIXTURES = Path(__file__).resolve().parent / "fixtures"

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


def cli_inproc(monkeypatch, *args, env=None):
    """The CLI in this process (no interpreter start, no torch import: about 5 s saved per call),
    with -v (the quiet mode re-points fd 2 for the rest of the process); `env` is set for the call."""
    from typer.testing import CliRunner

    from fgbg.cli import app

    monkeypatch.delenv("FGBG_VERBOSE", raising=False)  # -v sets it; restored afterwards
    for k, v in (env or {}).items():
        monkeypatch.setenv(k, v)
    return CliRunner().invoke(app, [*map(str, args), "-v"])


def records(workdir: Path) -> dict[str, float]:
    """stage -> creation time of its completion record."""
    out = {}
    for rec in Path(workdir).glob("*/record.json"):
        out[rec.parent.name] = json.loads(rec.read_text())["created"]
    return out


def kill_during_generate(args, workdir: Path, env: dict, *, clip: int = 1, timeout: float = 240) -> None:
    """Start `fgbg ARGS -w WORKDIR` with a delay after each clip, SIGKILL it as soon as clip `clip`
    of generate is committed (asserting that it got there), and return: the next run resumes."""
    import os
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "fgbg.cli", *map(str, args), "-w", str(workdir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **env, "FGBG_CLIP_DELAY_S": "0.5"})
    deadline, partial = time.time() + timeout, []
    while time.time() < deadline and not partial and proc.poll() is None:
        partial = list(Path(workdir).glob(f".generate.partial-*/clips/{clip:04d}.npy"))
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert partial, f"generate never reached clip {clip}: {proc.stderr.read().decode()[-2000:]}"


def video_frames(path) -> np.ndarray:
    """Every frame of a video file as (F, H, W, 3) float32 (for comparisons in tests)."""
    from fgbg.video import probe, read_frames

    return np.concatenate(list(read_frames(probe(path), chunk=64))).astype(np.float32)
