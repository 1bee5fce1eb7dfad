"""models.lock: the artifacts fgbg pins (source, revision, size, sha256, licence), read and checked.

The lock is read from `$FGBG_LOCK` when set, else from `fgbg/models.lock`, the package-data copy
of the repository's `models.lock` (a test keeps the two byte-identical). One code path serves a
checkout, an editable install and a wheel alike. Nothing here touches the files themselves:
`fgbg.store.files` says whether an artifact on disk is the one the lock pins.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath

from ..errors import ModelError


LOCK_VERSION = 1
# the store's own bookkeeping files (fgbg.store.files), which no entry may claim as its file
HASH_CACHE_NAME = ".fgbg-hash-cache.json"
RECORDED_HASHES_NAME = ".fgbg-recorded-hashes.json"
KINDS = ("hf", "url", "git")
BACKENDS = ("dwpose", "sam", "sam2", "cotracker", "diffusion", "none")
ROLES = ("required", "optional", "training", "unused")
VERIFIABLE_FIELDS = ("revision", "size", "sha256", "licence")
# written by `fgbg models fetch` into a git entry's exported checkout (fgbg.fetch)

_REQUIRED = ("kind", "revision", "filename", "size", "sha256", "licence", "backend", "role",
             "file", "unverified")
_OPTIONAL = ("repo", "url", "gated", "note")
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]*")
_SHA_RE = re.compile(r"[0-9a-f]{64}")
_COMMIT_RE = re.compile(r"[0-9a-f]{40}")
_SHORT_COMMIT_RE = re.compile(r"[0-9a-f]{7,39}")
# plain http is accepted only on the loopback interface (a local mirror, the tests)
_LOOPBACK_HTTP_RE = re.compile(r"http://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?/")


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


# ----------------------------------------------------------------------------- locating things


def lock_path() -> Path | None:
    """$FGBG_LOCK when set; None means the package-data copy."""
    env = os.environ.get("FGBG_LOCK")
    return Path(env).expanduser() if env else None


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
