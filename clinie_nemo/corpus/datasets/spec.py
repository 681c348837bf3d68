"""What a dataset is: frozen dataclasses describing a corpus's labels, schema, release layout and licence.

A :class:`DatasetSpec` says which reader parses the release, which entity/relation/event labels are
valid (with a short definition each, used later by instruction templates), which (head label, tail label)
pairs each relation allows, which attribute values exist, how the release folder splits into train/test,
which scoring rules apply, and under which licence the data may be used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class AttributeSpec:
    """An attribute (brat A/M line, i2b2 assertion, SDOH value) and the values it may take.

    ``labels``: the entity (or event) labels that may carry it; empty = any label."""

    values: tuple[str, ...]
    labels: frozenset[str] = frozenset()
    definition: str = ""


@dataclass(frozen=True)
class EventTypeSpec:
    """One event type: trigger labels, argument roles (role -> allowed entity labels), required roles."""

    trigger_labels: frozenset[str]
    roles: Mapping[str, frozenset[str]]
    required: frozenset[str] = frozenset()
    definition: str = ""


@dataclass(frozen=True)
class EventSchema:
    types: Mapping[str, EventTypeSpec]


@dataclass(frozen=True)
class SplitSource:
    """Where one split lives in a release: candidate paths relative to the release folder (the first
    that exists is used), and extra reader options for it (e.g. RadGraph's labeler for test)."""

    split: str
    candidates: tuple[str, ...]
    required: bool = True
    reader_options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ReleaseLayout:
    splits: tuple[SplitSource, ...]
    note: str = ""  # how the official release is organised, for humans

    def split_names(self) -> tuple[str, ...]:
        return tuple(s.split for s in self.splits)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    reader: str  # a key of clinie_nemo.corpus.readers.READERS: i2b2, brat, radgraph
    description: str
    entity_labels: Mapping[str, str]  # label -> short definition
    relation_labels: Mapping[str, str]  # label -> short definition
    relation_pairs: Mapping[str, frozenset[tuple[str, str]]]  # relation -> allowed (head, tail) labels
    events: EventSchema | None
    attributes: Mapping[str, AttributeSpec]
    scoring: str  # i2b2_2010, n2c2_2018, sdoh, radgraph, default
    layout: ReleaseLayout
    licence: str
    needs_dua: bool = True

    def allowed_pairs(self, relation: str) -> frozenset[tuple[str, str]]:
        return self.relation_pairs.get(relation, frozenset())

    def summary(self) -> str:
        """One paragraph for humans: labels and licence (no data)."""
        parts = [f"{self.name} ({self.reader} reader, scoring {self.scoring}): {self.description}",
                 f"  entities: {', '.join(self.entity_labels)}"]
        if self.relation_labels:
            parts.append(f"  relations: {', '.join(self.relation_labels)}")
        if self.events:
            parts.append(f"  events: {', '.join(self.events.types)}")
        parts.append(f"  splits: {', '.join(self.layout.split_names())}")
        parts.append(f"  licence: {self.licence}")
        return "\n".join(parts)


def pairs(*items: tuple[str, str]) -> frozenset[tuple[str, str]]:
    return frozenset(items)


def cross(heads: tuple[str, ...] | list[str], tails: tuple[str, ...] | list[str]) -> frozenset[tuple[str, str]]:
    """Every (head, tail) combination."""
    return frozenset((h, t) for h in heads for t in tails)
