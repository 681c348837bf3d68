"""Relation extraction as classification of marked candidate entity pairs: the data layer of the encoder arm.

Pure Python (no torch/transformers): the engine tokenizes :attr:`Marked.text` and maps token offsets back
with :meth:`Marked.to_original`.

- :func:`candidates`: ordered (head, tail) pairs among the given entities (gold ones, or predicted ones for
  end-to-end RE), kept when the schema allows a relation or an event role from the head's label to the
  tail's label (``TaskSchema.candidate_pairs``) and the pair lies inside the :class:`Window`. Relations are
  DIRECTED in every dataset and scorer of the project: for two entity types A != B only the schema's
  direction is a candidate; for a same-type pair (i2b2 PIP problem-problem, RadGraph modify) both orders
  are candidates, and the reverse of a gold relation is a ``no_relation`` example. Entity order:
  ``target.entity_order`` (start, longer first); candidate order: head-major in that order.
- Gold labels: each candidate gets the label of the gold relation (or event role, trigger -> argument, an
  argument that is an event standing for its trigger) joining it, else :data:`NO_RELATION`. Given
  predicted entities, a gold argument is found by exact (label, spans) match. Gold relations that are no
  candidate are counted by cause: ``argument_missing`` (not among the entities / not predicted exactly),
  ``argument_label_not_in_schema``, ``types_not_allowed`` (no relation of the schema joins these labels in
  this direction), ``outside_window``, ``self_relation``, ``several_labels`` (a pair with two gold labels:
  the first, sorted, is kept), ``duplicate``. ``label_outside_schema`` counts covered relations whose own
  label the schema does not list for their types (another label does): they keep their gold label.
- Window: ``chars`` bounds the gap between the two mentions (outer spans: ``max(starts) - min(ends)``,
  negative when they overlap), ``sentences`` bounds the difference of the sentence numbers of their starts
  (``chunking.sentence_index``; 0 = same sentence). ``None`` = unlimited.
- :func:`mark`: the text around the pair (``context`` characters either side, cut at whitespace), with
  ``[E1]...[/E1]`` around the head and ``[E2]...[/E2]`` around the tail (typed: ``[E1:Drug]...[/E1:Drug]``),
  no spaces added. A discontinuous mention is marked around its OUTER span (gap text included). Markers
  at one offset: closing before opening (adjacent mentions give ``[/E1][E2]``); nested or identical
  mentions are marked outer-first (the longer mention opens first and closes last; with equal spans the
  head is outer); crossing overlaps keep their markers at their offsets (``[E1]a[E2]b[/E1]c[/E2]``). No
  pair is skipped; :class:`PairStats` counts the overlapping ones.
- :func:`pair_examples`: the marked examples of many documents and their coverage (:class:`PairStats`:
  the recall ceiling of pair classification, like the BIO ceiling of token classification).
- :func:`pairs_to_relations`: predicted labels back to ``Relation`` objects (role labels included; turn
  those into events with ``target.assemble_events``).

Imports: core, corpus.schema, instruct.chunking, instruct.target. Imported by: engines (encoder arm).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from clinie_nemo.core.document import Document, Entity, Relation
from clinie_nemo.corpus.schema import TaskSchema
from clinie_nemo.instruct.chunking import sentence_index
from clinie_nemo.instruct.target import entity_order

NO_RELATION = "no_relation"
DEFAULT_CONTEXT = 200  # characters of text kept either side of the pair by mark()


@dataclass(frozen=True)
class Window:
    """Which pairs are candidates: ``chars`` = max gap in characters between the two mentions, ``sentences``
    = max sentence distance (0 = same sentence); None = no limit."""

    chars: int | None = None
    sentences: int | None = None


UNLIMITED = Window()
DEFAULT_WINDOW = Window(chars=None, sentences=1)  # the pair's sentence and the next/previous one


@dataclass(frozen=True)
class Candidate:
    head: Entity
    tail: Entity
    label: str | None  # gold label or NO_RELATION; None when unlabelled (prediction time)
    allowed: tuple[str, ...]  # the labels the schema allows for (head label, tail label), sorted

    @property
    def key(self) -> tuple[str, str]:
        return self.head.id, self.tail.id


def labels(schema: TaskSchema, roles: bool = True) -> tuple[str, ...]:
    """The classifier's label set: NO_RELATION first, then the relation (and role) labels."""
    names = [lb for lb, _ in schema.relation_labels]
    if roles:
        names += sorted({role for role, _, _ in schema.role_pairs} - set(names))
    return (NO_RELATION, *names)


