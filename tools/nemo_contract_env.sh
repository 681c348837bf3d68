#!/usr/bin/env bash
# Install the REAL nemo_toolkit 2.4.0 (+ Lightning 2.4.0, hydra-core 1.3.2, omegaconf 2.3.0, megatron-core 0.13.1
# and the CPU packages `import nemo.collections.nlp` needs) for the NeMo contract test (tests/test_nemo_contract.py,
# marker nemo_contract): our rendered overrides through NeMo's own hydra_runner, MegatronLMPPTrainerBuilder and
# exp_manager on CPU.
#
# Everything goes into ONE folder, .nemo-contract/site (pip --target, --no-deps, pinned in
# tools/nemo_contract_requirements.txt), that only the contract test's subprocess puts first on sys.path. The
# active venv is not modified (torch and numpy are taken from it). --prefer-binary: a few pins exist only as
# source on PyPI (pure Python). Idempotent: a stamp named after the requirements' hash; a rerun with the same list
# exits at once.
# Usage: tools/nemo_contract_env.sh  (uses `python` of the active venv; DEST overridable)
set -euo pipefail
# Its own exact pins, whatever the caller's venv is constrained to (.ci/run exports PIP_CONSTRAINT for the venv).
unset PIP_CONSTRAINT
cd "$(dirname "$0")/.."
REQ=tools/nemo_contract_requirements.txt
DEST=${CLINIE_NEMO_CONTRACT_SITE:-.nemo-contract/site}
stamp="$DEST/.installed-$(sha256sum "$REQ" | cut -c1-16)"
if [ -f "$stamp" ]; then
  echo "nemo contract env: up to date in $DEST"
  exit 0
fi
start=$(date +%s)
rm -rf "$DEST.partial"
mkdir -p "$(dirname "$DEST")"
python -m pip install -q --disable-pip-version-check --no-deps --prefer-binary --target "$DEST.partial" -r "$REQ"
rm -rf "$DEST"
mv "$DEST.partial" "$DEST"
touch "$stamp"
echo "nemo contract env: installed in $DEST in $(( $(date +%s) - start )) s"
