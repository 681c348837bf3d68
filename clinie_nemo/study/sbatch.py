"""Pure rendering of sbatch scripts: :func:`render_sbatch` turns a frozen :class:`SbatchJob` into the
text of a script `sbatch` accepts. No I/O, no Slurm calls: the same job gives the same bytes (golden tests).

The rendered script mirrors slurm/common.sh: it logs the resolved configuration and node list first,
launches one task per GPU through ``srun --cpus-per-task`` (pyxis ``--container-image``/``--container-mounts``
when a container is set; registry images in enroot's ``REGISTRY#IMAGE`` form), exports the head node address
and a per-job MASTER_PORT, and on the time-limit signal (``--signal=B:USR1@...``) or SIGTERM (preemption)
forwards SIGUSR1 to the step (srun runs in its own session, ``setsid -w``), waits for the trainer to checkpoint
and requeues, unless Slurm requeued the job itself (preemption with PreemptMode=REQUEUE); a step that exits 124
by itself requeues too. Requeues stop after MAX_REQUEUES of our own (counted in a file beside the job's log, not
SLURM_RESTART_COUNT, which also counts preemptions): the job then fails with a log line.
Multi-node jobs ask for whole nodes (``--exclusive``, ``--mem=0``).

Directive values are written the way sbatch reads them (quoted when they hold a space, quote, backslash or
``#``), and a value with a control character (a newline would start a new ``#SBATCH`` line or a command:
directive injection) is refused with a ConfigError.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass, field

from clinie_nemo.core.errors import ConfigError
from clinie_nemo.engines import PREEMPTED_EXIT_CODE

RANK_ENV = "export RANK=$SLURM_PROCID LOCAL_RANK=$SLURM_LOCALID WORLD_SIZE=$SLURM_NTASKS;"


# Slurm's --time forms (sbatch(1) "-t, --time"): "minutes", "minutes:seconds", "hours:minutes:seconds",
# "days-hours", "days-hours:minutes", "days-hours:minutes:seconds".
_TIME = re.compile(r"(?:(?P<d>\d+)-(?P<dh>\d+)(?::(?P<dm>\d+)(?::(?P<ds>\d+))?)?"
                   r"|(?P<h>\d+):(?P<hm>\d+):(?P<hs>\d+)|(?P<m>\d+)(?::(?P<ms>\d+))?)")


def time_minutes(text: str) -> int:
    """A Slurm time limit -> whole minutes (seconds round up); ConfigError when malformed.

    "MM", "MM:SS", "HH:MM:SS", "D-HH", "D-HH:MM", "D-HH:MM:SS" (so "1-12:30" is 1 day 12 h 30 min = 2190)."""
    m = _TIME.fullmatch(str(text).strip())
    if not m:
        raise ConfigError(f"invalid Slurm time {text!r}; expected MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or "
                          "D-HH:MM:SS")
    g = {k: int(v) if v else 0 for k, v in m.groupdict().items()}
    if m["d"] is not None:
        days, hours, minutes, seconds = g["d"], g["dh"], g["dm"], g["ds"]
    elif m["h"] is not None:
        days, hours, minutes, seconds = 0, g["h"], g["hm"], g["hs"]
    else:
        days, hours, minutes, seconds = 0, 0, g["m"], g["ms"]
    return (days * 24 + hours) * 60 + minutes + (1 if seconds else 0)


# enroot 3.x reads an image as docker://[USER@][REGISTRY#]IMAGE[:TAG]; without '#' the registry defaults
# to Docker Hub. enroot src/docker.sh docker::import ("Parse the image reference of the form
# 'docker://[<user>@][<registry>#]<image>[:<tag>]'") and docker::_download (registry="${2:-registry-1.docker.io}");
# pyxis README `--container-image=[USER@][REGISTRY#]IMAGE[:TAG]|PATH`.
def pyxis_image(image: str) -> str:
    """A container image as pyxis/enroot 3.x expect it: ``nvcr.io/nvidia/nemo:26.04`` (docker's form, which
    enroot would look up on Docker Hub) becomes ``nvcr.io#nvidia/nemo:26.04``; squashfs paths, Docker Hub
    names and images already in enroot's form are unchanged. ConfigError for what pyxis cannot take."""
    if not image or any(c.isspace() for c in image):
        raise ConfigError(f"invalid container image {image!r}: empty or contains whitespace")
    if image.startswith(("/", "./", "../", "~")) or image.endswith((".sqsh", ".squashfs", ".sqfs")):
        return image  # a squashfs file on the compute node
    if "://" in image:
        raise ConfigError(f"container image {image!r}: give it without a scheme, as pyxis takes it "
                          "([USER@][REGISTRY#]IMAGE[:TAG], e.g. nvcr.io#nvidia/nemo:26.04) or a .sqsh path")
    user, at, rest = image.partition("@")
    if not at or "/" in user:  # no user part (an '@' after a '/' is a digest, left to enroot)
        user, at, rest = "", "", image
    if "#" in rest:
        return image
    host, slash, path = rest.partition("/")
    if slash and ("." in host or ":" in host or host == "localhost"):
        return f"{user}{at}{host}#{path}"
    return image


