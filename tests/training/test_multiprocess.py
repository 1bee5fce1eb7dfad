"""`fgbg train` under `accelerate launch` with two CPU processes (gloo), the tiny config.

What the loop promises (fgbg/training/loop.py): `batch_size` is per process; a step's global
batch (its samples, noise and timesteps) is drawn the same way whatever the number of processes.
So 2 processes x batch_size 2 compute what 1 process x batch_size 4 computes. Not bit for bit: the
gradients are averaged by a gloo all-reduce, the logged loss is the mean of the two processes'
means and the matmuls run on batches of 2 instead of 4, so float32 sums are taken in another
order. Measured on 2 cores: the losses of 4 steps differ by at most 1 ulp (1.1e-7 relative), the
weights by at most 1e-6 (the LR is 2e-5..5e-5 there, an Adam step moves a weight by about the LR).
The tolerances below (1e-5 relative on losses, 1e-5 absolute on weights) are 100x and 10x that and
far below what a wrong batch or schedule gives (0.05..0.5 on the loss at step 2). Between
2-process runs everything is bit for bit: the same seed twice, and interrupted + resumed against
straight through (losses and final weights).

Launched as the README says: `ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2`.
(`accelerate launch --cpu --num_processes 2` starts ONE process unless an MPI hostfile is given;
`--multi_gpu` without ACCELERATE_USE_CPU on a machine without GPUs starts two processes that
each train alone: the loop refuses that, tested last.) accelerate launch ignores MASTER_PORT: the
port goes in --main_process_port, a free one per run.
"""

import json
import os
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("accelerate")

from tests.training.test_train import dataset  # noqa: E402, F401  (the module's fixture)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ACCELERATE = Path(sys.executable).with_name("accelerate")
TIMEOUT = 240  # seconds for one run; a run here takes 15-30 s on 2 cores


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(path: Path, dataset_dir: Path, out: Path, batch_size: int) -> Path:
    """configs/train/tiny-cpu.toml with the test's dataset, output and batch; a checkpoint every 2
    steps, a log line every step (warmup, LR, seed, probabilities as shipped)."""
    raw = tomllib.loads((ROOT / "configs/train/tiny-cpu.toml").read_text())
    raw.update(datasets=[str(dataset_dir)], output_dir=str(out), batch_size=batch_size, checkpoint_every=2,
               log_every=1)
    path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in raw.items()))
    return path


def env(**extra) -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **extra}


def launch(config: Path, *args, processes: int = 2, cpu: bool = True):
    cmd = [str(ACCELERATE), "launch", "--multi_gpu", "--num_processes", str(processes), "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--num_cpu_threads_per_process", "1",
           "--main_process_port", str(free_port()), "-m", "fgbg.cli", "train", str(config), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=TIMEOUT,
                          env=env(**({"ACCELERATE_USE_CPU": "1"} if cpu else {})))


