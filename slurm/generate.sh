#!/bin/bash
# Generate predictions for a record set with a trained clinie-nemo run (after peft_lora.sh / full_sft.sh).
#
# usage: RUN=run_dir DATA=mix_dir [OUTPUT=pred.jsonl] sbatch --dependency=afterok:<train job> slurm/generate.sh
#   ENGINE           bridge (default) | nemo | local: the engine the run was trained with
#   RUN              the training run folder (must hold DONE)                                 [required]
#   DATA or RECORDS  DATA: a mix folder (uses DATA/test.jsonl); RECORDS: a records JSONL     [one required]
#   OUTPUT           predictions JSONL (default RUN/predictions.jsonl); an existing one is kept, not redone
#   GEN_CONFIG       generation preset or YAML (nemo_configs/generate/: greedy, study_sampling; default greedy)
#   NODES, GPUS_PER_NODE   default: what Slurm allocated (SLURM_GPUS_ON_NODE); bridge: one task per node
#                    (vLLM uses the node's GPUs), nemo: one per GPU (Lightning), local: one; ask for GPUs
#                    with --gpus-per-node=N only (ENGINE=nemo: also --ntasks-per-node=N)
#   OVERRIDES        extra key=value generation overrides, space-separated
#   CONTAINER_IMAGE, CONTAINER_MOUNTS   run inside a container via pyxis; mount each folder the job
#                    uses at the same path (SRC:SRC); CONTAINER_WORKDIR: default the image's WORKDIR
#   PYTHON           interpreter on bare metal (default python3); CLINIE_NEMO_HOME: the checkout
# Preemption (SIGTERM) / time limit (SIGUSR1): SIGUSR1 is forwarded to the generator, which saves the batch in
# flight to OUTPUT's partial file and exits 124; the job requeues itself (at most MAX_REQUEUES times, default 3)
# and the next run resumes after the last saved batch (see README, generate).
#SBATCH --job-name=clinie-generate
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=1
#SBATCH --cpus-per-task=8
#SBATCH --time=02:00:00
#SBATCH --signal=B:USR1@120
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
RUN="${RUN:-}"
DATA="${DATA:-}"
RECORDS="${RECORDS:-${DATA:+$DATA/test.jsonl}}"
OUTPUT="${OUTPUT:-${RUN:+$RUN/predictions.jsonl}}"
GEN_CONFIG="${GEN_CONFIG:-greedy}"
NODES="${NODES:-${SLURM_JOB_NUM_NODES:-1}}"
GPUS_PER_NODE="${GPUS_PER_NODE:-$(cn_gpus_per_node)}"
OVERRIDES="${OVERRIDES:-}"
CONTAINER_IMAGE="${CONTAINER_IMAGE:-}"
CONTAINER_MOUNTS="${CONTAINER_MOUNTS:-}"

cn_abspath RUN RECORDS OUTPUT
cn_abspath --existing GEN_CONFIG
cn_bare_metal_path
cn_header ENGINE RUN RECORDS OUTPUT GEN_CONFIG NODES GPUS_PER_NODE OVERRIDES
cn_check_mounts RUN RECORDS OUTPUT GEN_CONFIG
cn_require RUN RECORDS OUTPUT
cn_require_path "$RUN/DONE" "$RECORDS"
if [[ -e "$OUTPUT" ]]; then cn_log "$OUTPUT exists: predictions finished earlier, nothing to do"; exit 0; fi

read -r -a EXTRA <<<"$OVERRIDES"
TASKS_PER_NODE="$(cn_tasks_per_node "$ENGINE" "$GPUS_PER_NODE" generate)"  # bridge: one vLLM per node
cn_launch "$TASKS_PER_NODE" \
  "$PYTHON" -m clinie_nemo generate --engine "$ENGINE" --run "$RUN" --records "$RECORDS" --output "$OUTPUT" \
  --config "$GEN_CONFIG" "${EXTRA[@]}"
