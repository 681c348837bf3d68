"""`clinie-nemo ... | head`: when the reader of stdout is gone, the command ends quietly with exit code 141
(128 + SIGPIPE) and no BrokenPipeError traceback; a BrokenPipeError from elsewhere is not swallowed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from clinie_nemo import commands
from clinie_nemo.core import docs_jsonl
from clinie_nemo.core.document import Document, Entity
from tests.cli_plugin import REPO


def run_with_closed_stdout(*args: str) -> tuple[int, str]:
    """Run the real CLI with its stdout pipe closed before it writes anything (what `| head -0` does)."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "clinie_nemo", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    return proc.wait(timeout=120), stderr


@pytest.fixture
def docs_file(tmp_path):
    path = tmp_path / "docs.jsonl"
    docs_jsonl.write(path, [Document(f"d{i}", "aspirin 81 mg", entities=(Entity("T1", "Drug", ((0, 7),), "aspirin"),))
                            for i in range(3)])
    return path


def test_closed_stdout_ends_quietly_with_141(docs_file):
    code, stderr = run_with_closed_stdout("stats", str(docs_file))
    assert code == 141, stderr
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr


@pytest.mark.parametrize("args", [("--help",), ("stats", "--help")])
def test_help_into_a_closed_pipe_ends_quietly(args):
    """argparse swallows a failed write of the help text itself (exit 0); whatever is left in the buffer
    fails at our flush (exit 141). Either way: no traceback, no 'Exception ignored' message."""
    code, stderr = run_with_closed_stdout(*args)
    assert code in (0, 141) and stderr == "", stderr


def test_open_stdout_is_unaffected(docs_file):
    res = subprocess.run([sys.executable, "-m", "clinie_nemo", "stats", str(docs_file)], capture_output=True,
                         text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120)
    assert res.returncode == 0 and "Drug" in res.stdout, res.stderr


def test_a_broken_pipe_that_is_not_stdout_still_raises(monkeypatch):
    """Runs main() in-process: stdout here is pytest's capture (not a closed pipe), so the error is real."""
    def broken(argv, modules=None):
        raise BrokenPipeError("some other pipe")

    monkeypatch.setattr(commands, "run_command", broken)
    with pytest.raises(BrokenPipeError):
        commands.main(["stats", "x"])
