"""Runs one study stage inside its Slurm job: `clinie-nemo run-stage STAGE_DIR`, or :class:`StageJob` through
submitit. Reads STAGE_DIR/stage.json, runs the stage's command as a child process, records the job's own
timing (timing.jsonl: one segment per attempt, for the cost), and writes DONE only on success.

Preemption and time limits: SIGUSR1/SIGUSR2/SIGTERM are forwarded to the child as SIGUSR1 (SIGTERM as
SIGTERM); the trainer checkpoints and exits 124. Under submitit the runner then requeues its own job
(``scontrol requeue``) and exits without a result, so the restarted job resumes; under a rendered sbatch
script it exits 124 and the script requeues. The child ignores SIGUSR2 (submitit's signal, which Slurm also
delivers to every process of the step) so only the forwarded SIGUSR1 reaches the trainer.
A finished stage (DONE, or a complete atomic output) is never run again.
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

from clinie_nemo.fileio import atomic_write
from clinie_nemo.progress import say

REQUEUE_EXIT_CODE = 124


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


def run_child(argv: list[str], cwd: Path) -> tuple[int, bool]:
    """Run the command; forward stop signals; returns (exit code, whether a stop signal arrived)."""
    proc = subprocess.Popen(_child_argv(argv), cwd=cwd, preexec_fn=_ignore_usr2, stdin=subprocess.DEVNULL)
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


def _append_segment(stage_dir: Path, segment: dict[str, Any]) -> None:
    with open(stage_dir / "timing.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(segment) + "\n")


def run_stage(stage_dir: str | Path, requeue_self: bool = False) -> int:
    """Run the stage unless finished; returns 0 (done), 124 (stopped, requeue) or the command's code."""
    d = Path(stage_dir).resolve()
    spec = read_stage(d)
    label = f"{spec['kind']} {spec['key']}"
    if (d / "DONE").exists():
        say(f"run-stage: {label} finished earlier; nothing to do")
        return 0
    ids = job_ids()
    segment: dict[str, Any] = {**ids, "host": socket.gethostname(), "gpus": allocated_gpus(spec.get("gpus", 0)),
                               "restart": int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0),
                               "start": time.time()}
    output = d / spec["output"]
    stopped = False
    if spec["atomic_output"] and output.exists():
        say(f"run-stage: {label}: {spec['output']} is complete (written atomically); marking it done")
        rc = 0
    else:
        say(f"run-stage: {label} (job {ids['display_id'] or 'none'}, restart {segment['restart']})")
        rc, stopped = run_child(spec["argv"], d)
    segment.update(end=time.time(), rc=rc)
    segment["elapsed_s"] = round(segment["end"] - segment["start"], 3)
    _append_segment(d, segment)
    if rc == 0:
        if spec["kind"] == "evaluate":
            from clinie_nemo.study.cost import write_cell_cost

            write_cell_cost(d, spec)
        with atomic_write(d / "DONE") as fh:
            json.dump({"finished": time.time(), **ids}, fh)
        say(f"run-stage: {label} done in {segment['elapsed_s']:.1f} s")
        return 0
    if rc == REQUEUE_EXIT_CODE or stopped:
        if requeue_self and ids["job_id"]:
            say(f"run-stage: {label} checkpointed; requeueing job {ids['job_id']}")
            subprocess.run(["scontrol", "requeue", ids["job_id"]], check=False)
        return REQUEUE_EXIT_CODE
    say(f"run-stage: {label} failed with exit code {rc}")
    return rc


class StageJob:
    """The callable submitit pickles: runs one stage folder in the job (requeueing itself on preemption)."""

    def __init__(self, stage_dir: str) -> None:
        self.stage_dir = stage_dir

    def __call__(self) -> str:
        rc = run_stage(self.stage_dir, requeue_self=True)
        if rc == REQUEUE_EXIT_CODE:
            sys.exit(REQUEUE_EXIT_CODE)  # SystemExit: submitit writes no result; the requeued job reruns
        if rc != 0:
            raise RuntimeError(f"stage {self.stage_dir} failed with exit code {rc}")
        return self.stage_dir
