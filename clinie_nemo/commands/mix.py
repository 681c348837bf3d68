"""`clinie-nemo mix`: build a multi-task / leave-one-dataset-out instruction mixture from a YAML config."""

from __future__ import annotations

import argparse

NAME = "mix"
HELP = "Build training/validation/test JSONL (NeMo SFT records) and manifest.json from a mixture YAML."
EXAMPLES = """
  clinie-nemo mix mixture.yaml --output data/multitask
  clinie-nemo mix folds/heldout-radgraph_frac-0.05.yaml --output data/radgraph-0.05 --force
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="mixture YAML (keys: see README, Mixtures)")
    p.add_argument("--output", required=True, help="output folder (training.jsonl, validation.jsonl, "
                                                   "test.jsonl, manifest.json)")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from clinie_nemo.core.fileio import check_output
    from clinie_nemo.core.progress import say
    from clinie_nemo.mixture.build import SPLITS, roundtrip_lines, write_mixture
    from clinie_nemo.mixture.config import load_mixture_config

    config = load_mixture_config(args.config)
    check_output(args.output, args.force)
    result = write_mixture(config, args.output, force=args.force, show_progress=not args.quiet)
    print(f"{'split':<12} {'records':>8} {'tok min':>8} {'tok p50':>8} {'tok p95':>8} {'tok max':>8}")
    for name in SPLITS:
        s = result.manifest["splits"][name]
        t = s["tokens"]
        print(f"{name:<12} {s['records']:>8} {t.get('min', '-'):>8} {t.get('p50', '-'):>8} "
              f"{t.get('p95', '-'):>8} {t.get('max', '-'):>8}")
    for line in roundtrip_lines(result.manifest):
        say(f"mix: {line}")
    say(f"mix: wrote {args.output}/{{training,validation,test}}.jsonl and manifest.json")
    return 0
