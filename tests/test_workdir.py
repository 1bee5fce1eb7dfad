import json
import os
import subprocess
import sys

import pytest

from fgbg.errors import LockedError
from fgbg.workdir import Workdir, stage_key


def _commit(wd, stage, key, content=b"x"):
    tmp = wd.begin(stage)
    (tmp / "out.bin").write_bytes(content)
    return wd.commit(stage, tmp, key)


def test_commit_then_reuse_and_key_change(tmp_path):
    with Workdir(tmp_path) as wd:
        _commit(wd, "pose", "k1")
        rec, _ = wd.completed("pose", "k1")
        assert rec is not None and (rec.folder / "out.bin").read_bytes() == b"x"
        rec, reason = wd.completed("pose", "k2")
        assert rec is None and "changed" in reason


def test_folder_without_record_is_not_a_result(tmp_path):
    with Workdir(tmp_path) as wd:
        (tmp_path / "pose").mkdir()
        (tmp_path / "pose" / "out.bin").write_bytes(b"x")
        rec, reason = wd.completed("pose", "k1")
        assert rec is None and reason == "no completion record"


def test_corrupt_cached_file_is_detected(tmp_path):
    with Workdir(tmp_path) as wd:
        rec = _commit(wd, "pose", "k1", b"hello")
        (rec.folder / "out.bin").write_bytes(b"hellp")  # same size, other content
        rec2, reason = wd.completed("pose", "k1")
        assert rec2 is None and "corrupt" in reason


def test_recommit_replaces_old_result(tmp_path):
    with Workdir(tmp_path) as wd:
        _commit(wd, "pose", "k1", b"old")
        _commit(wd, "pose", "k2", b"new")
        assert (tmp_path / "pose" / "out.bin").read_bytes() == b"new"
        assert not list(tmp_path.glob(".pose.*"))


def test_cleanup_removes_tmp_and_restores_mid_swap(tmp_path):
    with Workdir(tmp_path) as wd:
        rec = _commit(wd, "pose", "k1")
        os.replace(rec.folder, tmp_path / ".pose.old-999")  # crash between the two renames
        (tmp_path / ".segment.tmp-123").mkdir()
    with Workdir(tmp_path) as wd:  # acquiring cleans up
        assert not (tmp_path / ".segment.tmp-123").exists()
        assert wd.completed("pose", "k1")[0] is not None


def test_lock_refuses_second_process(tmp_path):
    with Workdir(tmp_path):
        code = ("import sys; from fgbg.workdir import Workdir\n"
                "try:\n Workdir(sys.argv[1]).acquire()\nexcept Exception as e:\n print(type(e).__name__, e.cause)")
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
        assert out.stdout.startswith("LockedError") and f"pid {os.getpid()}" in out.stdout
    with Workdir(tmp_path):  # released: can take it again
        pass


def test_lock_in_same_process_raises(tmp_path):
    with Workdir(tmp_path):
        with pytest.raises(LockedError):
            Workdir(tmp_path).acquire()


def test_stage_key_depends_on_everything():
    base = dict(stage="s", version=1, params={"a": 1}, inputs={"v": "h"}, upstream={"u": "k"}, models={"m": "x"})
    k = stage_key(**base)
    assert k == stage_key(**base)
    for field, value in [("version", 2), ("params", {"a": 2}), ("inputs", {"v": "h2"}),
                         ("upstream", {"u": "k2"}), ("models", {"m": "y"})]:
        assert stage_key(**{**base, field: value}) != k


def test_file_hash_is_remembered(tmp_path):
    f = tmp_path / "v.bin"
    f.write_bytes(b"abc")
    with Workdir(tmp_path / "wd") as wd:
        h = wd.file_hash(f)
        memo = json.loads((tmp_path / "wd" / ".hashes.json").read_text())
        assert list(memo.values()) == [h]
        f.write_bytes(b"abcd")
        assert wd.file_hash(f) != h
