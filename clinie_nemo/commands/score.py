"""`clinie-nemo score`: compare two annotation sets directly (brat folders, PubTator/BioC files, JSONL)."""

from __future__ import annotations

import argparse

NAME = "score"
HELP = "Score predicted annotations against gold ones (brat folders, PubTator/BioC files or documents JSONL)."
EXAMPLES = """
  clinie-nemo score --gold gold_brat/ --pred system_brat/ --format brat --rules n2c2_2018
  clinie-nemo score --gold test.pubtator --pred pred.pubtator --format pubtator --labels Chemical,Disease
  clinie-nemo score --gold gold.jsonl --pred pred.jsonl --bootstrap 1000 --json scores.json
"""

FORMATS = ("brat", "pubtator", "bioc", "jsonl")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gold", required=True, help="gold annotations (folder or file)")
    p.add_argument("--pred", required=True, help="predicted annotations, same format")
    p.add_argument("--format", default="jsonl", choices=FORMATS, help="annotation format (default: jsonl)")
    p.add_argument("--labels", help="comma-separated labels to score (entity, relation and event labels); "
                   "anything else is ignored on both sides")
    p.add_argument("--rules", default="default", help="scoring rule set (default, n2c2_2018, sdoh, radgraph, "
                   "i2b2_2010)")
    p.add_argument("--bootstrap", type=int, default=0, metavar="N", help="document bootstrap replicates for 95%% CIs")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--json", help="write the scores as JSON to this file")
    p.add_argument("--force", action="store_true", help="replace an existing --json file")


def read_documents(path: str, fmt: str) -> list:
    """All documents of a file or folder in one of FORMATS, via the shared reader registry."""
    from clinie_nemo import docs_jsonl
    from clinie_nemo.errors import ConfigError

    if fmt == "jsonl":
        return list(docs_jsonl.read(path))
    try:
        from clinie_nemo.readers import READERS
    except ImportError as exc:  # the readers package arrives from the corpus work
        raise ConfigError(f"format {fmt!r} needs clinie_nemo.readers, not available in this build") from exc
    if fmt not in READERS:
        from clinie_nemo.errors import unknown_name

        raise unknown_name("format", fmt, READERS)
    return list(READERS[fmt].read(path))


def run(args: argparse.Namespace) -> int:
    import json

    from clinie_nemo.fileio import atomic_write, check_output
    from clinie_nemo.progress import say
    from clinie_nemo.scoring import get_rules, score_pairs
    from clinie_nemo.scoring.bootstrap import add_confidence_intervals
    from clinie_nemo.scoring.docsets import align_documents
    from clinie_nemo.scoring.table import summary_table

    rules = get_rules(args.rules)
    if args.json:
        check_output(args.json, args.force)
    labels = {x.strip() for x in args.labels.split(",") if x.strip()} if args.labels else None
    gold = read_documents(args.gold, args.format)
    pred = read_documents(args.pred, args.format)
    alignment = align_documents(gold, pred, rules, args.gold, args.pred)
    for note in alignment.notes(rules.documents):
        say(note)
    say(f"scoring {len(alignment.pairs)} documents with rules {rules.name!r}")
    scores = score_pairs(alignment.pairs, rules, labels)
    result = scores.to_json()
    result["documents_skipped"] = {"gold_only": len(alignment.gold_only), "pred_only": len(alignment.pred_only)}
    if labels is not None:
        result["labels"] = sorted(labels)
    if args.bootstrap:
        add_confidence_intervals(result, scores, args.bootstrap, args.seed)
    print(summary_table(result))
    if args.json:
        with atomic_write(args.json) as fh:
            json.dump(result, fh, indent=2)
    return 0
