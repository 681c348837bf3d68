"""Round-trip check: gold annotations -> target text -> exact inverse -> the same annotations.

Annotations are compared as multisets of keys: an entity by (label, fragment offsets, attributes), a
relation by (label, head key, tail key), an event by (label, trigger key, sorted (role, argument key),
attributes). Ids do not matter. Results are counts only (no text).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from clinie_nemo.core.document import Entity, Event
from clinie_nemo.instruct.target import Annotations

KINDS = ("entities", "relations", "events")


def annotation_keys(ann: Annotations, doc_entities: dict[str, Entity]) -> dict[str, Counter[Any]]:
    entities = {**doc_entities, **{e.id: e for e in ann.entities}}
    events: dict[str, Event] = {ev.id: ev for ev in ann.events}

    def ref(ref_id: str, depth: int = 0) -> Any:
        if ref_id in entities:
            e = entities[ref_id]
            return ("T", e.label, e.spans)
        if ref_id in events and depth < 8:
            ev = events[ref_id]
            return ("E", ev.label, ref(ev.trigger, depth + 1))
        return ("?", ref_id)

    def argument(ref_id: str) -> Any:  # a relation argument naming an event stands for its trigger (as scored)
        return ref(events[ref_id].trigger) if ref_id in events and ref_id not in entities else ref(ref_id)

    return {
        "entities": Counter((e.label, e.spans, e.attributes) for e in ann.entities),
        "relations": Counter((r.label, argument(r.head), argument(r.tail)) for r in ann.relations),
        "events": Counter((ev.label, ref(ev.trigger), tuple(sorted((a.role, ref(a.ref)) for a in ev.arguments)),
                           ev.attributes) for ev in ann.events),
    }


@dataclass
class RoundTripStats:
    records: int = 0
    chunks: int = 0
    gold: Counter[str] = field(default_factory=Counter)  # kind -> count
    recovered: Counter[str] = field(default_factory=Counter)  # kind -> exactly recovered
    spurious: Counter[str] = field(default_factory=Counter)  # kind -> decoded but not gold
    losses: Counter[str] = field(default_factory=Counter)  # cause -> count (declared by targets/formats)
    failures: Counter[str] = field(default_factory=Counter)  # cause -> count (decode failures)

    def add_chunk(self, gold: Annotations, decoded: Annotations, doc_entities: dict[str, Entity]) -> None:
        self.chunks += 1
        g, d = annotation_keys(gold, doc_entities), annotation_keys(decoded, doc_entities)
        for kind in KINDS:
            self.gold[kind] += sum(g[kind].values())
            self.recovered[kind] += sum((g[kind] & d[kind]).values())
            self.spurious[kind] += sum((d[kind] - g[kind]).values())

    def merge(self, other: RoundTripStats) -> None:
        self.records += other.records
        self.chunks += other.chunks
        for mine, theirs in ((self.gold, other.gold), (self.recovered, other.recovered),
                             (self.spurious, other.spurious), (self.losses, other.losses),
                             (self.failures, other.failures)):
            mine.update(theirs)

    def rate(self, kind: str) -> float:
        return self.recovered[kind] / self.gold[kind] if self.gold[kind] else 1.0

    @property
    def exact(self) -> bool:
        return all(self.recovered[k] == self.gold[k] and not self.spurious[k] for k in KINDS) \
            and not self.failures

    def to_json(self) -> dict[str, Any]:
        return {"records": self.records, "chunks": self.chunks,
                **{k: {"gold": self.gold[k], "recovered": self.recovered[k], "spurious": self.spurious[k]}
                   for k in KINDS},
                "losses": dict(sorted(self.losses.items())), "failures": dict(sorted(self.failures.items()))}

    def lines(self) -> list[str]:
        """Counts for people (no text)."""
        out = [f"round trip: {self.records} records, {self.chunks} chunks"]
        for k in KINDS:
            if self.gold[k] or self.spurious[k]:
                out.append(f"  {k:<10} {self.recovered[k]}/{self.gold[k]} recovered "
                           f"({100 * self.rate(k):.2f}%), {self.spurious[k]} spurious")
        for title, counts in (("losses by cause", self.losses), ("decode failures", self.failures)):
            if counts:
                out.append(f"  {title}:")
                out += [f"    {cause:<44} {n:>7}" for cause, n in sorted(counts.items())]
        return out
