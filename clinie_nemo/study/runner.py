"""Runs one study stage inside its Slurm job: `clinie-nemo run-stage STAGE_DIR`, or :class:`StageJob` through
submitit. Reads STAGE_DIR/stage.json, runs the stage's command as a child process, records the job's own
timing (timing.jsonl: one segment per attempt, for the cost), and writes DONE only on success.

Preemption and time limits: SIGUSR1/SIGUSR2/SIGTERM are forwarded to the child as SIGUSR1 (SIGTERM as
SIGTERM); the trainer checkpoints and exits 124. Under submitit the runner then requeues its own job
(``scontrol requeue``) and exits without a result, so the restarted job resumes; under a rendered sbatch
script it exits 124 and the script requeues. The child ignores SIGUSR2 (submitit's signal, which Slurm also
delivers to every process of the step) so only the forwarded SIGUSR1 reaches the trainer.
A finished stage (DONE, or a complete atomic output) is never run again.

Multi-node train stages run one Slurm task per GPU (see executor.tasks_per_node): every task is one rank
(RANK/LOCAL_RANK/WORLD_SIZE from SLURM_PROCID/SLURM_LOCALID/SLURM_NTASKS, MASTER_ADDR the first host of
SLURM_JOB_NODELIST, MASTER_PORT derived from the job id so two jobs on one node never collide), so the
engine starts no launcher of its own: no srun nested in submitit's step (submitit runs the callable in every
task: submitit 1.5.4 submitit/slurm/slurm.py:360 _num_tasks = nodes x ntasks_per_node, core/submission.py:24
process_job; only global rank 0 requeues, core/job_environment.py:207). Rank 0 owns the stage: it takes
the stage lock (study/lock.py: a second job for the same stage runs nothing), records timing, writes DONE
and requeues; the other ranks wait for its decision. A stage stopped more than ``max_requeues`` times fails
with a clear message instead of requeueing again; only its own requeues count (``.clinie-requeues-JOBID`` in
the stage folder), not SLURM_RESTART_COUNT, which counts Slurm's own requeues (preemption) too. A job Slurm
requeued itself (PreemptMode=REQUEUE) is not requeued a second time.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from clinie_nemo.core.fileio import atomic_write
from clinie_nemo.core.progress import say
from clinie_nemo.engines import PREEMPTED_EXIT_CODE
from clinie_nemo.study import lock

DUPLICATE_EXIT_CODE = 75  # another job already runs this stage: this one ran nothing
REQUEUE_CAP_EXIT_CODE = 76  # stopped too often (max_requeues): not requeued
MASTER_PORT_BASE, MASTER_PORT_SPAN = 15000, 15000  # 15000-29999: below Linux's ephemeral range (32768+)
RANK_WAIT_S = 600.0  # how long ranks > 0 wait for rank 0's decision


def first_host(nodelist: str) -> str:
    """The first host of a Slurm hostlist ("gpu[003-005,9],cpu1" -> "gpu003"), like ``scontrol show hostnames
    | head -n1`` but without scontrol (absent inside most containers)."""
    head = ""
    depth = 0
    for ch in nodelist.strip():
        if ch == "," and depth == 0:
            break
        depth += ch == "["
        depth -= ch == "]"
        head += ch
    if "[" not in head:
        return head or "localhost"
    prefix, _, rest = head.partition("[")
    first = rest.split("]", 1)[0].split(",", 1)[0].split("-", 1)[0]
    return prefix + first + head.split("]", 1)[1] if "]" in head else prefix + first


def master_port(job_id: str) -> int:
    """A rendezvous port from the job id (array tasks have their own SLURM_JOB_ID): two jobs sharing a node
    get different ports, unlike a fixed 29500."""
    return MASTER_PORT_BASE + (int(job_id) % MASTER_PORT_SPAN if job_id.isdigit() else 0)


def rank_env(world_size: int) -> dict[str, str]:
    """What the stage's command gets on top of the job's environment (see the module docstring)."""
    job = os.environ.get("SLURM_JOB_ID", "")
    env = {"MASTER_ADDR": first_host(os.environ.get("SLURM_JOB_NODELIST", "") or socket.gethostname()),
           "MASTER_PORT": str(master_port(job))}
    if world_size > 1:
        env.update(RANK=os.environ.get("SLURM_PROCID", "0"), LOCAL_RANK=os.environ.get("SLURM_LOCALID", "0"),
                   WORLD_SIZE=os.environ.get("SLURM_NTASKS", str(world_size)),
                   NODE_RANK=os.environ.get("SLURM_NODEID", "0"))
    return env


def global_rank() -> int:
    value = os.environ.get("SLURM_PROCID", "0")
    return int(value) if value.isdigit() else 0


def read_stage(stage_dir: Path) -> dict[str, Any]:
    return json.loads((stage_dir / "stage.json").read_text(encoding="utf-8"))


def job_ids() -> dict[str, str]:
    """This job's ids: job_id (unique, what scontrol/sacct take) and display id (array_job_task)."""
    job = os.environ.get("SLURM_JOB_ID", "")
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return {"job_id": job, "display_id": f"{array}_{task}" if array and task else job}


