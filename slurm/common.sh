#!/usr/bin/env bash
# Shared bash for slurm/*.sh (sourced, not run). Functions:
#   cn_require VAR...          fail fast when a required variable is empty
#   cn_require_path PATH...    fail fast when a file or folder does not exist
#   cn_header VAR...           log the resolved configuration, versions and node list first
#   cn_launch TASKS_PER_NODE CMD...  run CMD through srun (pyxis container flags when CONTAINER_IMAGE is
#                              set; bare metal otherwise), one task per GPU for bridge/nemo; on the
#                              preemption/time-limit signal forward SIGUSR1 to the step, wait for the
#                              trainer to checkpoint (exit 124) and `scontrol requeue` the job.
# Environment read here: CONTAINER_IMAGE, CONTAINER_MOUNTS, PYTHON, MASTER_PORT.
# shellcheck shell=bash

PYTHON="${PYTHON:-python3}"
CN_REQUEUE_EXIT=124   # the trainer checkpointed on a stop signal and wants to be requeued

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

# the pyxis flags for a step ("" on bare metal)
cn_container_flags() {
  CN_CONTAINER=()
  if [[ -n "${CONTAINER_IMAGE:-}" ]]; then
    CN_CONTAINER=(--container-image="$CONTAINER_IMAGE" --container-workdir="$PWD")
    [[ -n "${CONTAINER_MOUNTS:-}" ]] && CN_CONTAINER+=(--container-mounts="$CONTAINER_MOUNTS")
  fi
  return 0
}

cn_header() {
  local var
  MASTER_ADDR="$(scontrol show hostnames "${SLURM_JOB_NODELIST:-localhost}" 2>/dev/null | head -n1)"
  MASTER_ADDR="${MASTER_ADDR:-localhost}"
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

cn_on_stop() {
  cn_log "stop signal: forwarding SIGUSR1 to the step (pid $CN_STEP_PID) so the trainer checkpoints"
  kill -USR1 "$CN_STEP_PID" 2>/dev/null || true
  local rc=0
  wait "$CN_STEP_PID" || rc=$?
  if ((rc == 0)); then
    cn_log "the step finished before it could stop: nothing to requeue"
    exit 0
  fi
  if [[ -n "${SLURM_JOB_ID:-}" ]]; then
    cn_log "step exited $rc after the signal; requeueing job $SLURM_JOB_ID (it resumes from its checkpoint)"
    scontrol requeue "$SLURM_JOB_ID"
  fi
  exit 0
}

cn_launch() {
  local tasks_per_node=$1
  shift
  cn_container_flags
  local launcher=()
  if [[ -n "${SLURM_JOB_ID:-}" ]]; then
    # torchrun-free: Slurm starts and signals every rank; each task maps its ids onto torch's env://.
    # shellcheck disable=SC2016  # $SLURM_* expand inside each task
    launcher=(srun --nodes="${SLURM_JOB_NUM_NODES:-1}" --ntasks-per-node="$tasks_per_node" --kill-on-bad-exit=1
      "${CN_CONTAINER[@]}" bash -c 'export RANK=$SLURM_PROCID LOCAL_RANK=$SLURM_LOCALID WORLD_SIZE=$SLURM_NTASKS; exec "$@"' rank_env)
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
    scontrol requeue "$SLURM_JOB_ID"
    exit 0
  fi
  cn_log "step finished with exit code $rc"
  return "$rc"
}

# tasks per node: one per GPU for the distributed engines; the local engine: the job's --ntasks-per-node
# (default 1), each task one data-parallel rank (clinie_nemo/engines/local/distributed.py)
cn_tasks_per_node() {
  case "$1" in
    local) echo "${SLURM_NTASKS_PER_NODE:-1}" ;;
    bridge | nemo) echo "$2" ;;
    *) cn_die "unknown ENGINE '$1'; valid: bridge, local, nemo" ;;
  esac
}

# on bare metal, make this checkout importable (inside a container clinie_nemo is installed in the image)
cn_bare_metal_path() {
  if [[ -z "${CONTAINER_IMAGE:-}" ]]; then
    export PYTHONPATH="$CLINIE_NEMO_HOME${PYTHONPATH:+:$PYTHONPATH}"
  fi
  return 0
}
