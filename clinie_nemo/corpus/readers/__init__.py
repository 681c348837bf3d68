"""Corpus readers: ``READERS`` maps a format name to a module whose ``read(path, **options)`` streams
:class:`clinie_nemo.core.document.Document` objects.

Every reader accepts ``dataset``/``split`` (fill those fields) and ``skip_invalid`` (False: collect every
located problem and raise :class:`clinie_nemo.core.errors.InputError`; True or a callable ``on_skip(problem)``:
drop invalid annotations/documents and report them; see :mod:`clinie_nemo.corpus.readers._common`).
PubTator and BioC also take ``on_warning`` (where tolerated oddities go; default: stderr) and ``system``
(a system's output, read by offsets as the BioCreative V CDR kit reads it; ``score --pred`` uses it).
"""

from __future__ import annotations

from types import ModuleType

from clinie_nemo.core.errors import unknown_name
from clinie_nemo.corpus.readers import bioc, brat, i2b2, jsonl, pubtator, radgraph
from clinie_nemo.corpus.readers._common import SkipReport

READERS: dict[str, ModuleType] = {
    "brat": brat,
    "i2b2": i2b2,
    "radgraph": radgraph,
    "pubtator": pubtator,
    "bioc": bioc,
    "jsonl": jsonl,
}


def get(name: str) -> ModuleType:
    """The reader module for a format name; an unknown name lists the valid ones."""
    if name not in READERS:
        raise unknown_name("format", name, READERS)
    return READERS[name]


__all__ = ["READERS", "SkipReport", "get"]
