"""`clinie-nemo synth`: write a synthetic corpus in a dataset's native release format and layout."""

from __future__ import annotations

import argparse

NAME = "synth"
HELP = "Write a synthetic corpus in a dataset's native release format (deterministic by seed)."
EXAMPLES = """
  clinie-nemo synth --dataset n2c2_2018 --docs 200 --seed 1 --output synth/n2c2_2018
  clinie-nemo synth --dataset i2b2_2010 --docs 50 --seed 7 --output synth/i2b2 --force
  clinie-nemo synth --dataset n2c2_2018 --docs 20000 --length n2c2 --output bench/n2c2_long
  clinie-nemo synth --dataset radgraph --docs 100 --output synth/radgraph
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True,
                   help="i2b2_2010, n2c2_2018, n2c2_2022_sdoh, radgraph or ufhealth")
    p.add_argument("--docs", type=int, default=100, help="number of documents (default 100)")
    p.add_argument("--seed", type=int, default=0, help="random seed: same seed -> byte-identical files")
    p.add_argument("--output", required=True, help="release folder to create")
    p.add_argument("--length", default="short", choices=("short", "n2c2"),
                   help="note length: short (tests) or n2c2 (realistic 3-6 KB notes, for benchmarks)")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")


def run(args: argparse.Namespace) -> int:
    from clinie_nemo.core.progress import progress, say
    from clinie_nemo.corpus.synth import generate

    summary = generate(args.dataset, args.output, args.docs, args.seed, length=args.length, force=args.force,
                       wrap=lambda it: progress(it, desc=f"synth {args.dataset}", total=args.docs, unit="doc"))
    say(f"wrote {args.output}: {summary['documents']} synthetic {args.dataset} documents "
        f"({summary['characters']} characters, seed {args.seed})")
    return 0
