"""Parse one brat standoff ``.ann`` file against its note text into entities, relations, events, metadata.

Line types (first character of the id): ``T`` text-bound (``T1<TAB>Label 0 7;9 12<TAB>text``), ``R``
relation (``Arg1:T1 Arg2:T2``; first argument = head), ``E`` event (``Label:T1 Role:T2 Role:E3``; may nest,
may have no arguments), ``A``/``M`` attribute or modifier (binary -> ``"true"``), ``*`` Equiv groups,
``N`` normalisations, ``#`` notes. Every problem is recorded with the ``.ann`` line number and, for a line
that parsed as an annotation, the line itself; a line that did not parse is never quoted (a note given
as an ``.ann`` file would otherwise be echoed). An invalid annotation is dropped, and whatever refers to a dropped or missing id is reported and dropped too.

Metadata layout (only keys with content are present)::

    "equiv":          [{"label": "Equiv", "ids": ["T1", "T2"]}]
    "normalizations": [{"id": "N1", "label": "Reference", "target": "T1", "ref": "db:id", "text": "..."}]
    "notes":          [{"id": "#1", "label": "AnnotatorNotes", "target": "T1", "text": "..."}]
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinie_nemo.core.document import Entity, Event, EventArgument, Relation, Span
from clinie_nemo.corpus.readers._common import Problems, same_text


@dataclass
class ParsedAnn:
    """One .ann file, resolved: what becomes the Document's entities, relations, events and metadata."""

    entities: list[Entity] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class RawAnn:
    """What :func:`parse_lines` found, before references between annotations are resolved."""

    entities: list[Entity] = field(default_factory=list)
    relations: list[tuple[int, str, str, str, str]] = field(default_factory=list)  # line, id, label, head, tail
    events: list[tuple[int, str, str, str, list[tuple[str, str]]]] = field(default_factory=list)  # line, id, ...
    attributes: list[tuple[int, str, str, str]] = field(default_factory=list)  # line, target, name, value
    refs: list[tuple[str, int, dict[str, Any], list[str]]] = field(default_factory=list)  # key, line, item, ids


# The two line shapes nearly every .ann line has; anything else (and any problem) takes the general path.
# \S and \d mean what str.strip() and str.isdecimal() mean, so a match parses exactly as the general path.
PLAIN_T_LINE = re.compile(r"(T\S*)\t(\S+) (\d+) (\d+)\t(.*)", re.DOTALL)  # one fragment, with text column
PLAIN_R_LINE = re.compile(r"(R\S*)\t(\S+) Arg1:([^\s:]+) Arg2:([^\s:]+)")
MALFORMED_T = "malformed text-bound annotation (expected ID<TAB>Label START END[;START END]<TAB>text)"


def parse_spans(field_text: str) -> list[Span] | None:
    """``"0 7;9 12"`` -> [(0, 7), (9, 12)]; None when malformed (offsets are decimal digits only)."""
    spans: list[Span] = []
    for frag in field_text.split(";"):
        parts = frag.split()
        if len(parts) != 2:
            return None
        start, end = parts
        if not (start.isdecimal() and end.isdecimal()):
            return None
        spans.append((int(start), int(end)))
    return spans


def _split_role(token: str) -> tuple[str, str] | None:
    role, sep, ref = token.rpartition(":")
    return (role, ref) if sep and role and ref else None


def _label_and_spans(body: str, shift: int) -> tuple[str, str, list[Span]] | None:
    """``Label START END[;START END]`` -> (label, the offsets as written, spans shifted back by ``shift``)."""
    label, _, offsets = body.strip().partition(" ")
    spans = parse_spans(offsets) if label else None
    if not spans:
        return None
    return label, offsets, [(s - shift, e - shift) for s, e in spans] if shift else spans


def parse_text_bound(ident: str, body: str, annotated: str | None, text: str, shift: int = 0) -> Entity | str:
    """One ``T`` line (``body`` = ``Label START END[;START END]``, ``annotated`` = the text column or None
    when the line has none) -> its Entity, or the problem message. The common case (one fragment whose note
    slice equals the annotated text) costs one slice and one comparison; whitespace-normalised comparison
    only runs when the two differ."""
    parsed = _label_and_spans(body, shift)
    if parsed is None:
        return MALFORMED_T
    label, offsets, spans = parsed
    n = len(text)
    if len(spans) == 1:
        start, end = spans[0]
        if not 0 <= start < end <= n:
            return f"offsets {offsets.strip()} outside the text (length {n}) or empty"
        ordered, note = spans, text[start:end]
    else:
        if any(not 0 <= s < e <= n for s, e in spans):
            return f"offsets {offsets.strip()} outside the text (length {n}) or empty"
        ordered = sorted(spans)
        if any(ordered[i][1] > ordered[i + 1][0] for i in range(len(ordered) - 1)):
            return "overlapping fragments"
        note = " ".join(text[s:e] for s, e in spans)  # fragments in line order, as annotated
    if annotated is not None and annotated != note and not same_text(annotated, note):
        return f"annotated text disagrees with the note at {offsets.strip()}"
    if ordered != spans:
        note = " ".join(text[s:e] for s, e in ordered)
    return Entity(ident, label, tuple(ordered), note)


