"""Reader for BioC XML: ``collection/document/passage`` with document-level offsets.

Document text: passages (or, in sentence-level BioC, their sentences) placed at their ``<offset>``,
gaps filled with ``\\n`` (a PubTator-derived title at 0 and abstract at len(title)+1 give
title + "\\n" + abstract). Annotations: label = infon ``type``, other
infons become attributes (``identifier``/``MESH`` also as ``concept_id``); several ``<location>`` =
discontinuous fragments; the annotation ``<text>`` is checked (whitespace-normalised) against the note.
Relations: label = infon ``type`` or ``relation``; with exactly two nodes whose ``refid`` are annotations
they become :class:`Relation` (head = first node), otherwise (concept-level, as in BioCreative V CDR) a
list ``[label, other infon values..., refids...]`` in ``metadata["relations"]`` (infons ``Chemical`` and
``Disease`` first, in that order, whatever their order in the file).

Offsets that count XML entities as written: the BioCreative V CDR kit's own BioC files count ``&amp;``
as 5 characters (and ``&lt;`` as 4) in passage and annotation offsets, where BioC means decoded
characters. A document whose passages hold entity or character references is read both ways, and the
raw-XML reading is kept when more annotation texts agree with the note under it; its offsets are then
mapped onto the decoded text, so the document equals its PubTator twin (same text, same offsets). An
offset inside a reference is a located problem.

Parsed with expat through :class:`xml.etree.ElementTree.TreeBuilder`, one document at a time (memory
flat), keeping the line of every element so that problems are located. Options: ``dataset``, ``split``,
``skip_invalid`` (see :mod:`._common`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from bisect import bisect_right
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.parsers import expat

from clinie_nemo.core.document import Document, Entity, Relation
from clinie_nemo.core.errors import InputError, Problem
from clinie_nemo.corpus.readers._common import (
    FileIndex,
    Problems,
    SkipOption,
    WarningSink,
    same_text,
    stream,
    warn_tolerated,
)

CONCEPT_KEYS = ("identifier", "MESH", "Identifier")
CDR_ARGUMENTS = ("Chemical", "Disease")  # BioCreative V CDR relation infons: chemical id, then disease id
DISAGREES = "text disagrees with the note"
Tolerated = list[tuple[Path, int | None, str]]  # system annotations kept at their offsets: (file, line, what)
Escapes = dict[ET.Element, list[tuple[int, int, int]]]  # <text> -> (decoded position, decoded length, raw length)


def iter_documents(path: Path, lines: dict[ET.Element, int], escapes: Escapes | None = None) -> Iterator[ET.Element]:
    """Stream ``<document>`` elements; ``lines`` receives the source line of every element kept, ``escapes``
    (when given) the pieces of every ``<text>`` whose length as written differs from its decoded length
    (``&amp;`` -> ``&``: written 5, decoded 1). Expat reports each reference as its own character-data
    event; its length as written is the distance in bytes to the next event (references are ASCII)."""
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate()
    stack: list[ET.Element] = []
    done: list[ET.Element] = []
    filled: dict[ET.Element, int] = {}  # decoded length so far of the open <text> elements
    pending: list[tuple[ET.Element, int, str, int]] = []  # the last piece of <text> data, not yet measured

    def measure() -> None:
        if pending:
            elem, pos, data, at = pending.pop()
            written = parser.CurrentByteIndex - at
            encoded = len(data.encode("utf-8"))
            if written != encoded and escapes is not None:
                extra = written - encoded  # markup bytes (ASCII): '&amp;' for '&', '\r' of '\r\n'
                escapes.setdefault(elem, []).append((pos, len(data), len(data) + extra))

    def start(tag: str, attrs: dict[str, str]) -> None:
        measure()
        elem = builder.start(tag, attrs)
        lines[elem] = parser.CurrentLineNumber
        stack.append(elem)

    def end(tag: str) -> None:
        measure()
        elem = builder.end(tag)
        stack.pop()
        filled.pop(elem, None)
        if tag == "document":
            done.append(elem)
            if stack:
                stack[-1].remove(elem)

    def data(text: str) -> None:
        measure()
        builder.data(text)
        if escapes is not None and stack and stack[-1].tag == "text":
            elem = stack[-1]
            pos = filled.get(elem, 0)
            filled[elem] = pos + len(text)
            pending.append((elem, pos, text, parser.CurrentByteIndex))

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = data
    parser.StartCdataSectionHandler = measure
    parser.EndCdataSectionHandler = measure
    parser.CommentHandler = lambda _comment: measure()
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


class Layout:
    """The document text built from its passages, and the map from offsets as given to offsets in it:
    the identity, or (offsets counting references as written) a shift by the written-minus-decoded
    length of every reference before the offset."""

    def __init__(self, text: str, marks: list[tuple[int, int, int]] | None = None):
        self.text = text
        marks = marks or []
        self.starts = [m[0] for m in marks]  # written start of each reference
        self.ends = [m[1] for m in marks]    # written end
        self.shift: list[int] = []           # written-minus-decoded length up to and including it
        total = 0
        for _, _, extra in marks:
            total += extra
            self.shift.append(total)

    def map(self, offset: int) -> int | None:
        """The offset in ``text``; None when it falls inside a reference."""
        if not self.ends:
            return offset
        i = bisect_right(self.ends, offset)  # references ending at or before the offset
        if i < len(self.starts) and self.starts[i] < offset:
            return None
        return offset - (self.shift[i - 1] if i else 0)


def _layout(pieces: list[tuple[ET.Element, int, str, list[tuple[int, int, int]]]], written: bool) -> Layout | None:
    """Passages placed at their offsets (gaps filled with ``\n``); ``written``: offsets count references as
    written. None when a passage overlaps the previous one."""
    text = ""
    marks: list[tuple[int, int, int]] = []
    extra_before = 0
    for _piece, offset, piece_text, escapes in pieces:
        start = offset - extra_before if written else offset
        if start < len(text):
            return None
        text += "\n" * (start - len(text)) + piece_text
        if written:
            extra = 0
            for pos, decoded, raw in escapes:
                at = offset + pos + extra
                marks.append((at, at + raw, raw - decoded))
                extra += raw - decoded
            extra_before += extra
    return Layout(text, marks)


def _place(ann: ET.Element, spans: list[tuple[int, int]], layout: Layout) -> list[tuple[int, int]] | str:
    """The spans in the layout's text, or what is wrong with them."""
    mapped = [(layout.map(s), layout.map(e)) for s, e in spans]
    n = len(layout.text)
    if any(s is None or e is None or not 0 <= s < e <= n for s, e in mapped):
        return f"offsets outside the text (length {n}), empty, or inside an XML reference"
    out = [(int(s), int(e)) for s, e in mapped]  # type: ignore[arg-type]
    mention = ann.findtext("text")
    if mention is not None and not same_text(mention, " ".join(layout.text[s:e] for s, e in out)):
        return DISAGREES
    return out


