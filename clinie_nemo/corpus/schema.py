"""The label schema rendering needs: entity/relation labels with definitions, allowed relation pairs,
event types with their argument roles, and which attribute names belong to events.

The one place a schema is resolved: :func:`resolve_schema` (render, mixing and decoding all ask it) gives
a registered dataset's schema or a user's brat schema file (:func:`schema_for_dataset`), merged with what
the documents show, or for documents of no registered dataset the labels collected from the documents
themselves (:func:`schema_from_documents`, definitions left empty). Role relations (event trigger ->
argument) are how events appear in targets; see :mod:`clinie_nemo.instruct.target`.

Imports: core, corpus.datasets (the registry). Imported by: instruct (render, target, tasks), commands.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from clinie_nemo.core.document import Document
from clinie_nemo.core.errors import unknown_name

Pair = tuple[str, str, str]  # (relation label, head entity label, tail entity label)


@dataclass(frozen=True)
class TaskSchema:
    name: str
    entity_labels: tuple[tuple[str, str], ...]  # (label, definition), in schema order
    relation_labels: tuple[tuple[str, str], ...] = ()
    relation_pairs: tuple[Pair, ...] = ()  # plain relations
    event_labels: tuple[str, ...] = ()  # event types (= trigger labels)
    role_pairs: tuple[Pair, ...] = ()  # (role, trigger label, argument label)
    event_attribute_keys: frozenset[str] = frozenset()

    @property
    def entity_names(self) -> tuple[str, ...]:
        return tuple(label for label, _ in self.entity_labels)

    @property
    def relation_names(self) -> tuple[str, ...]:
        names = [label for label, _ in self.relation_labels]
        names += sorted({role for role, _, _ in self.role_pairs} - set(names))
        return tuple(names)

    def candidate_pairs(self) -> tuple[Pair, ...]:
        """Every (label, head label, tail label) a relation or an event role may join, sorted."""
        return tuple(sorted(set(self.relation_pairs) | set(self.role_pairs)))

    def restrict_entities(self, labels: Iterable[str]) -> TaskSchema:
        """Only ``labels`` (unknown ones fail listing the valid labels)."""
        wanted = list(labels)
        known = dict(self.entity_labels)
        for label in wanted:
            if label not in known:
                raise unknown_name("entity label", label, known)
        return TaskSchema(self.name, tuple((lb, known[lb]) for lb in wanted), self.relation_labels,
                          self.relation_pairs, self.event_labels, self.role_pairs, self.event_attribute_keys)


def _pairs_from_mapping(mapping: Mapping[str, Iterable[tuple[str, str]]]) -> tuple[Pair, ...]:
    return tuple(sorted((rel, h, t) for rel, hts in mapping.items() for h, t in hts))


def schema_for_dataset(name: str) -> TaskSchema:
    """The schema of a registered dataset, or of a user's brat schema file given as ``brat:PATH``
    (``clinie_nemo.corpus.datasets.resolve``: labels with their definitions, pairs, events)."""
    from clinie_nemo.corpus import datasets  # loaded on first use: it reads the example schema file

    spec = datasets.resolve(name)
    event_labels: list[str] = []
    roles: set[Pair] = set()
    if spec.events is not None:
        for ev_label, ev in spec.events.types.items():
            event_labels.append(ev_label)
            for trigger in ev.trigger_labels:
                for role, arg_labels in ev.roles.items():
                    roles.update((role, trigger, a) for a in arg_labels)
    event_keys = frozenset(k for k, a in spec.attributes.items()
                           if a.labels and a.labels <= set(event_labels))
    return TaskSchema(
        name=spec.name,
        entity_labels=tuple(spec.entity_labels.items()),
        relation_labels=tuple(spec.relation_labels.items()),
        relation_pairs=_pairs_from_mapping(spec.relation_pairs),
        event_labels=tuple(event_labels),
        role_pairs=tuple(sorted(roles)),
        event_attribute_keys=event_keys,
    )


def schema_from_documents(docs: Iterable[Document], name: str = "documents") -> TaskSchema:
    """Labels, pairs and roles seen in ``docs`` (sorted; definitions empty)."""
    entity_labels: set[str] = set()
    relation_labels: set[str] = set()
    pairs: set[Pair] = set()
    event_labels: set[str] = set()
    roles: set[Pair] = set()
    event_keys: set[str] = set()
    for doc in docs:
        by_id = doc.entity_index()
        events = {ev.id: ev for ev in doc.events}
        entity_labels.update(e.label for e in doc.entities)
        for r in doc.relations:
            relation_labels.add(r.label)
            if r.head in by_id and r.tail in by_id:
                pairs.add((r.label, by_id[r.head].label, by_id[r.tail].label))
        for ev in doc.events:
            event_labels.add(ev.label)
            event_keys.update(k for k, _ in ev.attributes)
            trigger = by_id.get(ev.trigger)
            for arg in ev.arguments:
                target = by_id.get(arg.ref) or (by_id.get(events[arg.ref].trigger) if arg.ref in events else None)
                if trigger is not None and target is not None:
                    roles.add((arg.role, trigger.label, target.label))
    return TaskSchema(
        name=name,
        entity_labels=tuple((lb, "") for lb in sorted(entity_labels)),
        relation_labels=tuple((lb, "") for lb in sorted(relation_labels)),
        relation_pairs=tuple(sorted(pairs)),
        event_labels=tuple(sorted(event_labels)),
        role_pairs=tuple(sorted(roles)),
        event_attribute_keys=frozenset(event_keys),
    )


def merged(base: TaskSchema, observed: TaskSchema) -> TaskSchema:
    """``base`` (a dataset's schema) plus pairs and roles only seen in the documents; labels stay the
    dataset's (documents' labels outside it are counted as losses, not added)."""
    return TaskSchema(base.name, base.entity_labels, base.relation_labels,
                      tuple(sorted(set(base.relation_pairs) | set(observed.relation_pairs))),
                      base.event_labels or observed.event_labels,
                      tuple(sorted(set(base.role_pairs) | set(observed.role_pairs))),
                      base.event_attribute_keys | observed.event_attribute_keys)


def is_registered(name: str) -> bool:
    """A registered dataset, or a user's brat schema file named ``brat:PATH``."""
    from clinie_nemo.corpus import datasets

    return name in datasets.DATASETS or name.startswith(datasets.USER_BRAT_PREFIX)


