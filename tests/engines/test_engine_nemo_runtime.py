"""Engine nemo at run time: the nemo_toolkit version preflight and preemption (signal forwarding, exit 124).

NeMo cannot run here. Stand-ins, both real Python processes:
- a ``nemo`` package holding only ``__version__`` (what the preflight imports in the container);
- a NeMo script stand-in that records the signal it got and whether SIGUSR1 was ignored when it started
  (what keeps Lightning from installing its own Slurm auto-requeue handler), then exits 0 like NeMo's
  PreemptionCallback after its checkpoint (optionally writing the final .nemo first).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from clinie_nemo.core.errors import ConfigError
from clinie_nemo.engines import nemo
from tests.cli_plugin import REPO, cli
from tests.engine_fixtures import write_records


def fake_nemo(root: Path, version: str) -> Path:
    """A stand-in ``nemo`` package (only __version__) under ``root``; returns root for PYTHONPATH."""
    (root / "nemo").mkdir(parents=True, exist_ok=True)
    (root / "nemo" / "__init__.py").write_text(f"__version__ = {version!r}\n", encoding="utf-8")
    return root


# ---------------------------------------------------------------- item 2: version window

@pytest.mark.parametrize("version, ok", [
    ("2.2.1", True), ("2.3.0", True), ("2.4.0", True), ("2.4.1", True),
    ("2.2.0", False), ("2.2.1rc1", False), ("2.5.0rc0", False), ("2.5.0", False), ("2.7.3", False),
    ("3.0.0", False), ("1.23.0", False), ("dev", False),
])
def test_version_window(version, ok):
    assert (nemo.version_problem(version) is None) is ok


def test_preflight_reads_the_containers_nemo(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(fake_nemo(tmp_path / "ok", "2.4.0")))
    assert nemo.check_nemo_version(sys.executable) == "2.4.0"
    monkeypatch.setenv("PYTHONPATH", str(fake_nemo(tmp_path / "new", "2.5.0")))
    with pytest.raises(ConfigError, match=r"nemo_toolkit 2.5.0 is outside .*2.2.1 <= version < 2.5.0"):
        nemo.check_nemo_version(sys.executable)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="`import nemo` failed"):
        nemo.check_nemo_version(sys.executable)


def test_train_cli_fails_fast_with_exit_2_on_nemo_2_5(tmp_path):
    """The real CLI: no launch (torchrun would not even exist here), exit 2, a clear message, no traceback."""
    data = write_records(tmp_path / "data")
    path = fake_nemo(tmp_path / "standin", "2.5.0")
    res = cli("train", "--engine", "nemo", "--model", "gatortrongpt_5b", "--recipe", "peft_lora", "--data", data,
              "--output", tmp_path / "run", "seq_length=2048",
              env={"PYTHONPATH": f"{REPO}{os.pathsep}{path}", "PATH": f"{Path(sys.executable).parent}"
                   f"{os.pathsep}{os.environ.get('PATH', '')}"})
    assert res.returncode == 2, res.stderr
    assert "nemo_toolkit 2.5.0 is outside the supported window" in res.stderr
    assert "Traceback" not in res.stderr
    assert not list((tmp_path / "run" / "logs").glob("nemo_train*.log"))  # nothing launched


# ---------------------------------------------------------------- item 5: preemption

STANDIN = textwrap.dedent('''
    """Stand-in for megatron_gpt_finetuning.py: waits; on SIGTERM records it and exits 0 (PreemptionCallback)."""
    import signal, sys, time
    from pathlib import Path
    run, mode = Path(sys.argv[1]), sys.argv[2]
    usr1 = "ignored" if signal.getsignal(signal.SIGUSR1) == signal.SIG_IGN else "not ignored"
    def on_term(signum, frame):
        with open(run / "standin.txt", "a") as fh:
            fh.write(f"{signal.Signals(signum).name} usr1 {usr1}\\n")
        if mode == "finish":
            (run / "checkpoints").mkdir(exist_ok=True)
            (run / "checkpoints" / "clinie_nemo_run.nemo").write_text("weights")
        sys.exit(0)
    signal.signal(signal.SIGTERM, on_term)
    (run / "ready").write_text(str(__import__("os").getpid()))
    if mode == "done":
        (run / "checkpoints").mkdir(exist_ok=True)
        (run / "checkpoints" / "clinie_nemo_run.nemo").write_text("weights")
        sys.exit(0)
    for _ in range(600):
        time.sleep(0.1)
    sys.exit(3)
''')

DRIVER = textwrap.dedent('''
    """Runs the real nemo.train() with the stand-in as the NeMo command."""
    import sys
    from clinie_nemo.engines import nemo
    from clinie_nemo.engines.spec_loader import load_run_spec
    standin, data, run, mode = sys.argv[1:5]
    nemo.train_command = lambda spec, d, r: [sys.executable, standin, str(r), mode]
    spec = load_run_spec("gatortrongpt_5b", "peft_lora", ["seq_length=2048"])
    print(nemo.train(spec, data, run))
''')


def _start(tmp_path: Path, mode: str) -> tuple[subprocess.Popen[str], Path]:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (tmp_path / "standin.py").write_text(STANDIN, encoding="utf-8")
    (tmp_path / "driver.py").write_text(DRIVER, encoding="utf-8")
    data = write_records(tmp_path / "data")
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    env["PYTHONPATH"] = f"{REPO}{os.pathsep}{fake_nemo(tmp_path / 'standin_nemo', '2.4.0')}"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.Popen([sys.executable, str(tmp_path / "driver.py"), str(tmp_path / "standin.py"), str(data),
                             str(run), mode], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, run


def _wait_ready(proc: subprocess.Popen[str], run: Path) -> int:
    deadline = time.monotonic() + 60
    while not (run / "ready").is_file():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the stand-in never started"
        time.sleep(0.05)
    time.sleep(0.1)  # the ready file is written after its SIGTERM handler is installed
    return int((run / "ready").read_text())


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGUSR1])
def test_stop_signal_reaches_nemo_as_sigterm_and_exits_124(tmp_path, stop):
    proc, run = _start(tmp_path, "stop")
    child = _wait_ready(proc, run)
    os.kill(child, signal.SIGUSR1)  # Slurm may signal every process of the step: the child ignores SIGUSR1
    time.sleep(0.2)
    assert proc.poll() is None and not (run / "standin.txt").exists()
    proc.send_signal(stop)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == nemo.PREEMPTED_EXIT_CODE == 124, err
    # forwarded once, as SIGTERM; SIGUSR1 was ignored from the start, so Lightning's requeue handler stays off
    assert (run / "standin.txt").read_text() == "SIGTERM usr1 ignored\n"
    assert "exiting 124" in err and not (run / "DONE").exists()


def test_stop_after_the_final_nemo_finishes_normally(tmp_path):
    proc, run = _start(tmp_path, "finish")
    _wait_ready(proc, run)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert (run / "adapter" / "clinie_nemo_run.nemo").is_file() and (run / "DONE").is_file()


def test_run_without_a_signal_completes(tmp_path):
    proc, run = _start(tmp_path, "done")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert (run / "DONE").is_file() and not (run / "standin.txt").exists()


def test_run_restores_this_processes_signal_handlers_and_reports_failures(tmp_path):
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1)}
    assert nemo._run([sys.executable, "-c", "pass"], tmp_path / "logs" / "ok.log") is False
    with pytest.raises(ConfigError, match="NeMo exited with code 3"):
        nemo._run([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "logs" / "bad.log")
    assert {s: signal.getsignal(s) for s in before} == before