# What a system's T line may do that a gold one may not (read as Track2-evaluate-ver4.py reads it).
SYSTEM_TEXT = "text column disagrees with the note (text ignored)"
SYSTEM_ZERO = "zero-length span"
SYSTEM_BEYOND = "span beyond the end of the note"
SYSTEM_OVERLAP = "overlapping fragments"
SYSTEM_REPEAT = "line repeated with its id (read once)"


def first_lines(lines: list[str]) -> dict[str, str]:
    """The first line of each annotation id (a system file may repeat a line verbatim: Track2-evaluate-ver4
    keeps one annotation per id, MEDDOCAN's evaluate.py a set)."""
    out: dict[str, str] = {}
    for line in lines:
        out.setdefault(line.split("\t", 1)[0].strip(), line)
    return out


def system_text_bound(ident: str, body: str, annotated: str | None, text: str,
                      shift: int = 0) -> tuple[Entity, str] | str:
    """One ``T`` line of a system's predictions, read as the official n2c2 script reads it: type and offsets
    only, the text column ignored, a zero-length span (or one past the end of the note) kept so that it
    scores (a false positive unless the rules' overlap test accepts it). Returns the entity and what was
    tolerated (``""`` for nothing; one of the ``SYSTEM_*`` messages), or the problem message when the line
    is malformed.
    Track2-evaluate-ver4.py RecordTrack2._get_annotations: ``tag_type, tag_start, tag_end = tag_m.split(' ')``;
    the text is never compared with the note."""
    parsed = _label_and_spans(body, shift)
    if parsed is None:
        return MALFORMED_T
    label, offsets, spans = parsed
    if any(s < 0 or s > e for s, e in spans):
        return f"offsets {offsets.strip()} reversed or negative"
    ordered = sorted(spans)
    n = len(text)
    tolerated = ""
    if any(s == e for s, e in spans):
        tolerated = SYSTEM_ZERO
    elif any(e > n for _, e in spans):
        tolerated = SYSTEM_BEYOND
    elif any(ordered[i][1] > ordered[i + 1][0] for i in range(len(ordered) - 1)):
        tolerated = SYSTEM_OVERLAP
    elif annotated is not None:
        note = " ".join(text[s:e] for s, e in spans)
        if annotated != note and not same_text(annotated, note):
            tolerated = SYSTEM_TEXT
    return Entity(ident, label, tuple(ordered), " ".join(text[s:e] for s, e in ordered)), tolerated


def plain_entity(match: re.Match[str], text: str, shift: int) -> Entity | None:
    """The entity of a :data:`PLAIN_T_LINE` match whose note slice is exactly the annotated text, else None
    (the line then takes the general path, which reports the problem or compares whitespace-normalised)."""
    ident, label, start, end, annotated = match.groups()
    s, e = int(start) - shift, int(end) - shift
    if 0 <= s < e <= len(text) and text[s:e] == annotated:
        return Entity(ident, label, ((s, e),), annotated)
    return None


def parse_relation(body: str) -> tuple[str, str, str] | None:
    """``Label Arg1:T1 Arg2:T2`` -> (label, head, tail), head = Arg1 whatever the order; None when malformed."""
    parts = body.split()
    if len(parts) != 3:
        return None
    first, second = _split_role(parts[1]), _split_role(parts[2])
    if first is None or second is None:
        return None
    if first[0] == "Arg2" and second[0] == "Arg1":
        first, second = second, first
    return parts[0], first[1], second[1]


