"""`clinie-nemo score`: compare two annotation sets directly (brat folders, PubTator/BioC files, JSONL)."""

from __future__ import annotations

import argparse

NAME = "score"
HELP = "Score predicted annotations against gold ones (brat folders, PubTator/BioC files, i2b2, RadGraph or documents JSONL)."
EXAMPLES = """
  clinie-nemo score --gold gold_brat/ --pred system_brat/ --format brat --rules n2c2_2018
  clinie-nemo score --gold gold_brat/ --pred system_brat/ --format brat --rules n2c2_2018 --workers 1
  clinie-nemo score --gold test.pubtator --pred pred.pubtator --format pubtator --labels Chemical,Disease
  clinie-nemo score --gold CDR_sample.gold.BioC.xml --pred CDR_sample.test.CID.BioC.xml --format bioc --rules bc5cdr
  clinie-nemo score --gold meddocan_test/ --pred system/ --format brat --rules meddocan_spans
  clinie-nemo score --gold gold.jsonl --pred pred.jsonl --bootstrap 1000 --json scores.json
"""

FORMATS = ("brat", "pubtator", "bioc", "jsonl", "i2b2", "radgraph")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from clinie_nemo.evaluation.scoring.rules import rules_help

    p.add_argument("--gold", required=True, help="gold annotations (folder or file)")
    p.add_argument("--pred", required=True, help="predicted annotations, same format")
    p.add_argument("--format", default="jsonl", choices=FORMATS, help="annotation format (default: jsonl)")
    p.add_argument("--labels", help="comma-separated labels to score (entity, relation and event labels); "
                   "anything else is ignored on both sides")
    p.add_argument("--rules", default="auto", help=rules_help())
    p.add_argument("--bootstrap", type=int, default=0, metavar="N", help="document bootstrap replicates for 95%% CIs")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--compare", metavar="PRED_B", help="a second system's annotations: paired bootstrap of "
                   "--pred (A) against it (B), F1 difference with 95%% CI and p-value (--bootstrap N, default 1000)")
    p.add_argument("--workers", type=int, metavar="N", help="brat folders of 2,000+ documents are scored by N "
                   "worker processes (default: the usable CPUs, at most 8; 1 = this process only)")
    p.add_argument("--json", help="write the scores as JSON to this file")
    p.add_argument("--force", action="store_true", help="replace an existing --json file")


SYSTEM_READERS = ("pubtator", "bioc")  # readers with a system mode: predictions read as the official kit reads them


def read_documents(path: str, fmt: str, system: bool = False) -> list:
    """All documents of a file or folder in one of FORMATS, via the shared reader registry; ``system``:
    the file is a system's output (PubTator, BioC: read by offsets, as the BC5CDR kit reads it; tolerated
    lines are counted in warnings on stderr)."""
    from clinie_nemo.core import docs_jsonl
    from clinie_nemo.corpus.readers import READERS

    if fmt == "jsonl":
        return list(docs_jsonl.read(path))
    if fmt not in READERS:
        from clinie_nemo.core.errors import unknown_name

        raise unknown_name("format", fmt, READERS)
    if system and fmt in SYSTEM_READERS:
        return list(READERS[fmt].read(path, system=True))
    return list(READERS[fmt].read(path))


def warn_tolerated(pred_dir: str, tolerated: list, show: int = 5) -> None:
    """One warning counting the system annotations read as the official scorer reads them (text column
    ignored, zero-length span kept): counts per kind and the first few file:line, never note text."""
    from collections import Counter

    from clinie_nemo.core.progress import say

    if not tolerated:
        return
    kinds = Counter(what for _, _, what in tolerated)
    where = ", ".join(f"{path}:{line}" for path, line, _ in tolerated[:show])
    more = f", ... ({len(tolerated) - show} more)" if len(tolerated) > show else ""
    say(f"warning: {pred_dir}: {len(tolerated)} predicted annotations read as the official scripts read "
        f"them (by type and offsets; a repeated line once; a zero-length span never matches strictly): "
        + "; ".join(f"{n} {what}" for what, n in sorted(kinds.items())) + f" (first: {where}{more})")


def _aligned(gold: list, pred_path: str, args: argparse.Namespace, rules):
    from clinie_nemo.core.progress import say
    from clinie_nemo.evaluation.scoring.docsets import align_documents

    pred = read_documents(pred_path, args.format, system=True)
    alignment = align_documents(gold, pred, rules, args.gold, pred_path)
    for note in alignment.notes(rules.documents):
        say(f"{pred_path}: {note}")
    return alignment


def _score_documents(args: argparse.Namespace, labels: set[str] | None):
    """(rules, alignment, scores of --pred, scores of --compare or None) from documents read whole."""
    from clinie_nemo.evaluation.scoring import score_pairs
    from clinie_nemo.evaluation.scoring.rules import rules_for

    gold = read_documents(args.gold, args.format)
    rules = rules_for(args.rules, gold)
    alignment = _aligned(gold, args.pred, args, rules)
    if labels is not None:
        labels = kept_labels(labels, [d for pair in alignment.pairs for d in pair if d is not None], rules)
    if not args.compare:
        return rules, alignment, score_pairs(alignment.pairs, rules, labels), None
    other = _aligned(gold, args.compare, args, rules)
    common = {g.id for g, _ in alignment.pairs} & {g.id for g, _ in other.pairs}
    alignment = type(alignment)([(g, p) for g, p in alignment.pairs if g.id in common], alignment.gold_only,
                                alignment.pred_only)
    return (rules, alignment, score_pairs(alignment.pairs, rules, labels),
            score_pairs([(g, p) for g, p in other.pairs if g.id in common], rules, labels))


