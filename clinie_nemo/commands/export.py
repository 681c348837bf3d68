"""`clinie-nemo export`: documents JSONL -> brat folder (opens in the brat viewer), PubTator file, or JSONL."""

from __future__ import annotations

import argparse

NAME = "export"
HELP = "Write a documents JSONL as a brat folder (for the brat viewer), a PubTator file, or JSONL."
EXAMPLES = """
  clinie-nemo export --format brat --input predicted_docs.jsonl --output brat_view/
  clinie-nemo export --format pubtator --input docs.jsonl --output docs.pubtator --force
"""

FORMATS = ("brat", "pubtator", "jsonl")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", required=True, choices=FORMATS, help="output format")
    p.add_argument("--input", required=True, help="documents JSONL")
    p.add_argument("--output", required=True, help="folder (brat) or file (pubtator, jsonl)")
    p.add_argument("--force", action="store_true", help="replace existing output")


def run(args: argparse.Namespace) -> int:
    from clinie_nemo.core import docs_jsonl
    from clinie_nemo.core.fileio import check_output
    from clinie_nemo.core.progress import progress, say
    from clinie_nemo.corpus import writers

    check_output(args.output, args.force, kind="dir" if args.format == "brat" else "file", inputs=[args.input])
    docs = progress(docs_jsonl.read(args.input), desc=f"export {args.format}", unit="doc")
    n = writers.get(args.format).write(docs, args.output, force=args.force)
    say(f"wrote {n} documents to {args.output} ({args.format})")
    return 0
