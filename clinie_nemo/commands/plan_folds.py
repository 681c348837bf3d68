"""`clinie-nemo plan-folds`: write every leave-one-dataset-out fold x fraction mixture config of a study."""

from __future__ import annotations

import argparse

NAME = "plan-folds"
HELP = "Write one mixture YAML per (held-out dataset, training fraction) cell plus folds.json."
EXAMPLES = """
  clinie-nemo plan-folds mixture.yaml --output folds
  clinie-nemo plan-folds mixture.yaml --output folds --fractions 0,0.2,1.0 --datasets radgraph,n2c2_2018
"""


def _fractions(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="the base mixture YAML (its held_out / held_out_fraction are replaced)")
    p.add_argument("--output", required=True, help="output folder for the cell YAMLs and folds.json")
    p.add_argument("--fractions", type=_fractions, default=None,
                   help="comma-separated fractions of the held-out training documents (default 0,0.05,0.1,0.2,0.5,1)")
    p.add_argument("--datasets", default=None, help="comma-separated datasets to hold out (default: all)")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")


def run(args: argparse.Namespace) -> int:
    from clinie_nemo.core.fileio import check_output
    from clinie_nemo.core.progress import say
    from clinie_nemo.mixture.config import load_mixture_config
    from clinie_nemo.mixture.folds import STUDY_FRACTIONS, write_folds

    config = load_mixture_config(args.config)
    check_output(args.output, args.force)
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()] if args.datasets else None
    rows = write_folds(config, args.output, args.fractions if args.fractions is not None else STUDY_FRACTIONS,
                       datasets, force=args.force, base_config_path=str(args.config))
    for row in rows:
        print(f"{row['name']:<48} held_out={row['held_out']:<16} fraction={row['held_out_fraction']:g}")
    say(f"plan-folds: wrote {len(rows)} configs and folds.json to {args.output}")
    return 0
