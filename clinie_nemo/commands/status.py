"""`clinie-nemo status`: a table of a study's cells x stages (state, job id, elapsed, GPU-hours)."""

from __future__ import annotations

import argparse

NAME = "status"
HELP = "Show a study's cells x stages: state, Slurm job id, elapsed time and GPU-hours."
EXAMPLES = """
  clinie-nemo status studies/mini
  clinie-nemo status studies/mini --cost
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("study_dir", help="the folder given to `clinie-nemo study --output`")
    p.add_argument("--cost", action="store_true",
                   help="also print GPU-hours per cell and LoRA vs full fine-tuning (like for like)")


def run(args: argparse.Namespace) -> int:
    from clinie_nemo.study.cost import cost_table
    from clinie_nemo.study.status import status_table

    table, counts = status_table(args.study_dir)
    print(table, end="")
    print("stages: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    if args.cost:
        print()
        print(cost_table(args.study_dir), end="")
    return 0
