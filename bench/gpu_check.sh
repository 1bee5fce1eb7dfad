#!/usr/bin/env bash
# One prepared GPU check of fgbg: bench/gpu_check.py under `timeout 480`, ONE markdown table on
# stdout (everything else on stderr). From the repo root:
#
#   bash bench/gpu_check.sh            # on the GPU machine: at most 8 minutes, setup included
#   bash bench/gpu_check.sh --smoke    # on the CPU: the same code at tiny sizes, under a minute
#   bash bench/gpu_check.sh --pack     # here: write bench/out/gpu-pack.tgz (see below)
#   (any other arguments go to bench/gpu_check.py; see its --help)
#
# Python: $FGBG_PYTHON when set, else .venv/bin/python when the tree has one, else python3. With python3, fgbg is used from
# this tree (PYTHONPATH), and when bench/out/gpu-pack.tgz is there (`--pack` made it here from
# .venv: the pure-Python packages a GPU image lacks, diffusers, sam2, hydra-core, omegaconf,
# antlr4, iopath, and the CoTracker code wheel) it is unpacked under $TMPDIR and put first on
# PYTHONPATH. Carry it to the GPU machine with the tree (bench/out is git-ignored: name
# `bench/out/gpu-pack.tgz` in carry; about 6 MiB). If fgbg's packages still do not import, one
# quiet `pip install -e '.[test]'` is tried (at most 120 s, the machine's own torch pinned so it
# is never replaced); where no registry answers it fails and the rows that need the missing
# packages print "failed: missing package ...". FGBG_GPU_CHECK_LIMIT overrides the 480 s.
set -u
cd "$(dirname "$0")/.." || exit 2
LIMIT=${FGBG_GPU_CHECK_LIMIT:-480}
PACK=${FGBG_GPU_PACK:-bench/out/gpu-pack.tgz}
WHEEL=autosegmentor-3.0.1-py3-none-any.whl
if [ -n "${FGBG_PYTHON:-}" ]; then PY=$FGBG_PYTHON; elif [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi

if [ "${1:-}" = "--pack" ]; then
  exec "$PY" bench/gpu_check.py --pack "$PACK"
fi
if [ -z "${FGBG_GPU_CHECK_INNER:-}" ] && command -v timeout >/dev/null; then
  export FGBG_GPU_CHECK_INNER=1
  timeout -k 10 "$LIMIT" bash "$0" "$@"
  rc=$?
  [ $rc -eq 124 ] || [ $rc -eq 137 ] && echo "gpu_check: stopped by timeout $LIMIT (the rows printed so far stand)" >&2
  exit $rc
fi

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ "$PY" = python3 ] && [ -f "$PACK" ]; then
  SITE="${TMPDIR:-/tmp}/fgbg-gpu-pack"
  rm -rf "$SITE" && mkdir -p "$SITE" && tar xzf "$PACK" -C "$SITE" \
    && export PYTHONPATH="$SITE/site:$PYTHONPATH" \
    && echo "gpu_check: using the packages of $PACK" >&2
  [ -f "$SITE/wheels/$WHEEL" ] && export FGBG_COTRACKER_WHEEL="${FGBG_COTRACKER_WHEEL:-$SITE/wheels/$WHEEL}"
fi
# the CoTracker code wheel where `make test` put it (also when only .venv/wheels was carried)
if [ -z "${FGBG_COTRACKER_WHEEL:-}" ] && [ -f ".venv/wheels/$WHEEL" ]; then
  export FGBG_COTRACKER_WHEEL="$PWD/.venv/wheels/$WHEEL"
fi

if ! "$PY" -c "import fgbg, torch, diffusers, sam2" >/dev/null 2>&1; then
  echo "gpu_check: not all of fgbg's packages import with $PY: trying pip install -e '.[test]'" \
       "quietly (at most 120 s)" >&2
  CONS=$(mktemp)
  "$PY" - >"$CONS" 2>/dev/null <<'EOF'
import importlib.metadata as md
for name in ("torch", "torchvision", "torchaudio", "numpy"):  # never replace the machine's own
    try:
        print(f"{name}=={md.version(name)}")
    except md.PackageNotFoundError:
        pass
EOF
  timeout 120 "$PY" -m pip install -q --disable-pip-version-check --retries 0 --timeout 10 \
      -c "$CONS" -e '.[test]' >&2 \
    || echo "gpu_check: pip install did not succeed (no registry, or pins that do not fit this" \
            "machine's torch); going on: rows needing missing packages will say so" >&2
  rm -f "$CONS"
fi

# the Python side gets what is left of the limit, less a margin for its start and imports
BUDGET=$((LIMIT - SECONDS - 30))
[ "$BUDGET" -gt 0 ] || BUDGET=1
"$PY" bench/gpu_check.py --budget "$BUDGET" "$@"
