#!/bin/bash
# Full fine-tuning (all weights) with clinie-nemo on Slurm (one job; resumes after preemption or a time limit).
#
# usage: DATA=mix_dir OUTPUT=run_dir [MODEL=llama31_8b] [ENGINE=bridge] sbatch slurm/full_sft.sh
#   ENGINE           bridge (default; NeMo Framework 26.x container) | nemo (.nemo checkpoints) | local
#   MODEL, RECIPE    preset name or YAML path (nemo_configs/models/*, nemo_configs/train/*; RECIPE full_sft)
#   DATA             folder with training.jsonl / validation.jsonl (clinie-nemo mix output)   [required]
#   OUTPUT           run folder (spec, checkpoints, adapter, metrics.jsonl, logs, DONE)       [required]
#   TP, PP           tensor / pipeline parallel sizes (default 2, 1: the Bridge SFT recipe)
#   NODES, GPUS_PER_NODE   default: what Slurm allocated (SLURM_GPUS_ON_NODE)
#   OVERRIDES        extra key=value spec overrides, space-separated (e.g. "max_steps=50 lora.dim=64")
#   CONTAINER_IMAGE, CONTAINER_MOUNTS   run inside a container via pyxis (srun --container-image ...);
#                    mount each folder the job uses at the same path (SRC:SRC); CONTAINER_WORKDIR:
#                    the step's working directory inside it (default: the image's WORKDIR)
#   PYTHON           interpreter on bare metal (default python3); CLINIE_NEMO_HOME: the checkout
# GPUs: ask with --gpus-per-node=N only (never --gres=gpu:N beside it: fatal from Slurm 26.05), and give
# --ntasks-per-node=N too so every task (one per GPU) gets --cpus-per-task CPUs; srun's tasks and CPUs per
# task always fit what the job holds (slurm/common.sh cn_step_layout). Multi-node: whole nodes:
#   sbatch --nodes=4 --exclusive --mem=0 --gpus-per-node=8 --ntasks-per-node=8 slurm/full_sft.sh (TP=8 ...)
# Preemption (SIGTERM) or time limit (SIGUSR1 300 s before the end) -> the trainer checkpoints -> the job
# requeues itself and resumes from the checkpoint, at most MAX_REQUEUES times (default 3;
# SLURM_RESTART_COUNT). A finished run (OUTPUT/DONE) is never retrained.
#SBATCH --job-name=clinie-full-sft
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=8
#SBATCH --time=12:00:00
#SBATCH --signal=B:USR1@300
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm-%x-%j.out
set -euo pipefail

if [[ -z "${CLINIE_NEMO_HOME:-}" && -n "${SLURM_JOB_ID:-}" ]]; then  # sbatch runs a spool copy: ask Slurm
  CN_JOB="$(scontrol show job -o "$SLURM_JOB_ID")" \
    || { echo "[clinie-nemo] error: scontrol show job $SLURM_JOB_ID failed (exit $?); set CLINIE_NEMO_HOME" >&2; exit 2; }
  CN_COMMAND="${CN_JOB#* Command=}" && CN_COMMAND="${CN_COMMAND%% WorkDir=*}"
  CLINIE_NEMO_HOME="$(cd "$(dirname "$CN_COMMAND")/.." && pwd)" \
    || { echo "[clinie-nemo] error: no checkout above Command=$CN_COMMAND; set CLINIE_NEMO_HOME" >&2; exit 2; }
fi
CLINIE_NEMO_HOME="${CLINIE_NEMO_HOME:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
# shellcheck source=slurm/common.sh
. "$CLINIE_NEMO_HOME/slurm/common.sh"

ENGINE="${ENGINE:-bridge}"
MODEL="${MODEL:-llama31_8b}"
RECIPE="${RECIPE:-full_sft}"
DATA="${DATA:-}"
OUTPUT="${OUTPUT:-}"
TP="${TP:-2}"
PP="${PP:-1}"
NODES="${NODES:-${SLURM_JOB_NUM_NODES:-1}}"
GPUS_PER_NODE="${GPUS_PER_NODE:-$(cn_gpus_per_node)}"
OVERRIDES="${OVERRIDES:-}"
CONTAINER_IMAGE="${CONTAINER_IMAGE:-}"
CONTAINER_MOUNTS="${CONTAINER_MOUNTS:-}"

cn_abspath DATA OUTPUT
cn_abspath --existing MODEL RECIPE
cn_bare_metal_path
cn_header ENGINE MODEL RECIPE DATA OUTPUT TP PP NODES GPUS_PER_NODE OVERRIDES
cn_check_mounts DATA OUTPUT MODEL RECIPE
cn_require DATA OUTPUT
cn_require_path "$DATA/training.jsonl"
if [[ -e "$OUTPUT/DONE" ]]; then cn_log "$OUTPUT/DONE exists: training finished earlier, nothing to do"; exit 0; fi

read -r -a EXTRA <<<"$OVERRIDES"
TASKS_PER_NODE="$(cn_tasks_per_node "$ENGINE" "$GPUS_PER_NODE")"
cn_launch "$TASKS_PER_NODE" \
  "$PYTHON" -m clinie_nemo train --engine "$ENGINE" --model "$MODEL" --recipe "$RECIPE" \
  --data "$DATA" --output "$OUTPUT" \
  "parallel.tensor=$TP" "parallel.pipeline=$PP" "parallel.nodes=$NODES" "parallel.gpus_per_node=$GPUS_PER_NODE" \
  "${EXTRA[@]}"
