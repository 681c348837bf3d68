"""`clinie-nemo stats`: counts of a documents JSONL (documents, entities/relations per label; with
``--bio-ceiling`` the gold entities BIO/BIOES tagging loses and the oracle F1, per dataset and split:
:mod:`clinie_nemo.instruct.bio_ceiling`), or, for a records JSONL (lines with "input" and "output"), record
counts, token lengths and packing statistics."""

from __future__ import annotations

import argparse
from collections import Counter

NAME = "stats"
HELP = ("Counts of a documents JSONL (entities, relations per label; --bio-ceiling: what BIO tagging loses), "
        "or of a records JSONL (tokens, real-token fraction padded vs packed).")
EXAMPLES = """
  clinie-nemo stats docs/train.jsonl
  clinie-nemo stats docs/train.jsonl --json stats.json
  clinie-nemo stats docs/train.jsonl --bio-ceiling
  clinie-nemo stats docs/test.jsonl --bio-ceiling --scheme BIOES --tokenizer models/bert-base-uncased --json ceiling.json
  clinie-nemo stats data/multitask/training.jsonl --seq-length 4096 --micro-batch 4
  clinie-nemo stats data/multitask/training.jsonl --tokenizer models/llama31-tokenizer --json packing.json
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="documents JSONL, or records JSONL (training.jsonl etc.; detected by its fields)")
    p.add_argument("--json", help="also write the counts as JSON to this file")
    p.add_argument("--seq-length", type=int, default=4096, help="records: sequence length for packing (4096)")
    p.add_argument("--tokenizer", default=None,
                   help="records: local tokenizer folder for token counts; --bio-ceiling: a fast tokenizer folder "
                        "(tokenizer.json) whose tokens are tagged (default: words and punctuation characters)")
    p.add_argument("--micro-batch", type=int, default=1, help="records: micro-batch size for pad-to-longest (1)")
    p.add_argument("--pad-multiple", type=int, default=16,
                   help="records: pad-to-longest rounds up to this multiple (NeMo/Bridge default 16)")
    p.add_argument("--bio-ceiling", action="store_true",
                   help="documents: per dataset/split, the gold entities token tagging cannot represent, by cause "
                        "(discontinuous, boundary inside a token or off the tokens, nested, overlapping), their share, "
                        "and the oracle strict P/R/F1 of decoding the encoded gold (the ceiling of a token classifier)")
    p.add_argument("--scheme", choices=("BIO", "BIOES"), default="BIO", help="--bio-ceiling: the tagging scheme (BIO)")


def is_records_file(path: str) -> bool:
    """True when the first JSON object of the file is a record: "input" and "output", or "messages"."""
    from clinie_nemo.core.fileio import iter_jsonl

    for _, obj in iter_jsonl(path):
        return ("input" in obj and "output" in obj) or "messages" in obj
    return False


def document_stats(path: str) -> dict:
    from clinie_nemo.core import docs_jsonl

    docs = 0
    chars = 0
    entities: Counter[str] = Counter()
    relations: Counter[str] = Counter()
    events: Counter[str] = Counter()
    discontinuous = 0
    for doc in docs_jsonl.read(path):
        docs += 1
        chars += len(doc.text)
        entities.update(e.label for e in doc.entities)
        relations.update(r.label for r in doc.relations)
        events.update(e.label for e in doc.events)
        discontinuous += sum(e.is_discontinuous for e in doc.entities)
    return {"documents": docs, "characters": chars, "entities": dict(sorted(entities.items())),
            "relations": dict(sorted(relations.items())), "events": dict(sorted(events.items())),
            "discontinuous_entities": discontinuous}


def bio_ceiling_stats(path: str, scheme: str, tokenizer: str | None) -> dict:
    """Print the BIO ceiling table of a documents JSONL; return it for --json."""
    from clinie_nemo.core import docs_jsonl
    from clinie_nemo.instruct.bio_ceiling import bio_ceiling, format_ceiling, load_tokenize

    name, tokenize = load_tokenize(tokenizer)
    rows = list(bio_ceiling(docs_jsonl.read(path), tokenize, scheme).values())
    for line in format_ceiling(rows, scheme, name):
        print(line)
    return {"scheme": scheme, "tokenizer": name, "rows": [r.to_json() for r in rows]}


def run(args: argparse.Namespace) -> int:
    import json

    from clinie_nemo.core.fileio import atomic_write

    if is_records_file(args.path):
        if args.bio_ceiling:
            from clinie_nemo.core.errors import ConfigError

            raise ConfigError(f"--bio-ceiling needs a documents JSONL; {args.path} is a records file")
        from clinie_nemo.instruct.records_stats import print_records_stats, records_stats

        s = records_stats(args.path, args.seq_length, args.tokenizer, args.micro_batch, args.pad_multiple)
        print_records_stats(s)
        if args.json:
            with atomic_write(args.json) as fh:
                json.dump(s, fh, indent=2)
        return 0
    s = document_stats(args.path)
    print(f"documents: {s['documents']}  characters: {s['characters']}  "
          f"discontinuous entities: {s['discontinuous_entities']}")
    for kind in ("entities", "relations", "events"):
        counts = s[kind]
        print(f"{kind}: {sum(counts.values())}")
        for label, n in counts.items():
            print(f"  {label:<28} {n:>8}")
    if args.bio_ceiling:
        s["bio_ceiling"] = bio_ceiling_stats(args.path, args.scheme, args.tokenizer)
    if args.json:
        with atomic_write(args.json) as fh:
            json.dump(s, fh, indent=2)
    return 0
