"""The console script: every subcommand has --help ending with examples; user errors exit 2."""

from __future__ import annotations

import pytest

from clinie_nemo.cli import command_modules
from tests.cli_plugin import cli


def test_top_level_help_lists_commands():
    out = cli("--help")
    assert out.returncode == 0
    for name in command_modules():
        assert name in out.stdout


@pytest.mark.parametrize("name", sorted(command_modules()))
def test_every_help_ends_with_examples(name):
    out = cli(name, "--help")
    assert out.returncode == 0, out.stderr
    tail = out.stdout.rstrip().split("examples:")[-1]
    assert "examples:" in out.stdout and f"clinie-nemo {name}" in tail


def test_missing_input_is_a_clean_error(tmp_path):
    out = cli("stats", str(tmp_path / "nope.jsonl"))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "file not found" in out.stderr