def allowed_labels(schema: TaskSchema, roles: bool = True) -> dict[tuple[str, str], tuple[str, ...]]:
    """(head label, tail label) -> the relation (and role) labels the schema allows between them."""
    triples = set(schema.relation_pairs) | (set(schema.role_pairs) if roles else set())
    out: dict[tuple[str, str], set[str]] = {}
    for label, head, tail in triples:
        out.setdefault((head, tail), set()).add(label)
    return {k: tuple(sorted(v)) for k, v in out.items()}


def gold_triples(doc: Document, roles: bool = True) -> list[tuple[str, str, str]]:
    """(label, head id, tail id) of the document's relations and (``roles``) event roles, trigger ->
    argument, an event argument standing for that event's trigger."""
    out = [(r.label, r.head, r.tail) for r in doc.relations]
    if roles:
        trigger_of = {ev.id: ev.trigger for ev in doc.events}
        out += [(a.role, ev.trigger, trigger_of.get(a.ref, a.ref)) for ev in doc.events for a in ev.arguments]
    return out


def overlaps(a: Entity, b: Entity) -> bool:
    """Their outer spans share a character."""
    return a.start < b.end and b.start < a.end


class _WindowTest:
    def __init__(self, text: str, window: Window) -> None:
        self.window = window
        self.sentence_of = sentence_index(text) if window.sentences is not None else None

    def __call__(self, h: Entity, t: Entity) -> bool:
        if self.window.chars is not None and max(h.start, t.start) - min(h.end, t.end) > self.window.chars:
            return False
        return self.sentence_of is None or \
            abs(self.sentence_of(h.start) - self.sentence_of(t.start)) <= (self.window.sentences or 0)


def _gold_labels(doc: Document, entities: Sequence[Entity] | None, known: set[str], allowed: Mapping[tuple[str, str], Any],
                 in_window: _WindowTest, roles: bool) -> tuple[dict[tuple[str, str], str], Counter[str]]:
    """(head id, tail id) of ``entities`` -> gold label, and the gold relations that are no candidate."""
    gold_entities = doc.entity_index()
    mine = {(e.label, e.spans): e for e in entities} if entities is not None else {}

    def find(ref: str) -> Entity | None:  # gold: by id; predicted: by exact (label, spans)
        gold = gold_entities.get(ref)
        return gold if entities is None or gold is None else mine.get((gold.label, gold.spans))

    losses: Counter[str] = Counter()
    out: dict[tuple[str, str], str] = {}
    seen: set[tuple[str, str, str]] = set()
    for label, head, tail in sorted(gold_triples(doc, roles)):
        losses["gold"] += 1
        if (label, head, tail) in seen:
            losses["duplicate"] += 1
            continue
        seen.add((label, head, tail))
        h, t = find(head), find(tail)
        if head == tail:
            losses["self_relation"] += 1
        elif h is None or t is None:
            losses["argument_missing"] += 1
        elif h.label not in known or t.label not in known:
            losses["argument_label_not_in_schema"] += 1
        elif (h.label, t.label) not in allowed:
            losses["types_not_allowed"] += 1
        elif not in_window(h, t):
            losses["outside_window"] += 1
        elif (h.id, t.id) in out:
            losses["several_labels"] += 1
        else:
            out[(h.id, t.id)] = label
            losses["covered"] += 1
            if label not in allowed[(h.label, t.label)]:
                losses["label_outside_schema"] += 1
    return out, losses


