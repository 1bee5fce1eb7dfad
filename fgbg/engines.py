"""Where batch work runs: `--engine local` (this process, the default) or `--engine ray` (worker
actors on a Ray cluster), for `fgbg prepare` and `fgbg batch`.

Both engines run the same function over batches of items (`prepare_batch` of
fgbg.training.prepare, `run_batch` of fgbg.batch): it works stage by stage over its batch and
yields events, ("step", id, stage) and then ("done" | "failed", id, payload), which the caller
turns into the progress bar, the index and the failure record. What differs is only where the
function runs:

- local: here, batch after batch, inside one `fgbg.backends.pool.reuse()`.
- ray: on N worker actors. Each actor is a long-lived process that holds its own backend pool
  (one model at a time, reused across the videos of a batch: each stage's model is loaded once per
  batch instead of once per video) and works through one batch at a time; the driver hands the
  next batch to whichever actor is free and streams its events back (a Ray generator per batch),
  so the bar moves stage by stage. A worker gets `--gpus-per-worker G` of a GPU (a fraction lets
  several workers share one) and its device comes from Ray's assignment (`ray.get_gpu_ids()`),
  never from a guess; without G it works on the CPU.

Ray tasks and actors, not Ray Data: the work is side effects on shared storage (per-video work
dirs with their own cache, resume and atomic commits, written by the same code as the local
engine), not a dataset to transform; Ray Data would want rows in and rows out, retry or drop
whole blocks on its own terms, and add its own executor, progress bars and start-up time (seconds)
to runs of a few videos. Actors give the three things that matter here directly: a model kept
in a process across videos, a device per worker from Ray's GPU assignment, and per-video
failures (an actor killed mid-batch fails the unfinished items of that batch, which are recorded
like any failure; Ray restarts the actor for the next batch, and a rerun resumes those videos
from their stage caches). `ray` is imported only inside the ray engine (`pip install
'fgbg[ray]'`).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
from collections import deque
from typing import Iterator

from .errors import InputError

ENGINES = ("local", "ray")
RAY_HINT = "pip install 'fgbg[ray]' (ray 2.60.0), or use --engine local"


def check_engine(engine: str, address: str | None = None, workers: int | None = None,
                 gpus_per_worker: float = 0.0, device: str = "auto") -> None:
    """Reject a bad engine choice before any work starts (ray is not imported here)."""
    if engine not in ENGINES:
        raise InputError(f"unknown engine '{engine}'", cause=f"fgbg runs on {' or '.join(ENGINES)}",
                         hint="use --engine local (this machine) or --engine ray (a Ray cluster)")
    if workers is not None and workers < 1:
        raise InputError(f"--workers {workers} is too few", cause="a run needs at least one worker",
                         hint="leave --workers out (one per CPU, or per GPU share), or give N >= 1")
    if not 0 <= gpus_per_worker <= 64 or math.isnan(gpus_per_worker):
        raise InputError(f"--gpus-per-worker {gpus_per_worker} is out of range",
                         cause="a worker takes 0 (CPU only) up to a whole number of GPUs",
                         hint="use --gpus-per-worker 1 (or 0.5 to put two workers on each GPU)")
    if gpus_per_worker > 1 and gpus_per_worker != int(gpus_per_worker):
        raise InputError(f"--gpus-per-worker {gpus_per_worker} is not a share Ray can give",
                         cause="above 1, Ray hands out whole GPUs",
                         hint="use a fraction up to 1 (e.g. 0.5) or a whole number")
    if engine == "local":
        given = [o for o, v in (("--address", address), ("--workers", workers),
                                ("--gpus-per-worker", gpus_per_worker or None)) if v is not None]
        if given:
            raise InputError(f"{given[0]} needs --engine ray",
                             cause="the local engine works in this process, on this machine",
                             hint=f"add --engine ray, or leave {given[0]} out")
        return
    base, _, index = device.partition(":")
    if index:
        raise InputError(f"--device {device} does not go with --engine ray",
                         cause="each Ray worker's GPU comes from Ray's assignment",
                         hint="use --device auto with --gpus-per-worker G")
    if base == "cuda" and not gpus_per_worker:
        raise InputError("--device cuda with --engine ray needs --gpus-per-worker",
                         cause="without it Ray gives the workers no GPU",
                         hint="add --gpus-per-worker 1 (or a fraction such as 0.5)")
    if base == "cpu" and gpus_per_worker:
        raise InputError("--device cpu and --gpus-per-worker contradict each other",
                         cause="a worker given a GPU share would leave it unused",
                         hint="leave --gpus-per-worker out for CPU workers, or use --device auto")
    if importlib.util.find_spec("ray") is None:
        raise InputError("--engine ray needs ray", cause="ray is not installed in this environment",
                         hint=RAY_HINT)


def failure(exc: BaseException) -> dict:
    """{what, cause, traceback} of an item's error, as failure records and result lines give it."""
    import traceback

    from .errors import FgbgError

    if isinstance(exc, FgbgError):
        what, cause = exc.what, exc.cause
    else:
        what = f"{type(exc).__name__}: {exc}"
        cause = "an unexpected error inside fgbg or a library it uses (rerun with -v)"
    return {"what": what, "cause": cause,
            "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))}


def _target(path: str):
    module, fn = path.split(":")
    return getattr(importlib.import_module(module), fn)


def batches_of(items: list, size: int) -> list[list]:
    return [items[k:k + size] for k in range(0, len(items), size)]


def run_items(target: str, items: list[dict], kwargs: dict, *, engine: str = "local",
              device: str = "auto", report=None, batch: int = 8, address: str | None = None,
              workers: int | None = None, gpus_per_worker: float = 0.0) -> Iterator[tuple]:
    """Events of `target(batch, device=..., **kwargs)` ("module:function", a generator) over
    `items` (dicts, each with "ids": the event ids it yields), cut into batches of at most
    `batch` (fewer per batch when that gives every worker one). Items run in order on the local
    engine; on Ray, events arrive as the workers produce them."""
    if not items:
        return
    if engine == "local":
        from .backends.pool import reuse

        fn = _target(target)
        with reuse(max_held=1):
            for b in batches_of(items, batch):
                yield from fn(b, device=device, **kwargs)
        return
    yield from _run_ray(target, items, kwargs, device=device, report=report, batch=batch,
                        address=address, workers=workers, gpus_per_worker=gpus_per_worker)


# ---- the Ray engine ------------------------------------------------------------------------------
def worker_device(requested: str) -> str:
    """The device of this Ray worker, from Ray's assignment: its first GPU when Ray gave it one
    (Ray narrows CUDA_VISIBLE_DEVICES to the worker's GPUs, so that is usually cuda:0 here),
    else the CPU."""
    import ray

    ids = [str(i) for i in ray.get_gpu_ids()]
    if not ids or requested == "cpu":
        return "cpu"
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if ids[0] in visible:
        return f"cuda:{visible.index(ids[0])}"
    return f"cuda:{ids[0]}"  # RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES: every GPU is visible


class Worker:
    """A Ray worker actor: a process that keeps its backend pool (one model at a time) for its
    whole life and runs batches on the device Ray assigned it."""

    def __init__(self, device: str):
        from .backends.pool import reuse

        os.environ.setdefault("GLOG_minloglevel", "2")  # mediapipe's native logs
        self.device = worker_device(device)
        self._pool_context = reuse(max_held=1)
        self.pool = self._pool_context.__enter__()

    def info(self) -> dict:
        import ray

        return {"pid": os.getpid(), "node": ray.util.get_node_ip_address(), "device": self.device,
                "gpu_ids": [str(i) for i in ray.get_gpu_ids()],
                "builds": {f"{k}/{n}": c for (k, n), c in self.pool.builds.items()}}

    def run(self, target: str, batch: list[dict], kwargs: dict):
        yield from _target(target)(batch, device=self.device, **kwargs)


def _died(exc: BaseException) -> dict:
    return {"what": f"the Ray worker died while working on it ({type(exc).__name__})",
            "cause": "the worker process was killed, ran out of memory, or crashed in native code, "
                     "or its node left the cluster (its log is in /tmp/ray/session_latest/logs "
                     "on that node)",
            "traceback": str(exc), "seconds": 0.0}


def _connect(address: str | None, verbose: bool) -> bool:
    """Connect to (address) or start (None) a Ray cluster; True when this call started it."""
    import logging

    import ray

    if ray.is_initialized():
        return False
    kw = {"log_to_driver": verbose, "logging_level": logging.INFO if verbose else logging.ERROR,
          "configure_logging": True}
    # workers on other nodes get their node's environment; fgbg's own settings (FGBG_MODELS, ...)
    # and HF_HUB_OFFLINE follow the run to them
    env = {k: v for k, v in os.environ.items() if k.startswith("FGBG_") or k == "HF_HUB_OFFLINE"}
    if env:
        kw["runtime_env"] = {"env_vars": env}
    try:
        if address:
            ray.init(address=address, **kw)
        else:  # a local cluster of this machine's CPUs (and GPUs), or the one RAY_ADDRESS names
            ray.init(include_dashboard=False, **kw)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or os.environ.get("RAY_ADDRESS") or "this machine"
        raise InputError(f"cannot reach a Ray cluster at {where}", cause=str(exc).splitlines()[0],
                         hint="start one with `ray start --head` and pass --address HOST:6379 (or "
                              "--address auto on a node of it), or leave --address out to start a "
                              "local one") from exc
    return True


def _worker_count(workers: int | None, gpus_per_worker: float, items: int, report) -> int:
    """--workers, else as many as the cluster has room for (a CPU each, and the GPU share)."""
    import ray

    res = ray.cluster_resources()
    cpus, gpus = int(res.get("CPU", 0)), float(res.get("GPU", 0))
    fit = max(cpus, 1)
    if gpus_per_worker:
        fit = min(fit, int(gpus // gpus_per_worker + 1e-9))
        if workers is None and fit == 0:
            raise InputError(f"--gpus-per-worker {gpus_per_worker}: the Ray cluster has {gpus:g} GPUs",
                             cause="no worker can get its GPU share",
                             hint="start the Ray nodes with their GPUs (`ray start ... --num-gpus N`), "
                                  "or leave --gpus-per-worker out to work on the CPUs")
    if workers is not None and workers > fit and report is not None:
        report.warn(f"--workers {workers}: the Ray cluster has room for {fit} now; the others wait "
                    "until nodes join")
    return max(1, min(workers if workers is not None else fit, items))


def _run_ray(target, items, kwargs, *, device, report, batch, address, workers, gpus_per_worker):
    import ray
    from ray.exceptions import RayError, RayTaskError

    verbose = bool(report is not None and report.verbose)
    started = _connect(address, verbose)
    actors = []
    try:
        n = _worker_count(workers, gpus_per_worker, len(items), report)
        size = max(1, min(batch, math.ceil(len(items) / n)))
        queue = deque(batches_of(items, size))
        n = min(n, len(queue))
        remote = ray.remote(num_cpus=1, num_gpus=gpus_per_worker or 0, max_restarts=-1,
                            max_task_retries=0)(Worker)
        actors = [remote.remote(device) for _ in range(n)]
        if verbose:
            res = ray.cluster_resources()
            report.debug(f"ray: {n} workers, batches of {size}; the cluster has {res.get('CPU', 0):g} "
                         f"CPUs, {res.get('GPU', 0):g} GPUs")
            for info in ray.get([a.info.remote() for a in actors]):
                report.debug(f"ray worker pid {info['pid']} on {info['node']}: {info['device']}")
        idle, running = deque(actors), {}  # id(generator) -> (generator, actor, pending ids)
        while queue or running:
            while idle and queue:
                actor, b = idle.popleft(), queue.popleft()
                gen = actor.run.remote(target, b, kwargs)
                running[id(gen)] = (gen, actor, [i for item in b for i in item["ids"]])
            ready, _ = ray.wait([g for g, _, _ in running.values()], num_returns=1)
            gen, actor, pending = running[id(ready[0])]
            try:
                event = ray.get(next(gen))
            except StopIteration:
                del running[id(gen)]
                idle.append(actor)
                for i in pending:  # cannot happen unless the function skipped an item
                    yield "failed", i, {**_died(RuntimeError("the batch ended early")),
                                        "what": "the worker ended its batch without this item"}
                continue
            except RayTaskError as exc:  # an error escaping the batch function (a bug)
                del running[id(gen)]
                idle.append(actor)
                cause = exc.as_instanceof_cause() if hasattr(exc, "as_instanceof_cause") else exc
                for i in pending:
                    yield "failed", i, {**failure(cause), "seconds": 0.0}
                continue
            except RayError as exc:  # the worker died (killed, OOM, node lost): Ray restarts it
                del running[id(gen)]
                idle.append(actor)
                for i in pending:
                    yield "failed", i, _died(exc)
                continue
            if event[0] in ("done", "failed") and event[1] in pending:
                pending.remove(event[1])
            yield event
    finally:
        for actor in actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # already gone
                pass
        if started:
            ray.shutdown()
