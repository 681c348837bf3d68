"""Every command shown in README.md is executed here.

The README's ```bash blocks run in order, in one scratch folder, with `set -euo pipefail`, so a worked
example that stops working fails this test. A block may be preceded by one marker comment:

- ``<!-- readme-test: slurm -->``: needs the local Slurm cluster (tools/local_slurm.sh); marked `slurm`.
- ``<!-- readme-test: covered-by tests/FILE.py -->``: executed by that test instead (the fresh-venv
  install and the full demo take minutes; they run once, in tests/repo/test_fresh_install.py). The file must
  exist and contain the block's commands.

No other way of skipping exists.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli_plugin import REPO
from tests.local_extra import needs_local
from tests.slurm_fixtures import slurm_cluster  # noqa: F401

MARKER = re.compile(r"<!--\s*readme-test:\s*(slurm|covered-by\s+(\S+))\s*-->")
FENCE = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)


@dataclass(frozen=True)
class Block:
    index: int
    code: str
    marker: str  # "", "slurm" or "covered-by"
    covered_by: str = ""


def readme_blocks() -> list[Block]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = []
    for i, match in enumerate(FENCE.finditer(text)):
        before = text[: match.start()].rstrip().splitlines()[-1:] or [""]
        m = MARKER.search(before[0])
        marker = "" if not m else ("slurm" if m.group(1) == "slurm" else "covered-by")
        blocks.append(Block(i, match.group(1), marker, m.group(2) if m and m.group(2) else ""))
    return blocks


def commands_of(code: str) -> list[str]:
    """The command lines of a block (continuation lines joined, comments dropped)."""
    joined = re.sub(r"\\\n\s*", " ", code)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_readme_has_runnable_blocks():
    blocks = readme_blocks()
    assert len(blocks) >= 8
    assert any("clinie-nemo demo" in b.code for b in blocks)


def test_covered_blocks_are_run_by_the_named_test():
    for block in readme_blocks():
        if block.marker != "covered-by":
            continue
        target = REPO / block.covered_by
        assert target.is_file(), f"README block {block.index}: {block.covered_by} does not exist"
        source = target.read_text(encoding="utf-8")
        for command in commands_of(block.code):
            assert command in source, f"README block {block.index}: {command!r} is not run by {block.covered_by}"


def _environment(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    bindir = workdir / ".bin"
    bindir.mkdir(exist_ok=True)
    if shutil.which("clinie-nemo") is None:  # not installed: a shim running this checkout
        shim = bindir / "clinie-nemo"
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m clinie_nemo "$@"\n')
        shim.chmod(0o755)
    env["PATH"] = f"{bindir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["OMP_NUM_THREADS"] = env.get("OMP_NUM_THREADS", "2")
    return env


def _workdir(tmp_path: Path) -> Path:
    """A scratch folder that looks like the checkout (slurm/, nemo_configs/, tools/ are reachable)."""
    for name in ("slurm", "nemo_configs", "tools", "Dockerfile"):
        (tmp_path / name).symlink_to(REPO / name)
    return tmp_path


def _run_blocks(blocks: list[Block], workdir: Path) -> None:
    env = _environment(workdir)
    for block in blocks:
        script = "set -euo pipefail\n" + block.code
        out = subprocess.run(["bash", "-c", script], cwd=workdir, env=env, capture_output=True, text=True,
                             timeout=900)
        assert out.returncode == 0, (
            f"README block {block.index} failed (exit {out.returncode}):\n{block.code}\n"
            f"--- stdout\n{out.stdout[-3000:]}\n--- stderr\n{out.stderr[-3000:]}")


@needs_local
def test_readme_commands_run(tmp_path):
    """The researcher's worked examples, in order, without Slurm."""
    blocks = [b for b in readme_blocks() if b.marker == ""]
    _run_blocks(blocks, _workdir(tmp_path))


@needs_local
@pytest.mark.slurm
def test_readme_cluster_commands_run(tmp_path, slurm_cluster):  # noqa: F811
    """The cluster admin's blocks, against the real local Slurm cluster (after the blocks they build on)."""
    blocks = [b for b in readme_blocks() if b.marker in ("", "slurm")]
    _run_blocks(blocks, _workdir(tmp_path))
