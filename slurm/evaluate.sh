#!/bin/bash
# Score predictions exactly like the clinical challenge scorers (CPU job), writing scores JSON.
#
# usage: PREDICTIONS=pred.jsonl DATA=mix_dir CORPUS=docs.jsonl OUTPUT=scores.json \
#          sbatch --dependency=afterok:<generate job> slurm/evaluate.sh
#   PREDICTIONS      predictions JSONL from generate.sh                                      [required]
#   DATA or RECORDS  DATA: a mix folder (uses DATA/test.jsonl); RECORDS: the records JSONL   [one required]
#   CORPUS           gold documents JSONL of the scored dataset                              [required]
#   OUTPUT           scores JSON (evaluate --json); an existing one is kept, not redone       [required]
#   RULES            scoring rule set (default: the dataset's own)
#   BOOTSTRAP        bootstrap resamples for 95% CIs (default 0 = none)
#   TAGS             key=value pairs for the scores' "meta", space-separated
#                    (e.g. "model=llama31_8b method=lora fold=n2c2_2018 fraction=0.2 seed=1")
#   CONTAINER_IMAGE, CONTAINER_MOUNTS   run inside a container via pyxis; mount each folder the job
#                    uses at the same path (SRC:SRC); CONTAINER_WORKDIR: default the image's WORKDIR
#   PYTHON           interpreter on bare metal (default python3); CLINIE_NEMO_HOME: the checkout
#SBATCH --job-name=clinie-evaluate
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=1
#SBATCH --time=00:30:00
#SBATCH --signal=B:USR1@60
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

PREDICTIONS="${PREDICTIONS:-}"
DATA="${DATA:-}"
RECORDS="${RECORDS:-${DATA:+$DATA/test.jsonl}}"
CORPUS="${CORPUS:-}"
OUTPUT="${OUTPUT:-}"
RULES="${RULES:-}"
BOOTSTRAP="${BOOTSTRAP:-0}"
TAGS="${TAGS:-}"
CONTAINER_IMAGE="${CONTAINER_IMAGE:-}"
CONTAINER_MOUNTS="${CONTAINER_MOUNTS:-}"

cn_abspath PREDICTIONS RECORDS CORPUS OUTPUT
cn_bare_metal_path
cn_header PREDICTIONS RECORDS CORPUS OUTPUT RULES BOOTSTRAP TAGS
cn_check_mounts PREDICTIONS RECORDS CORPUS OUTPUT
cn_require PREDICTIONS RECORDS CORPUS OUTPUT
cn_require_path "$PREDICTIONS" "$RECORDS" "$CORPUS"
if [[ -e "$OUTPUT" ]]; then cn_log "$OUTPUT exists: scores finished earlier, nothing to do"; exit 0; fi

ARGS=(--records "$RECORDS" --predictions "$PREDICTIONS" --corpus "$CORPUS" --json "$OUTPUT")
[[ -n "$RULES" ]] && ARGS+=(--rules "$RULES")
[[ "$BOOTSTRAP" != 0 ]] && ARGS+=(--bootstrap "$BOOTSTRAP")
read -r -a TAG_LIST <<<"$TAGS"
for tag in "${TAG_LIST[@]}"; do ARGS+=(--tag "$tag"); done
cn_launch 1 "$PYTHON" -m clinie_nemo evaluate "${ARGS[@]}"