def allocated_gpus(default: int) -> int:
    per_node = os.environ.get("SLURM_GPUS_ON_NODE")
    nodes = int(os.environ.get("SLURM_JOB_NUM_NODES", "1") or 1)
    return int(per_node) * nodes if per_node and per_node.isdigit() else default


def _child_argv(argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "clinie_nemo", *argv[1:]] if argv and argv[0] == "clinie-nemo" else argv


def _ignore_usr2() -> None:  # runs in the child before exec: SIG_IGN survives exec
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


def run_child(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[int, bool]:
    """Run the command; forward stop signals; returns (exit code, whether a stop signal arrived)."""
    proc = subprocess.Popen(_child_argv(argv), cwd=cwd, preexec_fn=_ignore_usr2, stdin=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})})
    stopped = []

    def forward(signum: int, _frame: object) -> None:
        stopped.append(signum)
        say(f"run-stage: signal {signal.Signals(signum).name}: asking the step to checkpoint and stop")
        proc.send_signal(signal.SIGTERM if signum == signal.SIGTERM else signal.SIGUSR1)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM)}
    try:
        rc = proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return rc, bool(stopped)


# Our own requeues of a job, counted in the stage folder: the cap must not count Slurm's own requeues
# (PreemptMode=REQUEUE preemptions, node failures), which SLURM_RESTART_COUNT includes. The same file name as
# the rendered sbatch script's counter (clinie_nemo/study/sbatch.py requeue_lines: beside the job's log, which
# is the stage folder), so under that script the runner reads the count the script keeps.
REQUEUE_COUNT_PREFIX = ".clinie-requeues-"


def own_requeues(d: Path, job_id: str) -> int:
    try:
        text = (d / f"{REQUEUE_COUNT_PREFIX}{job_id or 'none'}").read_text(encoding="utf-8").strip()
    except OSError:
        return 0
    return int(text) if text.isdigit() else 0


def _job_fields(job_id: str) -> dict[str, str]:
    try:
        out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True,
                             timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return dict(tok.partition("=")[::2] for tok in out.split() if "=" in tok)


def slurm_requeued(job_id: str, restarts_at_start: int) -> bool:
    """Slurm requeued this job itself: PreemptMode=REQUEUE requeues at once, with SIGTERM (Slurm 22.05
    src/slurmctld/preempt.c slurm_job_preempt -> job_requeue); seen on 22.05: `scontrol show job` already shows
    Restarts+1 while the job handles the SIGTERM, and our `scontrol requeue` fails ("Job is pending execution")."""
    fields = _job_fields(job_id)
    state, restarts = fields.get("JobState", ""), fields.get("Restarts", "")
    return state == "PENDING" or state.startswith("REQUEUE") or (restarts.isdigit() and int(restarts) > restarts_at_start)


