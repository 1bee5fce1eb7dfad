"""A local torch.hub directory holding the CoTracker code, for the tests (no weights).

The `cotracker` package (upstream v3.0.0) is not on PyPI under its own name; it is vendored in the
`autosegmentor==3.0.1` wheel (see docs/ENVIRONMENT.md, CoTracker row). That wheel is
never installed (it would overwrite sam2): it is downloaded once with pip, checked against a pinned
sha256, and only its `cotracker/` folder is extracted, beside a small `hubconf.py` of our own that
exposes `cotracker3_offline(pretrained=False)` built the way upstream's hubconf builds it.

Where the wheel comes from, first found wins:
  $FGBG_COTRACKER_WHEEL        a path to the wheel file
  <venv>/wheels/<WHEEL_NAME>   put there by the Makefile's test setup (see the report / Makefile)
  <cache>/<WHEEL_NAME>         an earlier download by this helper
  pip download                 into <cache> (needs PyPI; in CI it is reachable)
The hub directory is built under <cache>/hub-<sha8>; <cache> is `<venv>/cotracker-hub` when the
tests run from a virtual environment, else a folder the caller gives (pytest's tmp).

When nothing can be had, `build_hub_dir` raises RuntimeError with the command that fixes it; the
tests let that fail (not skip): a missing wheel must not silently turn the CoTracker tests off.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL_REQ = "autosegmentor==3.0.1"
WHEEL_NAME = "autosegmentor-3.0.1-py3-none-any.whl"
WHEEL_SHA256 = "fdbd209424337a05fffb41e4eb3d32c79fce4be38bf2eaef81349ae82c58d0d3"

HUBCONF = '''\
"""torch.hub entry for the cotracker package extracted beside this file (written for fgbg's tests).

Builds the predictor as upstream co-tracker's hubconf does for `cotracker3_offline`
(CoTrackerPredictor(checkpoint=None, window_len=60, v2=False), offline). It never downloads:
the caller loads a state dict into `predictor.model` itself.
"""

dependencies = ["torch"]


def cotracker3_offline(*, pretrained=False, **kwargs):
    if pretrained:
        raise RuntimeError("this local hub directory has no weights: call it with "
                           "pretrained=False and load a state dict into predictor.model")
    from cotracker.predictor import CoTrackerPredictor

    return CoTrackerPredictor(checkpoint=None, offline=True, window_len=60, v2=False)
'''


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def venv_cache() -> Path | None:
    """<venv>/cotracker-hub when running inside a virtual environment, else None."""
    if sys.prefix != sys.base_prefix:
        return Path(sys.prefix) / "cotracker-hub"
    return None


def find_wheel(cache: Path) -> Path:
    """The checked wheel, downloading it into `cache` when no copy is around."""
    candidates = []
    env = os.environ.get("FGBG_COTRACKER_WHEEL")
    if env:
        candidates.append(Path(env))
    if sys.prefix != sys.base_prefix:
        candidates.append(Path(sys.prefix) / "wheels" / WHEEL_NAME)
    candidates.append(cache / WHEEL_NAME)
    for cand in candidates:
        if cand.is_file():
            sha = _sha256(cand)
            if sha != WHEEL_SHA256:
                raise RuntimeError(f"{cand} has sha256 {sha}, expected {WHEEL_SHA256} "
                                   f"({WHEEL_REQ}); delete it and rerun")
            return cand
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
           WHEEL_REQ, "-d", str(cache)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        err = proc.stderr.strip()[-2000:] if proc.returncode else ""
    except (OSError, subprocess.TimeoutExpired) as exc:
        err = str(exc)
    wheel = cache / WHEEL_NAME
    if err or not wheel.is_file():
        into = Path(sys.prefix) / "wheels" if sys.prefix != sys.base_prefix else cache
        raise RuntimeError(
            "the CoTracker tests need the upstream cotracker code, vendored in the "
            f"{WHEEL_REQ} wheel, and it could not be downloaded: {err or 'no wheel written'}\n"
            f"fix: `{sys.executable} -m pip download --no-deps {WHEEL_REQ} -d {into}` "
            "where PyPI is reachable, or set "
            "$FGBG_COTRACKER_WHEEL to a copy of the wheel (never pip-install it: it "
            "overwrites sam2)")
    sha = _sha256(wheel)
    if sha != WHEEL_SHA256:
        wheel.unlink()
        raise RuntimeError(f"the downloaded {WHEEL_NAME} has sha256 {sha}, expected {WHEEL_SHA256}")
    return wheel


def build_hub_dir(fallback_cache: Path) -> Path:
    """A directory with hubconf.py and cotracker/ for torch.hub.load(..., source='local').
    Built once per cache (atomically: concurrent test runs do not see half a directory)."""
    cache = venv_cache() or Path(fallback_cache)
    hub = cache / f"hub-{WHEEL_SHA256[:8]}"
    if (hub / "hubconf.py").is_file() and (hub / "cotracker" / "predictor.py").is_file():
        return hub
    wheel = find_wheel(cache)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="hub-tmp-", dir=cache))
    try:
        with zipfile.ZipFile(wheel) as zf:
            members = [m for m in zf.namelist() if m.startswith("cotracker/")]
            if not any(m == "cotracker/predictor.py" for m in members):
                raise RuntimeError(f"{wheel} has no cotracker/predictor.py")
            zf.extractall(tmp, members)
        (tmp / "hubconf.py").write_text(HUBCONF, encoding="utf-8")
        try:
            tmp.rename(hub)
        except OSError:  # another run built it first
            if not (hub / "hubconf.py").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return hub


if __name__ == "__main__":  # python tests/backends/cotracker_hub.py [CACHE] -> prints the hub dir
    print(build_hub_dir(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.gettempdir())))
