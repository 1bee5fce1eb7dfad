"""models.lock and fgbg.store: the lock parses and invents nothing; artifact states; errors."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import tomllib
import warnings
from pathlib import Path

import pytest

from fgbg import store as weights
from fgbg.errors import ModelError

REPO = Path(__file__).resolve().parents[1]
ROOT_LOCK = REPO / "models.lock"
PACKAGE_LOCK = REPO / "fgbg" / "models.lock"
MODELS_MD = REPO / "docs" / "MODELS.md"  # the repository's copy: the facts the lock was made from


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """Every test sees an empty models dir and the shipped lock, whatever the caller's env."""
    monkeypatch.setenv("FGBG_MODELS", str(tmp_path / "models"))
    monkeypatch.delenv("FGBG_LOCK", raising=False)


# ----------------------------------------------------------------------------- the shipped lock


def test_package_copy_is_identical_to_the_repo_lock():
    assert PACKAGE_LOCK.read_bytes() == ROOT_LOCK.read_bytes(), (
        "fgbg/models.lock must be a byte-identical copy of models.lock: "
        "run `cp models.lock fgbg/models.lock`")


def test_lock_is_declared_package_data():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    data = pyproject["tool"]["setuptools"]["package-data"]["fgbg"]
    assert "models.lock" in data, "add \"models.lock\" to [tool.setuptools.package-data] fgbg"


def test_shipped_lock_parses():
    lock = weights.load_lock()
    assert lock == weights.load_lock(ROOT_LOCK)
    assert len(lock) >= 40
    for name in ("dwpose-yolox-l", "dwpose-ll-ucoco-384", "sam-vit-b", "sam-vit-l", "sam-vit-h",
                 "cotracker-code", "cotracker3-offline", "sd-vae-ft-mse",
                 "sd-image-variations-image-encoder", "animateanyone-denoising-unet",
                 "animateanyone-motion-module", "animateanyone-reference-unet",
                 "animateanyone-pose-guider"):
        assert name in lock


def test_every_entry_has_every_field():
    raw = tomllib.loads(ROOT_LOCK.read_text())
    assert raw.pop("lock_version") == weights.LOCK_VERSION
    for name, table in raw.items():
        missing = set(weights.lock._REQUIRED) - set(table)
        assert not missing, f"{name} lacks {missing}"
        assert ("repo" in table) == (table["kind"] == "hf"), name
        assert ("url" in table) == (table["kind"] != "hf"), name


def test_no_invented_hashes_or_sizes():
    for entry in weights.load_lock().values():
        if entry.sha256 is None:
            assert entry.kind == "git" or "sha256" in entry.unverified, entry.name
        else:
            assert re.fullmatch(r"[0-9a-f]{64}", entry.sha256), entry.name
        if entry.size is None:
            assert entry.kind == "git" or "size" in entry.unverified, entry.name
        if entry.kind == "git":
            assert re.fullmatch(r"[0-9a-f]{40}", entry.revision)


def test_every_pinned_value_comes_from_models_md():
    text = MODELS_MD.read_text()
    digits = re.sub(r"(?<=\d),(?=\d{3})", "", text)  # "2,564,550,879" -> "2564550879"
    for entry in weights.load_lock().values():
        if entry.sha256:
            assert entry.sha256 in text, f"{entry.name}: sha256 not in MODELS.md"
        if entry.size:
            assert str(entry.size) in digits, f"{entry.name}: size not in MODELS.md"
        if entry.revision:
            assert entry.revision in text, f"{entry.name}: revision not in MODELS.md"
        if entry.kind != "hf":
            assert entry.url.rsplit("/", 1)[-1].removesuffix(".git") in text, entry.name
        else:
            assert entry.repo in text, entry.name


def test_models_dir_defaults(monkeypatch, tmp_path):
    monkeypatch.delenv("FGBG_MODELS")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert weights.models_dir() == tmp_path / "xdg" / "fgbg" / "models"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert weights.models_dir() == tmp_path / "home" / ".cache" / "fgbg" / "models"
    monkeypatch.setenv("FGBG_MODELS", str(tmp_path / "m"))
    assert weights.models_dir() == tmp_path / "m"


# ----------------------------------------------------------------------------- states on a small lock

