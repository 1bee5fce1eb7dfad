"""The work directory: content-addressed stage cache, atomic stage folders, a lock, clean-up.

Layout of a work directory (default `.fgbg/<video stem>/`):

    .lock                     held (flock) by the process working here; holds its pid
    .hashes.json              content hashes of input files, keyed by (path, size, mtime)
    <stage>/record.json       the completion record, written last: key, params, files + sha256
    <stage>/...               the stage's outputs
    .<stage>.tmp-<pid>        a stage being written (never read as a result)
    .<stage>.old-<pid>        the previous result during the swap to a new one
    .generate.partial-<key>   generate's resumable progress (clip plan + finished clips)

A stage's key hashes its name and code version, its parameters, the content hash of its file inputs,
the keys of the stages it consumes and the sha256 of the model files it used; a stage is reused only
when its record has the same key and every file it lists still has its recorded size and hash.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError, LockedError

RECORD = "record.json"


def sha256_file(path: Path, bufsize: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(bufsize):
            h.update(chunk)
    return h.hexdigest()


def stage_key(stage: str, version: int, params: dict, inputs: dict[str, str],
              upstream: dict[str, str], models: dict[str, str]) -> str:
    """sha256 of everything that determines a stage's result (canonical JSON)."""
    doc = {"stage": stage, "version": version, "params": params, "inputs": inputs,
           "upstream": upstream, "models": models}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class Record:
    stage: str
    key: str
    folder: Path
    meta: dict[str, Any]


class Workdir:
    def __init__(self, root: Path | str):
        self.root = Path(root)
        self._lock_fd: int | None = None

    # ---- lock -------------------------------------------------------------------------------
    def acquire(self) -> "Workdir":
        """Take the work directory's lock or raise LockedError naming the holder."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create work directory {self.root}", cause=str(exc),
                             hint="choose a writable folder with -w/--workdir") from exc
        path = self.root / ".lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise LockedError(f"work directory {self.root} is in use",
                                  cause=f"another fgbg process (pid {holder}) holds {path}",
                                  hint="wait for it to finish, or give this run its own -w/--workdir") from exc
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd
        self.cleanup()
        return self

    def release(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "Workdir":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    # ---- clean-up of crashed runs -----------------------------------------------------------
    def cleanup(self) -> list[str]:
        """Remove temporary folders of crashed runs; restore a result caught mid-swap."""
        done = []
        for p in sorted(self.root.glob(".*.old-*")):
            stage = p.name[1:].split(".old-")[0]
            target = self.root / stage
            if not target.exists() and (p / RECORD).is_file():
                os.replace(p, target)
                done.append(f"restored {stage}")
            else:
                shutil.rmtree(p, ignore_errors=True)
                done.append(f"removed {p.name}")
        for p in sorted(self.root.glob(".*.tmp-*")):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            done.append(f"removed {p.name}")
        return done

    # ---- input hashing ----------------------------------------------------------------------
    def file_hash(self, path: Path) -> str:
        """Content hash of an input file, remembered by (path, size, mtime) so reruns are fast."""
        path = Path(path).resolve()
        st = path.stat()
        memo_path = self.root / ".hashes.json"
        try:
            memo = json.loads(memo_path.read_text())
        except (OSError, ValueError):
            memo = {}
        ident = f"{path}|{st.st_size}|{st.st_mtime_ns}"
        if ident not in memo:
            memo[ident] = sha256_file(path)
            tmp = memo_path.with_name(f".hashes.json.tmp-{os.getpid()}")
            tmp.write_text(json.dumps(memo))
            os.replace(tmp, memo_path)
        return memo[ident]

    # ---- stage records ----------------------------------------------------------------------
    def stage_dir(self, stage: str) -> Path:
        return self.root / stage

    def completed(self, stage: str, key: str) -> tuple[Record | None, str]:
        """The stage's record if it is complete, has `key` and its files are intact.
        Returns (record or None, reason when None)."""
        folder = self.stage_dir(stage)
        rec_path = folder / RECORD
        if not rec_path.is_file():
            return None, "not run yet" if not folder.exists() else "no completion record"
        try:
            rec = json.loads(rec_path.read_text())
        except ValueError:
            return None, "completion record is unreadable"
        if rec.get("key") != key:
            return None, "inputs or parameters changed"
        for rel, (size, digest) in rec.get("files", {}).items():
            p = folder / rel
            if not p.is_file() or p.stat().st_size != size or sha256_file(p) != digest:
                return None, f"cached file {rel} is missing or corrupt"
        return Record(stage, key, folder, rec.get("meta", {})), ""

    def latest(self, stage: str) -> Record | None:
        """The stage's current completed result, whatever its key (None if absent or damaged)."""
        try:
            key = json.loads((self.stage_dir(stage) / RECORD).read_text())["key"]
        except (OSError, ValueError, KeyError):
            return None
        return self.completed(stage, key)[0]

    def begin(self, stage: str) -> Path:
        tmp = self.root / f".{stage}.tmp-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        return tmp

    def commit(self, stage: str, tmp: Path, key: str, meta: dict | None = None) -> Record:
        """Write the completion record (last) into `tmp`, then swap it into place."""
        files = {}
        for p in sorted(tmp.rglob("*")):
            if p.is_file() and p.name != RECORD:
                files[str(p.relative_to(tmp))] = (p.stat().st_size, sha256_file(p))
        rec = {"stage": stage, "key": key, "created": time.time(), "meta": meta or {}, "files": files}
        with open(tmp / RECORD, "w") as f:
            json.dump(rec, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        target = self.stage_dir(stage)
        old = None
        if target.exists():
            old = self.root / f".{stage}.old-{os.getpid()}"
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        _fsync_dir(self.root)
        return Record(stage, key, target, meta or {})


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
