#!/usr/bin/env bash
# Shared bash for slurm/*.sh (sourced, not run). Functions:
#   cn_require VAR...          fail fast when a required variable is empty
#   cn_require_path PATH...    fail fast when a file or folder does not exist
#   cn_header VAR...           log the resolved configuration, versions and node list first
#   cn_launch TASKS_PER_NODE CMD...  run CMD through srun, TASKS_PER_NODE tasks on every node with the CPUs
#                              of the allocation split among them (cn_step_layout; pyxis container flags when
#                              CONTAINER_IMAGE is set; bare metal otherwise); on the time-limit signal (USR1)
#                              or preemption (TERM) forward SIGUSR1 to the step, wait for the trainer to
#                              checkpoint (exit 124) and `scontrol requeue` the job (not when Slurm requeued
#                              it itself: PreemptMode=REQUEUE), at most MAX_REQUEUES times of our own (counted
#                              in a file beside the job's log); beyond that the job fails with a log line.
#   cn_gpus_per_node           GPUs on this node: SLURM_GPUS_ON_NODE (--gpus-per-node, --gres=gpu:N, typed
#                              gpu:h100:8), else CUDA_VISIBLE_DEVICES, else the request, else 1
#   cn_tasks_per_node ENGINE GPUS [generate]   tasks per node (training: one per GPU for bridge/nemo)
#   cn_step_layout TASKS_PER_NODE   the step's total tasks and CPUs per task, fitted into the allocation
#   cn_pyxis_image IMAGE       a registry image in enroot 3.x form (nvcr.io/nvidia/x:T -> nvcr.io#nvidia/x:T)
#   cn_abspath VAR...          make relative paths in VARs absolute (the container step does not run in $PWD)
# Environment read here: CONTAINER_IMAGE, CONTAINER_MOUNTS, CONTAINER_WORKDIR, PYTHON, MASTER_PORT (default:
# from the job id), MAX_REQUEUES (default 3), CN_REQUEUE_COUNT_FILE (default: beside the job's log).
# Sourcing this file adds `set -E` and an ERR trap: a command that ends the script under `set -e` (a failed
# pipeline under pipefail, a failed $(...) assignment) is named with its exit code and line, never silent.
# shellcheck shell=bash

PYTHON="${PYTHON:-python3}"
CN_REQUEUE_EXIT=124   # clinie_nemo.engines.PREEMPTED_EXIT_CODE: the trainer checkpointed on a stop signal, requeue it
MAX_REQUEUES="${MAX_REQUEUES:-3}"   # our own requeues allowed (not Slurm's: preemption) before the job fails
CN_RESTARTS_AT_START="${SLURM_RESTART_COUNT:-0}"

cn_log() { echo "[clinie-nemo $(date -u +%FT%TZ)] $*"; }
cn_die() { echo "[clinie-nemo] error: $*" >&2; exit 2; }

# set -e stops a script at a failing command without a word; say which command, where, and its exit code.
# Only in the script's own shell (with errtrace a failing $(...) would report from its subshell too, naming
# the last command of its pipeline instead of the assignment), and not for cn_launch, which logs its step.
cn_on_error() {
  local rc=$1 line=$2 cmd=$3
  [[ "${BASHPID:-$$}" == "$$" ]] || return 0
  case "$cmd" in cn_launch\ * | "return "*) return 0 ;; esac
  echo "[clinie-nemo] error: exit code $rc from \`$cmd\` (${BASH_SOURCE[1]:-$0} line $line)" >&2
}
set -E
trap 'cn_on_error "$?" "$LINENO" "$BASH_COMMAND"' ERR

