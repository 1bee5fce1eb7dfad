"""`fgbg models fetch / verify / path / import` against a loopback HTTP server (no network)."""

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

DATA = bytes(range(256)) * 4096 + b"tail"  # ~1 MiB
SHA = hashlib.sha256(DATA).hexdigest()
OTHER = b"x" * len(DATA)
REV = "a" * 40


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
                   f'revision = "{"b" * 40}"', 'filename = ""', "size = 0", 'sha256 = ""',
                   'licence = "MIT"', 'backend = "cotracker"', 'role = "optional"',
                   'file = "code"', "unverified = []", ""]),
    ])
    lock = tmp_path / "models.lock"
    lock.write_text(text)
    models = tmp_path / "models"
    return {"FGBG_LOCK": str(lock), "FGBG_MODELS": str(models),
            "FGBG_HF_ENDPOINT": server.base + "/hub", "FGBG_FETCH_TIMEOUT": "5",
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


def test_git_entry_not_implemented(env):
    r = fgbg(env, "fetch", "code")
    assert r.returncode == 3
    assert "not implemented" in r.stderr


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
    from fgbg.fetch import restriction
    from fgbg.weights import load_lock

    lock = load_lock()
    assert restriction(lock["cotracker3-offline"])  # CC-BY-NC-4.0
    assert restriction(lock["svd-xt-1-1-vae"])  # gated, nc-community
    assert restriction(lock["dwpose-yolox-l"]) is None  # Apache-2.0
    assert restriction(lock["sd-vae-ft-mse"]) is None  # MIT