GOOD = b"fgbg test weights\n" * 1000
SHA = hashlib.sha256(GOOD).hexdigest()
COMMIT = "82e02e8029753ad4ef13cf06be7f4fc5facdda4d"


def _entry(name, file, *, size=len(GOOD), sha=SHA, unverified=()):
    lines = [
        f"[{name}]", 'kind = "hf"', 'repo = "owner/repo"', f'revision = "{"a" * 40}"',
        f'filename = "{file}"', f"size = {size}", f'sha256 = "{sha}"', 'licence = "MIT"',
        'backend = "dwpose"', 'role = "required"', f'file = "{file}"',
        "unverified = " + json.dumps(list(unverified)), "",
    ]
    return "\n".join(lines)


@pytest.fixture
def small_lock(tmp_path, monkeypatch):
    text = "lock_version = 1\n\n" + "".join([
        _entry("good", "a/good.bin"),
        _entry("nohash", "a/nohash.bin", sha="", unverified=["sha256"]),
        _entry("candidate", "a/candidate.bin", unverified=["sha256"]),
        _entry("nosize", "a/nosize.bin", size=0, sha="", unverified=["size", "sha256"]),
        "\n".join(["[code]", 'kind = "git"', 'url = "https://example.org/code.git"',
                   f'revision = "{COMMIT}"', 'filename = ""', "size = 0", 'sha256 = ""',
                   'licence = "MIT"', 'backend = "cotracker"', 'role = "required"',
                   'file = "code"', "unverified = []", ""]),
    ])
    path = tmp_path / "models.lock"
    path.write_text(text)
    monkeypatch.setenv("FGBG_LOCK", str(path))
    return weights.load_lock()


def _write(name, content, lock):
    path = weights.artifact_path(name, lock)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_fgbg_lock_env_selects_the_lock(small_lock):
    assert list(weights.load_lock()) == ["good", "nohash", "candidate", "nosize", "code"]
    assert weights.artifact_path("good") == weights.models_dir() / "a" / "good.bin"


def test_present(small_lock):
    _write("good", GOOD, small_lock)
    assert weights.state(small_lock["good"]) == "present"
    assert weights.require("good") == weights.models_dir() / "a" / "good.bin"


def test_missing(small_lock):
    assert weights.state(small_lock["good"]) == "missing"
    with pytest.raises(ModelError) as err:
        weights.require("good")
    assert err.value.exit_code == 3
    assert "fgbg models fetch good" in err.value.hint


@pytest.mark.parametrize("content, why", [(GOOD[:-1], "size"), (GOOD[:-1] + b"X", "sha256")])
def test_corrupt(small_lock, content, why):
    _write("good", content, small_lock)
    assert weights.state(small_lock["good"]) == "corrupt"
    with pytest.raises(ModelError) as err:
        weights.require("good")
    assert err.value.exit_code == 3
    assert "fgbg models fetch good" in err.value.hint
    assert why in err.value.cause


def test_unverified_without_hash(small_lock):
    _write("nohash", GOOD, small_lock)
    assert weights.state(small_lock["nohash"]) == "unverified"
    with pytest.warns(weights.UnverifiedArtifactWarning, match="no sha256"):
        assert weights.require("nohash").is_file()
    # a wrong size is still corrupt when the size is confirmed
    _write("nohash", GOOD + b"!", small_lock)
    assert weights.state(small_lock["nohash"]) == "corrupt"


def test_unverified_candidate_hash_is_never_present(small_lock):
    _write("candidate", GOOD, small_lock)
    result = weights.check(small_lock["candidate"])
    assert result.state == "unverified" and "candidate" in result.detail
    _write("candidate", GOOD[:-1] + b"X", small_lock)
    assert weights.state(small_lock["candidate"]) == "unverified"


def test_unknown_size_and_hash(small_lock):
    _write("nosize", b"anything", small_lock)
    assert weights.state(small_lock["nosize"]) == "unverified"


