"""`clinie-nemo status`: a table of a study's cells x stages (state, job id, elapsed, GPU-hours)."""

from __future__ import annotations

import argparse

NAME = "status"
HELP = "Show a study's cells x stages: state, Slurm job id, elapsed time and GPU-hours."
EXAMPLES = """
  clinie-nemo status studies/mini
  clinie-nemo status studies/mini --cost
  clinie-nemo status studies/mini --wait --interval 30
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("study_dir", help="the folder given to `clinie-nemo study --output`")
    p.add_argument("--cost", action="store_true",
                   help="also print GPU-hours per cell and LoRA vs full fine-tuning (like for like)")
    p.add_argument("--wait", action="store_true",
                   help="poll until every stage is done (exit 0) or one failed or was lost (exit 1)")
    p.add_argument("--timeout", type=float, default=0, help="with --wait: give up after this many seconds (exit 1)")
    p.add_argument("--interval", type=float, default=10, help="with --wait: seconds between polls (10)")


def run(args: argparse.Namespace) -> int:
    import time

    from clinie_nemo.core.progress import say
    from clinie_nemo.study.cost import cost_table
    from clinie_nemo.study.status import status_table

    start = time.monotonic()
    while True:
        table, counts = status_table(args.study_dir)
        unfinished = sum(n for state, n in counts.items() if state != "done")
        broken = counts.get("failed", 0) + counts.get("lost", 0)
        if not args.wait or not unfinished or broken:
            break
        if args.timeout and time.monotonic() - start > args.timeout:
            say(f"status: {unfinished} stage(s) unfinished after {args.timeout:g} s")
            break
        say(f"status: {unfinished} stage(s) to go ({', '.join(f'{n} {s}' for s, n in sorted(counts.items()))})")
        time.sleep(args.interval)
    print(table, end="")
    print("stages: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    if args.cost:
        print()
        print(cost_table(args.study_dir), end="")
    if args.wait and (unfinished or broken):
        return 1
    return 0
