#!/usr/bin/env bash
# Regenerate tools/test-constraints.txt: the exact version of every package (transitive ones, pip and
# setuptools included) in the test venv, which .ci/run installs with and the tests' own pip calls read through
# PIP_CONSTRAINT. Run deliberately, after a change of pyproject.toml's dependencies, in a venv made by .ci/run's
# install lines WITHOUT the constraints (so it holds what the registry serves today); commit the diff.
# Usage: tools/lock_test_env.sh  (uses `python` of the active venv)
set -euo pipefail
cd "$(dirname "$0")/.."
out=tools/test-constraints.txt
{
  echo "# Exact versions of everything CI's venv installs (pip -c): .ci/run exports PIP_CONSTRAINT=this file, so its"
  echo "# installs and the tests' own pip calls (fresh venv, packaging) resolve the same way on any day."
  echo "# Regenerate deliberately with tools/lock_test_env.sh. torch is the CPU file on this machine kind's disk."
  python -m pip freeze --all --exclude-editable | sed -E 's/^torch==([0-9.]+)\+cpu$/torch==\1/'
} >"$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out ($(grep -vc '^#' "$out") packages)"
