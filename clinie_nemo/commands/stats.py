"""`clinie-nemo stats`: counts of a documents JSONL (documents, entities/relations per label)."""

from __future__ import annotations

import argparse
from collections import Counter

NAME = "stats"
HELP = "Count documents, entities and relations per label, and discontinuous entities, in a documents JSONL."
EXAMPLES = """
  clinie-nemo stats docs/train.jsonl
  clinie-nemo stats docs/train.jsonl --json stats.json
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="documents JSONL")
    p.add_argument("--json", help="also write the counts as JSON to this file")


def document_stats(path: str) -> dict:
    from clinie_nemo import docs_jsonl

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


def run(args: argparse.Namespace) -> int:
    import json

    from clinie_nemo.fileio import atomic_write

    s = document_stats(args.path)
    print(f"documents: {s['documents']}  characters: {s['characters']}  "
          f"discontinuous entities: {s['discontinuous_entities']}")
    for kind in ("entities", "relations", "events"):
        counts = s[kind]
        print(f"{kind}: {sum(counts.values())}")
        for label, n in counts.items():
            print(f"  {label:<28} {n:>8}")
    if args.json:
        with atomic_write(args.json) as fh:
            json.dump(s, fh, indent=2)
    return 0
