"""Downloading and importing the artifacts models.lock pins (`fgbg models fetch` / `import`).

Every artifact is written to `<final>.part` beside its final path, checked against the lock (size,
sha256), and only then renamed into place with os.replace: a half or wrong file never sits under
the final name. A download resumes a leftover `.part` with an HTTP Range request (and starts over
when the server ignores Range).

What a download must match:
  - the lock's sha256 when the lock vouches for it (not listed in `unverified`);
  - else the sha256 recorded at the first download (weights.recorded_hashes_file());
  - else nothing yet: the hash of this first download is recorded there, with a warning.
A confirmed size must match too. A mismatch deletes the `.part` and raises ModelError (exit 3).

Sources: `url` entries download their URL; `hf` entries download
`<endpoint>/<repo>/resolve/<revision or main>/<filename>` with urllib, where endpoint is
$FGBG_HF_ENDPOINT, else $HF_ENDPOINT, else https://huggingface.co (a token from $HF_TOKEN is
sent for gated repos).

`git` entries (a checkout at a pinned commit) on GitHub are fetched without git, as the source
archive of that commit: `<codeload>/<owner>/<repo>/tar.gz/<revision>`, where codeload is
$FGBG_CODELOAD_ENDPOINT, else https://codeload.github.com. The archive downloads like a file
(`<checkout>-<commit12>.tar.gz.part` beside the checkout, resumable). models.lock has no sha256
for it (git entries are pinned by their commit), so the first download's hash is recorded and
later downloads must match it, as for any entry without a confirmed hash. When the archive
names its commit (git archive's pax header, which GitHub's archives carry) it must be the pinned
one. It is then extracted safely (fgbg.archive.extract_archive: one top folder, stripped; no absolute
paths, no `..`, no links that leave the tree, no devices) into a temporary folder beside the
checkout, with `.fgbg-revision` (the commit) and `.fgbg-files.json` (size and sha256 of every
file, which `fgbg models verify` checks), and renamed into place: the checkout's name never holds
a half-extracted tree. `fgbg models import NAME ARCHIVE` installs a downloaded archive the same
way. Other git hosts are not fetched (the error says how to clone by hand).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import InputError, ModelError
from .archive import extract_archive, swap_dir
from .files import (CHUNK, MANIFEST_NAME, REVISION_NAME, LockEntry, check, human_size,
                    models_dir, record_sha256, recorded_hashes_file, recorded_sha256)

DEFAULT_HF_ENDPOINT = "https://huggingface.co"
DEFAULT_CODELOAD_ENDPOINT = "https://codeload.github.com"
CONNECT_TIMEOUT = 10.0  # seconds; $FGBG_FETCH_TIMEOUT overrides
_GITHUB_RE = re.compile(r"https://github\.com/([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(?:\.git)?/?")


def hf_endpoint() -> str:
    return (os.environ.get("FGBG_HF_ENDPOINT") or os.environ.get("HF_ENDPOINT")
            or DEFAULT_HF_ENDPOINT).rstrip("/")


def codeload_endpoint() -> str:
    return (os.environ.get("FGBG_CODELOAD_ENDPOINT") or DEFAULT_CODELOAD_ENDPOINT).rstrip("/")


def archive_url(entry: LockEntry) -> str | None:
    """The source-archive URL of a git entry hosted on GitHub, else None."""
    m = _GITHUB_RE.fullmatch(entry.url) if entry.kind == "git" else None
    if m is None:
        return None
    return f"{codeload_endpoint()}/{m.group(1)}/{m.group(2)}/tar.gz/{entry.revision}"


def download_url(entry: LockEntry) -> str:
    """The URL a fetch downloads: the entry's URL, the hub's resolve URL for hf entries, the
    source archive for GitHub git entries (else the clone URL)."""
    if entry.kind == "hf":
        return (f"{hf_endpoint()}/{entry.repo}/resolve/{entry.revision or 'main'}/"
                f"{urllib.parse.quote(entry.filename, safe='/')}")
    if entry.kind == "git":
        return archive_url(entry) or entry.url
    return entry.url


def _timeout() -> float:
    try:
        return float(os.environ.get("FGBG_FETCH_TIMEOUT", CONNECT_TIMEOUT))
    except ValueError:
        return CONNECT_TIMEOUT


def import_hint(entry: LockEntry) -> str:
    return f"fgbg models import {entry.name} {'ARCHIVE.tar.gz' if entry.kind == 'git' else 'FILE'}"


# ----------------------------------------------------------------------------- licences

_RESTRICTING = re.compile(r"(^|[^a-z0-9])nc([^a-z0-9]|$)|non[- ]?commercial|openrail|research[- ]only",
                          re.IGNORECASE)


def restriction(entry: LockEntry) -> str | None:
    """Why the entry's licence needs an explicit yes before downloading, or None.

    Restricting: non-commercial licences (an "NC" token, "non-commercial"), use-restricted ones
    (OpenRAIL, research-only), gated sources, and a licence models.lock has not checked."""
    reasons = []
    if not entry.licence or "licence" in entry.unverified:
        reasons.append("licence not checked" + (f" (said to be {entry.licence})" if entry.licence
                                                 else ""))
    elif _RESTRICTING.search(entry.licence):
        reasons.append(entry.licence)
    if entry.gated:
        reasons.append("gated: needs a Hugging Face login and accepting its licence")
    return "; ".join(reasons) or None


def confirm_licences(entries: list[LockEntry], *, yes: bool,
                     out: Callable[[str], None], ask: Callable[[str], bool] | None) -> None:
    """Print the restricting licences; without `yes`, ask (when `ask` is given: a TTY) or raise
    InputError (exit 2)."""
    restricted = [(e, r) for e in entries if (r := restriction(e))]
    if not restricted:
        return
    out("These artifacts come under licences that restrict their use:")
    for e, why in restricted:
        out(f"  {e.name}: {why}")
    if yes:
        out("accepted with --yes")
        return
    if ask is not None:
        if ask("Download them under these terms?"):
            return
        raise InputError("download cancelled", "the licence terms were not accepted",
                         "rerun with --yes to accept them")
    raise InputError("restricted licences need an explicit yes",
                     f"{len(restricted)} artifact(s) come under restricting licences and stdin is "
                     "not a terminal to ask", "read the licences above, then add --yes")


# ----------------------------------------------------------------------------- expectations


@dataclass
class Expected:
    sha256: str | None  # the hash the file must have; None: nothing to compare with (record it)
    sha_source: str  # "models.lock" / "the recorded first download"
    size: int | None  # the size the file must have (confirmed only)
    hint_size: int | None  # any size the lock mentions (progress total)


def expected(entry: LockEntry) -> Expected:
    if entry.hash_confirmed:
        sha, where = entry.sha256, "models.lock"
    else:
        sha = recorded_sha256(entry)
        where = f"the first download recorded in {recorded_hashes_file()}"
    return Expected(sha, where, entry.size if entry.size_confirmed else None, entry.size)


def _verify(entry: LockEntry, sha: str, size: int) -> None:
    """Raise ModelError when a download or import of `entry` (hash `sha`, `size` bytes) does not
    match what the entry expects."""
    exp = expected(entry)
    problem = None
    if exp.size is not None and size != exp.size:
        problem = f"expected size {exp.size} bytes (models.lock), got {size} bytes"
    elif exp.sha256 is not None and sha != exp.sha256:
        problem = f"expected sha256 {exp.sha256} ({exp.sha_source}), got {sha}"
    if problem:
        hint = (f"run `fgbg models fetch {entry.name}` again; if it keeps failing, the source has "
                "changed: check it and fix models.lock")
        if exp.sha256 is not None and exp.sha_source != "models.lock":
            hint += f" (or drop the '{entry.name}' record from {recorded_hashes_file()})"
        raise ModelError(f"'{entry.name}' fails verification and was not placed", problem, hint)


def _record_first(entry: LockEntry, sha: str, size: int, how: str,
                  warn: Callable[[str], None]) -> None:
    """After placing `entry`: when nothing confirmed its hash, record this one and say so."""
    if expected(entry).sha256 is not None:
        return
    where = record_sha256(entry, sha, size, how)
    if entry.kind == "git":
        warn(f"'{entry.name}': models.lock pins commit {entry.revision} but no hash for its "
             f"source archive; recorded the sha256 of this first download, {sha}, in {where}. "
             "Later downloads of the archive must match it")
        return
    note = ""
    if entry.sha256 is not None:
        note = ("; it matches models.lock's unconfirmed candidate" if sha == entry.sha256 else
                f"; it DIFFERS from models.lock's unconfirmed candidate {entry.sha256}: "
                "check the source")
    warn(f"'{entry.name}': models.lock has no confirmed sha256; recorded the sha256 of this "
         f"first download, {sha}, in {where}{note}. Later verifications compare against it")


def _place(entry: LockEntry, part: Path, final: Path, sha: str, size: int,
           how: str, warn: Callable[[str], None]) -> Path:
    """Check `part` (hash `sha`, `size` bytes) against what the entry expects; rename it into
    place or delete it and raise ModelError."""
    try:
        _verify(entry, sha, size)
    except ModelError:
        part.unlink(missing_ok=True)
        raise
    if entry.size is not None and not entry.size_confirmed and size != entry.size:
        warn(f"'{entry.name}': size {size} bytes differs from models.lock's unconfirmed {entry.size}")
    os.replace(part, final)
    _record_first(entry, sha, size, how, warn)
    return final


# ----------------------------------------------------------------------------- downloading


def _hash_existing(path: Path) -> tuple["hashlib._Hash", int]:
    digest = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            n += len(chunk)
    return digest, n


def _open(url: str, entry: LockEntry, start: int):
    req = urllib.request.Request(url, headers={"User-Agent": "fgbg"})
    if start:
        req.add_header("Range", f"bytes={start}-")
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if entry.kind == "hf" and token:
        req.add_unredirected_header("Authorization", f"Bearer {token}")
    return urllib.request.urlopen(req, timeout=_timeout())


def _unreachable(entry: LockEntry, url: str, cause: str) -> ModelError:
    endpoint = "$FGBG_CODELOAD_ENDPOINT" if entry.kind == "git" else "$FGBG_HF_ENDPOINT"
    return ModelError(f"cannot download '{entry.name}' from {url}", cause,
                      f"check the network (or {endpoint} / a proxy); offline, download "
                      f"{url if entry.kind == 'git' else 'the file'} elsewhere and run "
                      f"`{import_hint(entry)}`")


def download(entry: LockEntry, *, progress=None, warn: Callable[[str], None] = print) -> Path:
    """Download `entry` into place (resuming a `.part`), verified. Returns the final path."""
    if entry.kind == "git":
        return _download_git(entry, progress=progress, warn=warn)
    final = models_dir() / entry.file
    final.parent.mkdir(parents=True, exist_ok=True)
    part = final.with_name(final.name + ".part")
    exp = expected(entry)
    start = part.stat().st_size if part.is_file() else 0
    if exp.size is not None and start > exp.size:
        part.unlink()
    elif exp.size is not None and start == exp.size:
        digest, n = _hash_existing(part)  # a finished .part: only verification was missing
        return _place(entry, part, final, digest.hexdigest(), n, "fetch", warn)
    sha, n = _download_part(entry, download_url(entry), part, exp, progress, warn)
    return _place(entry, part, final, sha, n, "fetch", warn)


def _download_part(entry: LockEntry, url: str, part: Path, exp: Expected, progress,
                   warn: Callable[[str], None]) -> tuple[str, int]:
    """Download `url` into `part`, resuming what is there with a Range request (starting over
    when the server ignores it). Returns (sha256, size) of the whole `part`; verifies nothing."""
    start = part.stat().st_size if part.is_file() else 0
    try:
        try:
            resp = _open(url, entry, start)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and start:  # the range is past the end: start over
                part.unlink(missing_ok=True)
                start = 0
                resp = _open(url, entry, 0)
            else:
                raise
    except urllib.error.HTTPError as exc:
        cause = f"HTTP {exc.code} {exc.reason}"
        if exc.code in (401, 403) and entry.kind == "hf":
            cause += (" (gated or private: log in with `huggingface-cli login` or set $HF_TOKEN, "
                      "and accept its licence on the hub)")
        raise _unreachable(entry, url, cause) from exc
    except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _unreachable(entry, url, f"{type(reason).__name__}: {reason}") from exc

    with resp:
        resumed = False
        if start and resp.status == 206:
            m = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
            resumed = bool(m and int(m.group(1)) == start)
        if resumed:
            digest, written = _hash_existing(part)
            mode = "ab"
        else:
            if start:
                warn(f"'{entry.name}': the server ignored the Range request; downloading again "
                     "from the start")
            digest, written, mode = hashlib.sha256(), 0, "wb"
        length = resp.headers.get("Content-Length")
        total = exp.hint_size or ((written + int(length)) if length and length.isdigit() else None)
        task = progress.add_task(entry.name, total=total, completed=written) if progress else None
        try:
            with open(part, mode) as f:
                while True:
                    try:
                        chunk = resp.read(CHUNK)
                    except (socket.timeout, TimeoutError, OSError) as exc:
                        raise _unreachable(entry, url, f"the download stalled after {written} "
                                           f"bytes ({exc}); the partial file is kept and a rerun "
                                           "resumes it") from exc
                    if not chunk:
                        break
                    f.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)
                    if exp.size is not None and written > exp.size:
                        break  # more than the lock allows: verification rejects it
                    if task is not None:
                        progress.update(task, completed=written)
                f.flush()
                os.fsync(f.fileno())
        finally:
            if task is not None:
                progress.remove_task(task)
    return digest.hexdigest(), written


# ----------------------------------------------------------------------------- git entries


def _git_hint(entry: LockEntry) -> str:
    where = models_dir() / entry.file
    return (f"clone it yourself: `git clone {entry.url} {where} && git -C {where} checkout "
            f"{entry.revision}`")


def _refuse_git_clone(entry: LockEntry) -> None:
    """A real git clone under the checkout's name is the user's: never replace it."""
    final = models_dir() / entry.file
    if (final / ".git").exists():
        raise ModelError(f"{final} is a git clone; fgbg will not replace it",
                         check(entry).detail,
                         f"check out the pinned commit there (`git -C {final} checkout "
                         f"{entry.revision}`), or remove it and rerun "
                         f"`fgbg models fetch {entry.name}`")


def _download_git(entry: LockEntry, *, progress, warn: Callable[[str], None]) -> Path:
    url = archive_url(entry)
    if url is None:
        raise ModelError(f"cannot fetch '{entry.name}': only GitHub sources are fetched",
                         f"'{entry.name}' is a checkout of {entry.url} at {entry.revision}; fgbg "
                         "downloads GitHub's source archive of a commit and has no git client",
                         _git_hint(entry))
    _refuse_git_clone(entry)
    final = models_dir() / entry.file
    final.parent.mkdir(parents=True, exist_ok=True)
    part = final.with_name(f"{final.name}-{entry.revision[:12]}.tar.gz.part")
    sha, n = _download_part(entry, url, part, expected(entry), progress, warn)
    try:
        _verify(entry, sha, n)
        return install_archive(entry, part, sha, n, f"fetch of {url}", warn)
    finally:
        part.unlink(missing_ok=True)  # verified and extracted, or bad: a rerun downloads anew


def install_archive(entry: LockEntry, archive: Path, sha: str, size: int, how: str,
                    warn: Callable[[str], None]) -> Path:
    """Extract the verified source archive `archive` of git entry `entry` and rename it into place
    (replacing what is there); record its hash when it is the first. Returns the checkout path."""
    final = models_dir() / entry.file
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.extract-", dir=final.parent))
    try:
        files = extract_archive(archive, tmp, entry.revision)
        (tmp / MANIFEST_NAME).write_text(json.dumps({"revision": entry.revision, "files": files},
                                                    indent=1, sort_keys=True), encoding="utf-8")
        (tmp / REVISION_NAME).write_text(entry.revision + "\n", encoding="utf-8")
        swap_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _record_first(entry, sha, size, how, warn)
    return final


def import_file(entry: LockEntry, source: Path, *, warn: Callable[[str], None] = print) -> Path:
    """Copy `source` into place as `entry` (through a `.part`), verified like a download. For a
    git entry, `source` is its source archive (the tar.gz a fetch downloads), installed as a
    fetch installs it."""
    source = Path(source)
    if entry.kind == "git":
        if not source.is_file():
            raise InputError(f"cannot import {source}", "it is not a file",
                             f"give the path of the downloaded {download_url(entry)}")
        _refuse_git_clone(entry)
        digest, n = _hash_existing(source)
        _verify(entry, digest.hexdigest(), n)
        return install_archive(entry, source, digest.hexdigest(), n,
                               f"import of {source.resolve()}", warn)
    if not source.is_file():
        raise InputError(f"cannot import {source}", "it is not a file",
                         f"give the path of the downloaded {entry.filename}")
    final = models_dir() / entry.file
    final.parent.mkdir(parents=True, exist_ok=True)
    part = final.with_name(final.name + ".part")
    digest, n = hashlib.sha256(), 0
    try:
        with open(source, "rb") as src, open(part, "wb") as dst:
            while chunk := src.read(CHUNK):
                dst.write(chunk)
                digest.update(chunk)
                n += len(chunk)
            dst.flush()
            os.fsync(dst.fileno())
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return _place(entry, part, final, digest.hexdigest(), n, f"import of {source.resolve()}", warn)


def already_there(entry: LockEntry) -> bool:
    """True when the artifact is on disk and nothing contradicts it (present, or unverified but
    matching its recorded first download)."""
    result = check(entry)
    if result.state == "present":
        return True
    return (entry.kind != "git" and result.state == "unverified"
            and recorded_sha256(entry) is not None)


def describe(entry: LockEntry) -> str:
    return f"{entry.name} ({human_size(entry.size)}, {entry.licence or 'licence unknown'})"


def stderr_line(msg: str) -> None:
    print(msg, file=sys.stderr)
