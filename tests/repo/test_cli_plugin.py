"""The suite's own helpers: ``cli`` (in-process, tests/cli_plugin.py) answers what ``cli_subprocess`` (a real
`python -m clinie_nemo`) answers, and gives back the process state a command changes; the hypothesis profiles
(tests/hypothesis_profiles.py) scale the example budgets and refuse an unknown profile."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from hypothesis import settings

import clinie_nemo.cli
from tests.cli_plugin import REPO, cli, cli_subprocess
from tests.hypothesis_profiles import CI_EXAMPLES, PROFILES, examples


@pytest.mark.parametrize("args", [("--help",), ("stats", "--help"), ("stats", "{tmp}/nope.jsonl"),
                                  ("stats", "--no-such-flag"), (), ("datasets",), ("no-such-command",)])
def test_in_process_cli_answers_like_the_subprocess(args, tmp_path):
    args = tuple(a.format(tmp=tmp_path) for a in args)
    inside, outside = cli(*args, cwd=tmp_path), cli_subprocess(*args, cwd=tmp_path)
    assert (inside.returncode, inside.stdout, inside.stderr) == (outside.returncode, outside.stdout, outside.stderr)
    assert inside.args == outside.args


def test_in_process_cli_captures_children_and_gives_the_process_state_back(tmp_path, monkeypatch):
    before = (os.getcwd(), dict(os.environ), signal.getsignal(signal.SIGUSR1), signal.getsignal(signal.SIGTERM))

    def main(argv):
        os.chdir(tmp_path)
        os.environ["CLI_PLUGIN_PROBE"] = argv[0]
        os.environ.pop("PYTHONPATH", None)
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("python stdout")
        os.write(1, b"fd stdout\r\n")
        subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('child stderr\\n')"], check=True)
        raise ValueError("boom")

    monkeypatch.setattr(clinie_nemo.cli, "main", main)
    res = cli("probe", env={"CLI_PLUGIN_ENV": "1"})
    assert res.returncode == 1
    assert res.stdout == "python stdout\nfd stdout\n"  # universal newlines, as text=True gives
    assert "child stderr" in res.stderr and "Traceback" in res.stderr and "ValueError: boom" in res.stderr
    assert (os.getcwd(), dict(os.environ), signal.getsignal(signal.SIGUSR1), signal.getsignal(signal.SIGTERM)) == before


@pytest.mark.parametrize(("exit_with", "code", "stderr"), [
    (SystemExit(2), 2, ""), (SystemExit(None), 0, ""), (SystemExit("bad input"), 1, "bad input\n"),
    (None, 0, ""), (141, 141, ""), (-1, 255, "")])
def test_in_process_cli_exit_status_is_the_interpreters(monkeypatch, exit_with, code, stderr):
    def main(argv):
        if isinstance(exit_with, BaseException):
            raise exit_with
        return exit_with

    monkeypatch.setattr(clinie_nemo.cli, "main", main)
    res = cli("x")
    assert (res.returncode, res.stderr) == (code, stderr)


def test_in_process_cli_sees_the_checkout_first_on_pythonpath(monkeypatch):
    seen = {}
    monkeypatch.setattr(clinie_nemo.cli, "main", lambda argv: seen.update(os.environ) or 0)
    cli("x", env={"A_VAR": "a"})
    assert seen["PYTHONPATH"].split(os.pathsep)[0] == str(REPO) and seen["A_VAR"] == "a"
    assert "A_VAR" not in os.environ


def test_examples_scale_with_the_profile():
    assert examples(CI_EXAMPLES) == settings.default.max_examples
    assert examples(300) == 300 * settings.default.max_examples // CI_EXAMPLES
    assert PROFILES["ci"] == CI_EXAMPLES > PROFILES["dev"]


def test_an_unknown_profile_names_the_valid_ones():
    res = subprocess.run([sys.executable, "-c", "import tests.hypothesis_profiles"], cwd=REPO, capture_output=True,
                         text=True, env={**os.environ, "HYPOTHESIS_PROFILE": "nope"}, timeout=120)
    assert res.returncode == 1 and "unknown profile; valid: ci, dev" in res.stderr
