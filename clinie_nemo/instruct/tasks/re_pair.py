"""``re_pair`` task: relation classification for one marked candidate pair of gold entities.

Candidates: every ordered pair (head, tail) of entities in a chunk whose labels a relation or an event
role of the schema allows (``TaskSchema.candidate_pairs``), within ``pair_window_chars`` characters and
``pair_window_sentences`` sentences when those are set. The head is marked ``[E1]...[/E1]`` and the tail
``[E2]...[/E2]`` in the prompt text (outer span of a discontinuous mention); the answer is the relation
label or ``none``. Negatives are all kept, or ``round(negative_ratio * positives)`` of them per chunk are
sampled with a seeded RNG. Event roles appear as relations labelled by the role, trigger -> argument.
Gold relations that are no candidate are counted by cause.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from types import ModuleType
from typing import Any

from clinie_nemo.core.document import Entity, Relation
from clinie_nemo.corpus.schema import TaskSchema
from clinie_nemo.instruct.chunking import sentence_index
from clinie_nemo.instruct.formats import NONE_ANSWER
from clinie_nemo.instruct.target import Annotations, ChunkView, entity_order
from clinie_nemo.instruct.tasks.base import TaskItem, TaskOptions

NAME = "re_pair"
WITH_RELATIONS = True
MARKERS = ("[E1]", "[/E1]", "[E2]", "[/E2]")
OUTPUT = "answer"  # one relation label or "none"
SCORES = ("relations", "relations_untyped", "events")  # the entities are the gold ones, copied
MERGES_EVENTS = True
HEADLINE = {"relations": 0, "events": 1}


def describe(fmt: ModuleType) -> str:
    return fmt.describe_answer()


def record_problem(record: dict[str, Any]) -> str | None:
    """A re_pair record names its candidate pair; without it an answer cannot be placed."""
    pair = record.get("pair")
    return None if isinstance(pair, list) and len(pair) == 2 else 're_pair record without "pair": [head_id, tail_id]'


def longest_output(view: ChunkView, schema: TaskSchema, fmt: ModuleType, options: TaskOptions,
                   count: Callable[[str], int]) -> int:
    """Tokens of the longest answer: any relation label of the schema, or none."""
    return max(count(fmt.encode_answer(r)) for r in (*schema.relation_names, NONE_ANSWER))


def gold_pairs(view: ChunkView) -> list[tuple[str, str, str]]:
    """(label, head entity id, tail entity id) of the chunk's relations and event roles."""
    out = [(r.label, r.head, r.tail) for r in view.relations]
    trigger_of = {ev.id: ev.trigger for ev in view.events}
    for ev in view.events:
        out += [(a.role, ev.trigger, trigger_of.get(a.ref, a.ref)) for a in ev.arguments]
    return out


def mark_pair(view: ChunkView, head: Entity, tail: Entity) -> str:
    """The chunk text with the pair markers inserted (closing before opening at one offset)."""
    marks = [(head.start, 1, -(head.end - head.start), 0, MARKERS[0]), (head.end, 0, 0, 1, MARKERS[1]),
             (tail.start, 1, -(tail.end - tail.start), 1, MARKERS[2]), (tail.end, 0, 0, 0, MARKERS[3])]
    text, out, pos = view.text, [], view.start
    for at, *_, mark in sorted(marks):
        out.append(text[pos - view.start:at - view.start])
        out.append(mark)
        pos = at
    out.append(text[pos - view.start:])
    return "".join(out)


def candidates(view: ChunkView, schema: TaskSchema, options: TaskOptions) -> tuple[list[tuple[Entity, Entity]], Counter[str]]:
    allowed = {(h, t) for _, h, t in schema.candidate_pairs()}
    sentence_of = sentence_index(view.doc.text)
    known = set(schema.entity_names)
    entities = sorted((e for e in view.entities if e.label in known), key=entity_order)
    by_id = {e.id: e for e in entities}
    all_ids = {e.id for e in view.entities}
    losses: Counter[str] = Counter()

    def in_window(h: Entity, t: Entity) -> bool:
        if options.pair_window_chars is not None and \
                max(h.start, t.start) - min(h.end, t.end) > options.pair_window_chars:
            return False
        return options.pair_window_sentences is None or \
            abs(sentence_of(h.start) - sentence_of(t.start)) <= options.pair_window_sentences

    pairs = [(h, t) for h in entities for t in entities
             if h.id != t.id and (h.label, t.label) in allowed and in_window(h, t)]
    for _, head, tail in gold_pairs(view):
        h, t = by_id.get(head), by_id.get(tail)
        if h is None or t is None:
            in_chunk = head in all_ids and tail in all_ids
            losses["pair_label_not_in_schema" if in_chunk else "pair_argument_not_an_entity"] += 1
        elif (h.label, t.label) not in allowed:
            losses["pair_labels_not_allowed_by_schema"] += 1
        elif not in_window(h, t):
            losses["pair_outside_window"] += 1
    return pairs, losses


def items(view: ChunkView, schema: TaskSchema, fmt: ModuleType,
          options: TaskOptions) -> tuple[list[TaskItem], Counter[str]]:
    pairs, losses = candidates(view, schema, options)
    labels: dict[tuple[str, str], str] = {}
    for label, head, tail in sorted(gold_pairs(view)):
        if (head, tail) in labels:
            losses["pair_has_several_labels"] += 1
        else:
            labels[(head, tail)] = label
    positives = [p for p in pairs if (p[0].id, p[1].id) in labels]
    negatives = [p for p in pairs if (p[0].id, p[1].id) not in labels]
    if options.negative_ratio is not None:
        keep = min(len(negatives), round(options.negative_ratio * len(positives)))
        rng = random.Random(f"{options.seed}/{view.doc.id}/{view.index}")
        chosen = set(rng.sample(range(len(negatives)), keep))
        negatives = [p for k, p in enumerate(negatives) if k in chosen]
    keep_set = {(h.id, t.id) for h, t in positives + negatives}
    out = [TaskItem(f"/{h.id}-{t.id}", mark_pair(view, h, t),
                    fmt.encode_answer(labels.get((h.id, t.id), NONE_ANSWER)), schema.entity_names,
                    {"pair": [h.id, t.id]})
           for h, t in pairs if (h.id, t.id) in keep_set]
    return out, losses


def gold(view: ChunkView, schema: TaskSchema, options: TaskOptions) -> Annotations:
    return Annotations(relations=tuple(Relation(f"g{k}", label, h, t)
                                       for k, (label, h, t) in enumerate(gold_pairs(view))))


def decode(output: str, view: ChunkView, extras: dict[str, Any], schema: TaskSchema, fmt: ModuleType,
           id_prefix: str) -> tuple[Annotations, Counter[str]]:
    label = fmt.decode_answer(output, labels=schema.relation_names)
    if label == NONE_ANSWER:
        return Annotations(), Counter()
    head, tail = extras["pair"]
    return Annotations(relations=(Relation(f"{id_prefix}R1", label, head, tail),)), Counter()
