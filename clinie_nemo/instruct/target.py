"""The target model every format encodes: entities named by (mention, occurrence) fragments, relations by
entity index; and the two conversions around it.

``build_target`` turns the gold annotations of a chunk into a :class:`Target`; ``resolve_target`` (the
exact inverse) turns a Target back into document annotations with offsets. Events travel as their parts:
the trigger is an entity whose label is the event type, each argument is a role relation
(trigger -> argument), and event attributes ride on the trigger entity; the inverse rebuilds one Event per
trigger. What cannot travel this way is counted by cause, never dropped silently.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from clinie_nemo.core.document import (
    Attributes,
    Document,
    Entity,
    Event,
    EventArgument,
    Relation,
    fragments_text,
)
from clinie_nemo.corpus.schema import TaskSchema
from clinie_nemo.instruct.placement import PlacementError, occurrence_index, place_exact


@dataclass(frozen=True)
class Fragment:
    text: str
    occurrence: int = 1  # 1-based rank among the matches in the chunk (placement.ranked_matches: whole tokens first)


@dataclass(frozen=True)
class TargetEntity:
    label: str
    fragments: tuple[Fragment, ...]
    attributes: Attributes = ()


@dataclass(frozen=True)
class TargetRelation:
    label: str
    head: int  # 0-based index into Target.entities
    tail: int


@dataclass(frozen=True)
class Target:
    entities: tuple[TargetEntity, ...] = ()
    relations: tuple[TargetRelation, ...] = ()


@dataclass(frozen=True)
class Annotations:
    """Document-level annotations (offsets into the document text)."""

    entities: tuple[Entity, ...] = ()
    relations: tuple[Relation, ...] = ()
    events: tuple[Event, ...] = ()


@dataclass(frozen=True)
class ChunkView:
    """One chunk of a document: [start, end) and the gold annotations that lie inside it."""

    doc: Document
    index: int
    start: int
    end: int
    entities: tuple[Entity, ...] = ()
    relations: tuple[Relation, ...] = ()
    events: tuple[Event, ...] = ()  # trigger inside; arguments outside the chunk removed

    @property
    def text(self) -> str:
        return self.doc.text[self.start:self.end]


def entity_order(e: Entity) -> tuple:
    return (e.start, -e.end, e.label, e.spans, e.attributes, e.id)


def to_fragments(chunk_text: str, chunk_start: int, spans: tuple[tuple[int, int], ...]) -> tuple[Fragment, ...]:
    out = []
    for s, e in spans:
        mention = chunk_text[s - chunk_start:e - chunk_start]
        out.append(Fragment(mention, occurrence_index(chunk_text, mention, s - chunk_start)))
    return tuple(out)


def build_target(view: ChunkView, schema: TaskSchema, *, labels: tuple[str, ...] | None = None,
                 with_relations: bool = False, with_attributes: bool = True) -> tuple[Target, Counter[str]]:
    """The gold target of a chunk, and the losses (cause -> count) of what it cannot carry."""
    losses: Counter[str] = Counter()
    allowed = set(labels if labels is not None else schema.entity_names)
    entities = []
    for e in sorted(view.entities, key=entity_order):
        if e.label in allowed:
            entities.append(e)
        elif labels is None:
            losses["entity_label_not_in_schema"] += 1
    index = {e.id: i for i, e in enumerate(entities)}
    extra_attrs: dict[int, dict[str, str]] = {}
    relations: list[TargetRelation] = []
    if with_relations:
        # a relation may name an event as an argument (valid brat: R1 Arg1:E1 Arg2:T3): it stands for the
        # event's trigger, as scoring/items.py argument_index scores it
        trigger_of = {ev.id: ev.trigger for ev in view.events}
        for r in view.relations:
            head, tail = trigger_of.get(r.head, r.head), trigger_of.get(r.tail, r.tail)
            if head in index and tail in index:
                relations.append(TargetRelation(r.label, index[head], index[tail]))
            else:
                losses["relation_argument_not_an_entity"] += 1
        relations.extend(_event_parts(view, schema, index, extra_attrs, losses))
        for e in entities:
            if e.label in schema.event_labels and not any(ev.trigger == e.id for ev in view.events):
                losses["event_label_entity_without_event"] += 1
    target_entities = []
    for i, e in enumerate(entities):
        attrs = dict(e.attributes) if with_attributes else {}
        for key, value in extra_attrs.get(i, {}).items():
            if key in attrs:
                losses["event_attribute_conflict"] += 1
            attrs[key] = value
        target_entities.append(TargetEntity(e.label, to_fragments(view.text, view.start, e.spans),
                                            tuple(sorted(attrs.items()))))
    relations.sort(key=lambda r: (r.head, r.tail, r.label))
    return Target(tuple(target_entities), tuple(relations)), losses


def _event_parts(view: ChunkView, schema: TaskSchema, index: dict[str, int], extra_attrs: dict[int, dict[str, str]],
                 losses: Counter[str]) -> list[TargetRelation]:
    triggers = Counter(ev.trigger for ev in view.events)
    trigger_of = {ev.id: ev.trigger for ev in view.events}
    trigger_entities = set(triggers)
    by_id = view.doc.entity_index()
    out: list[TargetRelation] = []
    for ev in view.events:
        trig = by_id.get(ev.trigger)
        if ev.trigger not in index or trig is None:
            losses["event_trigger_not_an_entity"] += 1
            continue
        if trig.label != ev.label or ev.label not in schema.event_labels:
            losses["event_label_differs_from_trigger"] += 1
            continue
        if triggers[ev.trigger] > 1:
            losses["event_shares_trigger"] += 1
            continue
        t = index[ev.trigger]
        if ev.attributes:
            extra_attrs.setdefault(t, {}).update(ev.attributes)
        for arg in ev.arguments:
            ref = trigger_of.get(arg.ref, arg.ref)
            if arg.ref not in trigger_of and arg.ref in trigger_entities:
                losses["argument_is_a_trigger_entity"] += 1
            elif ref in index:
                out.append(TargetRelation(arg.role, t, index[ref]))
            else:
                losses["event_argument_not_an_entity"] += 1
    return out


def resolve_target(target: Target, doc: Document, start: int, end: int, schema: TaskSchema, *,
                   id_prefix: str = "", with_events: bool = False) -> tuple[Annotations, Counter[str]]:
    """Exact inverse of :func:`build_target`: annotations with document offsets, and failures by cause."""
    failures: Counter[str] = Counter()
    chunk_text = doc.text[start:end]
    event_labels = set(schema.event_labels) if with_events else set()
    roles = {role for role, _, _ in schema.role_pairs}
    entities: dict[int, Entity] = {}
    event_attrs: dict[int, tuple] = {}
    for i, te in enumerate(target.entities):
        try:
            spans = tuple((start + s, start + e) for s, e in
                          (place_exact(chunk_text, f.text, f.occurrence) for f in te.fragments))
        except PlacementError as exc:
            failures[exc.cause] += 1
            continue
        if not spans or any(a[1] > b[0] for a, b in zip(spans, spans[1:])):
            failures["fragments_out_of_order"] += 1
            continue
        attrs = te.attributes
        if te.label in event_labels:
            event_attrs[i] = tuple(kv for kv in attrs if kv[0] in schema.event_attribute_keys)
            attrs = tuple(kv for kv in attrs if kv[0] not in schema.event_attribute_keys)
        entities[i] = Entity(f"{id_prefix}T{i + 1}", te.label, spans, fragments_text(doc.text, spans), attrs)
    events_of = {i: f"{id_prefix}E{i + 1}" for i, e in entities.items() if e.label in event_labels}
    relations: list[Relation] = []
    arguments: dict[int, list[EventArgument]] = {i: [] for i in events_of}
    for r in target.relations:
        if r.head not in entities or r.tail not in entities:
            failures["relation_argument_missing"] += 1
            continue
        if r.head in events_of and r.label in roles:
            arguments[r.head].append(EventArgument(r.label, events_of.get(r.tail, entities[r.tail].id)))
        else:
            relations.append(Relation(f"{id_prefix}R{len(relations) + 1}", r.label, entities[r.head].id,
                                      entities[r.tail].id))
    events = tuple(Event(eid, entities[i].label, entities[i].id, tuple(arguments[i]), event_attrs.get(i, ()))
                   for i, eid in events_of.items())
    return Annotations(tuple(entities.values()), tuple(relations), events), failures


def assemble_events(entities: tuple[Entity, ...], relations: tuple[Relation, ...], schema: TaskSchema,
                    id_prefix: str = "") -> tuple[tuple[Relation, ...], tuple[Event, ...]]:
    """Document-level: role relations (label = a schema role, head = an entity whose label is an event
    type) become Events, one per trigger; other relations stay relations. For ``re_pair`` predictions,
    whose role answers come back as relations between gold entities."""
    by_id = {e.id: e for e in entities}
    roles = {role for role, _, _ in schema.role_pairs}
    triggers = [e for e in entities if e.label in schema.event_labels]
    event_id = {e.id: f"{id_prefix}E{k + 1}" for k, e in enumerate(triggers)}
    arguments: dict[str, list[EventArgument]] = {e.id: [] for e in triggers}
    plain = []
    for r in relations:
        if r.label in roles and r.head in event_id and r.tail in by_id:
            arguments[r.head].append(EventArgument(r.label, event_id.get(r.tail, r.tail)))
        else:
            plain.append(r)
    events = tuple(Event(event_id[t.id], t.label, t.id, tuple(arguments[t.id])) for t in triggers)
    return tuple(plain), events