def candidates(doc: Document, entities: Sequence[Entity] | None, schema: TaskSchema, window: Window = DEFAULT_WINDOW,
               *, labelled: bool = True, roles: bool = True,
               losses: Counter[str] | None = None) -> list[Candidate]:
    """The ordered candidate pairs among ``entities`` (None: the document's gold entities), each with its
    gold label from ``doc`` (or NO_RELATION) when ``labelled``. ``roles``: event roles are candidates too.
    The gold relations that are no candidate are added by cause to ``losses`` when given (with ``gold``
    and ``covered`` counts)."""
    allowed = allowed_labels(schema, roles)
    known = set(schema.entity_names)
    ents = sorted((e for e in (doc.entities if entities is None else entities) if e.label in known), key=entity_order)
    in_window = _WindowTest(doc.text, window)
    gold: dict[tuple[str, str], str] = {}
    if labelled:
        gold, lost = _gold_labels(doc, entities, known, allowed, in_window, roles)
        if losses is not None:
            losses.update(lost)
    out = []
    for h in ents:
        for t in ents:
            if h.id != t.id and (h.label, t.label) in allowed and in_window(h, t):
                label = gold.get((h.id, t.id), NO_RELATION) if labelled else None
                out.append(Candidate(h, t, label, allowed[(h.label, t.label)]))
    return out


# ------------------------------------------------------------------------------------------------ markers


@dataclass(frozen=True)
class Marked:
    """A marked window of a note. ``start``/``end``: the window in the original text; ``marks``: (offset in
    ``text``, length) of each inserted marker, in order. ``head_at``/``tail_at``: where ``[E1`` / ``[E2``
    open in ``text`` (for entity-start pooling)."""

    text: str
    start: int
    end: int
    marks: tuple[tuple[int, int], ...]
    head_at: int
    tail_at: int

    def to_original(self, i: int) -> int | None:
        """The original offset of character ``i`` of ``text``; None inside a marker. ``i == len(text)``
        maps to ``end``."""
        if not 0 <= i <= len(self.text):
            raise IndexError(f"offset {i} outside the marked text (length {len(self.text)})")
        shift = 0
        for at, length in self.marks:
            if i < at:
                break
            if i < at + length:
                return None
            shift += length
        return self.start + i - shift

    def offset_map(self) -> list[int | None]:
        """``to_original`` of every character of ``text``."""
        out: list[int | None] = []
        pos, orig = 0, self.start
        for at, length in self.marks:
            out += range(orig, orig + at - pos)
            orig += at - pos
            out += [None] * length
            pos = at + length
        out += range(orig, orig + len(self.text) - pos)
        return out

    def to_marked(self, offset: int) -> int:
        """Where original ``offset`` (inside the window) lands in ``text`` (after markers at that offset)."""
        if not self.start <= offset <= self.end:
            raise IndexError(f"offset {offset} outside the window {self.start}-{self.end}")
        i, shift = offset - self.start, 0
        for at, length in self.marks:
            if at - shift > i:
                break
            shift += length
        return i + shift


def marker_strings(entity_labels: Iterable[str] = (), typed: bool = False) -> tuple[str, ...]:
    """Every marker string (to add to a tokenizer as special tokens)."""
    if not typed:
        return "[E1]", "[/E1]", "[E2]", "[/E2]"
    return tuple(f"[{k}:{lb}]" for lb in entity_labels for k in ("E1", "/E1", "E2", "/E2"))


def _context_window(text: str, lo: int, hi: int, context: int | None) -> tuple[int, int]:
    if context is None:
        return 0, len(text)
    start, end = max(0, lo - context), min(len(text), hi + context)
    if start > 0 and not text[start - 1].isspace():  # do not start mid-word
        while start < lo and not text[start - 1].isspace():
            start += 1
    if end < len(text) and not text[end].isspace():  # do not end mid-word
        while end > hi and not text[end].isspace():
            end -= 1
    return start, end


def mark(text: str, head: Entity, tail: Entity, typed: bool = False, context: int | None = DEFAULT_CONTEXT) -> Marked:
    """``text`` around the pair (``context`` characters either side, None = all) with the pair's markers
    (see the module docstring for order, nesting and discontinuous mentions)."""
    tags = []
    for rank, (e, name) in enumerate(((head, "E1"), (tail, "E2"))):
        suffix = f":{e.label}" if typed else ""
        tags.append(((e.start, 1, -e.end, rank), f"[{name}{suffix}]", rank))  # openers: outer (longer) first
        tags.append(((e.end, 0, -e.start, -rank), f"[/{name}{suffix}]", None))  # closers first; inner first
    tags.sort()
    start, end = _context_window(text, min(head.start, tail.start), max(head.end, tail.end), context)
    out, marks, pos, length = [], [], start, 0
    opened = {}
    for (at, *_), tag, rank in tags:
        out.append(text[pos:at])
        length += at - pos
        if rank is not None:
            opened[rank] = length
        marks.append((length, len(tag)))
        out.append(tag)
        length += len(tag)
        pos = at
    out.append(text[pos:end])
    return Marked("".join(out), start, end, tuple(marks), opened[0], opened[1])


