"""`clinie-nemo convert`: a corpus in its native format -> documents JSONL.

``--format NAME`` converts one corpus (any reader in :data:`clinie_nemo.corpus.readers.READERS`) into one JSONL
file; ``--dataset NAME`` converts a registered dataset's release folder into one JSONL per split,
validated against the dataset's schema (that part lives in :func:`clinie_nemo.corpus.datasets.convert_dataset`).
Bad input exits 2 with every located problem and leaves no output; ``--skip-invalid`` converts what is
valid and writes ``FILE.skipped.json`` listing what was skipped and why.
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "convert"
HELP = "Convert a corpus (brat, i2b2, radgraph, pubtator, bioc, jsonl) or a registered dataset to documents JSONL."
EXAMPLES = """
  clinie-nemo convert --format brat --input notes/ --output docs.jsonl
  clinie-nemo convert --format i2b2 --input i2b2_2010_release/ --output i2b2.jsonl --skip-invalid
  clinie-nemo convert --format radgraph --input test.json --labeler labeler_2 --output radgraph_test.jsonl
  clinie-nemo convert --format pubtator --input CDR_TrainingSet.PubTator.txt --output cdr.jsonl --force
  clinie-nemo convert --dataset n2c2_2018 --input n2c2_2018_release/ --output n2c2_2018_docs/
"""

FORMATS = ("brat", "i2b2", "radgraph", "pubtator", "bioc", "jsonl")


def add_arguments(p: argparse.ArgumentParser) -> None:
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--format", choices=FORMATS, help="native format of the corpus at --input")
    which.add_argument("--dataset", help="registered dataset name (one JSONL per split, schema-validated)")
    p.add_argument("--input", required=True, help="corpus folder or file (--format), release folder (--dataset)")
    p.add_argument("--output", required=True, help="FILE.jsonl (--format) or OUT_DIR (--dataset)")
    p.add_argument("--skip-invalid", action="store_true",
                   help="skip invalid annotations/documents and list them in FILE.skipped.json")
    p.add_argument("--force", action="store_true", help="replace existing output")
    p.add_argument("--name", default="", help="value of the documents' 'dataset' field (--format)")
    p.add_argument("--split", default="", help="value of the documents' 'split' field (--format)")
    p.add_argument("--labeler", choices=("labeler_1", "labeler_2"),
                   help="RadGraph test split: whose annotations to read (default labeler_1)")
    p.add_argument("--drop-notes", action="store_true", help="brat: drop '#' annotator notes (kept by default)")
    p.add_argument("--schema", help="--dataset brat/ufhealth: the user schema YAML")


def skipped_report_path(output: Path) -> Path:
    """``x.jsonl`` -> ``x.skipped.json``."""
    stem = output.name[: -len(".jsonl")] if output.name.endswith(".jsonl") else output.name
    return output.with_name(stem + ".skipped.json")


def convert_format(fmt: str, input_path: str, output: str, skip_invalid: bool = False, force: bool = False,
                   **options: object) -> dict[str, int]:
    """Convert one corpus to a documents JSONL (atomic). Returns counts; with ``skip_invalid`` also writes
    the skipped report beside the output."""
    import json

    from clinie_nemo.core import docs_jsonl
    from clinie_nemo.core.fileio import atomic_write, check_output
    from clinie_nemo.core.progress import progress
    from clinie_nemo.corpus import readers

    out = check_output(output, force, kind="file", inputs=[input_path])
    report_path = skipped_report_path(out)
    if skip_invalid:
        check_output(report_path, force, kind="file", inputs=[input_path])
    reader = readers.get(fmt)
    report = readers.SkipReport()
    counts = {"documents": 0, "entities": 0, "relations": 0, "events": 0}
    docs = reader.read(input_path, skip_invalid=report if skip_invalid else False, **options)
    with atomic_write(out) as fh:
        for doc in progress(docs, desc=f"convert {fmt}", unit="doc"):
            fh.write(docs_jsonl.encode(doc) + "\n")
            counts["documents"] += 1
            counts["entities"] += len(doc.entities)
            counts["relations"] += len(doc.relations)
            counts["events"] += len(doc.events)
    counts["skipped"] = len(report.problems)
    if skip_invalid:
        with atomic_write(report_path) as fh:
            json.dump(report.to_json(), fh, indent=2, ensure_ascii=False)
    return counts


def run(args: argparse.Namespace) -> int:
    from clinie_nemo.core.progress import say

    if args.dataset:
        from clinie_nemo.core.fileio import check_output
        from clinie_nemo.corpus.datasets import convert_dataset

        check_output(args.output, args.force, kind="dir", inputs=[args.input])
        extra = {key: value for key, value in (("schema", args.schema), ("labeler", args.labeler)) if value}
        convert_dataset(args.dataset, args.input, args.output, skip_invalid=args.skip_invalid,
                        force=args.force, **extra)
        return 0
    options: dict[str, object] = {"dataset": args.name, "split": args.split}
    if args.format == "radgraph":
        options["labeler"] = args.labeler or "labeler_1"
    if args.format == "brat":
        options["notes"] = not args.drop_notes
    counts = convert_format(args.format, args.input, args.output, args.skip_invalid, args.force, **options)
    say(f"wrote {args.output}: {counts['documents']} documents, {counts['entities']} entities, "
        f"{counts['relations']} relations, {counts['events']} events")
    if args.skip_invalid:
        say(f"skipped {counts['skipped']} invalid annotations/documents; see "
            f"{skipped_report_path(Path(args.output))}")
    return 0
