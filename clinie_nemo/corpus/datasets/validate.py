"""Check a document's annotations against a dataset schema; drop the invalid ones for ``--skip-invalid``.

Checks: unknown entity / relation / event labels (the message lists the valid ones), relation
(head label, tail label) pairs the schema does not allow, attribute names and values, event trigger
labels, argument roles, argument labels and required roles. Messages name annotation ids and labels,
never note text.
"""

from __future__ import annotations

from dataclasses import dataclass

from clinie_nemo.core.document import Document
from clinie_nemo.corpus.datasets.spec import DatasetSpec


@dataclass(frozen=True)
class Issue:
    ann_id: str  # the annotation at fault (T3, R2, E1, ...)
    message: str
    attribute: str = ""  # set when the fault is an attribute (brat A/M line) of that annotation


def _valid(names: object) -> str:
    return ", ".join(sorted(names))  # type: ignore[call-overload]


def _check_attributes(ann_id: str, label: str, attributes: tuple[tuple[str, str], ...],
                      spec: DatasetSpec, out: list[Issue]) -> None:
    for name, value in attributes:
        attr = spec.attributes.get(name)
        if attr is None:
            valid = _valid(spec.attributes) or "none"
            out.append(Issue(ann_id, f"unknown attribute {name!r} on {ann_id} ({label}); valid attributes: {valid}",
                             name))
        elif attr.labels and label not in attr.labels:
            out.append(Issue(ann_id, f"attribute {name!r} not allowed on label {label!r} ({ann_id}); "
                                     f"allowed on: {_valid(attr.labels)}", name))
        elif value not in attr.values:
            out.append(Issue(ann_id, f"attribute {name!r} of {ann_id} has unknown value {value!r}; "
                                     f"valid values: {_valid(attr.values)}", name))


def validate_issues(doc: Document, spec: DatasetSpec) -> list[Issue]:
    """Every schema problem of ``doc``, each tied to the annotation id at fault."""
    out: list[Issue] = []
    entity_labels = spec.entity_labels
    labels: dict[str, str] = {}
    for e in doc.entities:
        labels[e.id] = e.label
        if e.label not in entity_labels:
            out.append(Issue(e.id, f"unknown entity label {e.label!r} ({e.id}); "
                                   f"valid labels: {_valid(entity_labels)}"))
        elif e.attributes:
            _check_attributes(e.id, e.label, e.attributes, spec, out)
    for ev in doc.events:
        labels[ev.id] = ev.label
    known = set(entity_labels) | set(spec.events.types if spec.events else ())
    for r in doc.relations:
        if r.label not in spec.relation_labels:
            valid = _valid(spec.relation_labels) or "none (this dataset has no relations)"
            out.append(Issue(r.id, f"unknown relation label {r.label!r} ({r.id}); valid labels: {valid}"))
            continue
        allowed = spec.relation_pairs.get(r.label)
        pair = (labels.get(r.head, "?"), labels.get(r.tail, "?"))
        # an unknown entity label is reported once, on its entity, not again on its relations
        if allowed and pair not in allowed and pair[0] in known and pair[1] in known:
            out.append(Issue(r.id, f"relation {r.id} {r.label} not allowed between {pair[0]} and {pair[1]}; "
                                   f"allowed (head, tail): {_valid(f'{h}->{t}' for h, t in allowed)}"))
    for ev in doc.events:
        if spec.events is None:
            out.append(Issue(ev.id, f"event {ev.id} ({ev.label}) but dataset {spec.name} has no events"))
            continue
        etype = spec.events.types.get(ev.label)
        if etype is None:
            out.append(Issue(ev.id, f"unknown event label {ev.label!r} ({ev.id}); "
                                    f"valid labels: {_valid(spec.events.types)}"))
            continue
        trigger_label = labels.get(ev.trigger, "?")
        if trigger_label not in etype.trigger_labels:
            out.append(Issue(ev.id, f"event {ev.id} {ev.label}: trigger label {trigger_label!r} not allowed; "
                                    f"valid: {_valid(etype.trigger_labels)}"))
        seen = set()
        for arg in ev.arguments:
            role = arg.role.rstrip("0123456789")  # brat numbers repeated roles: Type2
            seen.add(role)
            allowed_labels = etype.roles.get(role)
            if allowed_labels is None:
                out.append(Issue(ev.id, f"event {ev.id} {ev.label}: unknown argument role {arg.role!r}; "
                                        f"valid roles: {_valid(etype.roles)}"))
            elif labels.get(arg.ref, "?") not in allowed_labels:
                out.append(Issue(ev.id, f"event {ev.id} {ev.label}: argument {arg.role}:{arg.ref} has label "
                                        f"{labels.get(arg.ref, '?')!r}; valid: {_valid(allowed_labels)}"))
        missing = sorted(etype.required - seen)
        if missing:
            out.append(Issue(ev.id, f"event {ev.id} {ev.label}: missing required argument(s) {', '.join(missing)}"))
        for name, value in ev.attributes:
            attr = spec.attributes.get(name)
            if attr is None or value not in attr.values:
                out.append(Issue(ev.id, f"event {ev.id}: invalid attribute {name}={value!r}", name))
    return out


def validate(doc: Document, spec: DatasetSpec) -> list[str]:
    """Schema problems of ``doc`` as messages (empty list = valid)."""
    return [issue.message for issue in validate_issues(doc, spec)]


def drop_invalid(doc: Document, issues: list[Issue]) -> tuple[Document, list[str]]:
    """``doc`` without the annotations at fault and without whatever referred to them (relations, events);
    returns the pruned document and the ids dropped."""
    bad = {i.ann_id for i in issues}
    ids_changed = True
    entities, relations, events = doc.entities, doc.relations, doc.events
    while ids_changed:
        entities = tuple(e for e in entities if e.id not in bad)
        alive = {e.id for e in entities} | {ev.id for ev in events if ev.id not in bad}
        before = len(bad)
        for r in relations:
            if r.head not in alive or r.tail not in alive:
                bad.add(r.id)
        for ev in events:
            if ev.trigger not in alive or any(a.ref not in alive for a in ev.arguments):
                bad.add(ev.id)
        relations = tuple(r for r in relations if r.id not in bad)
        events = tuple(ev for ev in events if ev.id not in bad)
        ids_changed = len(bad) != before
    dropped = sorted(bad & ({e.id for e in doc.entities} | {r.id for r in doc.relations} | {e.id for e in doc.events}))
    return doc.with_(entities=entities, relations=relations, events=events), dropped
