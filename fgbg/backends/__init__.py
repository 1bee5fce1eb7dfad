"""Registries of named backends, one per capability, imported lazily.

A model is found behind `fgbg/backends/<capability>/`: pose (dwpose, mediapipe), segment (sam2,
sam, mediapipe), track (cotracker, lk), generate (diffusion, warp); each package's `ENTRIES` is its
registry, its helpers sit beside its backends. `base.py` holds the interfaces and data every
capability shares; `mp_runtime.py` the mediapipe loader the pose and segment backends share.

Each entry maps a backend name to "module:Class" and the model artifacts (models.lock names) it
needs. `auto` picks the first backend in preference order whose artifacts are all present; the
weight-free backends need none, so `auto` always finds one.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from ..errors import InputError


@dataclass(frozen=True)
class BackendSpec:
    target: str  # "module:Class"
    artifacts: tuple[str, ...] = ()  # models.lock entries it loads
    # "module:function"(params) -> {identity: sha} when the backend's model is there, else None;
    # for models that are not single lock entries (a converted or trained pipeline folder)
    finder: str | None = None
    missing_hint: str | None = None  # "module:function"() -> the fix when the finder finds nothing


# one registry per capability, each in its own package beside its backends; preference order:
# best first
from .generate import ENTRIES as _GENERATE  # noqa: E402
from .pose import ENTRIES as _POSE  # noqa: E402
from .segment import ENTRIES as _SEGMENT  # noqa: E402
from .track import ENTRIES as _TRACK  # noqa: E402

REGISTRY: dict[str, dict[str, BackendSpec]] = {"pose": _POSE, "segment": _SEGMENT, "track": _TRACK,
                                               "generate": _GENERATE}

OPTION = {"pose": "--pose-backend", "segment": "--seg-backend", "track": "--tracker",
          "generate": "--backend"}


def _call(target: str, *args):
    module, fn = target.split(":")
    return getattr(importlib.import_module(module), fn)(*args)


def _present(artifacts: tuple[str, ...]) -> bool:
    if not artifacts:
        return True
    from ..store import load_lock, state

    lock = load_lock()
    return all(name in lock and state(lock[name]) == "present" for name in artifacts)


def check_name(kind: str, name: str) -> None:
    """Reject an unknown backend name before any work starts."""
    choices = REGISTRY[kind]
    if name != "auto" and name not in choices:
        raise InputError(f"unknown {kind} backend '{name}'",
                         cause=f"this version of fgbg has: auto, {', '.join(choices)}",
                         hint=f"use {OPTION[kind]} with one of: auto, {', '.join(choices)}")


def resolve(kind: str, name: str, params=None) -> tuple[str, dict[str, str]]:
    """Backend name (auto resolved) and {artifact: sha256 (or git:<commit>)} of the weights and code it will use (these go
    into the stage's cache key: other weights, other results)."""
    check_name(kind, name)
    choices = REGISTRY[kind]
    if name == "auto":
        for cand, spec in choices.items():
            if spec.finder is not None:
                if _call(spec.finder, params, False) is not None:
                    name = cand
                    break
            elif _present(spec.artifacts):
                name = cand
                break
    models: dict[str, str] = {}
    spec = choices[name]
    if spec.finder is not None:
        found = _call(spec.finder, params, True)
        if found is None:
            from ..errors import ModelError

            raise ModelError(f"the {name} {kind} backend has no model here",
                             cause="its model folder was not found",
                             hint=_call(spec.missing_hint) if spec.missing_hint else "see fgbg models list")
        models.update(found)
    if spec.artifacts:
        from ..store import load_lock, require

        lock = load_lock()
        for art in spec.artifacts:
            require(art)
            # a git checkout (code) has no sha256: its pinned commit keys the cache instead
            models[art] = lock[art].sha256 or f"git:{lock[art].revision}"
    return name, models


def build(kind: str, name: str, params, device: str = "auto"):
    """Construct a backend by (resolved) name. Constructing never downloads.

    Backends that load a model take `device` (the run's one choice, see fgbg.devices); the
    weight-free ones take only their params. Inside `fgbg.backends.pool.reuse()` a backend built
    before with the same arguments is handed out again (reset for a new video)."""
    from . import pool

    if pool.active() is not None:
        return pool.active().get(pool.pool_key(kind, name, params, device),
                                 lambda: _construct(kind, name, params, device))
    return _construct(kind, name, params, device)


def _construct(kind: str, name: str, params, device: str):
    import inspect

    module, cls = REGISTRY[kind][name].target.split(":")
    factory = getattr(importlib.import_module(module), cls)
    if "device" in inspect.signature(factory).parameters:
        from ..devices import resolve_device

        return factory(params, device=resolve_device(device))
    return factory(params)


def release(backend) -> None:
    """Free a backend's native resources (mediapipe graphs, GPU memory) before the next stage
    loads its own: one model in memory at a time. A backend kept by `fgbg.backends.pool.reuse()`
    stays loaded (the pool closes it when it needs the room, or at the end)."""
    from . import pool

    if pool.active() is not None and pool.active().put_back(backend):
        return
    close = getattr(backend, "close", None)
    if close is not None:
        close()
    import gc

    gc.collect()
    from ..devices import free_cuda_memory

    free_cuda_memory()
