"""`fgbg models fetch / verify / path / import` against a loopback HTTP server (no network)."""

import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

DATA = bytes(range(256)) * 4096 + b"tail"  # ~1 MiB
SHA = hashlib.sha256(DATA).hexdigest()
OTHER = b"x" * len(DATA)
REV = "a" * 40
GIT_REV = "82e02e8029753ad4ef13cf06be7f4fc5facdda4d"
HUBCONF = b"dependencies = []\n"


def make_tar(members, *, commit=GIT_REV, top=f"code-{GIT_REV}", gz=True) -> bytes:
    """A source archive like GitHub's: pax header naming `commit`, everything under `top`/.
    members: (name, bytes) files, (name, None) folders, (name, "->target") symlinks,
    (name, "=>target") hard links; names are relative to `top` unless they start with '!'."""
    buf = io.BytesIO()
    pax = {"comment": commit} if commit else {}
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w", format=tarfile.PAX_FORMAT,
                      pax_headers=pax) as tf:
        if top:
            info = tarfile.TarInfo(top)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tf.addfile(info)
        for name, body in members:
            name = name[1:] if name.startswith("!") else f"{top}/{name}"
            info = tarfile.TarInfo(name)
            if body is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(info)
            elif isinstance(body, str):
                info.type = tarfile.SYMTYPE if body.startswith("->") else tarfile.LNKTYPE
                info.linkname = body[2:]
                tf.addfile(info)
            else:
                info.size, info.mode = len(body), 0o644
                tf.addfile(info, io.BytesIO(body))
    return buf.getvalue()


GOOD_TAR = make_tar([("hubconf.py", HUBCONF), ("pkg", None), ("pkg/__init__.py", b""),
                     ("pkg/model.py", DATA[:5000]), ("link.py", "->pkg/model.py")])


