"""Shared test helpers: run the real CLI in a subprocess, the way a user does."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str, cwd: str | Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run `python -m clinie_nemo ARGS` with this checkout first on the path."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    if env:
        full_env.update(env)
    return subprocess.run([sys.executable, "-m", "clinie_nemo", *map(str, args)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def copy_checkout(dest: Path) -> Path:
    """Tracked plus untracked-but-not-ignored files (what a clone or a `docker build` context has: no build outputs, no venvs)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@pytest.fixture
def run_cli():
    return cli


# Parallel runs (pytest-xdist, `-n auto --dist loadgroup` in pyproject.toml). A group runs whole on one worker:
# - every test on the one local Slurm cluster (marker `slurm` or fixture `slurm_cluster`): they share its two
#   nodes and its queue, so they run one after another, as in a serial run;
# - every other test file: its module-scoped fixtures (a trained tiny model, a demo run) are built once.
# The long groups start first (the Slurm group, then files marked `slow`), so no long test ends the run alone.
def _group(item: pytest.Item) -> str:
    if item.get_closest_marker("slurm") or "slurm_cluster" in getattr(item, "fixturenames", ()):
        return "slurm"
    return item.nodeid.split("::")[0]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.xdist_group(_group(item)))
    items.sort(key=lambda item: 0 if _group(item) == "slurm" else 1 if item.get_closest_marker("slow") else 2)
