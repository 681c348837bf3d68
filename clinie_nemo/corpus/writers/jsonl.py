"""Writer for the project's documents JSONL (wraps :mod:`clinie_nemo.core.docs_jsonl`)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from clinie_nemo.core import docs_jsonl
from clinie_nemo.core.document import Document
from clinie_nemo.core.fileio import check_output


def write(docs: Iterable[Document], path: str | Path, force: bool = False) -> int:
    """Atomically write documents to a JSONL file; an existing file is replaced only with ``force``."""
    check_output(path, force)
    return docs_jsonl.write(path, docs)