def parse_ann(lines: list[str], text: str, path: Path, problems: Problems, keep_notes: bool = True,
              offset_shift: int = 0, system: list[tuple[int, str]] | None = None) -> ParsedAnn:
    """Parse every line, then resolve references; ``offset_shift`` is subtracted from every offset
    (1 when a BOM was counted by the annotation tool). ``system``: the file is a system's predictions;
    T lines are read as the official scorer reads them (:func:`system_text_bound`) and each tolerated
    line is appended to this list as (line number, what was tolerated)."""
    return resolve_references(parse_lines(lines, text, path, problems, keep_notes, offset_shift, system), lines,
                              path, problems)


def parse_lines(lines: list[str], text: str, path: Path, problems: Problems, keep_notes: bool = True,
                offset_shift: int = 0, system: list[tuple[int, str]] | None = None) -> RawAnn:
    """Each line on its own: entities complete, everything that refers to ids still unresolved. The two
    common line shapes (:data:`PLAIN_T_LINE`, :data:`PLAIN_R_LINE`) are handled first, in one regex match.
    ``system``: as in :func:`parse_ann`."""
    out = RawAnn()
    seen: set[str] = set()
    firsts: dict[str, str] | None = None  # built on a system file's first repeated id
    entities, raw_relations, raw_events = out.entities, out.relations, out.events
    raw_attrs, raw_refs = out.attributes, out.refs
    add_problem = problems.add
    plain_t, plain_r = PLAIN_T_LINE.fullmatch, PLAIN_R_LINE.fullmatch

    for lineno, line in enumerate(lines, 1):
        fast = plain_t(line)
        if fast is not None and fast[1] not in seen:
            entity = plain_entity(fast, text, offset_shift)
            if entity is not None:
                seen.add(entity.id)
                entities.append(entity)
                continue
        fast = plain_r(line)
        if fast is not None and fast[1] not in seen:
            seen.add(fast[1])
            raw_relations.append((lineno, *fast.groups()))  # type: ignore[arg-type]
            continue
        if not line or line.isspace():
            continue
        fields = line.split("\t", 2)  # id, body, text column (which may itself hold tabs)
        ident = fields[0].strip()
        kind = ident[:1] or "?"
        body = fields[1] if len(fields) > 1 else ""
        column = fields[2] if len(fields) > 2 else None

        if kind in "TREAMN" and ident in seen:
            if system is not None and firsts is None:
                firsts = first_lines(lines)
            if firsts is not None and firsts.get(ident) == line:
                system.append((lineno, SYSTEM_REPEAT))  # read once, as both official scripts read it
                continue
            add_problem(path, lineno, f"duplicate annotation id {ident}")
            continue
        if kind == "T":
            if system is not None and len(fields) > 1:
                read = system_text_bound(ident, body, column, text, offset_shift)
                if not isinstance(read, str):
                    if read[1]:
                        system.append((lineno, read[1]))
                    seen.add(ident)
                    entities.append(read[0])
                    continue
            entity = (parse_text_bound(ident, body, column, text, offset_shift) if len(fields) > 1 else
                      "malformed text-bound annotation (expected ID<TAB>Label START END<TAB>text)")
            if isinstance(entity, str):
                add_problem(path, lineno, entity, "" if entity.startswith("malformed") else line)
                continue
            seen.add(ident)
            entities.append(entity)
        elif kind == "R":
            relation = parse_relation(body)
            if relation is None:
                add_problem(path, lineno, "malformed relation (expected ID<TAB>Label Arg1:ID Arg2:ID)")
                continue
            seen.add(ident)
            raw_relations.append((lineno, ident, *relation))
        elif kind == "E":
            parts = body.split()
            head = _split_role(parts[0]) if parts else None
            args = [_split_role(p) for p in parts[1:]]
            if head is None or any(a is None for a in args):
                add_problem(path, lineno, "malformed event (expected ID<TAB>Label:TRIGGER [Role:ID ...])")
                continue
            seen.add(ident)
            raw_events.append((lineno, ident, head[0], head[1], args))  # type: ignore[arg-type]
        elif kind in "AM":
            parts = body.split()
            if len(parts) not in (2, 3):
                add_problem(path, lineno, "malformed attribute (expected ID<TAB>Name TARGET [VALUE])")
                continue
            seen.add(ident)
            raw_attrs.append((lineno, parts[1], parts[0], parts[2] if len(parts) == 3 else "true"))
        elif kind == "*":
            parts = body.split()
            if len(parts) < 2:
                add_problem(path, lineno, "malformed equivalence (expected *<TAB>Equiv ID ID ...)")
                continue
            raw_refs.append(("equiv", lineno, {"label": parts[0], "ids": parts[1:]}, parts[1:]))
        elif kind == "N":
            parts = body.split()
            if len(parts) != 3:
                add_problem(path, lineno, "malformed normalization (expected ID<TAB>Type TARGET DB:ID<TAB>text)")
                continue
            seen.add(ident)
            item = {"id": ident, "label": parts[0], "target": parts[1], "ref": parts[2], "text": column or ""}
            raw_refs.append(("normalizations", lineno, item, [parts[1]]))
        elif kind == "#":
            parts = body.split()
            if len(parts) != 2:
                add_problem(path, lineno, "malformed note (expected #ID<TAB>Type TARGET<TAB>text)")
                continue
            if keep_notes:
                item = {"id": ident, "label": parts[0], "target": parts[1], "text": column or ""}
                raw_refs.append(("notes", lineno, item, [parts[1]]))
        else:
            add_problem(path, lineno, "unknown annotation line type (expected T, R, E, A, M, N, * or #)")
    return out


