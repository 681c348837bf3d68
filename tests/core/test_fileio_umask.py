"""Atomic writes honour the umask like a plain open()/mkdir: files 0666 & ~umask, folders 0777 & ~umask
(tempfile.mkstemp/mkdtemp gave 0600/0700 whatever the umask, which broke group-shared study folders).
Checked in-process for umask 002 and 022, and across two real user ids sharing a setgid group folder."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from clinie_nemo.core.fileio import atomic_dir, atomic_write, write_jsonl


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask", [0o002, 0o022, 0o077])
def test_atomic_outputs_get_the_umask_mode_like_open(tmp_path: Path, mask: int) -> None:
    with umask(mask):
        with open(tmp_path / "plain.txt", "w") as fh:
            fh.write("x")
        (tmp_path / "plain_dir").mkdir()
        with atomic_write(tmp_path / "a.json") as fh:
            fh.write("{}")
        write_jsonl(tmp_path / "rows.jsonl", [{"id": "1"}])
        with atomic_dir(tmp_path / "out") as tmp:
            (tmp / "inner.txt").write_text("y")
        with atomic_dir(tmp_path / "out", force=True) as tmp:  # replacing an existing folder
            (tmp / "inner.txt").write_text("z")
    assert mode(tmp_path / "a.json") == mode(tmp_path / "plain.txt") == 0o666 & ~mask
    assert mode(tmp_path / "rows.jsonl") == 0o666 & ~mask
    assert mode(tmp_path / "out") == mode(tmp_path / "plain_dir") == 0o777 & ~mask
    assert (tmp_path / "out" / "inner.txt").read_text() == "z"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "out", "plain.txt", "plain_dir", "rows.jsonl"]


def test_failed_atomic_write_leaves_no_temp_file(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), atomic_write(tmp_path / "a.json") as fh:
        fh.write("partial")
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "d"):
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


# Two users of one group (ids without passwd entries: nothing is added to the system), umask 002, a setgid
# study folder. The first writes through atomic_write/atomic_dir, the second must be able to update them.
# Each runs in a forked child that drops to its uid (the venv's interpreter lies under /root, which other
# users cannot read, so no new interpreter is started).
GROUP, FIRST, SECOND = 51000, 51001, 51002


def write_as_first(shared: Path) -> None:
    with atomic_write(shared / "plan.json") as fh:
        fh.write("{}")
    with atomic_dir(shared / "stage") as tmp:
        (tmp / "stage.json").write_text("{}")


def update_as_second(shared: Path) -> None:
    with open(shared / "plan.json", "a") as fh:  # a group member edits the file
        fh.write("\n")
    (shared / "stage" / "DONE").write_text("done")  # and writes into the folder


def run_as(uid: int, gid: int, mask: int, work, *args: object) -> str:
    """Run ``work(*args)`` in a forked child as ``uid``:``gid`` with ``mask``; returns "" or the child's error."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            os.close(read_end)
            os.setgroups([gid])
            os.setgid(gid)
            os.setuid(uid)
            os.umask(mask)
            work(*args)
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            os.write(write_end, f"{type(exc).__name__}: {exc}".encode())
            code = 1
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as fh:
        error = fh.read().decode()
    _, status = os.waitpid(pid, 0)
    return error or ("" if os.waitstatus_to_exitcode(status) == 0 else f"child exited {status}")


def test_second_user_of_the_group_can_update_atomic_outputs() -> None:
    if os.geteuid() != 0:
        pytest.skip("switching to two other user ids needs root (os.setuid); tests are not running as root")
    shared_root = Path(tempfile.mkdtemp(prefix="clinie-umask-", dir="/tmp"))
    try:
        shared_root.chmod(0o755)
        shared = shared_root / "study"
        shared.mkdir()
        os.chown(shared, 0, GROUP)
        shared.chmod(0o2775)  # setgid: what it holds belongs to the group
        assert run_as(FIRST, GROUP, 0o002, write_as_first, shared) == ""
        assert (shared / "plan.json").stat().st_uid == FIRST and (shared / "plan.json").stat().st_gid == GROUP
        assert mode(shared / "plan.json") == 0o664 and mode(shared / "stage") & 0o777 == 0o775
        assert run_as(SECOND, GROUP, 0o002, update_as_second, shared) == ""
        assert (shared / "stage" / "DONE").read_text() == "done"
        assert json.loads((shared / "plan.json").read_text()) == {}
    finally:
        shutil.rmtree(shared_root, ignore_errors=True)
