"""Reader for BioC XML: ``collection/document/passage`` with document-level offsets.

Document text: passages (or, in sentence-level BioC, their sentences) placed at their ``<offset>``,
gaps filled with ``\\n`` (a PubTator-derived title at 0 and abstract at len(title)+1 give
title + "\\n" + abstract). Annotations: label = infon ``type``, other
infons become attributes (``identifier``/``MESH`` also as ``concept_id``); several ``<location>`` =
discontinuous fragments; the annotation ``<text>`` is checked (whitespace-normalised) against the note.
Relations: label = infon ``type`` or ``relation``; with exactly two nodes whose ``refid`` are annotations
they become :class:`Relation` (head = first node), otherwise (concept-level, as in BioCreative V CDR) a
list ``[label, other infon values..., refids...]`` in ``metadata["relations"]``.

Parsed with expat through :class:`xml.etree.ElementTree.TreeBuilder`, one document at a time (memory
flat), keeping the line of every element so that problems are located. Options: ``dataset``, ``split``,
``skip_invalid`` (see :mod:`._common`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.parsers import expat

from clinie_nemo.document import Document, Entity, Relation
from clinie_nemo.errors import InputError, Problem
from clinie_nemo.readers._common import FileIndex, Problems, SkipOption, same_text, stream

CONCEPT_KEYS = ("identifier", "MESH", "Identifier")


def iter_documents(path: Path, lines: dict[ET.Element, int]) -> Iterator[ET.Element]:
    """Stream ``<document>`` elements; ``lines`` receives the source line of every element kept."""
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate()
    stack: list[ET.Element] = []
    done: list[ET.Element] = []

    def start(tag: str, attrs: dict[str, str]) -> None:
        elem = builder.start(tag, attrs)
        lines[elem] = parser.CurrentLineNumber
        stack.append(elem)

    def end(tag: str) -> None:
        elem = builder.end(tag)
        stack.pop()
        if tag == "document":
            done.append(elem)
            if stack:
                stack[-1].remove(elem)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 16):
            parser.Parse(chunk, False)
            yield from done
            done.clear()
        parser.Parse(b"", True)
    yield from done


def _infons(elem: ET.Element) -> dict[str, str]:
    return {i.get("key", ""): (i.text or "") for i in elem.findall("infon")}


def _quote(elem: ET.Element) -> str:
    return " ".join(ET.tostring(elem, encoding="unicode").split())


def parse_document(elem: ET.Element, path: Path, lines: dict[ET.Element, int], problems: Problems,
                   dataset: str, split: str) -> Document | None:
    doc_id = (elem.findtext("id") or "").strip()
    text = ""
    annotations: list[ET.Element] = list(elem.findall("annotation"))
    for passage in elem.findall("passage"):
        # A passage carries its text, or (sentence-level BioC) sentences that carry theirs.
        pieces = [passage] if passage.find("text") is not None or not passage.findall("sentence") \
            else passage.findall("sentence")
        annotations += passage.findall("annotation")
        for piece in pieces:
            offset_text = (piece.findtext("offset") or "0").strip()
            if not offset_text.isdigit():
                problems.add(path, lines.get(piece), f"document {doc_id}: {piece.tag} offset is not a number")
                return None
            offset = int(offset_text)
            if offset < len(text):
                problems.add(path, lines.get(piece), f"document {doc_id}: {piece.tag} at {offset} overlaps the "
                             f"previous one (ends at {len(text)})")
                return None
            text += "\n" * (offset - len(text)) + (piece.findtext("text") or "")
            if piece is not passage:
                annotations += piece.findall("annotation")
    entities: list[Entity] = []
    for ann in annotations:
        ann_id, line, infons = ann.get("id", ""), lines.get(ann), _infons(ann)
        spans: list[tuple[int, int]] = []
        for loc in ann.findall("location"):
            try:
                start = int(loc.get("offset", ""))
                spans.append((start, start + int(loc.get("length", ""))))
            except ValueError:
                spans = []
                break
        if not ann_id or not spans:
            problems.add(path, line, f"document {doc_id}: annotation without id or with a malformed location",
                         _quote(ann))
            continue
        if any(not (0 <= s < e <= len(text)) for s, e in spans):
            problems.add(path, line, f"document {doc_id}: annotation {ann_id} offsets outside the text "
                         f"(length {len(text)}) or empty", _quote(ann))
            continue
        mention = ann.findtext("text")
        if mention is not None and not same_text(mention, " ".join(text[s:e] for s, e in spans)):
            problems.add(path, line, f"document {doc_id}: annotation {ann_id} text disagrees with the note",
                         _quote(ann))
            continue
        spans.sort()
        label = infons.pop("type", infons.pop("Type", ""))
        concept = next((infons[k] for k in CONCEPT_KEYS if infons.get(k)), None)
        if concept is not None:
            infons["concept_id"] = concept
        entities.append(Entity(ann_id, label, tuple(spans), " ".join(text[s:e] for s, e in spans),
                               tuple(sorted(infons.items()))))
    ids = {e.id for e in entities}
    relations: list[Relation] = []
    doc_relations: list[list[str]] = []
    for rel in elem.iter("relation"):
        infons = _infons(rel)
        label = infons.pop("type", "") or infons.pop("relation", "")
        refs = [n.get("refid", "") for n in rel.findall("node")]
        known = set(refs) & ids
        if len(refs) == 2 and known == set(refs):
            relations.append(Relation(rel.get("id", f"R{len(relations) + 1}"), label, refs[0], refs[1]))
        elif refs and known:
            problems.add(path, lines.get(rel), f"document {doc_id}: relation {rel.get('id', '')} refers to "
                         f"missing annotation {', '.join(sorted(set(refs) - ids))}", _quote(rel))
        else:
            doc_relations.append([label, *infons.values(), *refs])
    metadata: dict[str, Any] = {"relations": doc_relations} if doc_relations else {}
    return Document(doc_id, text, dataset, split, tuple(entities), tuple(relations), metadata=metadata)


def read(path: str | Path, dataset: str = "", split: str = "",
         skip_invalid: SkipOption = False) -> Iterator[Document]:
    """Stream documents from a BioC XML file (or every .xml file under a folder)."""
    root = Path(path)
    if not root.exists():
        raise InputError(Problem(str(root), None, "no such file or folder"))
    files = FileIndex(root, (".xml",)).all(".xml") if root.is_dir() else [root]
    if not files:
        raise InputError(Problem(str(root), None, "no .xml files found under this folder"))
    problems = Problems(skip_invalid)

    def docs() -> Iterator[Document | None]:
        for f in files:
            lines: dict[ET.Element, int] = {}
            try:
                for elem in iter_documents(f, lines):
                    doc = parse_document(elem, f, lines, problems, dataset, split)
                    for e in elem.iter():
                        lines.pop(e, None)
                    yield doc
            except expat.ExpatError as exc:
                problems.add(f, exc.lineno, f"invalid XML ({expat.ErrorString(exc.code)}, column {exc.offset})")

    return stream(docs(), problems)