def test_git_checkout(small_lock):
    entry = small_lock["code"]
    assert weights.state(entry) == "missing"
    checkout = weights.artifact_path("code")
    (checkout / ".git").mkdir(parents=True)
    (checkout / ".git" / "HEAD").write_text(COMMIT + "\n")
    assert weights.state(entry) == "present"
    (checkout / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    assert weights.state(entry) == "corrupt"


def test_hash_cache_is_used_and_invalidated(small_lock, monkeypatch):
    path = _write("good", GOOD, small_lock)
    assert weights.state(small_lock["good"]) == "present"
    cache = json.loads((weights.models_dir() / weights.HASH_CACHE_NAME).read_text())
    assert cache[str(path.resolve())]["sha256"] == SHA

    calls = []
    real = weights.sha256_file
    monkeypatch.setattr(importlib.import_module("fgbg.store.files"), "sha256_file", lambda p: calls.append(p) or real(p))
    assert weights.state(small_lock["good"]) == "present"
    assert calls == [], "rehashed although the cache record was valid"
    # same size, new content and mtime: the stale record must not be trusted
    path.write_bytes(GOOD[:-1] + b"X")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))
    assert weights.state(small_lock["good"]) == "corrupt"


def test_list_table(small_lock):
    _write("good", GOOD, small_lock)
    rows = {row.name: row for row in weights.list_table()}
    assert rows["good"].state == "present" and rows["nohash"].state == "missing"
    assert rows["good"].backend == "dwpose" and rows["good"].licence == "MIT"
    assert rows["good"].size == "17.6 KiB" and rows["nosize"].size == "?" and rows["code"].size == "-"
    assert rows["good"].path == str(weights.models_dir() / "a" / "good.bin")
    assert weights.human_size(216746733) == "206.7 MiB"
    assert weights.human_size(2564550879) == "2.4 GiB"


def test_unknown_name(small_lock):
    with pytest.raises(ModelError, match="unknown model artifact") as err:
        weights.require("nope")
    assert err.value.exit_code == 3


# ----------------------------------------------------------------------------- malformed locks


def _lock_with(tmp_path, text):
    path = tmp_path / "bad.lock"
    path.write_text(text)
    return path


@pytest.mark.parametrize("mutate, field", [
    (lambda t: t.replace('sha256 = "' + SHA + '"', 'sha256 = "deadbeef"'), "sha256"),
    (lambda t: t.replace(f"size = {len(GOOD)}", 'size = "big"'), "size"),
    (lambda t: t.replace('licence = "MIT"\n', ""), "licence"),
    (lambda t: t.replace('kind = "hf"', 'kind = "ftp"'), "kind"),
    (lambda t: t.replace('sha256 = "' + SHA + '"', 'sha256 = ""'), "sha256"),
    (lambda t: t.replace(f"size = {len(GOOD)}", "size = 0"), "size"),
    (lambda t: t.replace("a" * 40, "abc1234"), "revision"),
    (lambda t: t.replace('file = "a/good.bin"', 'file = "../escape.bin"'), "file"),
    (lambda t: t.replace("unverified = []", 'unverified = ["colour"]'), "unverified"),
    (lambda t: t + "typo = 1\n", "typo"),
])
def test_malformed_entry_names_entry_and_field(tmp_path, mutate, field):
    text = mutate("lock_version = 1\n\n" + _entry("good", "a/good.bin"))
    with pytest.raises(ModelError) as err:
        weights.load_lock(_lock_with(tmp_path, text))
    assert err.value.exit_code == 3
    assert "entry 'good'" in err.value.what and f"field '{field}'" in err.value.what


def test_malformed_toml_and_version(tmp_path, monkeypatch):
    with pytest.raises(ModelError, match="malformed") as err:
        weights.load_lock(_lock_with(tmp_path, "lock_version = 1\n[good\n"))
    assert "TOML" in err.value.cause
    with pytest.raises(ModelError, match="malformed"):
        weights.load_lock(_lock_with(tmp_path, "lock_version = 7\n"))
    dup = "lock_version = 1\n" + _entry("one", "x.bin") + _entry("two", "x.bin")
    with pytest.raises(ModelError, match="entry 'two', field 'file'"):
        weights.load_lock(_lock_with(tmp_path, dup))
    monkeypatch.setenv("FGBG_LOCK", str(tmp_path / "absent.lock"))
    with pytest.raises(ModelError, match="cannot read"):
        weights.load_lock()


def test_list_rows_are_tuples_in_column_order(small_lock):
    row = weights.list_table()[0]
    assert tuple(row) == (row.name, row.backend, row.size, row.licence, row.state, row.path)
