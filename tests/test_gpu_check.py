"""bench/gpu_check.sh, the one-shot GPU check, run here in its --smoke mode (the same code on the
CPU at tiny sizes): it prints ONE markdown table with every expected row, each holding numbers or
a clear failed/skipped reason, and the diffusion rows numbers. Plus its two refusals: the time
budget (every row skipped) and no CUDA device without --smoke."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PARTS = ["device", "diffusion fp16, batched CFG", "diffusion fp16, --low-memory (CFG halves)",
         "diffusion bf16, batched CFG", "diffusion bf16, --low-memory (CFG halves)", "DWPose",
         "SAM 2 (sam2 backend)", "CoTracker3 offline", "total"]
COLUMNS = ["part", "config", "per output frame", "peak GPU GiB", "UNet TFLOP/s",
           "share of bf16 dense peak", "notes"]
MEASURED = re.compile(r"^\d+(\.\d+)? (s|ms)$")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "", "FGBG_PYTHON": sys.executable}


def table(stdout: str) -> dict[str, list[str]]:
    """The one markdown table on stdout -> {part: cells}; nothing else may be printed there."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert lines and all(line.startswith("| ") and line.endswith(" |") for line in lines), stdout
    rows = [[c.strip() for c in line[2:-2].split(" | ")] for line in lines]
    assert rows[0] == COLUMNS and set(rows[1]) == {"---"}
    assert all(len(r) == len(COLUMNS) for r in rows), stdout
    assert [r[0] for r in rows[2:]] == PARTS, stdout
    return {r[0]: r for r in rows[2:]}


def run(args, timeout=150):
    return subprocess.run(args, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)


def test_smoke_run_prints_one_table_with_every_row():
    proc = run(["bash", "bench/gpu_check.sh", "--smoke"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = table(proc.stdout)
    for part in PARTS[1:-1]:
        per_frame = rows[part][2]
        ok = MEASURED.match(per_frame) or re.match(r"^(failed|skipped): \S", per_frame)
        assert ok, (part, per_frame, proc.stderr[-2000:])
    for part in PARTS[1:5]:  # the diffusion rows must have run, with a FLOP count
        cells = rows[part]
        assert MEASURED.match(cells[2]) and cells[2].endswith(" s"), (cells, proc.stderr[-2000:])
        assert float(cells[4]) >= 0 and "FlopCounterMode" in cells[6]
    assert "stand-in" in rows["DWPose"][6].lower()


def test_time_budget_skips_every_row():
    proc = run([sys.executable, "bench/gpu_check.py", "--smoke", "--budget", "0"], timeout=90)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = table(proc.stdout)
    for part in PARTS[1:-1]:
        assert rows[part][2].startswith("skipped: time budget"), rows[part]


def test_no_cuda_without_smoke_is_an_error():
    proc = run([sys.executable, "bench/gpu_check.py"], timeout=90)
    assert proc.returncode == 2
    assert "error: no CUDA device" in proc.stderr and "hint:" in proc.stderr and "--smoke" in proc.stderr
    assert proc.stdout.strip() == ""


@pytest.mark.parametrize("name, peak", [("NVIDIA H200", 989), ("NVIDIA H100 80GB HBM3", 989),
                                        ("NVIDIA H100 PCIe", 756), ("NVIDIA A100-SXM4-80GB", 312),
                                        ("NVIDIA L40S", 362), ("NVIDIA GeForce RTX 4090", 165),
                                        ("NVIDIA L4", 121), ("Tesla T4", None)])
def test_bf16_peak_table(name, peak):
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from gpu_check import peak_for
    finally:
        sys.path.remove(str(ROOT / "bench"))
    assert peak_for(name) == peak