def requeue(d: Path, job_id: str, restart: int, label: str) -> None:
    """``scontrol requeue`` this job and count it; a failing requeue of a job Slurm requeued meanwhile is fine."""
    count = own_requeues(d, job_id) + 1
    with atomic_write(d / f"{REQUEUE_COUNT_PREFIX}{job_id}") as fh:
        fh.write(f"{count}\n")
    say(f"run-stage: {label} checkpointed; requeueing job {job_id} (requeue {count} of its own)")
    try:
        proc = subprocess.run(["scontrol", "requeue", job_id], check=False, capture_output=True, text=True,
                              timeout=60)
        failed = proc.stderr.strip() if proc.returncode != 0 else ""
    except (OSError, subprocess.TimeoutExpired) as e:
        failed = str(e)
    if failed and not slurm_requeued(job_id, restart):
        say(f"run-stage: {label}: scontrol requeue {job_id} failed: {failed}")


def _append_segment(stage_dir: Path, segment: dict[str, Any]) -> None:
    with open(stage_dir / "timing.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(segment) + "\n")


def _decision_path(d: Path, job_id: str, restart: int) -> Path:
    return d / f".launch-{job_id}-{restart}"


def _wait_for_rank0(d: Path, job_id: str, restart: int, label: str) -> bool:
    """Ranks > 0: True when rank 0 decided to run the stage, False when it runs nothing."""
    path = _decision_path(d, job_id, restart)
    deadline = time.monotonic() + RANK_WAIT_S
    while time.monotonic() < deadline:
        if path.exists():
            return path.read_text(encoding="utf-8").startswith("run")
        time.sleep(0.5)
    say(f"run-stage: {label}: rank 0 of job {job_id} decided nothing in {RANK_WAIT_S:.0f} s; this rank stops")
    return False


def _decide(d: Path, job_id: str, restart: int, decision: str, world: int) -> None:
    """Rank 0 tells the other ranks of this attempt whether the stage runs (nothing to tell when alone)."""
    if world <= 1:
        return
    with atomic_write(_decision_path(d, job_id, restart)) as fh:
        fh.write(decision + "\n")


def run_stage(stage_dir: str | Path, requeue_self: bool = False) -> int:
    """Run the stage unless finished; returns 0 (done), 124 (stopped, requeue), 75 (another job runs it),
    76 (stopped more than max_requeues times) or the command's code."""
    d = Path(stage_dir).resolve()
    spec = read_stage(d)
    label = f"{spec['kind']} {spec['key']}"
    world = int(spec.get("world_size", 1) or 1)
    rank = global_rank() if world > 1 else 0
    if (d / "DONE").exists():
        say(f"run-stage: {label} finished earlier; nothing to do")
        return 0
    ids = job_ids()
    restart = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
    env = rank_env(world)
    if rank > 0:  # a worker rank: run the command only if rank 0 does; rank 0 keeps the books
        if not _wait_for_rank0(d, ids["job_id"], restart, label):
            return 0
        rc, stopped = run_child(spec["argv"], d, env)
        return PREEMPTED_EXIT_CODE if (rc == PREEMPTED_EXIT_CODE or (stopped and rc != 0)) else rc
    max_requeues = int(spec.get("max_requeues", 10))
    own = own_requeues(d, ids["job_id"])
    if own > max_requeues:
        _decide(d, ids["job_id"], restart, "skip: requeue cap", world)
        say(f"run-stage: {label}: error: job {ids['display_id']} was requeued {own} times after a stop "
            f"({REQUEUE_COUNT_PREFIX}{ids['job_id']}), more than max_requeues {max_requeues}; not running it again")
        return REQUEUE_CAP_EXIT_CODE
    me = ids["job_id"] or f"pid{os.getpid()}@{socket.gethostname()}"
    owner = lock.acquire(d, me)
    if owner is not None:
        _decide(d, ids["job_id"], restart, f"skip: locked by {owner}", world)
        say(f"run-stage: {label} is already running in job {owner} ({d / lock.LOCK_NAME}); "
            f"job {ids['display_id'] or me} runs nothing")
        return DUPLICATE_EXIT_CODE
    try:
        _decide(d, ids["job_id"], restart, "run", world)
        return _run_locked(d, spec, label, ids, restart, max_requeues, env, requeue_self)
    finally:
        lock.release(d, me)


def _run_locked(d: Path, spec: dict[str, Any], label: str, ids: dict[str, str], restart: int, max_requeues: int,
                env: dict[str, str], requeue_self: bool) -> int:
    """Rank 0 holding the stage lock: run the command (unless finished meanwhile), record the attempt's timing,
    then settle its outcome (:func:`_finish` on success, :func:`_after_stop` after a stop signal)."""
    segment: dict[str, Any] = {**ids, "host": socket.gethostname(), "gpus": allocated_gpus(spec.get("gpus", 0)),
                               "restart": restart, "start": time.time()}
    output = d / spec["output"]
    stopped = False
    if (d / "DONE").exists():  # finished by the lock's previous owner while this job waited
        say(f"run-stage: {label} finished earlier; nothing to do")
        return 0
    if spec["atomic_output"] and output.exists():
        say(f"run-stage: {label}: {spec['output']} is complete (written atomically); marking it done")
        rc = 0
    else:
        say(f"run-stage: {label} (job {ids['display_id'] or 'none'}, restart {restart}, "
            f"head {env['MASTER_ADDR']}:{env['MASTER_PORT']})")
        with lock.Heartbeat(d):
            rc, stopped = run_child(spec["argv"], d, env)
    segment.update(end=time.time(), rc=rc)
    segment["elapsed_s"] = round(segment["end"] - segment["start"], 3)
    _append_segment(d, segment)
    if rc == 0:
        return _finish(d, spec, label, ids, segment["elapsed_s"])
    if rc == PREEMPTED_EXIT_CODE or stopped:
        return _after_stop(d, spec, label, ids, restart, max_requeues, requeue_self)
    say(f"run-stage: {label} failed with exit code {rc}")
    return rc


def _finish(d: Path, spec: dict[str, Any], label: str, ids: dict[str, str], elapsed_s: float) -> int:
    """A successful stage: its cell's cost (evaluate stages), then DONE."""
    if spec["kind"] == "evaluate":
        from clinie_nemo.study.cost import write_cell_cost

        write_cell_cost(d, spec)
    with atomic_write(d / "DONE") as fh:
        json.dump({"finished": time.time(), **ids}, fh)
    say(f"run-stage: {label} done in {elapsed_s:.1f} s")
    return 0


def _after_stop(d: Path, spec: dict[str, Any], label: str, ids: dict[str, str], restart: int, max_requeues: int,
                requeue_self: bool) -> int:
    """A stage stopped by a signal (checkpointed): 124 to be requeued (by Slurm itself after a preemption, by
    this job with ``requeue_self``, else by the sbatch script), or 76 once ``max_requeues`` is reached."""
    if ids["job_id"] and slurm_requeued(ids["job_id"], restart):
        say(f"run-stage: {label} checkpointed; Slurm requeued job {ids['job_id']} itself (preemption, "
            "PreemptMode=REQUEUE): not requeueing it again")
        return PREEMPTED_EXIT_CODE
    own = own_requeues(d, ids["job_id"])
    if own >= max_requeues:
        say(f"run-stage: {label}: error: stopped again after {own} requeue(s) of its own "
            f"({REQUEUE_COUNT_PREFIX}{ids['job_id']}); max_requeues {max_requeues} reached, not requeueing "
            f"(raise resources.{spec['kind']}.time or max_requeues, then resubmit: it resumes from its checkpoint)")
        return REQUEUE_CAP_EXIT_CODE
    if requeue_self and ids["job_id"]:
        requeue(d, ids["job_id"], restart, label)
    return PREEMPTED_EXIT_CODE


class StageJob:
    """The callable submitit pickles: runs one stage folder in the job (requeueing itself on preemption)."""

    def __init__(self, stage_dir: str) -> None:
        self.stage_dir = stage_dir

    def __call__(self) -> str:
        rc = run_stage(self.stage_dir, requeue_self=True)
        if rc == PREEMPTED_EXIT_CODE:
            sys.exit(PREEMPTED_EXIT_CODE)  # SystemExit: submitit writes no result; the requeued job reruns
        if rc == DUPLICATE_EXIT_CODE:
            raise RuntimeError(f"stage {self.stage_dir} is already running in another job; this job ran nothing")
        if rc == REQUEUE_CAP_EXIT_CODE:
            raise RuntimeError(f"stage {self.stage_dir} was stopped more than max_requeues times; not requeued")
        if rc != 0:
            raise RuntimeError(f"stage {self.stage_dir} failed with exit code {rc}")
        return self.stage_dir
