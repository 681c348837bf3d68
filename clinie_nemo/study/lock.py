"""One runner per stage: STAGE_DIR/RUNNING.lock, created with O_CREAT|O_EXCL by the job that runs the stage
and kept fresh by a heartbeat (its mtime) while the stage's command runs.

A second job for the same stage (a resubmit after a lost sbatch or scontrol answer, a duplicate array
task) finds a live lock owned by another job and runs nothing. A lock whose heartbeat stopped (the owner
was killed) is stale and is taken over; the same job id coming back after a requeue takes its own lock
over at once. Taking a stale lock over is serialised by a second O_EXCL file (RUNNING.lock.steal), so two
jobs arriving together cannot both win. No Slurm command is needed (the runner may be inside a container).
The same lock, under another name (``name=``), guards a whole ``study --submit`` (submit.SUBMIT_LOCK).

Ages are measured on the clock of the file system that holds the lock, not the local one: on NFS the server
stamps mtimes (a create, and ``utime`` without times, which the Linux client sends as SET_TO_SERVER_TIME:
RFC 1813 section 3.3.2 sattr3 time_how; Linux fs/nfs/nfs3xdr.c encode_sattr3), so comparing them with a
skewed local ``time.time()`` took a live lock for stale (two trainers) or kept a dead one alive. :func:`fs_now`
touches a probe file beside the lock and reads its mtime back: the server's now.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

LOCK_NAME = "RUNNING.lock"
HEARTBEAT_S = 30.0
STALE_S = 180.0  # no heartbeat for this long: the owner is gone
CLOCK_TTL_S = 30.0  # the file system's clock offset is measured again after this long
_CLOCK_OFFSETS: dict[int, tuple[float, float]] = {}  # st_dev -> (fs now - local now, monotonic when measured)


def fs_now(folder: Path) -> float:
    """Now by the clock of the file system holding ``folder``: touch a probe file there and read its mtime
    (the NFS server sets it). The offset to the local clock is kept per file system for CLOCK_TTL_S, so a
    status poll over many stage folders probes once. Falls back to the local clock where ``folder`` is not
    writable."""
    try:
        dev = os.stat(folder).st_dev
    except OSError:
        return time.time()
    cached = _CLOCK_OFFSETS.get(dev)
    if cached is not None and time.monotonic() - cached[1] < CLOCK_TTL_S:
        return time.time() + cached[0]
    probe = Path(folder) / f".clock-{socket.gethostname()}-{os.getpid()}-{threading.get_ident()}"
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_WRONLY, 0o644))
        os.utime(probe)  # no times given: the file system stamps its own now
        server = probe.stat().st_mtime
    except OSError:
        return time.time()
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    _CLOCK_OFFSETS[dev] = (server - time.time(), time.monotonic())
    return server


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _age(path: Path) -> float:
    """Seconds since the file's last heartbeat, on its file system's clock (inf when it does not exist)."""
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return float("inf")
    return fs_now(path.parent) - mtime


def lock_holder(stage_dir: Path, stale_s: float = STALE_S, name: str = LOCK_NAME) -> dict[str, Any] | None:
    """What the live lock's owner wrote (job_id, display_id for an array task "123_4", host, pid), or None."""
    path = Path(stage_dir) / name
    if _age(path) > stale_s:
        return None
    return _read(path)


def lock_owner(stage_dir: Path, stale_s: float = STALE_S, name: str = LOCK_NAME) -> str | None:
    """The job id holding a live lock on the stage, or None (no lock, or a stale one)."""
    data = lock_holder(stage_dir, stale_s, name)
    return str(data.get("job_id") or "?") if data else None


def _create(path: Path, job_id: str) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    info: dict[str, Any] = {"job_id": job_id, "host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:  # the id the study recorded and Slurm's dependencies use: "123_4" (aftercorr lines up)
        info["display_id"] = f"{array}_{task}"
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(info, fh)
    return True


def acquire(stage_dir: Path, job_id: str, stale_s: float = STALE_S, name: str = LOCK_NAME) -> str | None:
    """Take the stage's lock for ``job_id``; returns None when held now, else the live owner's job id."""
    path = Path(stage_dir) / name
    steal = path.with_name(name + ".steal")
    for _ in range(50):
        if _create(path, job_id):
            return None
        data = _read(path)
        if data is None and _age(path) < 5:  # being written by its creator right now
            time.sleep(0.1)
            continue
        owner = str(data.get("job_id")) if data else ""
        if owner != job_id and _age(path) <= stale_s:
            return owner or "?"
        # our own lock (a requeue of this job) or a stale one: replace it, one contender at a time
        if _age(steal) > 60:
            steal.unlink(missing_ok=True)
        if not _create(steal, job_id):
            time.sleep(0.2)
            continue
        try:
            now = _read(path)
            if now == data:  # nobody replaced it meanwhile
                path.unlink(missing_ok=True)
            if _create(path, job_id):
                return None
        finally:
            steal.unlink(missing_ok=True)
    return lock_owner(stage_dir, stale_s, name) or "?"


def release(stage_dir: Path, job_id: str, name: str = LOCK_NAME) -> None:
    path = Path(stage_dir) / name
    data = _read(path)
    if data and str(data.get("job_id")) == job_id:
        path.unlink(missing_ok=True)


class Heartbeat:
    """Touches the lock every ``interval`` seconds from a daemon thread while the stage runs."""

    def __init__(self, stage_dir: Path, interval: float = HEARTBEAT_S, name: str = LOCK_NAME) -> None:
        self.path = Path(stage_dir) / name
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
