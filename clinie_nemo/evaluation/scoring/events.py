"""Event scoring in the manner of the 2022 n2c2 SDOH scorer (Lybarger/brat_scoring).

Gold events, in document order, each take the first unused predicted event of the same type whose
trigger matches (overlap in lenient mode, exact outer span in strict mode); arguments play no part in
this alignment. Inside an aligned pair, gold arguments in order each take the first unused predicted
argument of the same name that matches: a labeled argument (e.g. StatusTime) by its value, span
ignored; any other by its exact span. An unaligned gold event makes its trigger and all its arguments
misses; an unaligned predicted event makes them false positives (a duplicated event is one).

Counts are kept per row ``(event, argument, subtype)``, the trigger being argument ``Trigger`` and the
subtype the labeled argument's value; the row label is ``event/argument[/subtype]``.

With ``event_argument_by == "type"`` (sdoh) the event type is the trigger's label and an argument's
name its entity label (role names ignored, as brat_scoring does); with ``"role"`` the event type is
the event's label and the argument name its role, and the entity label must agree too.
"""

from __future__ import annotations

from collections.abc import Collection

from clinie_nemo.core.document import Document, Entity
from clinie_nemo.evaluation.scoring.items import argument_index, span_key
from clinie_nemo.evaluation.scoring.matching import overlaps
from clinie_nemo.evaluation.scoring.rules import RuleSet

# (event type, trigger outer span, trigger exact key, arguments [(name, entity label, span key, value)])
EventItem = tuple[str, tuple[int, int], tuple, list[tuple[str, str, tuple, str | None]]]


def _value(entity: Entity) -> str:
    return ",".join(v for _, v in entity.attributes)


def event_items(doc: Document, rules: RuleSet, labels: Collection[str] | None = None) -> list[EventItem]:
    index = argument_index(doc)
    by_type = rules.event_argument_by == "type"
    items: list[EventItem] = []
    for ev in doc.events:
        trigger = index.get(ev.trigger)
        if trigger is None:
            continue
        event_type = trigger.label if by_type else ev.label
        if labels is not None and event_type not in labels:
            continue
        args = []
        for a in ev.arguments:
            entity = index.get(a.ref)
            if entity is None:
                continue
            name = entity.label if by_type else a.role
            value = _value(entity) if entity.label in rules.labeled_arguments else None
            args.append((name, entity.label, span_key(entity, rules), value))
        items.append((event_type, (trigger.start, trigger.end), span_key(trigger, rules), args))
    return items


def row_label(event: str, argument: str, subtype: str | None) -> str:
    return f"{event}/{argument}" + (f"/{subtype}" if subtype else "")


def _argument_matches(g: tuple, p: tuple) -> bool:
    if g[0] != p[0] or g[1] != p[1]:
        return False
    return g[3] == p[3] if g[3] is not None else g[2] == p[2]


def _add(rows: dict[str, list[int]], label: str, position: int) -> None:
    rows.setdefault(label, [0, 0, 0])[position] += 1


def count_events(gold: list[EventItem], pred: list[EventItem], lenient: bool) -> dict[str, list[int]]:
    """``{row label: [tp, fp, fn]}`` for one document."""
    rows: dict[str, list[int]] = {}
    used = [False] * len(pred)
    for g in gold:
        match = None
        for j, p in enumerate(pred):
            if used[j] or p[0] != g[0]:
                continue
            if (overlaps(g[1], p[1]) if lenient else g[2] == p[2]):
                match = j
                break
        if match is None:
            _add(rows, row_label(g[0], "Trigger", None), 2)
            for name, _, _, value in g[3]:
                _add(rows, row_label(g[0], name, value), 2)
            continue
        used[match] = True
        _add(rows, row_label(g[0], "Trigger", None), 0)
        pred_args = pred[match][3]
        arg_used = [False] * len(pred_args)
        for ga in g[3]:
            hit = next((k for k, pa in enumerate(pred_args) if not arg_used[k] and _argument_matches(ga, pa)), None)
            if hit is None:
                _add(rows, row_label(g[0], ga[0], ga[3]), 2)
            else:
                arg_used[hit] = True
                _add(rows, row_label(g[0], ga[0], ga[3]), 0)
        for k, pa in enumerate(pred_args):
            if not arg_used[k]:
                _add(rows, row_label(g[0], pa[0], pa[3]), 1)
    for j, p in enumerate(pred):
        if not used[j]:
            _add(rows, row_label(p[0], "Trigger", None), 1)
            for name, _, _, value in p[3]:
                _add(rows, row_label(p[0], name, value), 1)
    return rows
