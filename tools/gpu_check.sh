#!/usr/bin/env bash
# GPU check of the local engine (tools/gpu_check.py): tokens/s and MFU of a ~0.85B random-init Llama with
# LoRA r=256 at seq 4096, packed vs padded. Writes a markdown snippet for benchmarks/RESULTS.md.
#   tools/gpu_check.sh [OUT_DIR] [extra gpu_check.py options]
# Needs one CUDA GPU with torch, transformers, peft and tokenizers installed; downloads nothing.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out_dir="${1:-${OUT:-$repo/gpu_check_out}}"
if [[ $# -gt 0 ]]; then shift; fi
mkdir -p "$out_dir"

if ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "gpu_check.sh: nvidia-smi not found; this check needs a CUDA GPU" >&2
    exit 3
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out_dir/gpu.txt"

export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
python "$repo/tools/gpu_check.py" --out "$out_dir/gpu_check.md" --json "$out_dir/gpu_check.json" \
    --work "$out_dir/work" "$@" 2>&1 | tee "$out_dir/gpu_check.log"
rm -rf "$out_dir/work"
echo "gpu_check.sh: paste $out_dir/gpu_check.md into benchmarks/RESULTS.md (## engine_local)"
