"""Merging chunk-level parses back into one predicted Document per gold document and task.

Entities from overlapping chunks that coincide (label, spans, attributes) become one; relations are
kept once per (label, head, tail): merging chunks is not duplication. What one answer said more than once
(a repeated line) stays repeated: an entity or relation is written as many times as the answer that said
it most often (the largest count over the chunks' parses), so the predicted document carries the repeats
and the rule set's ``duplicates`` decides in the scorer whether they count (COUNT) or not (SET), the same
for ``evaluate`` and for ``score`` on the documents it writes. ``re_pair`` answers name gold entity ids, so
their predicted document carries the gold entities. A relation whose label is an event role and whose head is an event trigger
(by the gold schema) becomes an event argument, rebuilding events the way targets carry them.

:func:`add_unplaced` adds the predictions that could not be placed to a document's counts as false
positives, in strict and lenient mode alike: a mention under its label (``entities``, or ``ANY_LABEL``
under label-free rules; also ``events`` row ``<label>/Trigger`` when its label is an event trigger), a
relation under its label (``relations``, ``relations_untyped``; under ``events`` when the label is an
event role), and what has no schema label under ``unplaced:<cause>``. An unplaced element one answer
said again counts again under ``duplicates=COUNT`` and once under SET (the same element said by two
chunks counts per chunk: without a span nothing shows it is the same); under ``events`` once, as events
and their arguments are merged once. Every total, per-label table, CI
and comparison is summed from those counts, so they all see the same false positives.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Sequence

from clinie_nemo.core.document import Document, Entity, Event, EventArgument, Relation, fragments_text
from clinie_nemo.evaluation.parsing.parse import EntityKey, RecordParse
from clinie_nemo.evaluation.scoring.rules import ANY_LABEL, SET, RuleSet
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
    said: dict[EntityKey, int] = {}  # the most times one answer said an entity (when more than once)
    pair_mode = False
    relations: dict[tuple[str, str, str], int] = {}  # likewise per relation (first-seen order)

    def entity_id(key: EntityKey) -> str:
        if key not in keys:
            keys[key] = f"T{len(keys) + 1}"
            label, spans, attrs = key
            entities.append(Entity(keys[key], label, spans, fragments_text(gold.text, spans), attrs))
        return keys[key]

    for p in parses:
        for key in p.entities:
            entity_id(key)
        for key, again in p.said_again.items():
            if again + 1 > said.get(key, 1):
                said[key] = again + 1
        in_answer: dict[tuple[str, str, str], int] = {}
        for label, head, tail in p.relations:
            if isinstance(head, str):  # re_pair: gold entity ids
                pair_mode = True
                rel = (label, head, tail)
            else:
                rel = (label, entity_id(head), entity_id(tail))
            in_answer[rel] = in_answer.get(rel, 0) + 1
        for rel, n in in_answer.items():
            if n > relations.get(rel, 0):
                relations[rel] = n
    if pair_mode:
        entities = list(gold.entities)
    by_id = {e.id: e for e in entities}
    events: dict[str, list[EventArgument]] = {}
    plain: list[Relation] = []
    for (label, head, tail), n in relations.items():
        h = by_id.get(head)
        if h is not None and h.label in trigger_labels and label in roles:
            events.setdefault(head, []).append(EventArgument(label, tail))  # an event's argument: once
        else:
            plain.extend(Relation(f"R{len(plain) + i + 1}", label, head, tail) for i in range(n))
    for e in entities:
        if e.label in trigger_labels and e.id not in events:
            events[e.id] = []
    event_ids = {t: f"E{i + 1}" for i, t in enumerate(events)}
    built = tuple(Event(event_ids[t], by_id[t].label, t, tuple(args)) for t, args in events.items())
    if said and not pair_mode:
        entities += _repeats(entities, said, keys, len(entities))
    return Document(gold.id, gold.text, gold.dataset, gold.split, tuple(entities), tuple(plain), built)


def _repeats(entities: Sequence[Entity], said: dict[EntityKey, int], keys: dict[EntityKey, str],
             numbered: int) -> list[Entity]:
    """The copies of the entities an answer said more than once, with fresh ids after ``T<numbered>``
    (relations and events name the first copy, ``keys[key]`` = ``T<its index + 1>``)."""
    out: list[Entity] = []
    for key, times in said.items():
        e = entities[int(keys[key][1:]) - 1]
        for _ in range(times - 1):
            out.append(Entity(f"T{numbered + len(out) + 1}", e.label, e.spans, e.text, e.attributes))
    return out


def unplaced_rows(parses: Iterable[RecordParse], kinds: Collection[str], trigger_labels: Collection[str] = (),
                  roles: Collection[str] = (), rules: RuleSet | None = None) -> Counter[tuple[str, str]]:
    """``(kind, row label) -> false positives`` of the predictions the parses could not place (only
    ``kinds`` are kept), as ``rules`` count them (repeats under ``duplicates``, label-free entity rows)."""
    rows: Counter[tuple[str, str]] = Counter()
    once = rules is not None and rules.duplicates == SET
    any_label = rules is not None and rules.ignore_labels
    for p in parses:
        for unplaced, n_once in p.unplaced.items():
            what, label, cause = unplaced
            n = n_once if once else n_once + p.unplaced_repeats.get(unplaced, 0)
            row = label if label is not None else UNPLACED + cause
            if what == "entity":
                if any_label and label is not None:
                    row = ANY_LABEL
                targets = [("entities", row)] + ([("events", f"{label}/Trigger")] if label in trigger_labels else [])
            elif label is not None and label in roles:
                targets = [("events", UNPLACED + cause)]
            else:
                targets = [("relations", row), ("relations_untyped", row)]
            for kind, key in targets:
                if kind in kinds:
                    rows[(kind, key)] += n_once if kind == "events" else n  # events are merged once
    return rows


def add_unplaced(score: DocumentScore, parses: Iterable[RecordParse], kinds: Collection[str],
                 trigger_labels: Collection[str] = (), roles: Collection[str] = (),
                 rules: RuleSet | None = None) -> None:
    """Add the unplaced predictions of ``parses`` to ``score`` as false positives (strict and lenient),
    counted as ``rules`` count them (``None``: every repeat counts, labels kept)."""
    for (kind, row), n in unplaced_rows(parses, kinds, trigger_labels, roles, rules).items():
        for mode in MODES:
            tp, fp, fn = score.counts.get((kind, mode, row), (0, 0, 0))
            score.counts[(kind, mode, row)] = [tp, fp + n, fn]
