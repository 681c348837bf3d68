#!/usr/bin/env bash
# Shared bash for slurm/*.sh (sourced, not run). Functions:
#   cn_require VAR...          fail fast when a required variable is empty
#   cn_require_path PATH...    fail fast when a file or folder does not exist
#   cn_header VAR...           log the resolved configuration, versions and node list first
#   cn_launch TASKS_PER_NODE CMD...  run CMD through srun --cpus-per-task (pyxis container flags when
#                              CONTAINER_IMAGE is set; bare metal otherwise); on the time-limit signal (USR1)
#                              or preemption (TERM) forward SIGUSR1 to the step, wait for the trainer to
#                              checkpoint (exit 124) and `scontrol requeue` the job (not when Slurm requeued
#                              it itself: PreemptMode=REQUEUE), at most MAX_REQUEUES times of our own (counted
#                              in a file beside the job's log); beyond that the job fails with a log line.
#   cn_gpus_per_node           GPUs on this node: SLURM_GPUS_ON_NODE (--gpus-per-node, --gres=gpu:N, typed
#                              gpu:h100:8), else CUDA_VISIBLE_DEVICES, else the request, else 1
#   cn_tasks_per_node ENGINE GPUS [generate]   tasks per node (training: one per GPU for bridge/nemo)
#   cn_pyxis_image IMAGE       a registry image in enroot 3.x form (nvcr.io/nvidia/x:T -> nvcr.io#nvidia/x:T)
# Environment read here: CONTAINER_IMAGE, CONTAINER_MOUNTS, PYTHON, MASTER_PORT (default: from the job id),
# MAX_REQUEUES (default 3), CN_REQUEUE_COUNT_FILE (default: beside the job's log).
# shellcheck shell=bash

PYTHON="${PYTHON:-python3}"
CN_REQUEUE_EXIT=124   # the trainer checkpointed on a stop signal and wants to be requeued
MAX_REQUEUES="${MAX_REQUEUES:-3}"   # our own requeues allowed (not Slurm's: preemption) before the job fails
CN_RESTARTS_AT_START="${SLURM_RESTART_COUNT:-0}"

cn_log() { echo "[clinie-nemo $(date -u +%FT%TZ)] $*"; }
cn_die() { echo "[clinie-nemo] error: $*" >&2; exit 2; }

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
# clinie_nemo.slurm.sbatch.pyxis_image: squashfs paths, Docker Hub names and REGISTRY#IMAGE stay as given.
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
    CN_CONTAINER=(--container-image="$CONTAINER_IMAGE" --container-workdir="$PWD")
    [[ -n "${CONTAINER_MOUNTS:-}" ]] && CN_CONTAINER+=(--container-mounts="$CONTAINER_MOUNTS")
  fi
  return 0
}

cn_header() {
  local var
  MASTER_ADDR="$(scontrol show hostnames "${SLURM_JOB_NODELIST:-localhost}" 2>/dev/null | head -n1)"
  MASTER_ADDR="${MASTER_ADDR:-localhost}"
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
  local versions=("$PYTHON" -c 'import platform
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
      "transformers", v("transformers"), "megatron-core", v("megatron-core"), "nemo", v("nemo_toolkit"))')
  if [[ -n "${CONTAINER_IMAGE:-}" && -n "${SLURM_JOB_ID:-}" ]]; then
    srun --nodes=1 --ntasks=1 "${CN_CONTAINER[@]}" "${versions[@]}" || cn_die "could not start $CONTAINER_IMAGE"
  else
    "${versions[@]}" || cn_log "versions: $PYTHON could not report"
  fi
}

# one field of this job as slurmctld sees it now (`scontrol show job -o`), "" when unknown
cn_job_field() {
  scontrol show job -o "${SLURM_JOB_ID:-}" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n1
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
    # shellcheck disable=SC2016  # $SLURM_* expand inside each task
    # Slurm 22.05 RELEASE_NOTES: "srun will no longer read in SLURM_CPUS_PER_TASK" (sbatch(1): nor inherit
    # --cpus-per-task from sbatch): pass it explicitly
    launcher=(srun --nodes="${SLURM_JOB_NUM_NODES:-1}" --ntasks-per-node="$tasks_per_node"
      ${SLURM_CPUS_PER_TASK:+--cpus-per-task="$SLURM_CPUS_PER_TASK"} --kill-on-bad-exit=1 "${CN_CONTAINER[@]}" bash -c 'export RANK=$SLURM_PROCID LOCAL_RANK=$SLURM_LOCALID WORLD_SIZE=$SLURM_NTASKS; exec "$@"' rank_env)
  fi
  cn_log "run: ${launcher[*]:+srun x$tasks_per_node/node }$*"
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