cn_require() {
  local var missing=()
  for var in "$@"; do [[ -n "${!var:-}" ]] || missing+=("$var"); done
  ((${#missing[@]} == 0)) || cn_die "set ${missing[*]} (see the usage header of this script)"
}

cn_require_path() {
  local p
  for p in "$@"; do [[ -e "$p" ]] || cn_die "not found: $p"; done
}

# enroot 3.x reads docker://[USER@][REGISTRY#]IMAGE[:TAG]; without '#' the registry is Docker Hub
# (enroot src/docker.sh docker::import image-reference regex, docker::_download registry default
# registry-1.docker.io; pyxis README --container-image=[USER@][REGISTRY#]IMAGE[:TAG]|PATH). Same rule as
# clinie_nemo.study.sbatch.pyxis_image: squashfs paths, Docker Hub names and REGISTRY#IMAGE stay as given.
cn_pyxis_image() {
  local image=$1 user="" rest host path
  case "$image" in
    "" | *[[:space:]]*) cn_die "CONTAINER_IMAGE '$image' is empty or contains whitespace" ;;
    *://*) cn_die "CONTAINER_IMAGE '$image': give it without a scheme ([USER@][REGISTRY#]IMAGE[:TAG], e.g. nvcr.io#nvidia/nemo:26.04) or a .sqsh path" ;;
    /* | ./* | ../* | "~"* | *.sqsh | *.squashfs | *.sqfs) echo "$image"; return 0 ;;
  esac
  rest=$image
  if [[ "$image" == *@* && "${image%%@*}" != */* ]]; then user="${image%%@*}@"; rest="${image#*@}"; fi
  host="${rest%%/*}"
  path="${rest#*/}"
  if [[ "$rest" != *"#"* && "$rest" == */* && ( "$host" == *.* || "$host" == *:* || "$host" == localhost ) ]]; then
    echo "$user$host#$path"
  else
    echo "$image"
  fi
}

# the pyxis flags for a step ("" on bare metal)
cn_container_flags() {
  CN_CONTAINER=()
  if [[ -n "${CONTAINER_IMAGE:-}" ]]; then
    local image
    image="$(cn_pyxis_image "$CONTAINER_IMAGE")" || exit 2
    if [[ "$image" != "$CONTAINER_IMAGE" ]]; then
      cn_log "CONTAINER_IMAGE $CONTAINER_IMAGE -> $image (enroot 3.x syntax REGISTRY#IMAGE[:TAG])"
      CONTAINER_IMAGE=$image
    fi
    # No --container-workdir="$PWD": pyxis chdir()s into the workdir inside the container and fails the step
    # ("pyxis: couldn't chdir to ...") unless that host folder is mounted there; and where it is mounted, a
    # checkout in it shadows the clinie_nemo installed in the image (python -m puts the cwd first on
    # sys.path). Without the flag pyxis chdir()s to the container's own cwd (pyxis v0.24.0
    # pyxis_slurmstepd.c:1653-1664), the image's WORKDIR (enroot v3.4.1 src/docker.sh:220,232 writes
    # `cd "${workdir:-/}"` into the container's /etc/rc); the scripts pass absolute paths (cn_abspath).
    CN_CONTAINER=(--container-image="$CONTAINER_IMAGE")
    [[ -n "${CONTAINER_MOUNTS:-}" ]] && CN_CONTAINER+=(--container-mounts="$CONTAINER_MOUNTS")
    [[ -n "${CONTAINER_WORKDIR:-}" ]] && CN_CONTAINER+=(--container-workdir="$CONTAINER_WORKDIR")
  fi
  return 0
}

# make each named variable's path absolute (relative to $PWD, where the job was submitted from): the
# container step runs in the image's working directory, not in $PWD. Empty values stay empty; after
# --existing only paths that exist are changed (MODEL=llama31_8b is a preset name, not a file).
cn_abspath() {
  local var existing=0
  if [[ "${1:-}" == --existing ]]; then existing=1; shift; fi
  for var in "$@"; do
    [[ -n "${!var:-}" && "${!var}" != /* ]] || continue
    if ((existing)) && [[ ! -e "${!var}" ]]; then continue; fi
    printf -v "$var" '%s' "$PWD/${!var}"
  done
  return 0
}

# warn about each named path that no CONTAINER_MOUNTS entry mounts at the same place inside the container
# (SRC:SRC, or SRC alone): the step gets the host path, and the container sees it only where the site's
# enroot configuration mounts it by itself (enroot fstab, --container-mount-home)
cn_check_mounts() {
  [[ -n "${CONTAINER_IMAGE:-}" ]] || return 0
  local var path entry src dst found mounts=()
  IFS=, read -r -a mounts <<<"${CONTAINER_MOUNTS:-}"
  for var in "$@"; do
    path="${!var:-}"
    [[ "$path" == /* ]] || continue
    found=0
    for entry in "${mounts[@]}"; do
      src="${entry%%:*}"
      dst="${entry#*:}"
      dst="${dst%%:*}"
      [[ "$entry" == *:* ]] || dst=$src
      src="${src%/}"
      if [[ "$src" == "${dst%/}" && ( "$path" == "$src" || "$path" == "$src"/* ) ]]; then found=1; break; fi
    done
    ((found)) || cn_log "warning: $var=$path is not inside a CONTAINER_MOUNTS folder mounted at the same path (SRC:SRC): the container sees it only if the site's enroot configuration mounts it"
  done
  return 0
}

# the Python that prints the versions line (run on bare metal by cn_header, inside the container by the
# step's first task: a separate container step would import the image once more)
CN_VERSIONS_PY='import platform
from importlib import metadata
def v(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"
try:
    import clinie_nemo
    cn = clinie_nemo.__version__
except ImportError:
    cn = "absent"
print("versions python", platform.python_version(), "clinie-nemo", cn, "torch", v("torch"),
      "transformers", v("transformers"), "megatron-core", v("megatron-core"), "nemo", v("nemo_toolkit"))'

cn_header() {
  local var hosts
  MASTER_ADDR=localhost
  if [[ -n "${SLURM_JOB_NODELIST:-}" ]]; then
    # the first host of the job (no `| head -n1`: under pipefail head's early exit can fail scontrol with
    # SIGPIPE on a long node list, and a failing scontrol used to end the script without a word)
    hosts="$(scontrol show hostnames "$SLURM_JOB_NODELIST")" \
      || cn_die "scontrol show hostnames $SLURM_JOB_NODELIST failed (exit $?): cannot name the head node MASTER_ADDR"
    MASTER_ADDR="${hosts%%$'\n'*}"
    [[ -n "$MASTER_ADDR" ]] || cn_die "scontrol show hostnames $SLURM_JOB_NODELIST printed no host"
  fi
  # a port per job, 15000-29999 (below the ephemeral range): two jobs on one node never share it
  if [[ -n "${SLURM_JOB_ID:-}" ]]; then
    MASTER_PORT="${MASTER_PORT:-$((15000 + SLURM_JOB_ID % 15000))}"
  fi
  export MASTER_ADDR MASTER_PORT="${MASTER_PORT:-29500}"
  export OMP_NUM_THREADS="${SLURM_CPUS_PER_TASK:-1}"
  cn_log "job ${SLURM_JOB_ID:-none} restart ${SLURM_RESTART_COUNT:-0} nodes ${SLURM_JOB_NODELIST:-$(hostname -s)} head $MASTER_ADDR:$MASTER_PORT"
  for var in "$@"; do cn_log "config $var=${!var:-}"; done
  cn_log "config CONTAINER_IMAGE=${CONTAINER_IMAGE:-none (bare metal)} CONTAINER_MOUNTS=${CONTAINER_MOUNTS:-}"
  cn_container_flags
  if [[ -n "${CONTAINER_IMAGE:-}" && -n "${SLURM_JOB_ID:-}" ]]; then
    # one container step per job: the step's first task prints the versions inside the image; pyxis and
    # enroot errors reach this log as srun prints them, with srun's exit code
    cn_log "versions: printed inside $CONTAINER_IMAGE by the step's first task"
  else
    "$PYTHON" -c "$CN_VERSIONS_PY" || cn_log "versions: $PYTHON could not report"
  fi
}

# one field of this job as slurmctld sees it now (`scontrol show job -o`), "" when unknown
cn_job_field() {  # no pipeline: a failing scontrol (controller down) must not end the script under pipefail
  local line
  line="$(scontrol show job -o "${SLURM_JOB_ID:-}" 2>/dev/null)" || line=""
  if [[ " $line" =~ \ $1=([^ ]*) ]]; then echo "${BASH_REMATCH[1]}"; fi
  return 0
}

# Slurm requeued this job itself: PreemptMode=REQUEUE (slurm.conf(5); slurmctld preempt.c slurm_job_preempt ->
# job_requeue) sends SIGTERM and requeues at once, counting it in Restarts (SLURM_RESTART_COUNT of the next
# run). Seen on Slurm 22.05: while the batch shell handles the SIGTERM, `scontrol show job` already shows
# Restarts+1 (JobState COMPLETING), and `scontrol requeue` fails with "Job is pending execution"
# (ESLURM_JOB_PENDING). PreemptMode=CANCEL, scancel and the time limit leave Restarts as it was.
cn_slurm_requeued() {
  local restarts state
  restarts="$(cn_job_field Restarts)"
  state="$(cn_job_field JobState)"
  case "$state" in PENDING | REQUEUE*) return 0 ;; esac
  [[ "$restarts" =~ ^[0-9]+$ ]] && ((restarts > CN_RESTARTS_AT_START))
}

# where our own requeues of this job are counted: CN_REQUEUE_COUNT_FILE, else a file beside the job's log
# (StdOut: the folder exists and outlives a requeue), else in the submit folder
cn_requeue_count_file() {
  if [[ -n "${CN_REQUEUE_COUNT_FILE:-}" ]]; then echo "$CN_REQUEUE_COUNT_FILE"; return 0; fi
  local out dir
  out="$(cn_job_field StdOut)"
  dir="${out%/*}"
  [[ "$out" == /*/* && -d "$dir" && -w "$dir" ]] || dir="${SLURM_SUBMIT_DIR:-$PWD}"
  echo "$dir/.clinie-requeues-${SLURM_JOB_ID:-none}"
}

