"""Model artifacts pinned in models.lock: where they live, and whether the file on disk is the one
the lock pins.

The lock is read from `$FGBG_LOCK` when set, else from `fgbg/models.lock`, the package-data copy
of the repository's `models.lock` (a test keeps the two byte-identical). One code path serves a
checkout, an editable install and a wheel alike.

Artifacts live under `models_dir()`: `$FGBG_MODELS`, else `$XDG_CACHE_HOME/fgbg/models`, else
`~/.cache/fgbg/models`. Nothing here downloads; `fgbg models fetch NAME` does.

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
import re
import tomllib
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Literal, NamedTuple

from fgbg.errors import ModelError

State = Literal["present", "missing", "corrupt", "unverified"]

LOCK_VERSION = 1
KINDS = ("hf", "url", "git")
BACKENDS = ("dwpose", "sam", "sam2", "cotracker", "diffusion", "none")
ROLES = ("required", "optional", "training", "unused")
VERIFIABLE_FIELDS = ("revision", "size", "sha256", "licence")
HASH_CACHE_NAME = ".fgbg-hash-cache.json"
RECORDED_HASHES_NAME = ".fgbg-recorded-hashes.json"
# written by `fgbg models fetch` into a git entry's exported checkout (fgbg.fetch)
REVISION_NAME = ".fgbg-revision"  # the commit the files are from
MANIFEST_NAME = ".fgbg-files.json"  # {"revision", "files": {relpath: {size, sha256, mtime_ns}}}
CHUNK = 1 << 20  # 1 MiB

_REQUIRED = ("kind", "revision", "filename", "size", "sha256", "licence", "backend", "role",
             "file", "unverified")
_OPTIONAL = ("repo", "url", "gated", "note")
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]*")
_SHA_RE = re.compile(r"[0-9a-f]{64}")
_COMMIT_RE = re.compile(r"[0-9a-f]{40}")
_SHORT_COMMIT_RE = re.compile(r"[0-9a-f]{7,39}")
# plain http is accepted only on the loopback interface (a local mirror, the tests)
_LOOPBACK_HTTP_RE = re.compile(r"http://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?/")


class UnverifiedArtifactWarning(UserWarning):
    """An artifact is used although models.lock cannot vouch for its content."""


@dataclass(frozen=True)
class LockEntry:
    """One artifact of models.lock. `size` and `sha256` are None where the lock does not know them
    (written there as 0 and ""); `unverified` names the fields the lock has not confirmed."""

    name: str
    kind: str
    repo: str
    url: str
    revision: str
    filename: str
    size: int | None
    sha256: str | None
    licence: str
    backend: str
    role: str
    file: str
    unverified: tuple[str, ...]
    gated: bool = False
    note: str = ""

    @property
    def source(self) -> str:
        """Where it comes from, for people: `repo/filename@revision`, the URL, or `url@commit`."""
        if self.kind == "hf":
            rev = f"@{self.revision}" if self.revision else ""
            return f"{self.repo}/{self.filename}{rev}"
        if self.kind == "git":
            return f"{self.url}@{self.revision}"
        return self.url

    @property
    def download_url(self) -> str:
        """The URL a fetch downloads (hf: `resolve/<revision or main>`); the clone URL for git."""
        if self.kind == "hf":
            return (f"https://huggingface.co/{self.repo}/resolve/{self.revision or 'main'}/"
                    f"{self.filename}")
        return self.url

    @property
    def hash_confirmed(self) -> bool:
        """True when the lock holds a sha256 it vouches for."""
        return self.sha256 is not None and "sha256" not in self.unverified

    @property
    def size_confirmed(self) -> bool:
        return self.size is not None and "size" not in self.unverified


@dataclass(frozen=True)
class ArtifactCheck:
    """The outcome of checking one artifact: its state, where it is, and why (for people)."""

    name: str
    state: State
    path: Path
    detail: str


# ----------------------------------------------------------------------------- locating things


def lock_path() -> Path | None:
    """$FGBG_LOCK when set; None means the package-data copy."""
    env = os.environ.get("FGBG_LOCK")
    return Path(env).expanduser() if env else None


def models_dir() -> Path:
    """$FGBG_MODELS, else $XDG_CACHE_HOME/fgbg/models, else ~/.cache/fgbg/models."""
    env = os.environ.get("FGBG_MODELS")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    # the XDG spec says a relative value is invalid and must be ignored
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "fgbg" / "models"


# ----------------------------------------------------------------------------- reading the lock


def _malformed(where: str, name: str | None, field: str | None, problem: str) -> ModelError:
    what = f"models.lock is malformed: entry '{name}', field '{field}'" if name and field else (
        f"models.lock is malformed: entry '{name}'" if name else "models.lock is malformed")
    return ModelError(what, f"{problem} (in {where})",
                      "fix that entry by hand (models.lock's header describes every field), "
                      "or unset $FGBG_LOCK to use the lock shipped with fgbg")


def _read_lock_text(path: Path | None) -> tuple[str, str]:
    if path is not None:
        try:
            return path.read_text(encoding="utf-8"), str(path)
        except OSError as exc:
            raise ModelError(f"cannot read the model lock {path}", str(exc),
                             "point $FGBG_LOCK at a readable models.lock, or unset it") from exc
    res = resources.files("fgbg").joinpath("models.lock")
    try:
        return res.read_text(encoding="utf-8"), str(res)
    except OSError as exc:
        raise ModelError("fgbg's models.lock is missing from the installed package", str(exc),
                         "reinstall fgbg, or point $FGBG_LOCK at a models.lock") from exc


def load_lock(path: str | os.PathLike | None = None) -> dict[str, LockEntry]:
    """Parse and validate models.lock (`path`, else $FGBG_LOCK, else the packaged copy).

    Returns the entries by name, in file order. Raises ModelError (exit 3) naming the entry and
    field of the first problem.
    """
    text, where = _read_lock_text(Path(path) if path is not None else lock_path())
    parsed = _PARSED.get((where, text))
    if parsed is not None:  # a run asks for the lock a dozen times; parsing it took 40 ms each
        return dict(parsed)
    entries = _parse_lock(text, where)
    _PARSED.clear()
    _PARSED[(where, text)] = entries
    return dict(entries)


_PARSED: dict[tuple[str, str], dict] = {}


def _parse_lock(text: str, where: str) -> dict[str, LockEntry]:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _malformed(where, None, None, f"not valid TOML: {exc}") from exc

    version = raw.pop("lock_version", None)
    if version != LOCK_VERSION:
        raise _malformed(where, None, None,
                         f"lock_version is {version!r}; this fgbg reads lock_version = {LOCK_VERSION}")
    entries: dict[str, LockEntry] = {}
    files: dict[str, str] = {}
    for name, table in raw.items():
        entry = _parse_entry(name, table, where)
        other = files.get(entry.file)
        if other is not None:
            raise _malformed(where, name, "file", f"'{entry.file}' is also the file of '{other}'")
        files[entry.file] = name
        entries[name] = entry
    return entries


def _parse_entry(name: str, table: object, where: str) -> LockEntry:
    def bad(field: str | None, problem: str) -> ModelError:
        return _malformed(where, name, field, problem)

    if not isinstance(table, dict):
        raise bad(None, "expected a table [name] of fields, found a plain value")
    if not _NAME_RE.fullmatch(name):
        raise bad(None, "names are lowercase letters, digits, '.', '_' and '-'")
    for field in _REQUIRED:
        if field not in table:
            raise bad(field, "missing")
    for field in table:
        if field not in _REQUIRED and field not in _OPTIONAL:
            raise bad(field, "unknown field")

    def text(field: str, default: str | None = None) -> str:
        value = table.get(field, default)
        if not isinstance(value, str):
            raise bad(field, f"expected a string, found {value!r}")
        return value

    kind = text("kind")
    if kind not in KINDS:
        raise bad("kind", f"{kind!r} is not one of {', '.join(KINDS)}")
    unverified = table["unverified"]
    if not isinstance(unverified, list) or not all(isinstance(u, str) for u in unverified):
        raise bad("unverified", f"expected a list of field names, found {unverified!r}")
    for u in unverified:
        if u not in VERIFIABLE_FIELDS:
            raise bad("unverified", f"{u!r} is not one of {', '.join(VERIFIABLE_FIELDS)}")
    if len(set(unverified)) != len(unverified):
        raise bad("unverified", "lists a field twice")

    repo = text("repo", "")
    url = text("url", "")
    if kind == "hf":
        if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", repo):
            raise bad("repo", f"{repo!r} is not a Hugging Face repo id 'owner/name'")
        if url:
            raise bad("url", "hf entries name `repo`, not `url`")
    else:
        if not (url.startswith("https://") or _LOOPBACK_HTTP_RE.match(url)):
            raise bad("url", f"{url!r} is not an https URL")
        if repo:
            raise bad("repo", f"{kind} entries name `url`, not `repo`")

    revision = text("revision")
    if kind == "url":
        if revision:
            raise bad("revision", "plain URLs carry no revision: use \"\"")
    elif not _COMMIT_RE.fullmatch(revision):
        if kind == "git":
            raise bad("revision", f"{revision!r} is not a 40-hex commit (a git entry is pinned by it)")
        if revision and not _SHORT_COMMIT_RE.fullmatch(revision):
            raise bad("revision", f"{revision!r} is not a commit hash")
        if "revision" not in unverified:
            raise bad("revision", f"{revision!r} is not a full 40-hex commit, so 'revision' must "
                                  "be listed in `unverified`")

    filename = text("filename")
    if kind == "git":
        if filename:
            raise bad("filename", "git entries are a whole checkout: use \"\"")
    elif not filename or filename.startswith("/") or ".." in PurePosixPath(filename).parts:
        raise bad("filename", f"{filename!r} is not a relative path inside the source")

    size = table["size"]
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise bad("size", f"expected a byte count (0 = unknown), found {size!r}")
    sha = text("sha256")
    if sha and not _SHA_RE.fullmatch(sha):
        raise bad("sha256", f"{sha!r} is not 64 lowercase hex digits (use \"\" when unknown)")
    if kind == "git":
        if size or sha:
            raise bad("size" if size else "sha256",
                      "a git checkout has no single-file size or hash: use 0 and \"\"")
    else:
        if size == 0 and "size" not in unverified:
            raise bad("size", "is 0 (unknown), so 'size' must be listed in `unverified`")
        if not sha and "sha256" not in unverified:
            raise bad("sha256", "is empty (unknown), so 'sha256' must be listed in `unverified`")

    licence = text("licence")
    if not licence and "licence" not in unverified:
        raise bad("licence", "is empty (not checked), so 'licence' must be listed in `unverified`")
    backend = text("backend")
    if backend not in BACKENDS:
        raise bad("backend", f"{backend!r} is not one of {', '.join(BACKENDS)}")
    role = text("role")
    if role not in ROLES:
        raise bad("role", f"{role!r} is not one of {', '.join(ROLES)}")
    if (backend == "none") != (role == "unused"):
        raise bad("role", "role 'unused' goes with backend 'none', and only with it")

    file = text("file")
    parts = PurePosixPath(file).parts
    if (not file or file.startswith("/") or "\\" in file or ".." in parts or "." in parts
            or file in (HASH_CACHE_NAME, RECORDED_HASHES_NAME)):
        raise bad("file", f"{file!r} is not a relative '/'-separated path under the models dir")
    gated = table.get("gated", False)
    if not isinstance(gated, bool):
        raise bad("gated", f"expected true or false, found {gated!r}")

    return LockEntry(
        name=name, kind=kind, repo=repo, url=url, revision=revision, filename=filename,
        size=size or None, sha256=sha or None, licence=licence, backend=backend, role=role,
        file=file, unverified=tuple(unverified), gated=gated, note=text("note", ""))


def _entry(name: str, lock: dict[str, LockEntry] | None) -> LockEntry:
    lock = load_lock() if lock is None else lock
    try:
        return lock[name]
    except KeyError:
        raise ModelError(f"unknown model artifact '{name}'", "models.lock has no entry by that name",
                         "`fgbg models list` shows every artifact name") from None


# ----------------------------------------------------------------------------- hashing


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 of a file's content, read in 1 MiB chunks (one implementation: fgbg.workdir's)."""
    from .workdir import sha256_file as _sha256

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
