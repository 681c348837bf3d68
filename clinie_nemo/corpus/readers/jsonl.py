"""Reader for the project's own documents JSONL (wraps :mod:`clinie_nemo.core.docs_jsonl`), so that
``READERS["jsonl"]`` has the same ``read(path, **options)`` shape as every other format.

Strict mode is :func:`clinie_nemo.core.docs_jsonl.read`. With ``skip_invalid`` a line that is not valid JSON,
not a document, or whose offsets/references are inconsistent is skipped and reported (located by line,
quoting nothing: a JSONL line holds a whole note).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from clinie_nemo.core import docs_jsonl
from clinie_nemo.core.document import Document, check_offsets, document_from_json
from clinie_nemo.core.errors import InputError, Problem
from clinie_nemo.corpus.readers._common import Problems, SkipOption, stream


def _lenient(path: Path, problems: Problems) -> Iterator[Document | None]:
    with path.open(encoding="utf-8-sig") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                doc = document_from_json(json.loads(line))
            except json.JSONDecodeError as exc:
                problems.add(path, lineno, f"invalid JSON ({exc.msg} at column {exc.colno})")
                continue
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                problems.add(path, lineno, f"not a document: {exc}")
                continue
            messages = check_offsets(doc)
            for message in messages:
                problems.add(path, lineno, f"document {doc.id}: {message}")
            yield None if messages else doc


def read(path: str | Path, dataset: str = "", split: str = "", skip_invalid: SkipOption = False,
         validate: bool = True) -> Iterator[Document]:
    """Stream documents; ``dataset``/``split`` (when given) replace those fields."""
    if not skip_invalid:
        docs: Iterator[Document] = docs_jsonl.read(path, validate=validate)
    else:
        if not Path(path).is_file():
            raise InputError(Problem(str(path), None, "file not found"))
        problems = Problems(skip_invalid)
        docs = stream(_lenient(Path(path), problems), problems)
    for doc in docs:
        if dataset or split:
            doc = replace(doc, dataset=dataset or doc.dataset, split=split or doc.split)
        yield doc