# requeue this job (it resumes from its checkpoint), unless Slurm requeued it already (preemption with
# PreemptMode=REQUEUE) or WE requeued it MAX_REQUEUES times already: then fail with exit code $1 instead of
# requeueing forever. Only our own requeues count (a file, cn_requeue_count_file): SLURM_RESTART_COUNT also
# counts Slurm's own requeues (preemptions, node failures), which would use up the cap.
cn_requeue_or_fail() {
  local rc=$1 done=0 file
  if cn_slurm_requeued; then
    cn_log "step exited $rc; Slurm requeued job ${SLURM_JOB_ID:-} itself (preemption, PreemptMode=REQUEUE): not requeueing it again; it resumes from its checkpoint"
    exit 0
  fi
  file="$(cn_requeue_count_file)"
  if [[ -r "$file" ]]; then done="$(cat "$file")"; fi
  [[ "$done" =~ ^[0-9]+$ ]] || done=0
  if ((done >= MAX_REQUEUES)); then
    cn_log "step exited $rc; job ${SLURM_JOB_ID:-} was requeued $done times already (MAX_REQUEUES=$MAX_REQUEUES): not requeueing again, the job fails"
    exit "$rc"
  fi
  echo "$((done + 1))" >"$file" || cn_log "warning: cannot write the requeue count to $file"
  cn_log "step exited $rc; requeueing job $SLURM_JOB_ID (requeue $((done + 1)) of at most $MAX_REQUEUES), it resumes from its checkpoint"
  if ! scontrol requeue "$SLURM_JOB_ID"; then
    if cn_slurm_requeued; then
      cn_log "Slurm requeued job $SLURM_JOB_ID meanwhile (preemption); it resumes from its checkpoint"
      exit 0
    fi
    cn_log "scontrol requeue $SLURM_JOB_ID failed: the job ends with exit code $rc"
    exit "$rc"
  fi
  exit 0
}

