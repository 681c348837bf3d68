"""Documents JSONL: the project's own corpus format (one :class:`Document` per line), reader and writer.

:func:`encode` writes one document as its JSON line directly from the dataclasses: the same text as
``json.dumps(document_to_json(doc), ensure_ascii=False)``, about twice as fast (entities and relations,
the bulk of a line, are formatted from pre-escaped strings instead of being built as dicts first).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any

from clinie_nemo.core.document import (
    Document,
    Entity,
    Event,
    Relation,
    check_offsets,
    document_from_json,
    document_to_json,
)
from clinie_nemo.core.errors import InputError, Problem
from clinie_nemo.core.fileio import atomic_write, iter_jsonl

# encode_basestring quotes and escapes one str exactly as json.dumps(..., ensure_ascii=False) does.
_encode_json = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode


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


def _entity(e: Entity) -> str:
    if len(e.spans) == 1:
        (start, end), = e.spans
        spans = f"[[{start}, {end}]]"
    else:
        spans = _encode_json(e.spans)
    attributes = _encode_json(dict(e.attributes)) if e.attributes else "{}"
    return (f'{{"id": {encode_basestring(e.id)}, "label": {encode_basestring(e.label)}, "spans": {spans}, '
            f'"text": {encode_basestring(e.text)}, "attributes": {attributes}}}')


def _relation(r: Relation) -> str:
    return (f'{{"id": {encode_basestring(r.id)}, "label": {encode_basestring(r.label)}, '
            f'"head": {encode_basestring(r.head)}, "tail": {encode_basestring(r.tail)}}}')


def _event_dict(ev: Event) -> dict[str, Any]:
    return {"id": ev.id, "label": ev.label, "trigger": ev.trigger,
            "arguments": [{"role": a.role, "ref": a.ref} for a in ev.arguments], "attributes": dict(ev.attributes)}


def encode(doc: Document) -> str:
    """One document as its JSONL line (no newline), identical to
    ``json.dumps(document_to_json(doc), ensure_ascii=False)``. Events and metadata (rare, nested) go
    through the JSON encoder; a field of an unexpected type falls back to the dict form."""
    try:
        events = _encode_json([_event_dict(ev) for ev in doc.events]) if doc.events else "[]"
        return (f'{{"id": {encode_basestring(doc.id)}, "text": {encode_basestring(doc.text)}, '
                f'"dataset": {encode_basestring(doc.dataset)}, "split": {encode_basestring(doc.split)}, '
                f'"entities": [{", ".join(map(_entity, doc.entities))}], '
                f'"relations": [{", ".join(map(_relation, doc.relations))}], '
                f'"events": {events}, "metadata": {_encode_json(dict(doc.metadata))}}}')
    except TypeError:  # a non-str id/label/text (not what readers produce): let json decide
        return _encode_json(document_to_json(doc))


def write(path: str | Path, docs: Iterable[Document]) -> int:
    """Atomically write documents, one :func:`encode` line each; returns how many."""
    n = 0
    with atomic_write(path) as fh:
        for doc in docs:
            fh.write(encode(doc) + "\n")
            n += 1
    return n
