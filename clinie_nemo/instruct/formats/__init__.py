"""Target formats: ``FORMATS`` maps a name to a module with ``encode(target, chunk_text, with_relations)
-> (text, losses)``, its exact inverse ``decode(text, chunk_text, with_relations, labels) -> Target``,
``encode_answer``/``decode_answer(text, labels)`` (the ``re_pair`` answer) and ``describe(with_relations)``
/ ``describe_answer()`` (the format instructions put into prompts).

The inverses are strict: text rendering would not have written (an unknown label when ``labels`` is given,
a mention not in the chunk, a reference to a missing entity, a malformed line) raises :class:`DecodeError`
with a cause, so a tolerant parser can fall back on its own chain."""

from __future__ import annotations

from types import ModuleType

from clinie_nemo.core.errors import unknown_name
from clinie_nemo.instruct.formats import inline, json_target, lines
from clinie_nemo.instruct.formats._common import NONE_ANSWER, DecodeError

FORMATS: dict[str, ModuleType] = {"lines": lines, "json": json_target, "inline": inline}


def get(name: str) -> ModuleType:
    if name not in FORMATS:
        raise unknown_name("format", name, FORMATS)
    return FORMATS[name]


__all__ = ["FORMATS", "NONE_ANSWER", "DecodeError", "get"]
