#!/usr/bin/env bash
# Install the REAL Megatron-Bridge 0.6.2 + megatron-core 0.19.0 (and the pure/CPU packages their config path
# imports) for the contract test (tests/test_bridge_contract.py, marker bridge_contract).
#
# Everything goes into ONE folder, .bridge-contract/site (pip --target, --no-deps, pinned in
# tools/bridge_contract_requirements.txt), that only the contract test's subprocess puts on sys.path. The
# active venv (torch 2.13.0 CPU, transformers 5.x, ...) is not modified: nothing is installed into it, nothing
# is upgraded or downgraded. All in one pip call: Bridge, megatron-core and megatron-energon share the
# `megatron` namespace folder, and a second `pip --target` call would skip an existing top-level folder.
# Idempotent: a stamp named after the requirements' hash; a rerun with the same list exits at once.
# Usage: tools/bridge_contract_env.sh  (uses `python` of the active venv; DEST overridable)
set -euo pipefail
# Its own exact pins, whatever the caller's venv is constrained to (.ci/run exports PIP_CONSTRAINT for the venv).
unset PIP_CONSTRAINT
cd "$(dirname "$0")/.."
REQ=tools/bridge_contract_requirements.txt
DEST=${CLINIE_BRIDGE_CONTRACT_SITE:-.bridge-contract/site}
stamp="$DEST/.installed-$(sha256sum "$REQ" | cut -c1-16)"
if [ -f "$stamp" ]; then
  echo "bridge contract env: up to date in $DEST"
  exit 0
fi
start=$(date +%s)
rm -rf "$DEST.partial"
mkdir -p "$(dirname "$DEST")"
# --ignore-requires-python: megatron-bridge 0.6.x declares Python >=3.12 (shimmed, see tests/bridge_contract_shims).
python -m pip install -q --disable-pip-version-check --no-deps --ignore-requires-python --only-binary=:all: \
  --target "$DEST.partial" -r "$REQ"
rm -rf "$DEST"
mv "$DEST.partial" "$DEST"
touch "$stamp"
echo "bridge contract env: installed in $DEST in $(( $(date +%s) - start )) s"