def kept_labels(labels: set[str], docs: list, rules):
    """``--labels`` as the scorer applies it (items.KeptLabels): when it names no relation label of these
    documents, relations are kept by their arguments' labels; a note says how many relations it drops."""
    from clinie_nemo.evaluation.scoring.items import KeptLabels, argument_index, relation_kept
    from clinie_nemo.evaluation.scoring.scorer import (
        concept_labels,
        document_relation_kept,
        document_relation_rows,
    )

    names = {r.label for d in docs for r in d.relations}
    names |= {row[0] for d in docs for row in document_relation_rows(d)}
    kept = KeptLabels(labels, by_arguments=not (labels & names))
    dropped = 0
    for d in docs:
        index = argument_index(d)
        dropped += sum(not relation_kept(kept, r.label, getattr(index.get(r.head), "label", None),
                                         getattr(index.get(r.tail), "label", None)) for r in d.relations)
        concepts = concept_labels(d, rules.concept_ids) if kept.by_arguments else {}
        dropped += sum(not document_relation_kept(row, kept, concepts)
                       for row in set(document_relation_rows(d, rules.concept_ids)))
    _note_dropped(dropped, kept)
    return kept


def _note_dropped(dropped: int, kept) -> None:
    from clinie_nemo.core.progress import say

    if dropped:
        how = "an argument's label is not in --labels" if kept.by_arguments else "their label is not in --labels"
        say(f"note: --labels leaves out {dropped} relations (gold and predicted) because {how}")


def _score_brat(args: argparse.Namespace, labels: set[str] | None):
    """The same from brat folders, streamed pair by pair (scoring/brat_folders.py)."""
    from clinie_nemo.core.progress import say
    from clinie_nemo.evaluation.scoring.brat_folders import score_brat_folders
    from clinie_nemo.evaluation.scoring.rules import rules_for

    rules = rules_for(args.rules, [])  # brat folders carry no dataset name: auto means default
    if labels is not None:
        from clinie_nemo.evaluation.scoring.brat_folders import relation_labels
        from clinie_nemo.evaluation.scoring.items import KeptLabels, relation_kept

        names, rows = relation_labels(*(p for p in (args.gold, args.pred, args.compare) if p))
        labels = KeptLabels(labels, by_arguments=not (labels & names))
        _note_dropped(sum(not relation_kept(labels, *row) for row in rows), labels)
    runs = [score_brat_folders(args.gold, path, rules, labels, workers=args.workers)
            for path in (args.pred, args.compare) if path]
    for path, run in zip((args.pred, args.compare), runs):
        for note in run.alignment.notes(rules.documents):
            say(f"{path}: {note}")
        warn_tolerated(path, run.tolerated)
    scores = [run.scores for run in runs]
    if len(scores) == 2:
        common = {d.doc_id for d in scores[0].documents} & {d.doc_id for d in scores[1].documents}
        for sc in scores:
            sc.documents = [d for d in sc.documents if d.doc_id in common]
    return rules, runs[0].alignment, scores[0], scores[1] if len(scores) == 2 else None


def run(args: argparse.Namespace) -> int:
    import json

    from clinie_nemo.core.fileio import atomic_write, check_output
    from clinie_nemo.core.progress import say
    from clinie_nemo.evaluation.scoring.bootstrap import add_confidence_intervals
    from clinie_nemo.evaluation.scoring.rules import check_rules_name
    from clinie_nemo.evaluation.scoring.table import summary_table

    check_rules_name(args.rules)
    if args.json:
        check_output(args.json, args.force, kind="file", inputs=[args.gold, args.pred, args.compare])
    labels = {x.strip() for x in args.labels.split(",") if x.strip()} if args.labels else None
    score = _score_brat if args.format == "brat" else _score_documents
    rules, alignment, scores, scores_b = score(args, labels)
    say(f"scored {len(scores.documents)} documents with rules {rules.name!r}")
    result = scores.to_json()
    result["documents_skipped"] = {"gold_only": len(alignment.gold_only), "pred_only": len(alignment.pred_only)}
    if labels is not None:
        result["labels"] = sorted(labels)
    if args.bootstrap:
        add_confidence_intervals(result, scores, args.bootstrap, args.seed)
    print(summary_table(result))
    if scores_b is not None:
        from clinie_nemo.evaluation.scoring.bootstrap import compare_systems, comparison_lines

        result["comparison"] = {"a": args.pred, "b": args.compare,
                                **compare_systems(scores, scores_b, args.bootstrap or 1000, args.seed)}
        print("\n".join(comparison_lines({k: v for k, v in result["comparison"].items() if k not in ("a", "b")})))
    if args.json:
        with atomic_write(args.json) as fh:
            json.dump(result, fh, indent=2)
    return 0
