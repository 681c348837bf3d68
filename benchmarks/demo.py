"""Benchmark: wall time and CPU time of `clinie-nemo demo`, per step, against its 10-minute budget.

Runs the demo in a subprocess (a fresh interpreter, like a user) into a temporary folder, reads the
timings.json it writes, and prints a markdown section for benchmarks/RESULTS.md with the machine, the
load average before and after (a shared machine makes wall time pessimistic; CPU time is the steadier
figure), and per step: wall seconds, CPU seconds, and each step's share of the total.

    python benchmarks/demo.py            # the default demo
    python benchmarks/demo.py --quick    # the test suite's preset
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUDGET_S = 600.0


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="time the --quick preset")
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as tmp:
        out = Path(tmp) / "out"
        argv = [sys.executable, "-m", "clinie_nemo", "demo", "--output", str(out)] + (["--quick"] if args.quick else [])
        t0 = time.monotonic()
        proc = subprocess.run(argv, env=env, capture_output=True, text=True)
        wall = time.monotonic() - t0
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return proc.returncode
        timings = json.loads((out / "timings.json").read_text())
        table = (out / "report" / "demo_table.md").read_text()
    load_after = os.getloadavg()
    preset = "--quick" if args.quick else "default"
    print(f"## demo\n\nMachine: {cpu_model()}, {os.cpu_count()} CPUs, Python {platform.python_version()}. "
          f"Date: {time.strftime('%Y-%m-%d')}. Command: `python benchmarks/demo.py{' --quick' if args.quick else ''}` "
          f"(`clinie-nemo demo`, {preset} preset). Load average (1 min) before {load_before[0]:.1f}, after "
          f"{load_after[0]:.1f}.\n")
    print(f"Whole run (fresh interpreter, imports included): wall {wall:.0f} s = {wall / BUDGET_S:.2f} x the "
          f"10-minute budget; CPU {timings['cpu_s']:.0f} s in the demo process (all threads).\n")
    print("| step | wall s | CPU s | share of wall |\n|---|---:|---:|---:|")
    for name, t in timings["steps"].items():
        print(f"| {name} | {t['wall_s']:.1f} | {t['cpu_s']:.1f} | {t['wall_s'] / timings['wall_s']:.2f} |")
    print("\nThe demo's table from that run:\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
