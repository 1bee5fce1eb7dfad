"""Built backends kept for reuse, so a process that works through many videos loads each model once.

Inside `with reuse(max_held=1):`, `fgbg.backends.build` hands out a kept backend when one with the
same (kind, name, params, device) was built before, after calling its `reset()` (every backend
with per-video state has one: the next video starts exactly as it would on a fresh instance, so the
results, and the stage cache keys that do not know about reuse, stay the same), and
`fgbg.backends.release` keeps it instead of closing it. At most `max_held` backends are kept:
building another first releases the least recently used one. With 1 (the default) a process holds
one stage's model at a time, which is what a worker on a share of a GPU can afford; a caller that
wants the reuse then works stage by stage over a batch of videos (fgbg.training.prepare,
fgbg.batch). Outside `reuse()` nothing changes: build builds, release closes.

Not thread-safe: one pool per process, used by the thread that runs the stages.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from contextlib import contextmanager
from typing import Callable, Iterator

_ACTIVE: "BackendPool | None" = None


def active() -> "BackendPool | None":
    return _ACTIVE


class BackendPool:
    def __init__(self, max_held: int = 1):
        if max_held < 1:
            raise ValueError(f"max_held must be >= 1, got {max_held}")
        self.max_held = max_held
        self._held: OrderedDict[tuple, object] = OrderedDict()  # least recently used first
        self._in_use: set[int] = set()  # id() of kept backends handed out and not released yet
        self.builds: Counter = Counter()  # (kind, name) -> models built: a test or bench can count

    def get(self, key: tuple, make: Callable[[], object]):
        """The kept backend for `key` (reset for a new video), or a new one from `make()`."""
        backend = self._held.get(key)
        if backend is not None and id(backend) not in self._in_use:
            self._held.move_to_end(key)
            reset = getattr(backend, "reset", None)
            if reset is not None:
                reset()
            self._in_use.add(id(backend))
            return backend
        if backend is not None:  # the same model asked for twice at once: a second, unkept copy
            return make()
        while len(self._held) >= self.max_held:
            if not self._evict():
                break
        backend = make()
        self.builds[key[:2]] += 1
        self._held[key] = backend
        self._in_use.add(id(backend))
        return backend

    def put_back(self, backend) -> bool:
        """True when `backend` is kept here (release then leaves it loaded)."""
        if any(b is backend for b in self._held.values()):
            self._in_use.discard(id(backend))
            return True
        return False

    def _evict(self) -> bool:
        for key, backend in self._held.items():  # least recently used first, never one in use
            if id(backend) not in self._in_use:
                del self._held[key]
                _close(backend)
                return True
        return False

    def close(self) -> None:
        held, self._held = list(self._held.values()), OrderedDict()
        self._in_use.clear()
        for backend in held:
            _close(backend)


def _close(backend) -> None:
    from . import release

    release(backend)  # not kept any more: release closes it


def pool_key(kind: str, name: str, params, device: str) -> tuple:
    try:
        hash(params)
        p = params
    except TypeError:  # a params object that is not hashable: its repr names its values
        p = repr(params)
    return (kind, name, p, device)


@contextmanager
def reuse(max_held: int = 1) -> Iterator[BackendPool]:
    """Keep built backends for the duration of the block (see the module docstring)."""
    global _ACTIVE
    previous, pool = _ACTIVE, BackendPool(max_held)
    _ACTIVE = pool
    try:
        yield pool
    finally:
        _ACTIVE = previous
        pool.close()