cn_on_stop() {
  trap '' USR1 TERM
  cn_log "stop signal (USR1: time limit, TERM: preemption): forwarding SIGUSR1 to the step (pid $CN_STEP_PID) so the trainer checkpoints"
  kill -USR1 "$CN_STEP_PID" 2>/dev/null || true
  local rc=0
  wait "$CN_STEP_PID" || rc=$?
  if ((rc == 0)); then
    cn_log "the step finished before it could stop: nothing to requeue"
    exit 0
  fi
  if [[ -n "${SLURM_JOB_ID:-}" ]]; then
    cn_requeue_or_fail "$rc"
  fi
  exit "$rc"
}

cn_launch() {
  local tasks_per_node=$1
  shift
  cn_container_flags
  local launcher=()
  if [[ -n "${SLURM_JOB_ID:-}" ]]; then
    # torchrun-free: Slurm starts and signals every rank; each task maps its ids onto torch's env://.
    # The step's shape is explicit and fits the allocation (cn_step_layout): srun reads the job's
    # SLURM_NTASKS as its --ntasks, so a job submitted with one task per node ran ONE task instead of one per
    # GPU, and (Slurm 22.05 RELEASE_NOTES: "srun will no longer read in SLURM_CPUS_PER_TASK") the job's
    # --cpus-per-task times the tasks per node could ask for more CPUs than the job holds.
    cn_step_layout "$tasks_per_node"
    export OMP_NUM_THREADS="$CN_CPUS_PER_TASK"
    if [[ -n "${CONTAINER_IMAGE:-}" ]]; then export CN_STEP_PYTHON="$PYTHON" CN_STEP_VERSIONS="$CN_VERSIONS_PY"; fi
    # shellcheck disable=SC2016  # $SLURM_* and $CN_STEP_* expand inside each task
    launcher=(srun --nodes="$CN_NODES" --ntasks="$CN_NTASKS" --ntasks-per-node="$tasks_per_node"
      --cpus-per-task="$CN_CPUS_PER_TASK" --kill-on-bad-exit=1 "${CN_CONTAINER[@]}" bash -c 'export RANK=$SLURM_PROCID LOCAL_RANK=$SLURM_LOCALID WORLD_SIZE=$SLURM_NTASKS; if [ -n "${CN_STEP_VERSIONS:-}" ] && [ "$SLURM_PROCID" = 0 ]; then "$CN_STEP_PYTHON" -c "$CN_STEP_VERSIONS" || echo "versions: $CN_STEP_PYTHON could not report"; fi; exec "$@"' rank_env)
  fi
  cn_log "run: ${launcher[*]:+srun $CN_NODES node(s) x $tasks_per_node task(s) x $CN_CPUS_PER_TASK CPU(s) }$*"
  trap cn_on_stop USR1 TERM
  # srun in its own session: a SIGTERM to the batch script's process group (Slurm's preemption, scancel
  # --full) made srun abort the step ("forcing job termination") before the ranks could checkpoint; the
  # ranks get the stop signal from cn_on_stop (forwarded by srun) and from their own step.
  local detach=()
  ((${#launcher[@]} > 0)) && command -v setsid >/dev/null && detach=(setsid -w)
  "${detach[@]}" "${launcher[@]}" "$@" &
  CN_STEP_PID=$!
  local rc=0
  wait "$CN_STEP_PID" || rc=$?
  trap - USR1 TERM
  if ((rc == CN_REQUEUE_EXIT)) && [[ -n "${SLURM_JOB_ID:-}" ]]; then
    cn_log "the step checkpointed and asked to be requeued (exit $rc)"
    cn_requeue_or_fail "$rc"
  fi
  cn_log "step finished with exit code $rc"
  return "$rc"
}

# the fewest CPUs the job holds on any of its nodes: SLURM_JOB_CPUS_PER_NODE ("72(x2),36" = 72 CPUs on each
# of two nodes, 36 on a third), else SLURM_CPUS_ON_NODE (the batch node); "" when neither is set
cn_job_cpus_per_node() {
  local part n min="" parts=()
  IFS=, read -r -a parts <<<"${SLURM_JOB_CPUS_PER_NODE:-}"
  for part in "${parts[@]}"; do
    n="${part%%(*}"
    if [[ ! "$n" =~ ^[0-9]+$ ]]; then min=""; break; fi
    if [[ -z "$min" ]] || ((n < min)); then min=$n; fi
  done
  [[ -n "$min" ]] || min="${SLURM_CPUS_ON_NODE:-}"
  echo "$min"
}

# the step's shape for TASKS_PER_NODE tasks on each node of the job: CN_NODES, CN_NTASKS (nodes x tasks)
# and CN_CPUS_PER_TASK (the job's --cpus-per-task, but never more than the node's CPUs split among the
# tasks: `sbatch --gpus-per-node=8 peft_lora.sh` keeps the script's 1 task x 8 CPUs, so 8 tasks get 1 CPU
# each instead of asking for 64). Fewer CPUs on a node than tasks: exit 2 with what to ask for.
cn_step_layout() {
  local tasks=$1 cpus want
  CN_NODES="${SLURM_JOB_NUM_NODES:-${SLURM_NNODES:-1}}"
  CN_NTASKS=$((CN_NODES * tasks))
  cpus="$(cn_job_cpus_per_node)"
  want="${SLURM_CPUS_PER_TASK:-}"
  if [[ ! "$cpus" =~ ^[0-9]+$ ]]; then
    CN_CPUS_PER_TASK="${want:-1}"
    return 0
  fi
  ((cpus >= tasks)) || cn_die "the job holds $cpus CPU(s) per node but the step runs $tasks task(s) per node (one per GPU): submit with --ntasks-per-node=$tasks (and --gpus-per-node=$tasks), so every task gets its --cpus-per-task"
  CN_CPUS_PER_TASK=$((cpus / tasks))
  if [[ "$want" =~ ^[0-9]+$ ]] && ((want < CN_CPUS_PER_TASK)); then CN_CPUS_PER_TASK=$want; fi
  if [[ "$want" =~ ^[0-9]+$ ]] && ((want > CN_CPUS_PER_TASK)); then
    cn_log "the job holds $cpus CPU(s) per node for $tasks task(s) per node: $CN_CPUS_PER_TASK CPU(s) per task instead of --cpus-per-task=$want (submit with --ntasks-per-node=$tasks to get $want each)"
  fi
  return 0
}

# GPUs on this node: SLURM_GPUS_ON_NODE (set for --gpus-per-node, --gres=gpu:N and typed gpu:h100:8 alike;
# SLURM_GPUS_PER_NODE is unset with --gres and reads "h100:8" when typed), else the CUDA_VISIBLE_DEVICES
# count, else the request (SLURM_GPUS_PER_NODE without its type), else 1
cn_gpus_per_node() {
  local n="${SLURM_GPUS_ON_NODE:-}" ids=()
  if [[ ! "$n" =~ ^[0-9]+$ && "${CUDA_VISIBLE_DEVICES:-}" =~ ^[[:alnum:]-]+(,[[:alnum:]-]+)*$ \
        && "${CUDA_VISIBLE_DEVICES}" != NoDevFiles ]]; then
    IFS=, read -r -a ids <<<"$CUDA_VISIBLE_DEVICES"
    n=${#ids[@]}
  fi
  if [[ ! "$n" =~ ^[0-9]+$ ]]; then
    n="${SLURM_GPUS_PER_NODE:-}"
    n="${n##*:}"
  fi
  [[ "$n" =~ ^[0-9]+$ ]] || n=1
  echo "$n"
}

# tasks per node: training runs one task per GPU for the distributed engines (Megatron/Lightning ranks);
# generation (third argument "generate") runs one task per node for bridge (vLLM drives every GPU of the node
# from one process with tensor parallelism), one per GPU for nemo (Lightning under Slurm wants
# ntasks-per-node == devices); the local engine: training takes the job's --ntasks-per-node (default 1), each
# task one data-parallel rank (clinie_nemo/engines/local/distributed.py), generation one
cn_tasks_per_node() {
  case "$1:${3:-train}" in
    local:train) echo "${SLURM_NTASKS_PER_NODE:-1}" ;;
    local:*) echo 1 ;;
    bridge:generate) echo 1 ;;
    bridge:train | nemo:*) echo "$2" ;;
    *) cn_die "unknown ENGINE '$1' or stage '${3:-}'; valid engines: bridge, local, nemo" ;;
  esac
}

# on bare metal, make this checkout importable (inside a container clinie_nemo is installed in the image)
cn_bare_metal_path() {
  if [[ -z "${CONTAINER_IMAGE:-}" ]]; then
    export PYTHONPATH="$CLINIE_NEMO_HOME${PYTHONPATH:+:$PYTHONPATH}"
  fi
  return 0
}
