"""Parse one brat standoff ``.ann`` file against its note text into entities, relations, events, metadata.

Line types (first character of the id): ``T`` text-bound (``T1<TAB>Label 0 7;9 12<TAB>text``), ``R``
relation (``Arg1:T1 Arg2:T2``; first argument = head), ``E`` event (``Label:T1 Role:T2 Role:E3``; may nest,
may have no arguments), ``A``/``M`` attribute or modifier (binary -> ``"true"``), ``*`` Equiv groups,
``N`` normalisations, ``#`` notes. Every problem is recorded with the ``.ann`` line (never note text); an
invalid annotation is dropped, and whatever refers to a dropped or missing id is reported and dropped too.

Metadata layout (only keys with content are present)::

    "equiv":          [{"label": "Equiv", "ids": ["T1", "T2"]}]
    "normalizations": [{"id": "N1", "label": "Reference", "target": "T1", "ref": "db:id", "text": "..."}]
    "notes":          [{"id": "#1", "label": "AnnotatorNotes", "target": "T1", "text": "..."}]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinie_nemo.document import Entity, Event, EventArgument, Relation, Span
from clinie_nemo.readers._common import Problems, same_text


@dataclass
class ParsedAnn:
    entities: list[Entity] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


def parse_spans(field_text: str) -> list[Span] | None:
    """``"0 7;9 12"`` -> [(0, 7), (9, 12)]; None when malformed."""
    spans: list[Span] = []
    for frag in field_text.split(";"):
        parts = frag.split()
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            return None
        spans.append((int(parts[0]), int(parts[1])))
    return spans


def _split_role(token: str) -> tuple[str, str] | None:
    role, sep, ref = token.rpartition(":")
    return (role, ref) if sep and role and ref else None


def parse_ann(lines: list[str], text: str, path: Path, problems: Problems, keep_notes: bool = True,
              offset_shift: int = 0) -> ParsedAnn:
    """Parse every line, then resolve references; ``offset_shift`` is subtracted from every offset
    (1 when a BOM was counted by the annotation tool)."""
    out = ParsedAnn()
    n = len(text)
    seen: set[str] = set()
    raw_relations: list[tuple[int, str, str, str, str]] = []  # line, id, label, head, tail
    raw_events: list[tuple[int, str, str, str, list[tuple[str, str]]]] = []
    raw_attrs: list[tuple[int, str, str, str]] = []  # line, target, name, value
    raw_refs: list[tuple[str, int, dict[str, Any], list[str]]] = []  # metadata key, line, item, ids

    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        ident = fields[0].strip()
        kind = ident[:1] or "?"

        def bad(message: str, lineno: int = lineno, line: str = line) -> None:
            problems.add(path, lineno, message, line)

        if kind in "TREAMN" and ident in seen:
            bad(f"duplicate annotation id {ident}")
            continue
        if kind == "T":
            if len(fields) < 2:
                bad("malformed text-bound annotation (expected ID<TAB>Label START END<TAB>text)")
                continue
            label, _, offsets = fields[1].strip().partition(" ")
            spans = parse_spans(offsets) if label else None
            if not spans:
                bad("malformed text-bound annotation (expected ID<TAB>Label START END[;START END]<TAB>text)")
                continue
            spans = [(s - offset_shift, e - offset_shift) for s, e in spans]
            if any(not (0 <= s < e <= n) for s, e in spans):
                bad(f"offsets {offsets.strip()} outside the text (length {n}) or empty")
                continue
            ordered = sorted(spans)
            if any(ordered[i][1] > ordered[i + 1][0] for i in range(len(ordered) - 1)):
                bad("overlapping fragments")
                continue
            annotated = "\t".join(fields[2:])
            if len(fields) > 2 and not same_text(annotated, " ".join(text[s:e] for s, e in spans)):
                bad(f"annotated text disagrees with the note at {offsets.strip()}")
                continue
            seen.add(ident)
            out.entities.append(Entity(ident, label, tuple(ordered), " ".join(text[s:e] for s, e in ordered)))
        elif kind == "R":
            parts = fields[1].split() if len(fields) > 1 else []
            args = [_split_role(p) for p in parts[1:]]
            if len(parts) != 3 or any(a is None for a in args):
                bad("malformed relation (expected ID<TAB>Label Arg1:ID Arg2:ID)")
                continue
            seen.add(ident)
            first, second = args[0], args[1]
            if (first[0], second[0]) == ("Arg2", "Arg1"):  # type: ignore[index]
                first, second = second, first  # head = Arg1 whatever the order on the line
            raw_relations.append((lineno, ident, parts[0], first[1], second[1]))  # type: ignore[index]
        elif kind == "E":
            parts = fields[1].split() if len(fields) > 1 else []
            head = _split_role(parts[0]) if parts else None
            args = [_split_role(p) for p in parts[1:]]
            if head is None or any(a is None for a in args):
                bad("malformed event (expected ID<TAB>Label:TRIGGER [Role:ID ...])")
                continue
            seen.add(ident)
            raw_events.append((lineno, ident, head[0], head[1], args))  # type: ignore[arg-type]
        elif kind in "AM":
            parts = fields[1].split() if len(fields) > 1 else []
            if len(parts) not in (2, 3):
                bad("malformed attribute (expected ID<TAB>Name TARGET [VALUE])")
                continue
            seen.add(ident)
            raw_attrs.append((lineno, parts[1], parts[0], parts[2] if len(parts) == 3 else "true"))
        elif kind == "*":
            parts = fields[1].split() if len(fields) > 1 else []
            if len(parts) < 2:
                bad("malformed equivalence (expected *<TAB>Equiv ID ID ...)")
                continue
            raw_refs.append(("equiv", lineno, {"label": parts[0], "ids": parts[1:]}, parts[1:]))
        elif kind == "N":
            parts = fields[1].split() if len(fields) > 1 else []
            if len(parts) != 3:
                bad("malformed normalization (expected ID<TAB>Type TARGET DB:ID<TAB>text)")
                continue
            seen.add(ident)
            item = {"id": ident, "label": parts[0], "target": parts[1], "ref": parts[2],
                    "text": "\t".join(fields[2:])}
            raw_refs.append(("normalizations", lineno, item, [parts[1]]))
        elif kind == "#":
            parts = fields[1].split() if len(fields) > 1 else []
            if len(parts) != 2:
                bad("malformed note (expected #ID<TAB>Type TARGET<TAB>text)")
                continue
            if keep_notes:
                item = {"id": ident, "label": parts[0], "target": parts[1], "text": "\t".join(fields[2:])}
                raw_refs.append(("notes", lineno, item, [parts[1]]))
        else:
            bad("unknown annotation line type (expected T, R, E, A, M, N, * or #)")

    entity_ids = {e.id for e in out.entities}
    # Events: drop, to a fixpoint, those whose trigger or arguments do not exist (nested events included).
    live = {ev[1] for ev in raw_events}
    changed = True
    dropped: dict[str, str] = {}
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
    event_attrs: dict[str, dict[str, str]] = {}
    for lineno, ident, label, trigger, args in raw_events:
        if ident in dropped:
            problems.add(path, lineno, f"event {ident} refers to missing id {dropped[ident]}", lines[lineno - 1])
            continue
        event_attrs[ident] = {}
        out.events.append(Event(ident, label, trigger, tuple(EventArgument(r, ref) for r, ref in args)))
    target_ids = entity_ids | live
    for lineno, ident, label, head, tail in raw_relations:
        missing = [x for x in (head, tail) if x not in target_ids]
        if missing:
            problems.add(path, lineno, f"relation {ident} refers to missing id {', '.join(missing)}",
                         lines[lineno - 1])
            continue
        out.relations.append(Relation(ident, label, head, tail))
    all_ids = target_ids | {r.id for r in out.relations}
    entity_attrs: dict[str, dict[str, str]] = {e.id: {} for e in out.entities}
    for lineno, target, name, value in raw_attrs:
        holder = entity_attrs.get(target, event_attrs.get(target))
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
    out.entities = [e if not entity_attrs[e.id] else Entity(e.id, e.label, e.spans, e.text,
                                                          tuple(sorted(entity_attrs[e.id].items())))
                    for e in out.entities]
    out.events = [ev if not event_attrs[ev.id] else Event(ev.id, ev.label, ev.trigger, ev.arguments,
                                                           tuple(sorted(event_attrs[ev.id].items())))
                  for ev in out.events]
    return out
