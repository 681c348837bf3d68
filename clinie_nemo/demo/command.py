"""`clinie-nemo demo`: the study in miniature on synthetic corpora, a tiny model and the local engine."""

from __future__ import annotations

import argparse

NAME = "demo"
HELP = "Run the study's protocol end to end on synthetic corpora with a tiny model (CPU, a few minutes)."
EXAMPLES = """
  clinie-nemo demo --output demo_out
  clinie-nemo demo --output demo_out --force
  clinie-nemo demo --output demo_quick --quick
  clinie-nemo demo --output demo_slurm --slurm
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", default="demo_out", help="output folder (default demo_out)")
    p.add_argument("--force", action="store_true", help="replace a previous demo output folder")
    p.add_argument("--quick", action="store_true",
                   help="fewer notes and training steps (about half the time; for tests)")
    p.add_argument("--slurm", action="store_true",
                   help="run the cells through `clinie-nemo study --submit` on a running Slurm cluster")
    p.add_argument("--slurm-timeout", type=float, default=60.0, metavar="MIN",
                   help="with --slurm: minutes to wait for the study (default 60)")


def run(args: argparse.Namespace) -> int:
    from clinie_nemo.demo import PRESETS, run_demo

    settings = PRESETS["quick" if args.quick else "default"]
    files = run_demo(args.output, settings, force=args.force, slurm=args.slurm,
                     slurm_timeout_s=args.slurm_timeout * 60)
    print("\nOpen these files:")
    width = max(len(k) for k in files)
    for what, path in files.items():
        print(f"  {what:<{width}}  {path}")
    return 0