def one_process(config: Path, *args):
    return subprocess.run([sys.executable, "-m", "fgbg.cli", "train", str(config), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=TIMEOUT, env=env())


def ok(r):
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def weights(run: Path) -> dict:
    from safetensors.torch import load_file

    return {f"{f.parent.name}/{k}": v for f in sorted((run / "pipeline").glob("*/*.safetensors"))
            for k, v in load_file(f).items()}


@pytest.fixture(scope="module")
def runs(dataset, tmp_path_factory):  # noqa: F811
    """1 process x batch 4 (4 steps); 2 processes x batch 2 straight (4 steps); 2 x 2 to step 2,
    then resumed to step 4."""
    if not ACCELERATE.is_file():
        pytest.skip("no accelerate console script beside the interpreter")
    tmp = tmp_path_factory.mktemp("mp")
    one, two, cut = tmp / "one", tmp / "two", tmp / "cut"
    c4, c2 = write_config(tmp / "b4.toml", dataset, one, 4), write_config(tmp / "b2.toml", dataset, two, 2)
    r = {"one": ok(one_process(c4, "--max-steps", 4)), "two": ok(launch(c2, "--max-steps", 4)),
         "cut": ok(launch(c2, "--max-steps", 2, "--output-dir", cut)),
         "resumed": ok(launch(c2, "--max-steps", 4, "--output-dir", cut, "--resume"))}
    return {"one": one, "two": two, "cut": cut, "out": r}


def test_two_processes_train_together(runs):
    """One report per run, both processes in it, one pipeline; checkpoints hold both RNG states."""
    for name in ("two", "cut", "resumed"):
        r = runs["out"][name]
        assert r.stdout.split() == [str(runs["two" if name == "two" else "cut"] / "pipeline")], r.stdout
        assert r.stderr.count("2 process(es)") == 1 and r.stderr.count("metrics: ") == 1, r.stderr
    assert runs["out"]["resumed"].stderr.count("resumed at step 2") == 1
    assert [m["step"] for m in metrics(runs["two"])] == [1, 2, 3, 4]  # one line a step, not one a process
    ck = runs["cut"] / "checkpoints"
    assert sorted(p.name for p in ck.iterdir()) == ["step-0000002", "step-0000004"]
    for step in ck.iterdir():
        names = {p.name for p in step.iterdir()}
        assert {"random_states_0.pkl", "random_states_1.pkl", "trainer_state.json", "model.safetensors",
                "optimizer.bin", "scheduler.bin"} <= names, names


def test_same_global_batch_same_losses(runs):
    """2 processes x batch 2 == 1 process x batch 4: the same LR every step (the schedule counts
    optimizer steps, not process-steps), losses and weights within float32 reordering."""
    one, two = metrics(runs["one"]), metrics(runs["two"])
    assert [m["lr"] for m in two] == [m["lr"] for m in one]
    assert [m["loss"] for m in two] == pytest.approx([m["loss"] for m in one], rel=1e-5, abs=0)
    a, b = weights(runs["one"]), weights(runs["two"])
    assert a.keys() == b.keys()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst < 1e-5, worst


def test_same_seed_bit_for_bit_and_resume_bit_for_bit(runs):
    """Two 2-process runs from the same seed agree bit for bit on steps 1-2; the run cut at step 2
    and resumed agrees bit for bit with the straight one on steps 3-4 and on every final weight."""
    two, cut = metrics(runs["two"]), metrics(runs["cut"])
    assert [m["step"] for m in cut] == [1, 2, 3, 4]
    assert [(m["loss"], m["lr"]) for m in cut] == [(m["loss"], m["lr"]) for m in two]
    a, b = weights(runs["two"]), weights(runs["cut"])
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    from safetensors.torch import load_file

    at2, at4 = (load_file(runs["cut"] / "checkpoints" / f"step-000000{s}" / "model.safetensors") for s in (2, 4))
    assert any(not torch.equal(at2[k], at4[k]) for k in at2)  # the resumed steps did move the weights
    straight4 = load_file(runs["two"] / "checkpoints" / "step-0000004" / "model.safetensors")
    assert [k for k in at4 if not torch.equal(at4[k], straight4[k])] == []


def test_processes_that_would_train_alone_are_refused(dataset, tmp_path):  # noqa: F811
    """`--multi_gpu` on a machine with no GPU, without ACCELERATE_USE_CPU=1: Accelerate would run
    two single-process trainings into one output_dir; each process stops before writing."""
    if torch.cuda.is_available():
        pytest.skip("with GPUs `--multi_gpu` is the right launch")
    if not ACCELERATE.is_file():
        pytest.skip("no accelerate console script beside the interpreter")
    out = tmp_path / "alone"
    r = launch(write_config(tmp_path / "c.toml", dataset, out, 2), "--max-steps", 2, cpu=False)
    assert r.returncode != 0
    assert "2 processes were launched" in r.stderr and "ACCELERATE_USE_CPU=1" in r.stderr, r.stderr[-2000:]
    assert not (out / "metrics.jsonl").exists() and not (out / "checkpoints").exists()
