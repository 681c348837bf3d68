"""`clinie-nemo run-stage`: run one study stage folder inside its Slurm job (used by the rendered sbatch
scripts of `clinie-nemo study`; submitit jobs call the same runner)."""

from __future__ import annotations

import argparse

NAME = "run-stage"
HELP = ("Run one study stage folder (stage.json) inside a Slurm job; exits 124 after a checkpoint-and-stop, "
        "75 when another job already runs the stage, 76 when it was stopped more than max_requeues times.")
EXAMPLES = """
  clinie-nemo run-stage studies/mini/stages/train-0123456789abcdef
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("stage_dir", help="a stage folder under STUDY_DIR/stages/")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from clinie_nemo.core.errors import ConfigError
    from clinie_nemo.study.runner import run_stage

    if not (Path(args.stage_dir) / "stage.json").exists():
        raise ConfigError(f"{args.stage_dir}: no stage.json (not a study stage folder)")
    return run_stage(args.stage_dir)
