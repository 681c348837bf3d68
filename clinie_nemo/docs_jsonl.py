"""Documents JSONL: the project's own corpus format (one :class:`Document` per line), reader and writer."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from clinie_nemo.document import Document, check_offsets, document_from_json, document_to_json
from clinie_nemo.errors import InputError, Problem
from clinie_nemo.fileio import iter_jsonl, write_jsonl


def read(path: str | Path, validate: bool = True) -> Iterator[Document]:
    """Stream documents from a documents JSONL file; malformed lines raise a located InputError."""
    problems: list[Problem] = []
    for lineno, obj in iter_jsonl(path):
        try:
            doc = document_from_json(obj)
        except (KeyError, TypeError, ValueError) as exc:
            what = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            problems.append(Problem(str(path), lineno, f"not a document: {what}"))
            continue
        if validate:
            for message in check_offsets(doc):
                problems.append(Problem(str(path), lineno, f"document {doc.id}: {message}"))
        if not problems:
            yield doc
    if problems:
        raise InputError(problems)


def write(path: str | Path, docs: Iterable[Document]) -> int:
    """Atomically write documents; returns how many."""
    return write_jsonl(path, (document_to_json(d) for d in docs))
