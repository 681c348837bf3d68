"""Parsing one generated prediction into annotations with document offsets, counting every failure.

Chain: clean (fences) -> decode (per format, see decode.py) -> map labels onto the schema -> place each
mention in the record's chunk (whole tokens first: exact, case-insensitive, whitespace-normalised; then
inside words; see place.py) -> shift by the chunk start.
Causes of a prediction that cannot be placed: ``unparseable`` (output or element unreadable),
``invalid_label``, ``mention_not_in_text``, ``ambiguous_occurrence``, ``truncated_output`` (the engine
stopped at its token limit, or JSON had to be cut back: the cut-off tail is lost), and
``relation_argument_unplaced`` (a relation whose head or tail mention was not placed; counted only when
it happens, it is not one of ``CAUSES``).

Every predicted element that was said but not placed is also kept in ``RecordParse.unplaced`` as
``(what, label or None, cause)``: evaluation scores each as a false positive (see ``merge.add_unplaced``).
A whole unreadable output is one such element; a missing prediction and the cut-off tail of truncated
JSON are none (nothing was said).

Repeats: a mention or relation the answer says more than once (a repeated line, or two lines placed on
the same span) is kept in ``entities`` once, with the times it was said again in ``said_again``;
``relations`` lists a relation once per time said; ``unplaced_repeats`` holds the unplaced ones said
again; all are counted in ``repeated``. The failure table and ``placed`` count each distinct element
once. Whether repeats count as predictions is the rule set's ``duplicates`` (COUNT: each is one more;
SET: once), applied when scoring.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from clinie_nemo.evaluation.parsing.clean import LabelMap, strip_code_fences
from clinie_nemo.evaluation.parsing.decode import DECODERS, Decoded, Link, Mention, decode_answer
from clinie_nemo.evaluation.parsing.place import (
    MATCHERS,
    MENTION_NOT_IN_TEXT,
    PlacementFailure,
    place_mention,
)
from clinie_nemo.instruct import tasks
from clinie_nemo.instruct.formats import FORMATS
from clinie_nemo.instruct.placement import PlacementError, place_exact

CAUSES = ("unparseable", "invalid_label", "mention_not_in_text", "ambiguous_occurrence", "truncated_output")
ARGUMENT_UNPLACED = "relation_argument_unplaced"

# an element said but not placed: ("entity" | "relation", schema label when known, cause)
Unplaced = tuple[str, str | None, str]

# an entity as merge needs it: (label, spans in document offsets, attributes)
EntityKey = tuple[str, tuple[tuple[int, int], ...], tuple[tuple[str, str], ...]]


@dataclass
class RecordParse:
    record_id: str
    doc_id: str
    dataset: str
    task: str
    entities: list[EntityKey] = field(default_factory=list)
    relations: list[tuple[str, EntityKey | str, EntityKey | str]] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    placed: int = 0
    how: Counter[str] = field(default_factory=Counter)  # which placer found each mention
    unplaced: Counter[Unplaced] = field(default_factory=Counter)  # scored as false positives
    said_again: dict[EntityKey, int] = field(default_factory=dict)  # entity -> times said beyond the first
    unplaced_repeats: Counter[Unplaced] = field(default_factory=Counter)  # unplaced elements said again
    repeated: int = 0  # mentions and relations said again in this answer (repeated lines)

    def fail(self, what: str, label: str | None, cause: str, n: int = 1) -> None:
        """Count ``n`` elements that cannot be placed, in the failure table and as unplaced predictions."""
        if n:
            self.failures[cause] += n
            self.unplaced[(what, label, cause)] += n


def _from_target(target: Any) -> Decoded:
    out = Decoded()
    for e in target.entities:
        out.mentions.append(Mention(e.label, tuple((f.text, f.occurrence) for f in e.fragments), e.attributes))
    out.links = [Link(r.label, r.head, r.tail) for r in target.relations]
    return out


def well_formed(decoded: Decoded, chunk: str, entity_labels: LabelMap, relation_labels: LabelMap) -> bool:
    """True when an exact decoding says exactly what rendering would have said: schema labels verbatim,
    every fragment present in the chunk that often, relations between decoded entities."""
    if decoded.answer is not None:
        return decoded.answer == "none" or decoded.answer in relation_labels.labels
    for m in decoded.mentions:
        if m.label not in entity_labels.labels:
            return False
        for t, k in m.fragments:
            try:
                place_exact(chunk, t, k)
            except PlacementError:
                return False
    n = len(decoded.mentions)
    return all(0 <= link.head < n and 0 <= link.tail < n and link.label in relation_labels.labels
               for link in decoded.links)


def decode_prediction(fmt: str, text: str, task: str, chunk: str, entity_labels: LabelMap,
                      relation_labels: LabelMap) -> Decoded:
    """The exact inverse first, kept only when well formed (then it means exactly what rendering meant);
    otherwise the tolerant decoder on the text cleaned of code fences. ValueError when nothing reads it.
    The task's ``OUTPUT`` says what is read: a target of mentions (and relations), or one answer label."""
    if fmt not in DECODERS:
        from clinie_nemo.core.errors import unknown_name

        raise unknown_name("target format", fmt, DECODERS)
    spec = tasks.get(task)
    answer = spec.OUTPUT == "answer"
    exact = FORMATS.get(fmt)
    if exact is not None:
        try:
            if answer:
                decoded = Decoded(answer=exact.decode_answer(text))
            else:
                decoded = _from_target(exact.decode(text, chunk, spec.WITH_RELATIONS, labels=entity_labels.labels))
            if well_formed(decoded, chunk, entity_labels, relation_labels):
                return decoded
        except ValueError:  # formats.DecodeError is a ValueError
            pass
    body = strip_code_fences(text)
    if answer:
        return decode_answer(body)
    return DECODERS[fmt](body, chunk)


