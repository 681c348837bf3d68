"""pytest set-up shared by the whole suite: the plugins below (CLI helpers: tests/cli_plugin.py; hypothesis
profiles: tests/hypothesis_profiles.py)."""

from __future__ import annotations

pytest_plugins = ["tests.cli_plugin", "tests.hypothesis_profiles"]