def live_events(raw_events: list[tuple[int, str, str, str, list[tuple[str, str]]]],
                entity_ids: set[str]) -> tuple[set[str], dict[str, str]]:
    """Drop, to a fixpoint, the events whose trigger or arguments do not exist (nested events included):
    (ids of the events kept, {dropped event id: the missing ids})."""
    live = {ev[1] for ev in raw_events}
    dropped: dict[str, str] = {}
    changed = True
    while changed:
        changed = False
        for _lineno, ident, _label, trigger, args in raw_events:
            if ident not in live:
                continue
            missing = [trigger] if trigger not in entity_ids else []
            missing += [ref for _, ref in args if ref not in entity_ids and ref not in live]
            if missing:
                live.discard(ident)
                dropped[ident] = ", ".join(missing)
                changed = True
    return live, dropped


def resolve_references(raw: RawAnn, lines: list[str], path: Path, problems: Problems) -> ParsedAnn:
    """Drop (and report, quoting the line) events, relations, attributes and metadata that refer to ids
    that do not exist or were dropped; attach attributes to their entity or event."""
    out = ParsedAnn(entities=raw.entities)
    raw_events, raw_relations, raw_attrs, raw_refs = raw.events, raw.relations, raw.attributes, raw.refs
    entity_ids = {e.id for e in out.entities}
    live, dropped = live_events(raw_events, entity_ids)
    event_attrs: dict[str, dict[str, str]] = {}
    for lineno, ident, label, trigger, args in raw_events:
        if ident in dropped:
            problems.add(path, lineno, f"event {ident} refers to missing id {dropped[ident]}", lines[lineno - 1])
            continue
        event_attrs[ident] = {}
        out.events.append(Event(ident, label, trigger, tuple(EventArgument(r, ref) for r, ref in args)))
    target_ids = entity_ids | live
    for lineno, ident, label, head, tail in raw_relations:
        if head in target_ids and tail in target_ids:
            out.relations.append(Relation(ident, label, head, tail))
        else:
            missing = ", ".join(x for x in (head, tail) if x not in target_ids)
            problems.add(path, lineno, f"relation {ident} refers to missing id {missing}", lines[lineno - 1])
    all_ids = target_ids | {r.id for r in out.relations}
    entity_attrs: dict[str, dict[str, str]] = {}  # only entities that have attributes
    for lineno, target, name, value in raw_attrs:
        holder = entity_attrs.setdefault(target, {}) if target in entity_ids else event_attrs.get(target)
        if holder is None:
            what = ("an attribute applies to an entity or an event, not to relation " if target in all_ids
                    else "attribute refers to missing id ")
            problems.add(path, lineno, what + target, lines[lineno - 1])
        elif holder.get(name, value) != value:
            problems.add(path, lineno, f"attribute {name} given twice with different values on {target}",
                         lines[lineno - 1])
        else:
            holder[name] = value
    for key, lineno, item, refs in raw_refs:
        missing = [r for r in refs if r not in all_ids]
        if missing:
            problems.add(path, lineno, f"refers to missing id {', '.join(missing)}", lines[lineno - 1])
        else:
            out.metadata.setdefault(key, []).append(item)
    if entity_attrs:
        out.entities = [e if not entity_attrs.get(e.id) else Entity(e.id, e.label, e.spans, e.text,
                                                                    tuple(sorted(entity_attrs[e.id].items())))
                        for e in out.entities]
    out.events = [ev if not event_attrs[ev.id] else Event(ev.id, ev.label, ev.trigger, ev.arguments,
                                                           tuple(sorted(event_attrs[ev.id].items())))
                  for ev in out.events]
    return out
