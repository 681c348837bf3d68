"""Corpus writers: ``WRITERS`` maps a format name to a module with ``write(docs, path, **options) -> int``
(brat folder, PubTator file, documents JSONL). Every writer is atomic and refuses to replace existing
output unless ``force=True``."""

from __future__ import annotations

from types import ModuleType

from clinie_nemo.core.errors import unknown_name
from clinie_nemo.corpus.writers import brat, jsonl, pubtator

WRITERS: dict[str, ModuleType] = {"brat": brat, "pubtator": pubtator, "jsonl": jsonl}


def get(name: str) -> ModuleType:
    """The writer module for a format name; an unknown name lists the valid ones."""
    if name not in WRITERS:
        raise unknown_name("format", name, WRITERS)
    return WRITERS[name]


__all__ = ["WRITERS", "get"]
