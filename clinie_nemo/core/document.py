"""The document model: frozen dataclasses every reader produces and every later stage consumes.

Offsets are character offsets into ``Document.text``, end exclusive. A discontinuous entity has several
fragments, in text order; its ``text`` is the fragments' texts joined by one space.

JSONL form, one document per line::

    {"id", "text", "dataset", "split",
     "entities":  [{"id", "label", "spans": [[start, end], ...], "text", "attributes": {}}],
     "relations": [{"id", "label", "head", "tail"}],
     "events":    [{"id", "label", "trigger", "arguments": [{"role", "ref"}], "attributes": {}}],
     "metadata":  {}}

``attributes`` hold brat A/M lines (a binary attribute or modifier has the value ``"true"``), i2b2
assertions (``{"assertion": "present"}``) and SDOH values (``{"StatusTimeVal": "current"}``).
``metadata`` holds what has no span: PubTator/BioC document-level relations, brat ``*`` Equiv groups,
N normalisations and ``#`` notes (when kept).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

Span = tuple[int, int]
Attributes = tuple[tuple[str, str], ...]


def freeze_attributes(attributes: Mapping[str, Any] | Iterable[tuple[str, Any]] | None) -> Attributes:
    """A sorted tuple of (name, value) string pairs: hashable, order-independent."""
    if not attributes:
        return ()
    items = attributes.items() if isinstance(attributes, Mapping) else attributes
    return tuple(sorted((str(k), str(v)) for k, v in items))


def fragments_text(text: str, spans: Iterable[Span]) -> str:
    """The text of an entity: its fragments' texts joined by one space."""
    return " ".join(text[start:end] for start, end in spans)


@dataclass(frozen=True)
class Entity:
    id: str
    label: str
    spans: tuple[Span, ...]
    text: str
    attributes: Attributes = ()

    @property
    def start(self) -> int:
        return self.spans[0][0]

    @property
    def end(self) -> int:
        return self.spans[-1][1]

    @property
    def is_discontinuous(self) -> bool:
        return len(self.spans) > 1

    @property
    def attrs(self) -> dict[str, str]:
        return dict(self.attributes)


@dataclass(frozen=True)
class Relation:
    id: str
    label: str
    head: str  # id of an entity (or event)
    tail: str


@dataclass(frozen=True)
class EventArgument:
    role: str
    ref: str  # id of an entity or of another event (nested events)


@dataclass(frozen=True)
class Event:
    id: str
    label: str
    trigger: str  # id of the trigger entity
    arguments: tuple[EventArgument, ...] = ()
    attributes: Attributes = ()

    @property
    def attrs(self) -> dict[str, str]:
        return dict(self.attributes)


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    dataset: str = ""
    split: str = ""
    entities: tuple[Entity, ...] = ()
    relations: tuple[Relation, ...] = ()
    events: tuple[Event, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict, compare=True, hash=False)

    def entity_index(self) -> dict[str, Entity]:
        return {e.id: e for e in self.entities}

    def with_(self, **changes: Any) -> Document:
        return replace(self, **changes)


# ---------------------------------------------------------------------------------------------- JSON form


def entity_to_json(e: Entity) -> dict[str, Any]:
    return {"id": e.id, "label": e.label, "spans": [list(s) for s in e.spans], "text": e.text,
            "attributes": dict(e.attributes)}


def document_to_json(doc: Document) -> dict[str, Any]:
    return {
        "id": doc.id,
        "text": doc.text,
        "dataset": doc.dataset,
        "split": doc.split,
        "entities": [entity_to_json(e) for e in doc.entities],
        "relations": [{"id": r.id, "label": r.label, "head": r.head, "tail": r.tail} for r in doc.relations],
        "events": [
            {"id": ev.id, "label": ev.label, "trigger": ev.trigger,
             "arguments": [{"role": a.role, "ref": a.ref} for a in ev.arguments],
             "attributes": dict(ev.attributes)}
            for ev in doc.events
        ],
        "metadata": dict(doc.metadata),
    }


def document_from_json(obj: Mapping[str, Any]) -> Document:
    """Inverse of :func:`document_to_json`. Raises KeyError/TypeError/ValueError on malformed input;
    :mod:`clinie_nemo.core.docs_jsonl` turns those into located errors."""
    entities = tuple(
        Entity(
            id=str(e["id"]),
            label=str(e["label"]),
            spans=tuple((int(s), int(t)) for s, t in e["spans"]),
            text=str(e.get("text", "")),
            attributes=freeze_attributes(e.get("attributes")),
        )
        for e in obj.get("entities", ())
    )
    relations = tuple(
        Relation(id=str(r["id"]), label=str(r["label"]), head=str(r["head"]), tail=str(r["tail"]))
        for r in obj.get("relations", ())
    )
    events = tuple(
        Event(
            id=str(ev["id"]),
            label=str(ev["label"]),
            trigger=str(ev["trigger"]),
            arguments=tuple(EventArgument(str(a["role"]), str(a["ref"])) for a in ev.get("arguments", ())),
            attributes=freeze_attributes(ev.get("attributes")),
        )
        for ev in obj.get("events", ())
    )
    text = obj["text"]
    if not isinstance(text, str):
        raise TypeError("'text' must be a string")
    return Document(
        id=str(obj["id"]),
        text=text,
        dataset=str(obj.get("dataset", "")),
        split=str(obj.get("split", "")),
        entities=entities,
        relations=relations,
        events=events,
        metadata=dict(obj.get("metadata") or {}),
    )


def check_offsets(doc: Document) -> list[str]:
    """Problems with a document's offsets and references (empty list = consistent). Messages name
    annotation ids and offsets, never note text."""
    problems: list[str] = []
    n = len(doc.text)
    ids: set[str] = set()
    for e in doc.entities:
        if e.id in ids:
            problems.append(f"duplicate annotation id {e.id}")
        ids.add(e.id)
        if not e.spans:
            problems.append(f"entity {e.id} has no spans")
        prev_end = -1
        for start, end in e.spans:
            if not (0 <= start < end <= n):
                problems.append(f"entity {e.id}: span {start}-{end} outside the text (length {n})")
            if start < prev_end:
                problems.append(f"entity {e.id}: fragments not in order or overlapping")
            prev_end = end
        if e.spans and all(0 <= s < t <= n for s, t in e.spans) and fragments_text(doc.text, e.spans) != e.text:
            problems.append(f"entity {e.id}: annotated text disagrees with the note at {e.spans}")
    for ev in doc.events:
        if ev.id in ids:
            problems.append(f"duplicate annotation id {ev.id}")
        ids.add(ev.id)
    for ev in doc.events:
        if ev.trigger not in ids:
            problems.append(f"event {ev.id}: trigger {ev.trigger} does not exist")
        for a in ev.arguments:
            if a.ref not in ids:
                problems.append(f"event {ev.id}: argument {a.role}:{a.ref} does not exist")
    for r in doc.relations:
        for ref in (r.head, r.tail):
            if ref not in ids:
                problems.append(f"relation {r.id}: argument {ref} does not exist")
    return problems
