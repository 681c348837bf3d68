"""pytest set-up shared by the whole suite: the plugins below (CLI helpers: tests/cli_plugin.py; hypothesis
profiles: tests/hypothesis_profiles.py) and the parallel-run scheduler (pytest-xdist)."""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]  # not imported from tests.cli_plugin: pytest loads that plugin itself

pytest_plugins = ["tests.cli_plugin", "tests.hypothesis_profiles"]

# Under pytest-xdist there is one worker process per core. torch's default of one OpenMP thread per core in each
# worker would put cores x cores busy-waiting threads on the cores: measured in a 2-worker run, the demo's base
# model (100 steps) took 206 CPU-s instead of 85. One thread per worker, inherited by every command, `python -m`
# subprocess and Slurm job (sbatch exports the environment) the tests start; a value you set yourself stays.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _threads in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_threads, "1")


# Parallel runs (pytest-xdist, `-n auto` in pyproject.toml). The scheduler below sends a whole scope to one worker:
# - every test file that uses the one local Slurm cluster (marker `slurm` or fixture `slurm_cluster`) joins one
#   scope, "slurm": they share its two nodes and its queue, so they run one after another, as in a serial run;
# - every other test file is its own scope: its module fixtures (a trained tiny model, a demo run) are built once.
# Scopes go to workers in collection order, which the sort below makes: the Slurm scope, then files with `slow`
# tests, then the rest, so no long test ends the run alone. (xdist's own `--dist loadgroup` renames node ids,
# which pytest 9.2 no longer allows, so the grouping is done here, by file.)
_SLURM_USE = re.compile(r"mark\.slurm\b|\bslurm_cluster\b")


@functools.cache
def _uses_slurm(test_file: str) -> bool:
    path = REPO / test_file
    return path.is_file() and bool(_SLURM_USE.search(path.read_text(encoding="utf-8")))


def _scope(nodeid: str) -> str:
    test_file = nodeid.split("::")[0]
    return "slurm" if _uses_slurm(test_file) else test_file


@pytest.hookimpl(optionalhook=True)  # a run without pytest-xdist (-p no:xdist, or not installed) still works
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling

    class FileScopes(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _scope(nodeid)

    return FileScopes(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    slow_files = {item.nodeid.split("::")[0] for item in items if item.get_closest_marker("slow")}

    def order(item: pytest.Item) -> int:
        scope = _scope(item.nodeid)
        return 0 if scope == "slurm" else 1 if scope in slow_files else 2

    items.sort(key=order)