def _agreeing(placed: list[list[tuple[int, int]] | str]) -> int:
    return sum(not isinstance(p, str) for p in placed)


def _best_layout(layout: Layout, located: list[tuple[ET.Element, list[tuple[int, int]]]],
                 pieces: list[tuple[ET.Element, int, str, list[tuple[int, int, int]]]], path: Path,
                 line: int | None, doc_id: str, problems: Problems) -> tuple[Layout, list[list[tuple[int, int]] | str]]:
    """The layout under which most annotation texts agree with the note: offsets as decoded characters
    (BioC), both passage and annotation offsets counting references as written, or passage offsets
    written and annotation offsets decoded (the BioCreative V CDR kit's files: each passage re-placed at
    its offset minus the expansion of the references before it; a warning says how many annotations
    were re-placed). The decoded reading is kept unless another one places more annotations."""
    placed = [_place(ann, spans, layout) for ann, spans in located]
    if not any(isinstance(p, str) for p in placed) or not any(found for *_, found in pieces):
        return layout, placed
    written = _layout(pieces, written=True)
    if written is None:
        return layout, placed
    mixed = Layout(written.text)  # passages where the written reading puts them, annotation offsets as given
    best, best_placed, is_mixed = layout, placed, False
    for candidate, mixed_one in ((written, False), (mixed, True)):
        tried = [_place(ann, spans, candidate) for ann, spans in located]
        if _agreeing(tried) > _agreeing(best_placed):
            best, best_placed, is_mixed = candidate, tried, mixed_one
    if is_mixed:
        moved = sum(isinstance(a, str) and not isinstance(b, str) for a, b in zip(placed, best_placed))
        problems.warn(path, line, f"document {doc_id}: passage offsets count XML references as written (e.g. "
                      "&apos; as 6 characters) while annotation offsets count decoded characters; passages "
                      f"re-placed, {moved} annotations placed by the decoded offsets")
    return best, best_placed


