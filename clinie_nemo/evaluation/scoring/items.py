"""Turning a Document's annotations into matchable items under a rule set (see matching.Item).

Entities: group ``(label,)``; exact key = every fragment, or the outer span when the rule set collapses
discontinuous spans; segment = the outer span. Relations: group ``(label, head label, tail label)`` (or
``(label,)`` when entity types are unchecked); exact key = the two arguments' span keys, in direction
order; segments = the two outer spans. A relation argument that names an event stands for its trigger.

Labels (``score --labels``): a plain collection keeps the entities, relations and events with those
labels; :class:`KeptLabels` with ``by_arguments`` (the labels name entity labels only) keeps, instead of
relations by label, the relations whose arguments all have kept labels.
"""

from __future__ import annotations

from collections.abc import Collection

from clinie_nemo.core.document import Document, Entity
from clinie_nemo.evaluation.scoring.matching import Item
from clinie_nemo.evaluation.scoring.rules import RuleSet


class KeptLabels(frozenset):
    """Labels to score, and whether relations are kept by their arguments' labels (``by_arguments``:
    the labels name no relation label) rather than by their own label."""

    by_arguments: bool

    def __new__(cls, labels: Collection[str] = (), by_arguments: bool = False) -> KeptLabels:
        self = super().__new__(cls, labels)
        self.by_arguments = by_arguments
        return self

    def __reduce__(self):  # type: ignore[override]
        return (KeptLabels, (list(self), self.by_arguments))


def relation_kept(labels: Collection[str] | None, label: str, head_label: str | None, tail_label: str | None) -> bool:
    """Whether a relation is scored under ``labels`` (see :class:`KeptLabels`); an unknown argument label
    (None) does not drop it."""
    if labels is None:
        return True
    if getattr(labels, "by_arguments", False):
        return all(x is None or x in labels for x in (head_label, tail_label))
    return label in labels


def span_key(entity: Entity, rules: RuleSet) -> tuple[tuple[int, int], ...]:
    spans = entity.spans
    if len(spans) == 1:
        return spans
    return ((spans[0][0], spans[-1][1]),) if rules.collapse_discontinuous else spans


def entity_items(doc: Document, rules: RuleSet, labels: Collection[str] | None = None) -> list[Item]:
    collapse, skip = rules.collapse_discontinuous, rules.skip_entities_with
    items: list[Item] = []
    for e in doc.entities:
        if labels is not None and e.label not in labels:
            continue
        if skip and not skip.isdisjoint(e.attributes):
            continue
        spans = e.spans
        outer = (spans[0][0], spans[-1][1]) if len(spans) > 1 else spans[0]
        items.append(((e.label,), (outer,) if collapse or len(spans) == 1 else spans, (outer,)))
    return items


def argument_index(doc: Document) -> dict[str, Entity]:
    """Entity by id, with each event id mapped to its trigger entity."""
    index = doc.entity_index()
    for ev in doc.events:
        if ev.trigger in index:
            index.setdefault(ev.id, index[ev.trigger])
    return index


def relation_items(doc: Document, rules: RuleSet, typed: bool,
                   labels: Collection[str] | None = None) -> list[Item]:
    index = argument_index(doc)
    items: list[Item] = []
    for r in doc.relations:
        head, tail = index.get(r.head), index.get(r.tail)
        if head is None or tail is None:
            continue  # dangling reference: nothing to match (readers report these)
        if not relation_kept(labels, r.label, head.label, tail.label):
            continue
        group = (r.label, head.label, tail.label) if typed else (r.label,)
        hs, ts = head.spans, tail.spans
        exact = (span_key(head, rules), span_key(tail, rules))
        items.append((group, exact, ((hs[0][0], hs[-1][1]), (ts[0][0], ts[-1][1]))))
    return items
