"""Merging chunk-level parses back into one predicted Document per gold document and task.

Entities from overlapping chunks that coincide (label, spans, attributes) become one; relations are
kept once per (label, head, tail). ``re_pair`` answers name gold entity ids, so their predicted document
carries the gold entities. A relation whose label is an event role and whose head is an event trigger
(by the gold schema) becomes an event argument, rebuilding events the way targets carry them.

:func:`add_unplaced` adds the predictions that could not be placed to a document's counts as false
positives, in strict and lenient mode alike: a mention under its label (``entities``; also
``events`` row ``<label>/Trigger`` when its label is an event trigger), a relation under its label
(``relations``, ``relations_untyped``; under ``events`` when the label is an event role), and what has no
schema label under ``unplaced:<cause>``. Every total, per-label table, CI and comparison is summed from
those counts, so they all see the same false positives.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable

from clinie_nemo.core.document import Document, Entity, Event, EventArgument, Relation, fragments_text
from clinie_nemo.evaluation.parsing.parse import EntityKey, RecordParse
from clinie_nemo.evaluation.scoring.scorer import MODES, UNPLACED, DocumentScore


def event_schema(gold: Iterable[Document]) -> tuple[set[str], set[str]]:
    """(event trigger labels, argument roles) seen in the gold documents."""
    triggers: set[str] = set()
    roles: set[str] = set()
    for doc in gold:
        index = doc.entity_index()
        for ev in doc.events:
            if ev.trigger in index:
                triggers.add(index[ev.trigger].label)
            roles.update(a.role for a in ev.arguments)
    return triggers, roles


def merge_document(gold: Document, parses: Iterable[RecordParse], trigger_labels: set[str] = frozenset(),
                   roles: set[str] = frozenset()) -> Document:
    keys: dict[EntityKey, str] = {}
    entities: list[Entity] = []
    pair_mode = False
    relations: dict[tuple[str, str, str], None] = {}

    def entity_id(key: EntityKey) -> str:
        if key not in keys:
            keys[key] = f"T{len(keys) + 1}"
            label, spans, attrs = key
            entities.append(Entity(keys[key], label, spans, fragments_text(gold.text, spans), attrs))
        return keys[key]

    for p in parses:
        for key in p.entities:
            entity_id(key)
        for label, head, tail in p.relations:
            if isinstance(head, str):  # re_pair: gold entity ids
                pair_mode = True
                relations[(label, head, tail)] = None
            else:
                relations[(label, entity_id(head), entity_id(tail))] = None
    if pair_mode:
        entities = list(gold.entities)
    by_id = {e.id: e for e in entities}
    events: dict[str, list[EventArgument]] = {}
    plain: list[Relation] = []
    for label, head, tail in relations:
        h = by_id.get(head)
        if h is not None and h.label in trigger_labels and label in roles:
            events.setdefault(head, []).append(EventArgument(label, tail))
        else:
            plain.append(Relation(f"R{len(plain) + 1}", label, head, tail))
    for e in entities:
        if e.label in trigger_labels and e.id not in events:
            events[e.id] = []
    event_ids = {t: f"E{i + 1}" for i, t in enumerate(events)}
    built = tuple(Event(event_ids[t], by_id[t].label, t, tuple(args)) for t, args in events.items())
    return Document(gold.id, gold.text, gold.dataset, gold.split, tuple(entities), tuple(plain), built)


def unplaced_rows(parses: Iterable[RecordParse], kinds: Collection[str], trigger_labels: Collection[str] = (),
                  roles: Collection[str] = ()) -> Counter[tuple[str, str]]:
    """``(kind, row label) -> false positives`` of the predictions the parses could not place (only
    ``kinds`` are kept)."""
    rows: Counter[tuple[str, str]] = Counter()
    for p in parses:
        for (what, label, cause), n in p.unplaced.items():
            row = label if label is not None else UNPLACED + cause
            if what == "entity":
                targets = [("entities", row)] + ([("events", f"{label}/Trigger")] if label in trigger_labels else [])
            elif label is not None and label in roles:
                targets = [("events", UNPLACED + cause)]
            else:
                targets = [("relations", row), ("relations_untyped", row)]
            for kind, key in targets:
                if kind in kinds:
                    rows[(kind, key)] += n
    return rows


def add_unplaced(score: DocumentScore, parses: Iterable[RecordParse], kinds: Collection[str],
                 trigger_labels: Collection[str] = (), roles: Collection[str] = ()) -> None:
    """Add the unplaced predictions of ``parses`` to ``score`` as false positives (strict and lenient)."""
    for (kind, row), n in unplaced_rows(parses, kinds, trigger_labels, roles).items():
        for mode in MODES:
            tp, fp, fn = score.counts.get((kind, mode, row), (0, 0, 0))
            score.counts[(kind, mode, row)] = [tp, fp + n, fn]
