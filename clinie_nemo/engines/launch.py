"""Run a rank launcher (torchrun on one node) as a child process and pass stop signals on to every rank.

An engine started once per node (the study's one-node train stage: `clinie-nemo train` runs under
run-stage, without RANK/WORLD_SIZE) launches its ranks itself with torchrun. A stop signal (SIGUSR1: the
time-limit signal the batch shell and run-stage forward; SIGTERM: preemption) reaches THIS process, the
launcher. Before, the launcher had no handler: Python's default action for SIGUSR1/SIGTERM killed it, torchrun
and the ranks were orphaned, no checkpoint was written and the requeued job lost the work.

Here the launcher handles SIGUSR1 and SIGTERM: it sends SIGTERM, once, to every rank (the children of
torchrun), the signal Megatron-Bridge's handler listens on (train.exit_signal; Bridge 0.6.2
training/state.py:465-468 installs DistributedSignalHandler(cfg.train.exit_signal), training/utils/sig_utils.py;
train.py:1397-1414: any rank's flag, all-gathered, saves a checkpoint on every rank and stops), then waits
for torchrun to end and reports that a stop arrived (the engine then exits 124: requeue me).

Why the ranks and not torchrun: torchrun starts each worker in its own session (torch 2.13
distributed/elastic/multiprocessing/subprocess_handler/subprocess_handler.py:64-66 start_new_session=True),
so signalling torchrun's process group does not reach them, and torchrun's own SIGTERM handler shuts the
workers down and SIGKILLs them after ``shutdown_timeout`` (default 30 s: elastic/agent/server/api.py:466,
:754 ``self._shutdown(e.sigval, timeout=self._shutdown_timeout)``; multiprocessing/api.py:649 close(timeout=30)),
too short for a large checkpoint at the 300-s time-limit warning. torchrun handles only SIGTERM, SIGINT,
SIGHUP and SIGQUIT by default (multiprocessing/api.py:538-541 TORCHELASTIC_SIGNALS_TO_HANDLE); a SIGUSR1 would
kill it, so it starts with SIGUSR1 ignored (SIG_IGN survives exec; each rank installs its own SIGUSR1 handler,
bridge.forward_usr1_as_term). When Slurm itself signals every process of the step (preemption, scancel),
torchrun also gets SIGTERM and forwards it; the ranks' handler only sets a flag, so a second SIGTERM is harmless.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence

STOP_SIGNALS = (signal.SIGUSR1, signal.SIGTERM)
RANK_STOP_SIGNAL = signal.SIGTERM  # Bridge's train.exit_signal (bridge_plan: train.exit_signal = SIGTERM)
POLL_S = 0.2


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (Linux /proc; [] elsewhere)."""
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="utf-8", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()  # after "(comm)": state, ppid, ...
        if len(fields) > 1 and fields[1] == str(pid) and fields[0] != "Z":
            found.append(int(name))
    return found


def _ignore_usr1() -> None:  # runs in the child before exec
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def run(cmd: Sequence[str], env: dict[str, str] | None = None, rank_wait_s: float = 600.0) -> tuple[int, bool]:
    """Run the launcher ``cmd`` ($VARS expanded from the environment); on SIGUSR1/SIGTERM send SIGTERM once to
    each of its ranks (also to ranks it starts after the signal) and keep waiting for it. Returns
    (exit code, whether a stop signal arrived).

    After a stop, it also waits (up to ``rank_wait_s``) for every rank it has seen to exit: torchrun itself
    may end before them (a second SIGTERM, e.g. Slurm's, interrupts its shutdown wait with another
    SignalException: elastic/agent/server/api.py:753-756), and a launcher returning early would let the job
    end, and Slurm kill the ranks, in the middle of their checkpoint."""
    argv = [os.path.expandvars(c) for c in cmd]
    stops: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _frame: stops.append(signum)) for s in STOP_SIGNALS}
    signalled: set[int] = set()
    ranks: set[int] = set()
    proc = subprocess.Popen(argv, env=env, preexec_fn=_ignore_usr1)
    last_scan = 0.0
    try:
        while True:
            try:
                rc = proc.wait(timeout=POLL_S)
                break
            except subprocess.TimeoutExpired:
                pass
            if stops or time.monotonic() - last_scan > 2.0:
                last_scan = time.monotonic()
                ranks.update(children(proc.pid))
            if stops:
                for pid in sorted(ranks - signalled):
                    signalled.add(pid)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, RANK_STOP_SIGNAL)
        if stops:
            deadline = time.monotonic() + rank_wait_s
            while any(_alive(pid) for pid in ranks) and time.monotonic() < deadline:
                time.sleep(POLL_S)
    except BaseException:  # KeyboardInterrupt and the like: never leave torchrun and its ranks behind
        if proc.poll() is None:
            proc.terminate()  # torchrun's SIGTERM handler stops its workers
            deadline = time.monotonic() + 60
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(POLL_S)
            if proc.poll() is None:
                proc.kill()
        raise
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return rc, bool(stops)
