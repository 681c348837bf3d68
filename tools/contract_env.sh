#!/usr/bin/env bash
# Install the REAL upstream stack of one contract test into its own folder, never into the venv:
#   bridge  Megatron-Bridge 0.6.2 + megatron-core 0.19.0 and the pure/CPU packages their config and model path
#           import (tests/engines/test_bridge_contract.py, marker bridge_contract) -> .bridge-contract/site
#   nemo    nemo_toolkit 2.4.0 + Lightning 2.4.0, hydra-core 1.3.2, omegaconf 2.3.0, megatron-core 0.13.1 and the
#           CPU packages `import nemo.collections.nlp` needs (tests/engines/test_nemo_contract.py, marker nemo_contract)
#           -> .nemo-contract/site
# Each list is pinned exactly in tools/NAME_contract_requirements.txt and installed in ONE pip call (pip --target,
# --no-deps): Bridge, megatron-core and megatron-energon share the `megatron` namespace folder, and a second
# `pip --target` call would skip an existing top-level folder. Only the contract test's subprocess puts the folder
# on sys.path; the active venv (torch 2.13.0 CPU, ...) is not modified. Idempotent: a stamp named after the
# requirements' hash; a rerun with the same list exits at once.
# Usage: tools/contract_env.sh bridge|nemo  (uses `python` of the active venv; CLINIE_{BRIDGE,NEMO}_CONTRACT_SITE
# overrides the folder)
set -euo pipefail
# Its own exact pins, whatever the caller's venv is constrained to (.ci/run exports PIP_CONSTRAINT for the venv).
unset PIP_CONSTRAINT
cd "$(dirname "$0")/.."
NAME=${1:-}
case "$NAME" in
  bridge)  # --ignore-requires-python: megatron-bridge 0.6.x declares Python >=3.12 (shimmed, tests/bridge_contract_shims)
    DEST=${CLINIE_BRIDGE_CONTRACT_SITE:-.bridge-contract/site}
    FLAGS=(--ignore-requires-python --only-binary=:all:) ;;
  nemo)  # --prefer-binary: a few pins exist only as source on PyPI (pure Python)
    DEST=${CLINIE_NEMO_CONTRACT_SITE:-.nemo-contract/site}
    FLAGS=(--prefer-binary) ;;
  *) echo "usage: tools/contract_env.sh bridge|nemo (got '$NAME')" >&2; exit 2 ;;
esac
REQ=tools/${NAME}_contract_requirements.txt
stamp="$DEST/.installed-$(sha256sum "$REQ" | cut -c1-16)"
if [ -f "$stamp" ]; then
  echo "$NAME contract env: up to date in $DEST"
  exit 0
fi
start=$(date +%s)
rm -rf "$DEST.partial"
mkdir -p "$(dirname "$DEST")"
python -m pip install -q --disable-pip-version-check --no-deps "${FLAGS[@]}" --target "$DEST.partial" -r "$REQ"
rm -rf "$DEST"
mv "$DEST.partial" "$DEST"
touch "$stamp"
echo "$NAME contract env: installed in $DEST in $(( $(date +%s) - start )) s"
