"""A newcomer's first minutes, for real (marked slow; CI runs it): copy the checkout as a fresh clone would
have it, create a new virtual environment, run the README's install commands, then `clinie-nemo demo`
with the installed console script, and check what it wrote (table, plot, predictions)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import venv

import pytest

from tests.cli_plugin import REPO, copy_checkout

# slow; and its own pytest-timeout: a pip install of the local extra plus the default demo (its 600 s budget is
# asserted below from the demo's own timings) can pass the suite's default 900 s while another worker runs.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

# The README's newcomer block (marked `readme-test: covered-by tests/repo/test_fresh_install.py`), line for line.
# The test runs the block as the README has it and fails when it drifts from these lines, so the README and
# this test change together.
NEWCOMER_BLOCK = (
    "pip install torch==2.13.0   # CPU build of torch (on a GPU machine install your CUDA build instead)",
    "pip install -e '.[local]'",
    "clinie-nemo demo --output demo_out",
)


def readme_newcomer_block() -> str:
    """The README block this test covers: the first bash block after a covered-by marker naming this file."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    marker = "<!-- readme-test: covered-by tests/repo/test_fresh_install.py -->"
    assert marker in text, "README has no block marked as covered by tests/repo/test_fresh_install.py"
    block = re.search(r"```bash\n(.*?)```", text[text.index(marker):], flags=re.S)
    assert block
    return block.group(1)


def test_readme_newcomer_block_is_the_one_this_test_runs():
    lines = tuple(line.strip() for line in readme_newcomer_block().splitlines() if line.strip())
    assert lines == NEWCOMER_BLOCK


def test_readme_install_then_demo_in_a_fresh_venv(tmp_path):
    """The block runs as written (bash, `set -euo pipefail`) in a fresh clone with a new venv activated."""
    repo = copy_checkout(tmp_path / "clinie_nemo")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    script = f"set -euo pipefail\nsource {shlex.quote(str(env_dir / 'bin' / 'activate'))}\n" + readme_newcomer_block()
    done = subprocess.run(["bash", "-c", script], cwd=repo, env=env, capture_output=True, text=True, timeout=3000)
    assert done.returncode == 0, f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
    assert (env_dir / "bin" / "clinie-nemo").is_file(), "the install did not create the clinie-nemo console script"
    assert "Open these files:" in done.stdout
    out = repo / "demo_out"
    assert (out / "report" / "demo_table.md").is_file() and (out / "report" / "report.md").is_file()
    pngs = sorted((out / "report").glob("*.png"))
    assert pngs and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert len(sorted((out / "runs").rglob("predictions.jsonl"))) == 6
    timings = json.loads((out / "timings.json").read_text())
    assert timings["wall_s"] < 600, f"the demo took {timings['wall_s']:.0f} s (budget 10 minutes)"
    # the venv's own install ran, not this checkout
    where = subprocess.run([str(env_dir / "bin" / "python"), "-c", "import clinie_nemo; print(clinie_nemo.__file__)"],
                           env=env, capture_output=True, text=True, cwd=env_dir)
    assert where.stdout.strip().startswith(str(repo)), where.stdout
