"""Source archives (a git entry's GitHub tarball) unpacked safely, and a folder swapped into place.

No network here: fgbg.fetch downloads and verifies the archive, then calls extract_archive into a
temporary folder and swap_dir to put it under the checkout's name.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import tarfile
import zlib
from pathlib import Path, PurePosixPath

from ..errors import ModelError
from .files import CHUNK, human_size

MAX_EXTRACTED = 4 << 30  # bytes a source archive may unpack to (a guard against archive bombs)


def swap_dir(new: Path, final: Path) -> None:
    """Put directory `new` at `final`. A directory cannot replace another in one rename: the old
    one is renamed aside first (for that moment `final` is absent, never half-written), then
    deleted; if the second rename fails, the old one is put back."""
    old = None
    if final.exists() or final.is_symlink():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    try:
        os.replace(new, final)
    except BaseException:
        if old is not None and not final.exists():
            os.replace(old, final)
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


def _unsafe(archive: Path, member: str, why: str) -> ModelError:
    return ModelError(f"refusing to extract {archive.name}", f"member {member!r}: {why}",
                      "the archive is not a plain source archive; check where it came from")


def extract_archive(archive: Path, dest: Path, revision: str | None = None) -> dict:
    """Extract the tar(.gz) `archive` into the existing empty directory `dest`, stripping its one
    top folder (`co-tracker-<commit>/` in GitHub's archives).

    Refused (ModelError): absolute names, `..`, members outside the one top folder, hard links,
    devices and fifos, symlinks that are absolute or contain `..` (created last, so nothing is
    written through them), more than MAX_EXTRACTED bytes, a broken or empty archive, and an
    archive whose pax header names another commit than `revision`.
    Returns the manifest: {relpath: {"size", "sha256", "mtime_ns"} or {"link": target}}."""
    files: dict[str, dict] = {}
    links: list[tuple[str, str]] = []
    top = None
    total = 0
    try:
        with tarfile.open(archive, "r:*") as tf:
            for i, m in enumerate(tf):
                if i == 0 and revision is not None:
                    named = tf.pax_headers.get("comment", "")
                    if re.fullmatch(r"[0-9a-f]{40}", named) and named != revision:
                        raise ModelError(f"{archive.name} is the source of another commit",
                                         f"its header names commit {named}, models.lock pins "
                                         f"{revision}",
                                         "the source served another commit; check the URL")
                name = m.name
                if name.startswith("/") or "\\" in name:
                    raise _unsafe(archive, name, "an absolute path (or a backslash)")
                parts = [x for x in PurePosixPath(name).parts if x not in ("", ".")]
                if ".." in parts:
                    raise _unsafe(archive, name, "a '..' component")
                if not parts:
                    continue
                if top is None:
                    top = parts[0]
                elif parts[0] != top:
                    raise _unsafe(archive, name, f"outside the top folder {top!r}")
                rel = parts[1:]
                if not rel:
                    if not m.isdir():
                        raise _unsafe(archive, name, "the top entry is not a folder")
                    continue
                relname = "/".join(rel)
                target = dest.joinpath(*rel)
                if m.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                elif m.isreg():
                    total += m.size
                    if total > MAX_EXTRACTED:
                        raise _unsafe(archive, name, f"the archive unpacks to more than "
                                                     f"{human_size(MAX_EXTRACTED)}")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    digest = hashlib.sha256()
                    src = tf.extractfile(m)
                    with open(target, "wb") as out:
                        while chunk := src.read(CHUNK):
                            out.write(chunk)
                            digest.update(chunk)
                    os.chmod(target, 0o755 if m.mode & 0o111 else 0o644)
                    links = [lk for lk in links if lk[0] != relname]
                    files[relname] = {"size": m.size, "sha256": digest.hexdigest()}
                elif m.issym():
                    link = m.linkname
                    lparts = PurePosixPath(link).parts
                    if not link or link.startswith("/") or "\\" in link or ".." in lparts:
                        raise _unsafe(archive, name, f"a symlink to {link!r} (absolute or with "
                                                     "'..'; only links into the folder below "
                                                     "are kept)")
                    links.append((relname, link))
                elif m.islnk():
                    raise _unsafe(archive, name, "a hard link")
                else:
                    raise _unsafe(archive, name, "a device, fifo or other special file")
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ModelError(f"{archive.name} is not a readable source archive",
                         f"{type(exc).__name__}: {exc}",
                         "download it again (a rerun of the fetch does)") from exc
    if not files:
        raise ModelError(f"{archive.name} holds no files", "an empty source archive",
                         "download it again (a rerun of the fetch does)")
    for relname, link in links:
        target = dest.joinpath(*relname.split("/"))
        if target.exists() or target.is_symlink():
            if target.is_dir() and not target.is_symlink():
                raise _unsafe(archive, relname, "a symlink over a folder")
            target.unlink()
            files.pop(relname, None)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(link, target)
        files[relname] = {"link": link}
    for relname, rec in files.items():
        if "link" not in rec:
            rec["mtime_ns"] = dest.joinpath(*relname.split("/")).stat().st_mtime_ns
    return files
