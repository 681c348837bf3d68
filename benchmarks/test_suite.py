"""Benchmark: the whole test suite's wall and CPU time, as CI runs it (`python -m pytest -q`), in a checkout.

Each configuration runs the suite once in a subprocess in CHECKOUT (default: this repository): ``parallel``
is the default command (pytest-xdist, one worker per core, tests/conftest.py's scheduler), ``serial`` adds
``-n 0``. Run it with the local Slurm cluster up (tools/local_slurm.sh start; eval its env) and the contract
sites installed, or the Slurm and contract tests skip and the figures mean less. To compare with an older
checkout (no xdist), point --checkout at it and use --modes serial. Prints one markdown row per run: machine,
load average before and after, wall s, CPU s of the suite's processes (user + sys of the children), and
the pytest summary line. Nothing else is asserted: speed is measured here, never in timed tests.

usage: python benchmarks/test_suite.py [--checkout DIR] [--modes parallel,serial]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODES = {"parallel": [], "serial": ["-n", "0"]}


def run_suite(checkout: Path, extra: list[str]) -> dict[str, object]:
    """One run of the suite: wall and children CPU seconds, the last summary line, the exit code."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra], cwd=checkout,
                          capture_output=True, text=True)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = [line for line in done.stdout.splitlines() if " in " in line and ("passed" in line or "failed" in line)]
    return {"wall_s": round(wall, 1), "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1),
            "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
            "summary": lines[-1].strip("= ") if lines else "(no summary)", "returncode": done.returncode}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, default=REPO, help="repository to run the suite in (default: this one)")
    parser.add_argument("--modes", default="parallel", help=f"comma-separated, of {', '.join(MODES)}")
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"unknown mode(s) {unknown}; valid: {', '.join(MODES)}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print("| checkout | mode | wall s | CPU s | load before/after | pytest |")
    print("|---|---|---|---|---|---|")
    for mode in modes:
        r = run_suite(args.checkout, MODES[mode])
        print(f"| {args.checkout} | {mode} | {r['wall_s']} | {r['cpu_s']} | {r['load_before']}/{r['load_after']} | "
              f"{r['summary']} (exit {r['returncode']}) |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
