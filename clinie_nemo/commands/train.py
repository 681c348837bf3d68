"""`clinie-nemo train`: fine-tune a model (LoRA or full) on a records folder with one of three engines."""

from __future__ import annotations

import argparse

from clinie_nemo.engines import ENGINES

NAME = "train"
HELP = f"Fine-tune a model on instruction records (engines: {', '.join(ENGINES)}); --dry-run shows the plan."
EXAMPLES = """
  clinie-nemo train --engine local --model tiny_local --recipe peft_lora --data records/ --output runs/tiny seq_length=256 max_steps=20 batch.global_batch_size=8
  clinie-nemo train --engine bridge --model llama31_8b --recipe peft_lora --data records/ --output runs/l8 model.checkpoint=/models/Llama-3.1-8B parallel.gpus_per_node=8 --dry-run
  clinie-nemo train --engine nemo --model gatortrongpt_20b --recipe peft_lora --data records/ --output runs/g20 seq_length=2048 parallel.tensor=8 parallel.gpus_per_node=8 parallel.nodes=2 --dry-run
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", required=True, choices=list(ENGINES), help="training engine")
    p.add_argument("--model", help="model preset name (nemo_configs/models/) or YAML path")
    p.add_argument("--recipe", help="training recipe preset name (nemo_configs/train/) or YAML path")
    p.add_argument("--spec", help="a resolved spec.yaml instead of --model/--recipe (e.g. a run's own)")
    p.add_argument("--data", required=True, help="folder with training.jsonl (validation.jsonl, test.jsonl)")
    p.add_argument("--output", required=True, help="run directory (restarting on it resumes the run)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="spec overrides, e.g. lora.dim=64 parallel.tensor=2 model.checkpoint=/path")
    p.add_argument("--dry-run", action="store_true", help="print the resolved spec and the engine's plan only")
    p.add_argument("--force", action="store_true", help="replace a run directory holding a different run")


def run(args: argparse.Namespace) -> int:
    from clinie_nemo import engines
    from clinie_nemo.core.errors import ConfigError
    from clinie_nemo.core.progress import say
    from clinie_nemo.engines import run_dir
    from clinie_nemo.engines.spec_loader import dump_yaml, load_run_spec, load_run_spec_file
    from clinie_nemo.engines.validate import check_for_engine

    if args.spec:
        if args.model or args.recipe:
            raise ConfigError("give either --spec or --model/--recipe, not both")
        spec = load_run_spec_file(args.spec, args.overrides)
    else:
        if not (args.model and args.recipe):
            raise ConfigError("--model and --recipe are required (or --spec)")
        spec = load_run_spec(args.model, args.recipe, args.overrides)
    check_for_engine(spec, args.engine)
    engine = engines.get(args.engine)
    if args.dry_run:
        print("# resolved spec (written to RUN/spec.yaml)")
        print(dump_yaml(spec), end="")
        print(f"# plan of engine {args.engine}")
        print(engine.plan(spec, args.data, args.output), end="")
        return 0
    state = run_dir.prepare(spec, args.engine, args.data, args.output, force=args.force)
    if state == "done":
        say(f"{args.output} is already DONE; nothing to train")
        return 0
    engine.train(spec, args.data, args.output)
    say(f"training finished: {args.output}")
    return 0