def user_schema(path: str) -> str:
    """``brat:/absolute/path.yaml``: how records name a user's schema file (decoding reads it back)."""
    from clinie_nemo.corpus.datasets import USER_BRAT_PREFIX

    path = path[len(USER_BRAT_PREFIX):] if path.startswith(USER_BRAT_PREFIX) else path
    return USER_BRAT_PREFIX + str(Path(path).resolve())


def documents_dataset(docs: Sequence[Document]) -> str | None:
    """The one dataset every document names, else None."""
    names = {d.dataset for d in docs}
    return names.pop() if len(names) == 1 and "" not in names else None


def resolve_schema(docs: Sequence[Document], dataset: str | None = None, schema_file: str | None = None,
                   *, strict: bool = False) -> TaskSchema:
    """The schema for ``docs``: the user's brat ``schema_file`` when given, else ``dataset`` when registered
    (or ``brat:PATH``), each merged with the pairs and roles seen in ``docs``; otherwise the labels of
    ``docs`` alone, named ``dataset`` (or "documents"). ``strict``: an unregistered ``dataset`` fails
    listing the valid names instead."""
    name = user_schema(schema_file) if schema_file else dataset
    observed = schema_from_documents(docs, name or "documents")
    if name and is_registered(name):
        return merged(schema_for_dataset(name), observed)
    if strict and name:
        schema_for_dataset(name)  # raises the unknown-dataset error with the valid names
    return observed