def parse_document(elem: ET.Element, path: Path, lines: dict[ET.Element, int], problems: Problems,
                   dataset: str, split: str, escapes: Escapes | None = None,
                   system: Tolerated | None = None) -> Document | None:
    """One ``<document>``. ``system``: the file is a system's output, read as the BioCreative V CDR kit
    reads it (by offsets): an annotation whose text disagrees with the note is kept at its offsets and
    recorded in ``system``."""
    doc_id = (elem.findtext("id") or "").strip()
    annotations: list[ET.Element] = list(elem.findall("annotation"))
    pieces: list[tuple[ET.Element, int, str, list[tuple[int, int, int]]]] = []
    for passage in elem.findall("passage"):
        # A passage carries its text, or (sentence-level BioC) sentences that carry theirs.
        chosen = [passage] if passage.find("text") is not None or not passage.findall("sentence") \
            else passage.findall("sentence")
        annotations += passage.findall("annotation")
        for piece in chosen:
            offset_text = (piece.findtext("offset") or "0").strip()
            if not offset_text.isdigit():
                problems.add(path, lines.get(piece), f"document {doc_id}: {piece.tag} offset is not a number")
                return None
            text_elem = piece.find("text")
            found = (escapes or {}).get(text_elem, []) if text_elem is not None else []
            pieces.append((piece, int(offset_text), (text_elem.text or "") if text_elem is not None else "", found))
            if piece is not passage:
                annotations += piece.findall("annotation")
    layout = _layout(pieces, written=False)
    if layout is None:
        previous_end = 0
        for piece, offset, piece_text, _ in pieces:
            if offset < previous_end:
                problems.add(path, lines.get(piece), f"document {doc_id}: {piece.tag} at {offset} overlaps the "
                             f"previous one (ends at {previous_end})")
                return None
            previous_end = offset + len(piece_text)
        return None
    located: list[tuple[ET.Element, list[tuple[int, int]]]] = []
    for ann in annotations:
        ann_id = ann.get("id", "")
        spans: list[tuple[int, int]] = []
        for loc in ann.findall("location"):
            try:
                start = int(loc.get("offset", ""))
                spans.append((start, start + int(loc.get("length", ""))))
            except ValueError:
                spans = []
                break
        if not ann_id or not spans:
            problems.add(path, lines.get(ann), f"document {doc_id}: annotation without id or with a malformed "
                         "location", _quote(ann))
            continue
        located.append((ann, spans))
    layout, placed = _best_layout(layout, located, pieces, path, lines.get(elem), doc_id, problems)
    text = layout.text
    entities: list[Entity] = []
    for (ann, spans), where in zip(located, placed):
        ann_id, infons = ann.get("id", ""), _infons(ann)
        if where == DISAGREES and system is not None:  # offsets inside the text: kept, as the kit keeps them
            where = [(int(layout.map(s) or 0), int(layout.map(e) or 0)) for s, e in spans]
            system.append((path, lines.get(ann), f"document {doc_id}: annotation {ann_id}"))
        if isinstance(where, str) and infons.get("CompositeRole") == "IndividualMention":
            problems.warn(path, lines.get(ann), f"document {doc_id}: annotation {ann_id} (an IndividualMention: "
                          f"one part of a composite mention) {where}; left out (the BioCreative V CDR kit does not "
                          "score IndividualMention locations)", _quote(ann))
            continue
        if isinstance(where, str):
            problems.add(path, lines.get(ann), f"document {doc_id}: annotation {ann_id} {where}", _quote(ann))
            continue
        spans = sorted(where)
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
            first = [infons.pop(k) for k in CDR_ARGUMENTS if k in infons]  # the kit reads them by key
            doc_relations.append([label, *first, *infons.values(), *refs])
    metadata: dict[str, Any] = {"relations": doc_relations} if doc_relations else {}
    return Document(doc_id, text, dataset, split, tuple(entities), tuple(relations), metadata=metadata)


def read(path: str | Path, dataset: str = "", split: str = "", skip_invalid: SkipOption = False,
         on_warning: WarningSink | None = None, system: bool = False) -> Iterator[Document]:
    """Stream documents from a BioC XML file (or every .xml file under a folder). ``system``: a system's
    output, read as the BioCreative V CDR kit reads it (annotations by their offsets; those whose text
    disagrees with the note are kept, counted in one warning per file). ``on_warning``: where tolerated
    oddities go (default: stderr)."""
    root = Path(path)
    if not root.exists():
        raise InputError(Problem(str(root), None, "no such file or folder"))
    files = FileIndex(root, (".xml",)).all(".xml") if root.is_dir() else [root]
    if not files:
        raise InputError(Problem(str(root), None, "no .xml files found under this folder"))
    problems = Problems(skip_invalid, on_warning=on_warning)

    def docs() -> Iterator[Document | None]:
        for f in files:
            lines: dict[ET.Element, int] = {}
            escapes: Escapes = {}
            tolerated: Tolerated | None = [] if system else None
            found = 0
            try:
                for elem in iter_documents(f, lines, escapes):
                    found += 1
                    doc = parse_document(elem, f, lines, problems, dataset, split, escapes, tolerated)
                    for e in elem.iter():
                        lines.pop(e, None)
                        escapes.pop(e, None)
                    yield doc
            except expat.ExpatError as exc:
                problems.add(f, exc.lineno, f"invalid XML ({expat.ErrorString(exc.code)}, column {exc.offset})")
            else:
                if not found:
                    problems.add(f, None, "no <document> element: not BioC XML (expected collection/document/passage)")
            warn_tolerated(problems, f, [line for _, line, _ in tolerated or ()], "predicted annotations whose "
                           "text disagrees with the note scored by their offsets, as the BioCreative V CDR kit reads "
                           "them")

    return stream(docs(), problems)
