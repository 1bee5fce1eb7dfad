"""The model store on disk: where artifacts live, and whether the file there is the one the lock
pins.

Artifacts live under `models_dir()`: `$FGBG_MODELS`, else `$XDG_CACHE_HOME/fgbg/models`, else
`~/.cache/fgbg/models`. Nothing here downloads; `fgbg models fetch NAME` does (`fgbg.store.fetch`).

States of an artifact on disk (`state()`):
  present     the file exists with the lock's size and sha256, both confirmed in the lock
  missing     no file (for git entries: no checkout directory)
  corrupt     its size or sha256 differs from a confirmed value in the lock: refused (for git
              entries: another commit, or a fetched file changed since, see `_check_git`)
  unverified  the file exists and nothing confirmed contradicts it, but the lock cannot vouch
              for it (its sha256 is unknown or only a single-source candidate); loaded with a
              warning, never silently
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal, NamedTuple

from ..errors import ModelError
from .lock import _SHA_RE, HASH_CACHE_NAME, RECORDED_HASHES_NAME, LockEntry, _entry, load_lock

State = Literal["present", "missing", "corrupt", "unverified"]
REVISION_NAME = ".fgbg-revision"  # the commit the files are from
MANIFEST_NAME = ".fgbg-files.json"  # {"revision", "files": {relpath: {size, sha256, mtime_ns}}}
CHUNK = 1 << 20  # 1 MiB


class UnverifiedArtifactWarning(UserWarning):
    """An artifact is used although models.lock cannot vouch for its content."""


@dataclass(frozen=True)
class ArtifactCheck:
    """The outcome of checking one artifact: its state, where it is, and why (for people)."""

    name: str
    state: State
    path: Path
    detail: str


# ----------------------------------------------------------------------------- locating things


def cache_dir(name: str, env_var: str) -> Path:
    """$env_var, else $XDG_CACHE_HOME/fgbg/<name>, else ~/.cache/fgbg/<name>."""
    env = os.environ.get(env_var)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    # the XDG spec says a relative value is invalid and must be ignored
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "fgbg" / name


def models_dir() -> Path:
    """$FGBG_MODELS, else $XDG_CACHE_HOME/fgbg/models, else ~/.cache/fgbg/models."""
    return cache_dir("models", "FGBG_MODELS")


# ----------------------------------------------------------------------------- hashing


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 of a file's content, read in 1 MiB chunks (one implementation: fgbg.workdir's)."""
    from ..workdir import sha256_file as _sha256

    return _sha256(Path(path), CHUNK)


def _cache_file() -> Path:
    return models_dir() / HASH_CACHE_NAME


def _read_cache() -> dict:
    try:
        data = json.loads(_cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cached_sha256(path: Path, *, use_cache: bool = True) -> str:
    """sha256 of `path`, remembered in models_dir()/.fgbg-hash-cache.json keyed by
    (path, size, mtime_ns) so that listing multi-GB artifacts does not rehash them each time.
    `use_cache=False` always rehashes (and refreshes the record)."""
    st = path.stat()
    key = str(path.resolve())
    if use_cache:
        hit = _read_cache().get(key)
        if (isinstance(hit, dict) and hit.get("size") == st.st_size
                and hit.get("mtime_ns") == st.st_mtime_ns and isinstance(hit.get("sha256"), str)):
            return hit["sha256"]
    sha = sha256_file(path)
    cache = _read_cache()  # reread: another process may have added records meanwhile
    cache[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha}
    try:
        target = _cache_file()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, target)
    except OSError:
        pass  # a read-only models dir only costs speed
    return sha


# ----------------------------------------------------------------------------- recorded hashes


def recorded_hashes_file() -> Path:
    """models_dir()/.fgbg-recorded-hashes.json: the sha256 of the first download of each artifact
    whose hash models.lock does not vouch for (written by `fgbg models fetch` / `import`)."""
    return models_dir() / RECORDED_HASHES_NAME


