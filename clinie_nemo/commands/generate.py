"""`clinie-nemo generate`: predictions JSONL for a records file from a trained run."""

from __future__ import annotations

import argparse

from clinie_nemo.engines import ENGINES

NAME = "generate"
HELP = "Generate one prediction per record with a trained run (checks train/inference template parity)."
EXAMPLES = """
  clinie-nemo generate --run runs/tiny --records records/test.jsonl --output preds.jsonl
  clinie-nemo generate --engine nemo --run runs/g20 --records records/test.jsonl --output preds.jsonl --config study_sampling
  clinie-nemo generate --run runs/tiny --records records/test.jsonl --output preds.jsonl max_new_tokens=64 --strict-parity
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", choices=list(ENGINES),
                   help="generation engine (default: the engine the run was trained with)")
    p.add_argument("--run", required=True, help="a finished run directory (has DONE)")
    p.add_argument("--records", required=True, help="records JSONL (e.g. test.jsonl)")
    p.add_argument("--output", required=True, help="predictions JSONL to write")
    p.add_argument("--config", default="greedy",
                   help="generation preset (nemo_configs/generate/: greedy, study_sampling) or YAML path")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="generation overrides, e.g. batch_size=8")
    p.add_argument("--strict-parity", action="store_true",
                   help="refuse (instead of warn) when the records' templates differ from training")
    p.add_argument("--force", action="store_true", help="replace an existing output file")


def run(args: argparse.Namespace) -> int:
    import json
    import signal
    from pathlib import Path

    from clinie_nemo import engines
    from clinie_nemo.core.errors import ConfigError
    from clinie_nemo.core.fileio import check_output
    from clinie_nemo.engines import PREEMPTED_EXIT_CODE
    from clinie_nemo.engines.run_dir import check_parity
    from clinie_nemo.engines.spec_loader import load_generate_config

    run_path = Path(args.run)
    if not (run_path / "spec.yaml").is_file():
        raise ConfigError(f"{run_path} is not a run directory (no spec.yaml)")
    if not (run_path / "DONE").is_file():
        raise ConfigError(f"{run_path} has not finished training (no DONE); rerun `clinie-nemo train` on it")
    check_output(args.output, args.force)
    gen = load_generate_config(args.config, args.overrides)
    check_parity(run_path, args.records, strict=args.strict_parity)
    name = args.engine
    if name is None:
        info = run_path / "run.json"
        name = json.loads(info.read_text())["engine"] if info.is_file() else "local"
    try:
        engines.get(name).generate(run_path, args.records, args.output, gen)  # each engine reports its count
    except SystemExit as stop:
        if stop.code == PREEMPTED_EXIT_CODE:
            # saved and exiting 124 (requeue me): a stop signal still on its way (the job shell forwards
            # SIGUSR1 after Slurm's SIGTERM) must not turn the exit code into death by that signal (138)
            for signum in (signal.SIGUSR1, signal.SIGTERM):
                signal.signal(signum, signal.SIG_IGN)
        raise
    return 0
