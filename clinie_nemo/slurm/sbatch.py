"""Pure rendering of sbatch scripts: :func:`render_sbatch` turns a frozen :class:`SbatchJob` into the
text of a script `sbatch` accepts. No I/O, no Slurm calls: the same job gives the same bytes (golden tests).

The rendered script mirrors slurm/common.sh: it logs the resolved configuration and node list first,
launches one task per GPU through ``srun`` (pyxis ``--container-image``/``--container-mounts`` when a
container is set), exports the head node address for multi-node runs, and on the preemption signal
(``--signal=B:USR1@...``) forwards SIGUSR1 to the step, waits for the trainer to checkpoint, and requeues.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from clinie_nemo.errors import ConfigError

RANK_ENV = "export RANK=$SLURM_PROCID LOCAL_RANK=$SLURM_LOCALID WORLD_SIZE=$SLURM_NTASKS;"
REQUEUE_EXIT_CODE = 124  # the local engine's exit code after a signal-triggered checkpoint


def time_minutes(text: str) -> int:
    """Slurm time [D-]HH:MM:SS, MM:SS or MM -> minutes (seconds round up); ConfigError when malformed."""
    days, _, rest = text.rpartition("-")
    try:
        parts = [int(p) for p in rest.split(":")]
        if len(parts) == 1:
            parts = [0, parts[0], 0]
        while len(parts) < 3:
            parts.insert(0, 0)
        h, m, s = parts
        return (int(days or 0) * 24 + h) * 60 + m + (1 if s else 0)
    except ValueError:
        raise ConfigError(f"invalid Slurm time {text!r}; expected [D-]HH:MM:SS") from None


@dataclass(frozen=True)
class SbatchJob:
    """One Slurm batch job. ``command`` is the argv run once per task (one task per GPU, or one task)."""

    name: str
    command: tuple[str, ...]
    nodes: int = 1
    gpus_per_node: int = 0
    cpus_per_task: int = 1
    mem: str | None = None  # e.g. "64G"; None = the partition default
    time: str = "01:00:00"
    partition: str | None = None
    account: str | None = None
    output: str = "logs/%x-%j.out"
    signal_seconds: int | None = 300  # B:USR1 this many seconds before the time limit; None = no signal
    requeue: bool = True
    array: str | None = None  # e.g. "0-9%4"
    dependency: str | None = None  # e.g. "afterok:123:124"
    container_image: str | None = None
    container_mounts: str | None = None
    env: tuple[tuple[str, str], ...] = ()  # exported before launch, in this order
    tasks_per_gpu: bool = True  # one task per GPU (bridge/nemo); False = one task per node
    extra_directives: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        problems = []
        if not self.name or any(c.isspace() for c in self.name):
            problems.append(f"job name {self.name!r} must be non-empty without spaces")
        if not self.command:
            problems.append("command is empty")
        if self.nodes < 1:
            problems.append(f"nodes must be >= 1, got {self.nodes}")
        if self.gpus_per_node < 0 or self.cpus_per_task < 1:
            problems.append("gpus_per_node must be >= 0 and cpus_per_task >= 1")
        if self.signal_seconds is not None and self.signal_seconds >= 60 * time_minutes(self.time):
            problems.append(f"signal {self.signal_seconds} s before the end must be shorter than the time "
                            f"limit {self.time} (it would fire at once)")
        if self.container_mounts and not self.container_image:
            problems.append("container_mounts given without container_image")
        if problems:
            raise ConfigError("invalid sbatch job: " + "; ".join(problems))

    @property
    def ntasks_per_node(self) -> int:
        return self.gpus_per_node if (self.tasks_per_gpu and self.gpus_per_node > 0) else 1


def directives(job: SbatchJob) -> list[tuple[str, str | None]]:
    """The #SBATCH options in rendering order; a None value renders as a bare flag."""
    out: list[tuple[str, str | None]] = [("job-name", job.name)]
    if job.partition:
        out.append(("partition", job.partition))
    if job.account:
        out.append(("account", job.account))
    out += [("nodes", str(job.nodes)), ("ntasks-per-node", str(job.ntasks_per_node))]
    if job.gpus_per_node:
        out.append(("gpus-per-node", str(job.gpus_per_node)))
    out.append(("cpus-per-task", str(job.cpus_per_task)))
    if job.mem:
        out.append(("mem", job.mem))
    out += [("time", job.time), ("output", job.output), ("open-mode", "append")]
    if job.signal_seconds is not None:
        out.append(("signal", f"B:USR1@{job.signal_seconds}"))
    if job.requeue:
        out.append(("requeue", None))
    if job.array:
        out.append(("array", job.array))
    if job.dependency:
        out += [("dependency", job.dependency), ("kill-on-invalid-dep", "yes")]
    out += list(job.extra_directives)
    return out


def srun_line(job: SbatchJob) -> str:
    parts = ["srun", f"--nodes={job.nodes}", f"--ntasks-per-node={job.ntasks_per_node}",
             "--kill-on-bad-exit=1"]
    if job.container_image:
        parts.append(f"--container-image={shlex.quote(job.container_image)}")
        if job.container_mounts:
            parts.append(f"--container-mounts={shlex.quote(job.container_mounts)}")
        parts.append("--container-workdir=\"$PWD\"")
    # torchrun-free launch: Slurm starts (and signals) every rank itself; each task maps its Slurm ids
    # onto the env:// variables torch.distributed reads.
    parts += ["bash", "-c", shlex.quote(RANK_ENV + ' exec "$@"'), "rank_env"]
    return " ".join(parts) + " " + " ".join(shlex.quote(a) for a in job.command)


def render_sbatch(job: SbatchJob) -> str:
    """The whole sbatch script for ``job`` (pure)."""
    lines = ["#!/bin/bash", f"# {job.name}: rendered by clinie_nemo.slurm.sbatch (re-render, do not edit)"]
    for key, value in directives(job):
        lines.append(f"#SBATCH --{key}" + ("" if value is None else f"={value}"))
    lines += ["set -euo pipefail", ""]
    for key, value in job.env:
        lines.append(f"export {key}={shlex.quote(value)}")
    lines += [
        'MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)"',
        "export MASTER_ADDR MASTER_PORT=\"${MASTER_PORT:-29500}\"",
        f"export OMP_NUM_THREADS=\"${{SLURM_CPUS_PER_TASK:-{job.cpus_per_task}}}\"",
        'echo "job $SLURM_JOB_ID on $SLURM_JOB_NODELIST (head $MASTER_ADDR), restart ${SLURM_RESTART_COUNT:-0}"',
        "echo " + shlex.quote(f"config: nodes={job.nodes} gpus_per_node={job.gpus_per_node} "
                              f"tasks_per_node={job.ntasks_per_node} container={job.container_image or 'none'}"),
        "",
    ]
    if job.requeue and job.signal_seconds is not None:
        lines += [
            "on_preempt() {",
            '  echo "preemption/time-limit signal: forwarding SIGUSR1 to the step"',
            '  kill -USR1 "$step_pid" 2>/dev/null || true',
            '  wait "$step_pid" || true',
            '  scontrol requeue "$SLURM_JOB_ID"',
            "  exit 0",
            "}",
            "trap on_preempt USR1",
            "",
        ]
    lines += ["# shellcheck disable=SC2016  # $SLURM_* expand inside each task, not here", srun_line(job) + " &", "step_pid=$!", 'wait "$step_pid"', ""]
    return "\n".join(lines)