def _read_recorded() -> dict:
    try:
        data = json.loads(recorded_hashes_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def recorded_sha256(entry: LockEntry) -> str | None:
    """The sha256 recorded at the first download of `entry`, or None. A record made for another
    source (the lock entry's repo/URL/revision/filename changed since) does not count."""
    rec = _read_recorded().get(entry.name)
    if (isinstance(rec, dict) and rec.get("source") == entry.source
            and isinstance(rec.get("sha256"), str) and _SHA_RE.fullmatch(rec["sha256"])):
        return rec["sha256"]
    return None


def record_sha256(entry: LockEntry, sha: str, size: int, how: str) -> Path:
    """Remember `sha` as the hash of the first download of `entry` (atomic write)."""
    data = _read_recorded()
    import time

    data[entry.name] = {"source": entry.source, "sha256": sha, "size": size, "how": how,
                        "recorded": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    target = recorded_hashes_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, target)
    return target


# ----------------------------------------------------------------------------- states


def artifact_path(name: str, lock: dict[str, LockEntry] | None = None) -> Path:
    """Where artifact `name` lives (whether or not it is there)."""
    return models_dir() / _entry(name, lock).file


def check(entry: LockEntry, *, use_cache: bool = True) -> ArtifactCheck:
    """The state of `entry` on disk, with a sentence saying why."""
    path = models_dir() / entry.file
    if entry.kind == "git":
        return _check_git(entry, path, use_cache=use_cache)
    if not path.is_file():
        why = f"{path} is not a file" if path.exists() else f"{path} does not exist"
        return ArtifactCheck(entry.name, "missing", path, why)

    size = path.stat().st_size
    if entry.size is not None and size != entry.size:
        if entry.size_confirmed:
            return ArtifactCheck(entry.name, "corrupt", path,
                                 f"size {size} bytes, models.lock expects {entry.size}")
        size_note = f"size {size} bytes differs from the unconfirmed {entry.size} in models.lock"
    else:
        size_note = ""

    recorded = None if entry.hash_confirmed else recorded_sha256(entry)
    if recorded is not None:
        sha = cached_sha256(path, use_cache=use_cache)
        where = recorded_hashes_file()
        if sha != recorded:
            return ArtifactCheck(entry.name, "corrupt", path,
                                 f"sha256 {sha} differs from {recorded}, recorded at its first "
                                 f"download in {where} (models.lock has no confirmed hash)")
        why = f"sha256 matches the one recorded at its first download ({where})"
        if entry.sha256 is not None:
            why += (" and models.lock's unconfirmed candidate" if entry.sha256 == sha else
                    f", not models.lock's unconfirmed candidate {entry.sha256}")
        return ArtifactCheck(entry.name, "unverified", path,
                             f"{why}; models.lock cannot vouch for it until the hash is confirmed")

    if entry.sha256 is None:
        why = "models.lock has no sha256 for it yet"
        if size_note:
            why += "; " + size_note
        elif entry.size is not None:
            why += f" (size {size} bytes matches)"
        return ArtifactCheck(entry.name, "unverified", path,
                             f"{why}; record its sha256 {cached_sha256(path, use_cache=use_cache)} "
                             "in models.lock once the source is confirmed")

    sha = cached_sha256(path, use_cache=use_cache)
    if sha != entry.sha256:
        if entry.hash_confirmed:
            return ArtifactCheck(entry.name, "corrupt", path,
                                 f"sha256 {sha}, models.lock expects {entry.sha256}")
        return ArtifactCheck(entry.name, "unverified", path,
                             f"sha256 {sha} differs from the unconfirmed candidate {entry.sha256} "
                             "in models.lock; check the source and record the right one")
    if not entry.hash_confirmed:
        return ArtifactCheck(entry.name, "unverified", path,
                             "sha256 matches models.lock's candidate, which is not confirmed; "
                             "confirm it and drop 'sha256' from `unverified`")
    # a confirmed hash match settles the content; an unconfirmed size cannot contradict it
    return ArtifactCheck(entry.name, "present", path, "size and sha256 match models.lock")


def _check_git(entry: LockEntry, path: Path, *, use_cache: bool = True) -> ArtifactCheck:
    """A git checkout is identified by its commit: a detached `.git/HEAD`, else the
    `.fgbg-revision` file that a fetch writes into an exported (git-less) copy. A fetched copy also
    has a file manifest (`.fgbg-files.json`); every file in it must still be there with its size
    and sha256 (rehashed only when its size or mtime changed, or with use_cache=False). Files
    that are not in the manifest (`__pycache__`, ...) are ignored."""
    if not path.is_dir():
        return ArtifactCheck(entry.name, "missing", path, f"{path} is not a directory")
    head = marker = None
    for marker in (path / ".git" / "HEAD", path / REVISION_NAME):
        try:
            head = marker.read_text(encoding="utf-8").strip()
            break
        except OSError:
            continue
    if head is None:
        return ArtifactCheck(entry.name, "unverified", path,
                             f"neither .git/HEAD nor {REVISION_NAME} says which commit it is")
    if head != entry.revision:
        return ArtifactCheck(entry.name, "corrupt", path,
                             f"checked out at {head!r}, models.lock pins commit {entry.revision}")
    if marker.name != REVISION_NAME:
        return ArtifactCheck(entry.name, "present", path, f"a git checkout at commit {entry.revision}")
    manifest = path / MANIFEST_NAME
    if not manifest.exists():
        return ArtifactCheck(entry.name, "present", path,
                             f"at commit {entry.revision} ({REVISION_NAME}; no {MANIFEST_NAME}, "
                             "so its files were not checked one by one)")
    problems, count = _manifest_problems(path, manifest, entry.revision, use_cache)
    if problems:
        shown = ", ".join(problems[:5]) + (f" and {len(problems) - 5} more" if len(problems) > 5
                                           else "")
        return ArtifactCheck(entry.name, "corrupt", path,
                             f"at commit {entry.revision}, but {len(problems)} file(s) differ from "
                             f"the fetched archive: {shown}")
    return ArtifactCheck(entry.name, "present", path,
                         f"at commit {entry.revision}; its {count} files match {MANIFEST_NAME}")


def _manifest_problems(root: Path, manifest: Path, revision: str,
                       use_cache: bool) -> tuple[list[str], int]:
    """(["relpath (why)", ...], files listed) for a fetched checkout's manifest."""
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        files = data["files"]
        if data.get("revision") != revision or not isinstance(files, dict):
            raise ValueError("for another revision" if data.get("revision") != revision
                             else "no file table")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [f"{MANIFEST_NAME} (unreadable: {exc})"], 0
    problems = []
    for rel, rec in files.items():
        parts = PurePosixPath(rel).parts
        if not isinstance(rec, dict) or rel.startswith("/") or ".." in parts:
            problems.append(f"{rel} (bad manifest record)")
            continue
        p = root.joinpath(*parts)
        if "link" in rec:
            if not p.is_symlink() or os.readlink(p) != rec["link"]:
                problems.append(f"{rel} (symlink changed)")
            continue
        if p.is_symlink() or not p.is_file():
            problems.append(f"{rel} (missing)")
            continue
        st = p.stat()
        if st.st_size != rec.get("size"):
            problems.append(f"{rel} (size {st.st_size}, fetched {rec.get('size')})")
        elif not (use_cache and st.st_mtime_ns == rec.get("mtime_ns")) \
                and sha256_file(p) != rec.get("sha256"):
            problems.append(f"{rel} (content changed)")
    return problems, len(files)


def state(entry: LockEntry, *, use_cache: bool = True) -> State:
    """present | missing | corrupt | unverified (see the module docstring)."""
    return check(entry, use_cache=use_cache).state


def require(name: str, lock: dict[str, LockEntry] | None = None) -> Path:
    """The path of artifact `name`, ready to load.

    Raises ModelError (exit 3) when it is missing or corrupt, with the exact fetch command.
    An unverified artifact is returned with an UnverifiedArtifactWarning saying why.
    """
    entry = _entry(name, lock)
    result = check(entry)
    fetch = f"fgbg models fetch {name}"
    if result.state == "missing":
        extra = " (gated: log in with `huggingface-cli login` and accept its licence first)" \
            if entry.gated else ""
        raise ModelError(f"model artifact '{name}' is missing", result.detail,
                         f"run `{fetch}`{extra}")
    if result.state == "corrupt":
        raise ModelError(f"model artifact '{name}' fails verification and will not be loaded",
                         result.detail, f"run `{fetch}` to download it again")
    if result.state == "unverified":
        warnings.warn(f"model artifact '{name}' is unverified: {result.detail}",
                      UnverifiedArtifactWarning, stacklevel=2)
    return result.path


# ----------------------------------------------------------------------------- listing


def human_size(size: int | None) -> str:
    """Bytes for people, in binary units: 216746733 -> '206.7 MiB'; None -> '?'."""
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


class ListRow(NamedTuple):
    """One row of `fgbg models list`; a tuple, so `table.add_row(*row)` works."""

    name: str
    backend: str
    size: str
    licence: str
    state: State
    path: str


def list_table(lock: dict[str, LockEntry] | None = None, *, roles: tuple[str, ...] | None = None,
               use_cache: bool = True) -> list[ListRow]:
    """Rows (name, backend, size, licence, state, path) for `fgbg models list`, in lock order.

    `roles` keeps only entries of those roles (e.g. ("required", "optional")); None keeps all.
    Hashes come from the hash cache, so a repeated listing does not reread large files.
    """
    lock = load_lock() if lock is None else lock
    rows = []
    for entry in lock.values():
        if roles is not None and entry.role not in roles:
            continue
        result = check(entry, use_cache=use_cache)
        size = "-" if entry.kind == "git" else human_size(entry.size)
        rows.append(ListRow(entry.name, entry.backend, size, entry.licence or "?",
                            result.state, str(result.path)))
    return rows
