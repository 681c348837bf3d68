"""Small builders for hand-made gold/predicted documents used by the scoring tests."""

from __future__ import annotations

from clinie_nemo.core.document import Document, Entity, Event, EventArgument, Relation

TEXT = "Aspirin 81 mg daily for pain; stop ibuprofen due to rash and hives. Smokes 1 ppd, lives alone."


def ent(eid: str, label: str, *spans: tuple[int, int], attrs: dict[str, str] | None = None) -> Entity:
    return Entity(eid, label, tuple(spans), " ".join(TEXT[s:e] for s, e in spans),
                  tuple(sorted((attrs or {}).items())))


def doc(*anns, doc_id: str = "d1", dataset: str = "") -> Document:
    ents = tuple(a for a in anns if isinstance(a, Entity))
    rels = tuple(a for a in anns if isinstance(a, Relation))
    evs = tuple(a for a in anns if isinstance(a, Event))
    return Document(doc_id, TEXT, dataset=dataset, entities=ents, relations=rels, events=evs)


def rel(rid: str, label: str, head: str, tail: str) -> Relation:
    return Relation(rid, label, head, tail)


def event(eid: str, label: str, trigger: str, *args: tuple[str, str]) -> Event:
    return Event(eid, label, trigger, tuple(EventArgument(role, ref) for role, ref in args))


def counts(result: dict, kind: str, mode: str) -> tuple[int, int, int]:
    c = result[kind][mode]
    return c["tp"], c["fp"], c["fn"]
