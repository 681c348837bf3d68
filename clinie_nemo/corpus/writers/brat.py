"""Writer for brat standoff: a folder of ``<id>.txt`` + ``<id>.ann`` that opens in the brat viewer.

The note is written byte-exact (CRLF kept, UTF-8, no BOM unless the text itself starts with U+FEFF).
Lines: ``T`` (discontinuous fragments joined by ``;``; the text field has tabs and line breaks shown as
spaces, as brat does), ``R`` (``Arg1:head Arg2:tail``), ``E``, ``A`` (value ``"true"`` -> a binary
attribute), ``*`` Equiv, ``N`` and ``#`` from metadata (layout in :mod:`clinie_nemo.corpus.readers.brat_ann`).
``clinie_nemo.corpus.readers.brat.read(write(...))`` gives back the same documents (dataset/split excepted: brat
has no place for them). Ids that brat cannot parse (not starting with T/R/E) are renumbered, and
whitespace inside labels, roles and attribute names/values becomes ``_`` (brat tokens cannot hold it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from clinie_nemo.core.document import Document
from clinie_nemo.core.errors import ClinieError
from clinie_nemo.core.fileio import atomic_dir

_FIELD_BREAKS = str.maketrans({"\t": " ", "\n": " ", "\r": " "})
_ID = re.compile(r"^[TREAMN#*][^\s]*$")


def _token(value: str, what: str, doc_id: str) -> str:
    """A label, role or attribute name/value as one brat token: whitespace runs become ``_``."""
    token = "_".join(str(value).split())
    if not token:
        raise ClinieError(f"document {doc_id}: empty {what} cannot be written to brat")
    return token


def _id_map(doc: Document) -> dict[str, str]:
    """Keep ids brat can parse; renumber the others (T for entities, E for events, R for relations)."""
    mapping: dict[str, str] = {}
    used = {e.id for e in doc.entities} | {e.id for e in doc.events} | {r.id for r in doc.relations}
    for prefix, items in (("T", doc.entities), ("E", doc.events), ("R", doc.relations)):
        n = 0
        for item in items:
            if item.id.startswith(prefix) and _ID.match(item.id):
                mapping[item.id] = item.id
                continue
            n += 1
            while f"{prefix}{n}" in used:
                n += 1
            mapping[item.id] = f"{prefix}{n}"
            used.add(mapping[item.id])
    return mapping


def ann_lines(doc: Document) -> list[str]:
    """The .ann lines of one document."""
    ids = _id_map(doc)

    def ref(x: str) -> str:
        return ids.get(x, x)

    lines: list[str] = []
    attrs: list[tuple[str, str, str]] = []
    for e in doc.entities:
        offsets = ";".join(f"{s} {t}" for s, t in e.spans)
        shown = " ".join(doc.text[s:t] for s, t in e.spans).translate(_FIELD_BREAKS)
        lines.append(f"{ref(e.id)}\t{_token(e.label, 'label', doc.id)} {offsets}\t{shown}")
        attrs += [(ref(e.id), k, v) for k, v in e.attributes]
    for r in doc.relations:
        lines.append(f"{ref(r.id)}\t{_token(r.label, 'label', doc.id)} Arg1:{ref(r.head)} Arg2:{ref(r.tail)}")
    for ev in doc.events:
        args = "".join(f" {_token(a.role, 'role', doc.id)}:{ref(a.ref)}" for a in ev.arguments)
        lines.append(f"{ref(ev.id)}\t{_token(ev.label, 'label', doc.id)}:{ref(ev.trigger)}{args}")
        attrs += [(ref(ev.id), k, v) for k, v in ev.attributes]
    for n, (target, name, value) in enumerate(attrs, 1):
        tail = "" if value == "true" else f" {_token(value, 'attribute value', doc.id)}"
        lines.append(f"A{n}\t{_token(name, 'attribute', doc.id)} {target}{tail}")
    meta = doc.metadata
    for group in meta.get("equiv", ()):
        lines.append(f"*\t{group['label']} " + " ".join(ref(i) for i in group["ids"]))
    for item in meta.get("normalizations", ()):
        text = str(item.get("text", "")).translate(_FIELD_BREAKS)
        lines.append(f"{item['id']}\t{item['label']} {ref(item['target'])} {item['ref']}\t{text}")
    for item in meta.get("notes", ()):
        text = str(item.get("text", "")).translate(_FIELD_BREAKS)
        lines.append(f"{item['id']}\t{item['label']} {ref(item['target'])}\t{text}")
    return lines


def _doc_path(root: Path, doc_id: str) -> Path:
    rel = PurePosixPath(doc_id)
    if not doc_id or rel.is_absolute() or ".." in rel.parts:
        raise ClinieError(f"document id {doc_id!r} cannot be used as a file path")
    return root.joinpath(*rel.parts)


def write(docs: Iterable[Document], path: str | Path, force: bool = False) -> int:
    """Write a folder of .txt/.ann pairs (created atomically; an existing one only with ``force``)."""
    n = 0
    seen: set[str] = set()
    with atomic_dir(path, force=force) as tmp:
        for doc in docs:
            if doc.id in seen:
                raise ClinieError(f"document id {doc.id!r} appears twice")
            seen.add(doc.id)
            base = _doc_path(tmp, doc.id)
            base.parent.mkdir(parents=True, exist_ok=True)
            text = ("\ufeff" + doc.text) if doc.text.startswith("\ufeff") else doc.text
            with open(f"{base}.txt", "w", encoding="utf-8", newline="") as fh:
                fh.write(text)
            with open(f"{base}.ann", "w", encoding="utf-8", newline="") as fh:
                fh.write("".join(line + "\n" for line in ann_lines(doc)))
            n += 1
    return n
