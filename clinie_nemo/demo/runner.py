"""Running the demo's steps: numbered step lines on stderr, and each `clinie-nemo` command called in-process
through :func:`clinie_nemo.commands.main` (the same code a user runs), its stdout kept in a log file.

A step line says what is done and why; each command line says which command runs. Commands print tables
to stdout (counts, never note or generated text); the demo keeps those in ``OUT/logs/NN-<name>.log`` so its
own stdout carries only the final table and the list of files to open. Progress bars (stderr) pass through.
"""

from __future__ import annotations

import contextlib
import shlex
import time
from collections.abc import Iterator
from pathlib import Path

from clinie_nemo.core.errors import ClinieError
from clinie_nemo.core.progress import say


class DemoStepFailed(ClinieError):
    """A command of the demo exited non-zero; the message names the command and its log."""


def _duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m{s:02d}s" if m else f"{seconds:.1f}s"


class Runner:
    """Numbers steps, runs commands in-process, logs their stdout, and times everything."""

    def __init__(self, out: Path, total_steps: int):
        self.out = out
        self.total = total_steps
        self.number = 0
        self.commands = 0
        self.started = time.monotonic()
        self.cpu_started = time.process_time()
        self.step_times: dict[str, dict[str, float]] = {}
        (out / "logs").mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def step(self, title: str, why: str) -> Iterator[None]:
        self.number += 1
        say(f"\n[{self.number}/{self.total}] {title}")
        say(f"      why: {why}")
        t0, cpu0 = time.monotonic(), time.process_time()
        yield
        took, cpu = time.monotonic() - t0, time.process_time() - cpu0
        self.step_times[f"{self.number}. {title}"] = {"wall_s": round(took, 2), "cpu_s": round(cpu, 2)}
        say(f"      done in {_duration(took)}, CPU {_duration(cpu)} (total {self.elapsed()})")

    def elapsed(self) -> str:
        return _duration(time.monotonic() - self.started)

    def timings(self) -> dict[str, object]:
        """Wall and CPU seconds (this process, all threads) per step and in total."""
        return {"wall_s": round(time.monotonic() - self.started, 2),
                "cpu_s": round(time.process_time() - self.cpu_started, 2),
                "commands": self.commands, "steps": self.step_times}

    def cli(self, *argv: str, label: str = "") -> Path:
        """Run ``clinie-nemo ARGV`` in this process; raise :class:`DemoStepFailed` on a non-zero exit."""
        from clinie_nemo.commands import main

        self.commands += 1
        log = self.out / "logs" / f"{self.commands:02d}-{argv[0]}.log"
        shown = " ".join(shlex.quote(a) for a in argv)
        say(f"      $ clinie-nemo {shown}" + (f"   # {label}" if label else ""))
        with open(log, "w", encoding="utf-8") as fh, contextlib.redirect_stdout(fh):
            print(f"$ clinie-nemo {' '.join(shlex.quote(a) for a in argv)}", flush=True)
            rc = main(list(argv))
        if rc != 0:
            raise DemoStepFailed(f"`clinie-nemo {argv[0]}` exited {rc} (its error is above; its output: {log})")
        return log