class Server:
    """Serves `files` (path -> bytes) on 127.0.0.1, honouring Range unless `ignore_range`."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.ignore_range = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                outer.requests.append((self.path, rng))
                body = outer.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                if rng and not outer.ignore_range:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                self.wfile.write(body[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = 1
        self.base = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _url_entry(name, url, *, size=len(DATA), sha=SHA, licence="MIT", unverified=(), file=None):
    return "\n".join([
        f"[{name}]", 'kind = "url"', f'url = "{url}"', 'revision = ""',
        f'filename = "{url.rsplit("/", 1)[-1]}"', f"size = {size}", f'sha256 = "{sha}"',
        f'licence = "{licence}"', 'backend = "dwpose"', 'role = "required"',
        f'file = "{file or "t/" + name + ".bin"}"', "unverified = " + json.dumps(list(unverified)),
        "", ""])


@pytest.fixture
def env(tmp_path, server):
    """A lock of url entries served by `server`, plus one hf entry and one git entry."""
    server.files["/good.bin"] = DATA
    server.files["/bad.bin"] = OTHER
    server.files["/new.bin"] = DATA
    server.files["/hub/owner/repo/resolve/" + REV + "/sub/w.bin"] = DATA
    dead = f"http://127.0.0.1:{_closed_port()}/gone.bin"
    text = "lock_version = 1\n\n" + "".join([
        _url_entry("good", server.base + "/good.bin"),
        _url_entry("bad", server.base + "/bad.bin"),
        _url_entry("dead", dead),
        _url_entry("nc", server.base + "/good.bin", licence="CC-BY-NC-4.0", file="t/nc.bin"),
        _url_entry("new", server.base + "/new.bin", size=0, sha="", unverified=["size", "sha256"]),
        "\n".join(["[hubfile]", 'kind = "hf"', 'repo = "owner/repo"', f'revision = "{REV}"',
                   'filename = "sub/w.bin"', f"size = {len(DATA)}", f'sha256 = "{SHA}"',
                   'licence = "Apache-2.0"', 'backend = "sam"', 'role = "optional"',
                   'file = "hub/w.bin"', "unverified = []", "", ""]),
        "\n".join(["[code]", 'kind = "git"', 'url = "https://example.org/code.git"',
                   f'revision = "{GIT_REV}"', 'filename = ""', "size = 0", 'sha256 = ""',
                   'licence = "MIT"', 'backend = "cotracker"', 'role = "optional"',
                   'file = "code"', "unverified = []", "", ""]),
        "\n".join(["[gh]", 'kind = "git"', 'url = "https://github.com/owner/code.git"',
                   f'revision = "{GIT_REV}"', 'filename = ""', "size = 0", 'sha256 = ""',
                   'licence = "CC-BY-NC-4.0"', 'backend = "cotracker"', 'role = "required"',
                   'file = "gh/code"', "unverified = []", ""]),
    ])
    server.files[f"/codeload/owner/code/tar.gz/{GIT_REV}"] = GOOD_TAR
    lock = tmp_path / "models.lock"
    lock.write_text(text)
    models = tmp_path / "models"
    return {"FGBG_LOCK": str(lock), "FGBG_MODELS": str(models),
            "FGBG_HF_ENDPOINT": server.base + "/hub", "FGBG_FETCH_TIMEOUT": "5",
            "FGBG_CODELOAD_ENDPOINT": server.base + "/codeload",
            "HF_TOKEN": "", "models": models}


def fgbg(env, *args, stdin=subprocess.DEVNULL):
    full = {**os.environ, **{k: v for k, v in env.items() if k.isupper()}}
    return subprocess.run([sys.executable, "-m", "fgbg.cli", "models", *map(str, args)],
                          capture_output=True, text=True, env=full, timeout=60, stdin=stdin)


def test_fetch_url_ok(env, server):
    r = fgbg(env, "fetch", "good")
    assert r.returncode == 0, r.stderr
    final = env["models"] / "t/good.bin"
    assert r.stdout.strip() == str(final)
    assert final.read_bytes() == DATA
    assert not final.with_name("good.bin.part").exists()
    r = fgbg(env, "fetch", "good")  # a second fetch does not download again
    assert r.returncode == 0 and "already present" in r.stderr
    assert len(server.requests) == 1


def test_fetch_hf_entry_through_endpoint(env, server):
    r = fgbg(env, "fetch", "hubfile")
    assert r.returncode == 0, r.stderr
    assert (env["models"] / "hub/w.bin").read_bytes() == DATA
    assert server.requests[0][0] == f"/hub/owner/repo/resolve/{REV}/sub/w.bin"


@pytest.mark.parametrize("ignore_range", [False, True])
def test_fetch_resumes_partial(env, server, ignore_range):
    server.ignore_range = ignore_range
    part = env["models"] / "t/good.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(DATA[:300_000])
    r = fgbg(env, "fetch", "good")
    assert r.returncode == 0, r.stderr
    assert server.requests == [("/good.bin", "bytes=300000-")]
    assert (env["models"] / "t/good.bin").read_bytes() == DATA
    assert not part.exists()
    assert ("ignored the Range" in r.stderr) == ignore_range


def test_fetch_sha_mismatch(env):
    r = fgbg(env, "fetch", "bad")
    assert r.returncode == 3, r.stderr
    assert f"expected sha256 {SHA}" in r.stderr and hashlib.sha256(OTHER).hexdigest() in r.stderr
    assert not (env["models"] / "t/bad.bin").exists()
    assert not (env["models"] / "t/bad.bin.part").exists()


def test_fetch_unreachable_fails_fast_with_import_hint(env):
    t0 = time.monotonic()
    r = fgbg(env, "fetch", "dead")
    assert r.returncode == 3, r.stderr
    assert time.monotonic() - t0 < 20
    assert "/gone.bin" in r.stderr and "fgbg models import dead FILE" in r.stderr
    assert not (env["models"] / "t/dead.bin").exists()


def test_restricted_licence_needs_yes(env, server):
    r = fgbg(env, "fetch", "nc")
    assert r.returncode == 2, r.stderr
    assert "CC-BY-NC-4.0" in r.stderr and "--yes" in r.stderr
    assert server.requests == [] and not (env["models"] / "t/nc.bin").exists()
    r = fgbg(env, "fetch", "nc", "--yes")
    assert r.returncode == 0, r.stderr
    assert (env["models"] / "t/nc.bin").read_bytes() == DATA


def test_git_entry_off_github_says_how_to_clone(env, server):
    r = fgbg(env, "fetch", "code")
    assert r.returncode == 3
    assert "only GitHub sources" in r.stderr and f"checkout {GIT_REV}" in r.stderr
    assert server.requests == []


def _git_leftovers(models):
    """Anything but the finished checkout beside it: temporary or old folders, archives."""
    return sorted(p.name for p in (models / "gh").iterdir() if p.name != "code")


def test_fetch_git_archive(env, server):
    r = fgbg(env, "fetch", "gh")  # CC-BY-NC: needs a yes, like any restricted file
    assert r.returncode == 2 and "CC-BY-NC-4.0" in r.stderr and server.requests == []
    r = fgbg(env, "fetch", "gh", "--yes")
    assert r.returncode == 0, r.stderr
    code = env["models"] / "gh/code"
    assert r.stdout.strip() == str(code)
    assert server.requests[0][0] == f"/codeload/owner/code/tar.gz/{GIT_REV}"
    # the top folder is stripped; files, folders and the inner symlink are there
    assert (code / "hubconf.py").read_bytes() == HUBCONF
    assert (code / "pkg/model.py").read_bytes() == DATA[:5000]
    assert os.readlink(code / "link.py") == "pkg/model.py"
    assert not (code / f"code-{GIT_REV}").exists()
    assert (code / ".fgbg-revision").read_text().strip() == GIT_REV
    manifest = json.loads((code / ".fgbg-files.json").read_text())
    assert manifest["revision"] == GIT_REV
    assert set(manifest["files"]) == {"hubconf.py", "pkg/__init__.py", "pkg/model.py", "link.py"}
    assert _git_leftovers(env["models"]) == []
    # no hash for a source archive in the lock: the first download's is recorded, and said so
    sha = hashlib.sha256(GOOD_TAR).hexdigest()
    assert "recorded" in r.stderr and sha in r.stderr
    rec = json.loads((env["models"] / ".fgbg-recorded-hashes.json").read_text())
    assert rec["gh"]["sha256"] == sha

    r = fgbg(env, "verify", "gh")
    assert r.returncode == 0 and "present" in r.stdout, r.stdout + r.stderr
    r = fgbg(env, "list")
    assert r.returncode == 0 and "present" in r.stdout.split("gh", 1)[1].splitlines()[0]
    (code / "__pycache__").mkdir()  # what importing it leaves: not in the manifest, ignored
    (code / "__pycache__" / "hubconf.cpython-311.pyc").write_bytes(b"x")
    assert fgbg(env, "verify", "gh").returncode == 0
    r = fgbg(env, "fetch", "gh", "--yes")  # present: not downloaded again
    assert r.returncode == 0 and "already present" in r.stderr and len(server.requests) == 1

    # a changed or missing file is caught by verify, and a fetch replaces the whole checkout
    (code / "pkg/model.py").write_bytes(DATA[:4999] + b"!")
    r = fgbg(env, "verify", "gh")
    assert r.returncode == 3 and "corrupt" in r.stdout and "pkg/model.py" in r.stdout
    (code / "hubconf.py").unlink()
    r = fgbg(env, "verify", "gh")
    assert r.returncode == 3 and "hubconf.py" in r.stdout
    r = fgbg(env, "fetch", "gh", "--yes")
    assert r.returncode == 0, r.stderr
    assert "recorded" not in r.stderr  # the second download matched the recorded hash
    assert (code / "hubconf.py").read_bytes() == HUBCONF
    assert (code / "pkg/model.py").read_bytes() == DATA[:5000]
    assert fgbg(env, "verify", "gh").returncode == 0
    assert _git_leftovers(env["models"]) == []

    # an archive that differs from the recorded first download is refused; the checkout stays
    server.files[f"/codeload/owner/code/tar.gz/{GIT_REV}"] = make_tar([("hubconf.py", b"evil")])
    (code / ".fgbg-revision").write_text("0" * 40)  # make it stale so the fetch tries
    r = fgbg(env, "fetch", "gh", "--yes")
    assert r.returncode == 3 and f"expected sha256 {sha}" in r.stderr
    assert (code / "hubconf.py").read_bytes() == HUBCONF
    assert _git_leftovers(env["models"]) == []


@pytest.mark.parametrize("existing", [False, True])
def test_fetch_git_broken_archive_leaves_nothing_half_done(env, server, existing):
    """A truncated archive fails after some files were written: the checkout's name holds either
    nothing or the old checkout, untouched, and no temporary folder or hash record is left."""
    rng = __import__("random").Random(0)
    big = [bytes(rng.getrandbits(8) for _ in range(200_000)) for _ in range(2)]
    whole = make_tar([("hubconf.py", HUBCONF), ("a.bin", big[0]), ("b.bin", big[1])])
    server.files[f"/codeload/owner/code/tar.gz/{GIT_REV}"] = whole[:300_000]
    code = env["models"] / "gh/code"
    if existing:
        code.mkdir(parents=True)
        (code / "hubconf.py").write_bytes(b"old")
        (code / ".fgbg-revision").write_text("0" * 40)  # another commit: a fetch replaces it
    r = fgbg(env, "fetch", "gh", "--yes")
    assert r.returncode == 3 and "not a readable source archive" in r.stderr, r.stderr
    if existing:
        assert sorted(p.name for p in code.iterdir()) == [".fgbg-revision", "hubconf.py"]
        assert (code / "hubconf.py").read_bytes() == b"old"
    else:
        assert not code.exists()
    assert _git_leftovers(env["models"]) == []
    assert not (env["models"] / ".fgbg-recorded-hashes.json").exists()


@pytest.mark.parametrize("members, why", [
    ([("../evil.txt", b"x")], "'..'"),
    ([("!/tmp/fgbg-evil.txt", b"x")], "absolute"),
    ([("!other/evil.txt", b"x")], "outside the top folder"),
    ([("up", "->../../evil.txt")], "symlink"),
    ([("abs", "->/etc/passwd")], "symlink"),
    ([("hard", "=>hubconf.py")], "hard link"),
])
def test_git_archive_unsafe_members_are_refused(tmp_path, members, why):
    from fgbg.errors import ModelError
    from fgbg.store.archive import extract_archive

    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(make_tar([("hubconf.py", HUBCONF), *members]))
    dest = tmp_path / "out" / "dest"
    dest.mkdir(parents=True)
    with pytest.raises(ModelError) as err:
        extract_archive(archive, dest, GIT_REV)
    assert why in err.value.cause
    assert not (tmp_path / "out" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()
    assert not Path("/tmp/fgbg-evil.txt").exists()


def test_fetch_git_path_traversal_refused_end_to_end(env, server):
    server.files[f"/codeload/owner/code/tar.gz/{GIT_REV}"] = make_tar(
        [("hubconf.py", HUBCONF), ("../../evil.txt", b"x")])
    r = fgbg(env, "fetch", "gh", "--yes")
    assert r.returncode == 3 and "refusing to extract" in r.stderr and "'..'" in r.stderr
    assert not (env["models"] / "gh/code").exists()
    assert not (env["models"] / "evil.txt").exists() and not (env["models"] / "gh/evil.txt").exists()
    assert _git_leftovers(env["models"]) == []


def test_fetch_git_archive_of_another_commit_refused(env, server):
    server.files[f"/codeload/owner/code/tar.gz/{GIT_REV}"] = make_tar(
        [("hubconf.py", HUBCONF)], commit="1" * 40)
    r = fgbg(env, "fetch", "gh", "--yes")
    assert r.returncode == 3 and "another commit" in r.stderr and "1" * 40 in r.stderr
    assert not (env["models"] / "gh/code").exists()


def test_fetch_git_refuses_to_replace_a_clone(env, server):
    code = env["models"] / "gh/code"
    (code / ".git").mkdir(parents=True)
    (code / ".git/HEAD").write_text("ref: refs/heads/main\n")
    r = fgbg(env, "fetch", "gh", "--yes")
    assert r.returncode == 3 and "git clone" in r.stderr and f"checkout {GIT_REV}" in r.stderr
    assert server.requests == [] and (code / ".git/HEAD").exists()


def test_import_git_archive(env, tmp_path):
    """Offline: the archive downloaded elsewhere installs like a fetch, for any git host."""
    archive = tmp_path / "code.tar.gz"
    archive.write_bytes(GOOD_TAR)
    r = fgbg(env, "import", "code", archive)
    assert r.returncode == 0, r.stderr
    code = env["models"] / "code"
    assert (code / "hubconf.py").read_bytes() == HUBCONF
    assert archive.read_bytes() == GOOD_TAR  # the user's file is left alone
    r = fgbg(env, "verify", "code")
    assert r.returncode == 0 and "present" in r.stdout


def test_real_lock_cotracker_code_url():
    from fgbg.store.fetch import download_url
    from fgbg.store import load_lock

    entry = load_lock()["cotracker-code"]
    assert download_url(entry) == ("https://codeload.github.com/facebookresearch/co-tracker/"
                                   "tar.gz/82e02e8029753ad4ef13cf06be7f4fc5facdda4d")
    assert entry.file == "cotracker/co-tracker"  # where fgbg.backends.track.cotracker loads it from


def test_unverified_entry_records_hash_and_warns(env, server):
    r = fgbg(env, "fetch", "new")
    assert r.returncode == 0, r.stderr
    assert "warning:" in r.stderr and "recorded" in r.stderr and SHA in r.stderr
    rec = json.loads((env["models"] / ".fgbg-recorded-hashes.json").read_text())
    assert rec["new"]["sha256"] == SHA
    final = env["models"] / "t/new.bin"
    # later verification compares against the recorded hash
    r = fgbg(env, "verify", "new")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "unverified" in r.stdout
    final.write_bytes(OTHER)
    r = fgbg(env, "verify", "new", "--no-cache")
    assert r.returncode == 3 and "corrupt" in r.stdout
    # a second download that differs from the recorded one is refused
    final.unlink()
    server.files["/new.bin"] = OTHER
    r = fgbg(env, "fetch", "new")
    assert r.returncode == 3 and f"expected sha256 {SHA}" in r.stderr
    assert not final.exists()


def test_import_ok_and_mismatch(env, tmp_path):
    src = tmp_path / "downloaded.bin"
    src.write_bytes(DATA)
    r = fgbg(env, "import", "dead", src)
    assert r.returncode == 0, r.stderr
    assert (env["models"] / "t/dead.bin").read_bytes() == DATA
    src.write_bytes(OTHER)
    r = fgbg(env, "import", "good", src)
    assert r.returncode == 3 and "expected" in r.stderr
    assert not (env["models"] / "t/good.bin").exists()
    assert not (env["models"] / "t/good.bin.part").exists()
    r = fgbg(env, "import", "good", tmp_path / "absent.bin")
    assert r.returncode == 2


def test_verify_detects_corruption(env, tmp_path):
    src = tmp_path / "downloaded.bin"
    src.write_bytes(DATA)
    assert fgbg(env, "import", "good", src).returncode == 0
    r = fgbg(env, "verify")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "good" in r.stdout and "present" in r.stdout
    (env["models"] / "t/good.bin").write_bytes(OTHER)
    r = fgbg(env, "verify")
    assert r.returncode == 3 and "corrupt" in r.stdout
    r = fgbg(env, "verify", "bad")  # named and missing
    assert r.returncode == 3 and "missing" in r.stdout


def test_path(env, tmp_path):
    r = fgbg(env, "path", "good")
    assert r.returncode == 3 and "fgbg models fetch good" in r.stderr
    src = tmp_path / "downloaded.bin"
    src.write_bytes(DATA)
    assert fgbg(env, "import", "good", src).returncode == 0
    r = fgbg(env, "path", "good")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str((env["models"] / "t/good.bin").resolve())


def test_for_run_and_usage_errors(env):
    r = fgbg(env, "fetch")
    assert r.returncode == 2
    r = fgbg(env, "fetch", "--for", "train")
    assert r.returncode == 2
    r = fgbg(env, "fetch", "nope")
    assert r.returncode == 3 and "unknown model artifact" in r.stderr


def test_restriction_rules():
    from fgbg.store.fetch import restriction
    from fgbg.store import load_lock

    lock = load_lock()
    assert restriction(lock["cotracker3-offline"])  # CC-BY-NC-4.0
    assert restriction(lock["svd-xt-1-1-vae"])  # gated, nc-community
    assert restriction(lock["dwpose-yolox-l"]) is None  # Apache-2.0
    assert restriction(lock["sd-vae-ft-mse"]) is None  # MIT
