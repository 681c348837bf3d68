"""Reader for the project's own documents JSONL (wraps :mod:`clinie_nemo.docs_jsonl`), so that
``READERS["jsonl"]`` has the same ``read(path, **options)`` shape as every other format."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from clinie_nemo import docs_jsonl
from clinie_nemo.document import Document
from clinie_nemo.readers._common import SkipOption


def read(path: str | Path, dataset: str = "", split: str = "", skip_invalid: SkipOption = False,
         validate: bool = True) -> Iterator[Document]:
    """Stream documents; ``dataset``/``split`` (when given) replace those fields. ``skip_invalid`` is
    accepted for a uniform interface; a malformed JSONL line is always fatal (it has no annotation line to
    skip on its own)."""
    for doc in docs_jsonl.read(path, validate=validate):
        if dataset or split:
            doc = replace(doc, dataset=dataset or doc.dataset, split=split or doc.split)
        yield doc