# sbatch reads an #SBATCH line like a command line (Slurm src/sbatch/opt.c get_argument, slurm-22-05-8-1
# :459 and slurm-26-05-0-1 :478): whitespace ends an argument unless quoted with " or ', a backslash
# escapes the next character (also inside quotes), an unquoted # starts a comment, an unmatched quote is
# fatal, and the line ends at the newline. A value is therefore written bare when it holds none of these,
# else inside double quotes with backslash and double quote escaped (a tab or newline cannot be written at
# all: control characters are refused, see control_characters).
_BARE_DIRECTIVE = re.compile(r"[A-Za-z0-9_.,:%@+=/~-]*")


def directive_value(value: str) -> str:
    """``value`` as sbatch's #SBATCH parser must see it (bare, or double-quoted with \\ and \" escaped)."""
    if _BARE_DIRECTIVE.fullmatch(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def control_characters(value: str) -> list[str]:
    """The control characters in ``value`` (newline, carriage return, tab, NUL, DEL, U+2028 ...), as reprs."""
    return sorted({repr(c) for c in value
                   if ord(c) < 32 or 127 <= ord(c) < 160 or c in "\u2028\u2029"})


@dataclass(frozen=True)
class SbatchJob:
    """One Slurm batch job. ``command`` is the argv run once per task (one task per GPU, or one task)."""

    name: str
    command: tuple[str, ...]
    nodes: int = 1
    gpus_per_node: int = 0
    cpus_per_task: int = 1
    mem: str | None = None  # e.g. "64G"; None = the partition default (multi-node: 0, all of each node)
    gpu_type: str | None = None  # e.g. "h100" -> --gpus-per-node=h100:8
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
    # pyxis --container-workdir: None = the image's own working directory (its WORKDIR: enroot v3.4.1
    # src/docker.sh:220,232), never the host's $PWD (pyxis v0.24.0 pyxis_slurmstepd.c:1653-1664 chdir()s to
    # it inside the container and fails the step with "couldn't chdir" when it is not mounted; mounted, the
    # host checkout there shadows the package installed in the image). The command's paths must be
    # absolute and mounted at the same place.
    container_workdir: str | None = None
    env: tuple[tuple[str, str], ...] = ()  # exported before launch, in this order
    tasks_per_gpu: bool = True  # one task per GPU (bridge/nemo); False = one task per node
    max_requeues: int = 3  # default of $MAX_REQUEUES: our own requeues allowed (not preemptions) before failing
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
        if self.container_image:
            try:
                pyxis_image(self.container_image)
            except ConfigError as e:
                problems.append(str(e))
        if self.gpu_type is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", self.gpu_type):
            problems.append(f"gpu_type {self.gpu_type!r} must be a GRES type name such as h100")
        if self.max_requeues < 0:
            problems.append(f"max_requeues must be >= 0, got {self.max_requeues}")
        if self.container_workdir is not None and (not self.container_image
                                                   or not self.container_workdir.startswith("/")):
            problems.append(f"container_workdir {self.container_workdir!r} must be an absolute path inside the "
                            "container and needs container_image")
        if "\\" in self.output:  # sbatch(1) "filename pattern" (doc/man/man1/sbatch.1:2758, slurm-26-05-0-1)
            problems.append(f"output {self.output!r} contains a backslash: Slurm reads it as 'do not process the "
                            "replacement symbols' and drops it, so the log would not go to that path")
        for key, _ in self.env:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                problems.append(f"env name {key!r} is not a shell variable name")
        for key, _ in self.extra_directives:
            if not re.fullmatch(r"[a-z][a-z0-9-]*", key):
                problems.append(f"extra directive {key!r} is not an sbatch long option name such as qos")
        checked = [("name", self.name), ("partition", self.partition), ("account", self.account),
                   ("mem", self.mem), ("time", self.time), ("output", self.output), ("array", self.array),
                   ("dependency", self.dependency), ("container_image", self.container_image),
                   ("container_mounts", self.container_mounts), ("container_workdir", self.container_workdir),
                   *((f"extra directive {k}", v) for k, v in self.extra_directives)]
        for what, value in checked:
            bad = control_characters(value) if value else []
            if bad:
                problems.append(f"{what} {value!r} contains control characters ({', '.join(bad)}): each "
                                "#SBATCH directive is one line, a newline would inject another directive or "
                                "a command")
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
        out.append(("gpus-per-node", f"{job.gpu_type}:{job.gpus_per_node}" if job.gpu_type
                    else str(job.gpus_per_node)))
    out.append(("cpus-per-task", str(job.cpus_per_task)))
    mem = job.mem if job.mem is not None or job.nodes == 1 else "0"
    if mem:
        out.append(("mem", mem))
    if job.nodes > 1:  # whole nodes: no other job's ranks compete for GPUs, NICs or memory bandwidth
        out.append(("exclusive", None))
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
    # Slurm 22.05 RELEASE_NOTES: "srun will no longer read in SLURM_CPUS_PER_TASK" (nor inherit sbatch's
    # --cpus-per-task, sbatch(1)): pass it
    parts = ["srun", f"--nodes={job.nodes}", f"--ntasks-per-node={job.ntasks_per_node}",
             f'--cpus-per-task="${{SLURM_CPUS_PER_TASK:-{job.cpus_per_task}}}"', "--kill-on-bad-exit=1"]
    if job.container_image:
        parts.append(f"--container-image={shlex.quote(pyxis_image(job.container_image))}")
        if job.container_mounts:
            parts.append(f"--container-mounts={shlex.quote(job.container_mounts)}")
        if job.container_workdir:
            parts.append(f"--container-workdir={shlex.quote(job.container_workdir)}")
    # torchrun-free launch: Slurm starts (and signals) every rank itself; each task maps its Slurm ids
    # onto the env:// variables torch.distributed reads.
    parts += ["bash", "-c", shlex.quote(RANK_ENV + ' exec "$@"'), "rank_env"]
    return " ".join(parts) + " " + " ".join(shlex.quote(a) for a in job.command)


# srun in its own session (setsid; -w returns srun's exit code). A signal to the batch shell's process group
# (`scancel --full`: slurmstepd killpg()s the batch script's group, Slurm 22.05 src/slurmd/slurmstepd/req.c
# _handle_signal_container, KILL_FULL_JOB) would otherwise reach srun, which takes SIGTERM as "abort the step"
# (src/srun/libsrun/srun_job.c _srun_signal_mgr: SIGTERM -> "forcing job termination" -> launch_g_fwd_signal
# (SIGKILL) -> slurm_step_launch_abort, src/plugins/launch/slurm/launch_slurm.c:961-962: the ranks are killed
# after KillWait) instead of passing it on. In its own session srun only gets what on_stop sends it (SIGUSR1,
# which srun forwards to every task: srun_job.c _srun_signal_mgr default case) or what Slurm sends every
# process of the job at preemption/cancel (then the ranks get the same SIGTERM from their own slurmstepd).
# In a non-interactive shell a background job is not a process-group leader, so setsid execs srun in place:
# $step_pid is srun's pid.
STEP_SESSION_COMMENT = "# srun in its own session: a signal to this shell's process group (scancel --full) must not make srun abort the step"


def requeue_lines(job: SbatchJob) -> list[str]:
    """The stop/requeue part of the script (see slurm/common.sh cn_requeue_or_fail, the same logic).

    - USR1 (``--signal=B:USR1@N``: time limit) or TERM (preemption, scancel): forward SIGUSR1 to the step, wait
      for the trainer to checkpoint (exit 124), then requeue. With PreemptMode=REQUEUE Slurm requeues the job
      itself (slurmctld preempt.c slurm_job_preempt -> job_requeue) and sends SIGTERM, SIGKILL KillWait seconds
      later (slurmd req.c _rpc_terminate_job); our own ``scontrol requeue`` then fails ("Job is pending
      execution", ESLURM_JOB_PENDING). Such a job is recognised (its Restarts count grew since this run
      started, or it is pending/requeued again) and not requeued a second time.
    - The cap counts only OUR requeues, in a file beside the job's log (REQUEUE_COUNT_FILE); SLURM_RESTART_COUNT
      also counts Slurm's own requeues (preemption, node failure), which must not use up MAX_REQUEUES.
    """
    log_dir = posixpath.dirname(job.output) or "."
    count_dir = shlex.quote(log_dir) if "%" not in log_dir else '"${SLURM_SUBMIT_DIR:-.}"'
    return [
        f'MAX_REQUEUES="${{MAX_REQUEUES:-{job.max_requeues}}}"',
        "# our own requeues of this job (Slurm's own, e.g. preemption with PreemptMode=REQUEUE, are not counted)",
        f"REQUEUE_DIR={count_dir}",
        'REQUEUE_COUNT_FILE="${REQUEUE_COUNT_FILE:-$REQUEUE_DIR/.clinie-requeues-$SLURM_JOB_ID}"',
        'RESTARTS_AT_START="${SLURM_RESTART_COUNT:-0}"',
        "job_field() {  # no pipeline: a failing scontrol must not end the script under pipefail",
        "  local line",
        '  line="$(scontrol show job -o "$SLURM_JOB_ID" 2>/dev/null)" || line=""',
        '  if [[ " $line" =~ \\ $1=([^ ]*) ]]; then echo "${BASH_REMATCH[1]}"; fi',
        "  return 0",
        "}",
        "slurm_requeued() {  # Slurm requeued this job itself (PreemptMode=REQUEUE): Restarts grew, or pending again",
        "  local restarts state",
        '  restarts="$(job_field Restarts)"',
        '  state="$(job_field JobState)"',
        '  case "$state" in PENDING | REQUEUE*) return 0 ;; esac',
        '  [[ "$restarts" =~ ^[0-9]+$ ]] && [ "$restarts" -gt "$RESTARTS_AT_START" ]',
        "}",
        "requeue_or_fail() {",
        "  local done=0",
        "  if slurm_requeued; then",
        '    echo "step exited $1; Slurm requeued the job itself (preemption, PreemptMode=REQUEUE): not requeueing '
        'it again; it resumes from its checkpoint"',
        "    exit 0",
        "  fi",
        '  if [ -r "$REQUEUE_COUNT_FILE" ]; then done="$(cat "$REQUEUE_COUNT_FILE")"; fi',
        '  [[ "$done" =~ ^[0-9]+$ ]] || done=0',
        '  if [ "$done" -ge "$MAX_REQUEUES" ]; then',
        '    echo "step exited $1; the job was requeued $done times already (MAX_REQUEUES=$MAX_REQUEUES): '
        'not requeueing again, the job fails"',
        '    exit "$1"',
        "  fi",
        '  echo "$((done + 1))" >"$REQUEUE_COUNT_FILE" || echo "warning: cannot write $REQUEUE_COUNT_FILE"',
        '  echo "step exited $1: requeueing (requeue $((done + 1)) of at most $MAX_REQUEUES)"',
        '  if ! scontrol requeue "$SLURM_JOB_ID"; then',
        '    if slurm_requeued; then echo "Slurm requeued the job meanwhile (preemption)"; exit 0; fi',
        '    echo "scontrol requeue failed: the job ends with exit code $1"',
        '    exit "$1"',
        "  fi",
        "  exit 0",
        "}",
        "on_stop() {",
        "  trap '' USR1 TERM",
        '  echo "stop signal (USR1: time limit, TERM: preemption or scancel): forwarding SIGUSR1 to the step"',
        '  kill -USR1 "$step_pid" 2>/dev/null || true',
        "  local rc=0",
        '  wait "$step_pid" || rc=$?',
        '  if [ "$rc" -eq 0 ]; then echo "the step finished before it could stop"; exit 0; fi',
        '  requeue_or_fail "$rc"',
        "}",
        "trap on_stop USR1 TERM",
        "",
    ]


def render_sbatch(job: SbatchJob) -> str:
    """The whole sbatch script for ``job`` (pure)."""
    lines = ["#!/bin/bash", f"# {job.name}: rendered by clinie_nemo.study.sbatch (re-render, do not edit)"]
    for key, value in directives(job):
        lines.append(f"#SBATCH --{key}" + ("" if value is None else f"={directive_value(value)}"))
    lines += ["set -euo pipefail", ""]
    for key, value in job.env:
        lines.append(f"export {key}={shlex.quote(value)}")
    image = pyxis_image(job.container_image) if job.container_image else "none"
    lines += [
        'MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)"',
        "# a port per job, 15000-29999 (below the ephemeral range; two jobs sharing a node never share it); $MASTER_PORT overrides it",
        'export MASTER_ADDR MASTER_PORT="${MASTER_PORT:-$((15000 + SLURM_JOB_ID % 15000))}"',
        f"export OMP_NUM_THREADS=\"${{SLURM_CPUS_PER_TASK:-{job.cpus_per_task}}}\"",
        'echo "job $SLURM_JOB_ID on $SLURM_JOB_NODELIST (head $MASTER_ADDR:$MASTER_PORT), '
        'restart ${SLURM_RESTART_COUNT:-0}, gpus on node ${SLURM_GPUS_ON_NODE:-0}"',
        "echo " + shlex.quote(f"config: nodes={job.nodes} gpus_per_node={job.gpus_per_node} "
                              f"tasks_per_node={job.ntasks_per_node} container={image}"),
        "",
    ]
    if job.requeue:
        lines += requeue_lines(job)
    if job.requeue:  # the shell traps the stop signals and forwards them itself
        lines.append(STEP_SESSION_COMMENT)
    lines += ["# shellcheck disable=SC2016  # $SLURM_* expand inside each task, not here",
              ("setsid -w " if job.requeue else "") + srun_line(job) + " &", "step_pid=$!"]
    if job.requeue:
        lines += ["rc=0", 'wait "$step_pid" || rc=$?',
                  f'if [ "$rc" -eq {PREEMPTED_EXIT_CODE} ]; then requeue_or_fail "$rc"; fi  # checkpointed, asks to resume',
                  'if [ "$rc" -ne 0 ]; then exit "$rc"; fi', ""]
    else:
        lines += ['wait "$step_pid"', ""]
    return "\n".join(lines)