def _place(chunk: str, start: int, mention: Mention) -> tuple[tuple[tuple[int, int], ...], str]:
    spans, hows = [], []
    for text, occurrence in mention.fragments:
        (s, e), how = place_mention(chunk, text, occurrence)
        spans.append((start + s, start + e))
        hows.append(how)
    spans.sort()
    if any(a[1] > b[0] for a, b in zip(spans, spans[1:])):
        raise PlacementFailure(MENTION_NOT_IN_TEXT)  # fragments that overlap cannot be one mention
    worst = max(hows, key=list(MATCHERS).index)
    return tuple(spans), worst


def parse_record(record: dict[str, Any], prediction: str, doc_text: str, entity_labels: LabelMap,
                 relation_labels: LabelMap, finish_reason: str | None = None) -> RecordParse:
    task = record.get("task", "ce")
    out = RecordParse(record["id"], record["doc_id"], record.get("dataset", ""), task)
    start, end = record["chunk"]
    chunk = doc_text[start:end]
    answer = tasks.get(task).OUTPUT == "answer"
    what = "relation" if answer else "entity"  # what an unreadable element would have been
    try:
        decoded = decode_prediction(record.get("format", "lines"), prediction, task, chunk, entity_labels,
                                    relation_labels)
    except ValueError:
        out.fail(what, None, "unparseable")
        return out
    out.fail(what, None, "unparseable", decoded.unreadable)
    if finish_reason == "length" or decoded.truncated:
        out.failures["truncated_output"] += 1
        if finish_reason == "length" and not decoded.truncated and decoded.mentions:
            cut = decoded.mentions.pop()  # the last mention may be cut mid-word: not trusted, but it was said
            unplaced = ("entity", entity_labels.get(cut.label), "truncated_output")
            out.unplaced[unplaced] += 1
            out.unplaced_repeats[unplaced] += decoded.repeats.pop(len(decoded.mentions), 0)
    if answer:
        _pair(record, decoded, relation_labels, out)
        return out
    placed: dict[int, EntityKey] = {}
    repeats, said_again = decoded.repeats, out.said_again
    seen: set[EntityKey] = set()
    for i, m in enumerate(decoded.mentions):
        label = entity_labels.get(m.label)
        again = repeats.get(i, 0) if repeats else 0
        if label is None:
            _fail_said(out, "entity", None, "invalid_label", again)
            continue
        try:
            spans, how = _place(chunk, start, m)
        except PlacementFailure as exc:
            _fail_said(out, "entity", label, exc.cause, again)
            continue
        key: EntityKey = (label, spans, m.attributes)
        placed[i] = key
        out.how[how] += 1
        if key in seen:  # another line placed on the same span: the same prediction said again
            again += 1
        else:
            seen.add(key)
            out.entities.append(key)
        if again:
            said_again[key] = said_again.get(key, 0) + again
            out.repeated += again
    out.placed = len(placed)
    said_relations: set[tuple[str, EntityKey, EntityKey]] = set()
    for n, link in enumerate(decoded.links):
        label = relation_labels.get(link.label)
        again = decoded.link_repeats.get(n, 0) if decoded.link_repeats else 0
        if label is None:
            _fail_said(out, "relation", None, "invalid_label", again)
        elif link.head in placed and link.tail in placed:
            relation = (label, placed[link.head], placed[link.tail])
            out.repeated += again + (relation in said_relations)
            said_relations.add(relation)
            out.relations.extend([relation] * (1 + again))
        else:
            _fail_said(out, "relation", label, ARGUMENT_UNPLACED, again)
    return out


def _fail_said(out: RecordParse, what: str, label: str | None, cause: str, again: int) -> None:
    """One element that cannot be placed, said ``1 + again`` times (the failure table counts it once)."""
    out.fail(what, label, cause)
    if again:
        out.unplaced_repeats[(what, label, cause)] += again
        out.repeated += again


def _pair(record: dict[str, Any], decoded: Decoded, relation_labels: LabelMap, out: RecordParse) -> None:
    answer = decoded.answer
    if answer is None:
        if decoded.unreadable == 0:
            out.fail("relation", None, "unparseable")
        return
    if answer.strip().lower() == "none":
        out.placed = 1
        return
    label = relation_labels.get(answer)
    if label is None:
        out.fail("relation", None, "invalid_label")
        return
    head, tail = record["pair"]
    out.relations.append((label, str(head), str(tail)))
    out.placed = 1