# -------------------------------------------------------------------------------------------- examples


@dataclass(frozen=True)
class PairExample:
    doc_id: str
    head: str  # entity id
    tail: str
    marked: Marked
    label: str | None
    allowed: tuple[str, ...]

    @property
    def text(self) -> str:
        return self.marked.text


@dataclass
class PairStats:
    """Coverage of the gold relations by the candidates (the recall ceiling of pair classification)."""

    documents: int = 0
    losses: Counter[str] = field(default_factory=Counter)  # gold, covered, then one count per cause
    candidates_per_doc: list[int] = field(default_factory=list)
    positives: int = 0
    negatives: int = 0
    overlapping: int = 0  # candidates whose mentions overlap (marked outer-first)

    @property
    def ceiling(self) -> float:
        gold = self.losses["gold"] - self.losses["duplicate"]
        return self.losses["covered"] / gold if gold else 1.0

    def to_json(self) -> dict[str, Any]:
        per_doc = self.candidates_per_doc
        return {
            "documents": self.documents,
            "gold_relations": self.losses["gold"],
            "covered": self.losses["covered"],
            "recall_ceiling": round(self.ceiling, 4),
            "lost": {k: v for k, v in sorted(self.losses.items()) if k not in ("gold", "covered")},
            "candidates": sum(per_doc),
            "candidates_per_doc": {"min": min(per_doc, default=0), "mean": round(sum(per_doc) / max(1, len(per_doc)), 2),
                                   "max": max(per_doc, default=0)},
            "positives": self.positives,
            "negatives": self.negatives,
            "negatives_per_positive": round(self.negatives / self.positives, 2) if self.positives else None,
            "overlapping_candidates": self.overlapping,
        }


def pair_examples(docs: Iterable[Document], schema: TaskSchema, window: Window = DEFAULT_WINDOW, typed: bool = False,
                  *, entities: Mapping[str, Sequence[Entity]] | None = None, labelled: bool = True, roles: bool = True,
                  context: int | None = DEFAULT_CONTEXT) -> tuple[list[PairExample], PairStats]:
    """The marked candidate pairs of ``docs`` and their coverage. ``entities``: doc id -> predicted entities
    (end-to-end RE; a document not in it has none); None = the gold entities."""
    examples: list[PairExample] = []
    stats = PairStats()
    for doc in docs:
        ents = None if entities is None else entities.get(doc.id, ())
        found = candidates(doc, ents, schema, window, labelled=labelled, roles=roles, losses=stats.losses)
        stats.documents += 1
        stats.candidates_per_doc.append(len(found))
        for c in found:
            if c.label is not None:
                if c.label == NO_RELATION:
                    stats.negatives += 1
                else:
                    stats.positives += 1
            stats.overlapping += overlaps(c.head, c.tail)
            examples.append(PairExample(doc.id, c.head.id, c.tail.id, mark(doc.text, c.head, c.tail, typed, context),
                                        c.label, c.allowed))
    return examples, stats


def pairs_to_relations(doc: Document, entities: Sequence[Entity],
                       predicted_labels: Mapping[tuple[str, str], str] | Iterable[tuple[str, str, str]],
                       id_prefix: str = "") -> tuple[Relation, ...]:
    """Relations for the predicted labels (``{(head id, tail id): label}`` or (head id, tail id, label)
    triples); NO_RELATION is dropped. Ids ``{id_prefix}R1..`` in entity order (head, then tail)."""
    items = predicted_labels.items() if isinstance(predicted_labels, Mapping) else \
        (((h, t), lb) for h, t, lb in predicted_labels)
    rank = {e.id: k for k, e in enumerate(sorted(entities, key=entity_order))}
    kept = []
    for (head, tail), label in items:
        for ref in (head, tail):
            if ref not in rank:
                raise ValueError(f"document {doc.id}: predicted pair names entity {ref!r}, not among its entities")
        if label != NO_RELATION:
            kept.append((rank[head], rank[tail], label, head, tail))
    kept.sort()
    return tuple(Relation(f"{id_prefix}R{k + 1}", label, head, tail)
                 for k, (_, _, label, head, tail) in enumerate(kept))

