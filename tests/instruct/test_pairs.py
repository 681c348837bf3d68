"""Marked-pair relation classification data (clinie_nemo.instruct.pairs): candidates under type and window
filters, markers and their offset maps, gold coverage by cause, and the gold round trip on every synthetic
corpus with relations or event roles."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from clinie_nemo.core.document import Document, Entity, Event, EventArgument, Relation
from clinie_nemo.corpus.schema import TaskSchema, resolve_schema
from clinie_nemo.instruct.pairs import (
    NO_RELATION,
    UNLIMITED,
    Window,
    candidates,
    labels,
    mark,
    marker_strings,
    pair_examples,
    pairs_to_relations,
)
from tests.evaluation.conftest import synthetic_corpora  # noqa: F401  (the fixture)

TEXT = "Aspirin 81 mg daily. Warfarin caused bleeding.\nTylenol 500 mg. Form tablet."
SCHEMA = TaskSchema("t", (("Drug", ""), ("Strength", ""), ("ADE", "")),
                    (("ADE-Drug", ""), ("Strength-Drug", "")),
                    (("ADE-Drug", "ADE", "Drug"), ("Strength-Drug", "Strength", "Drug")))


def ent(eid: str, label: str, mention: str, text: str = TEXT, nth: int = 0) -> Entity:
    start = -1
    for _ in range(nth + 1):
        start = text.index(mention, start + 1)
    return Entity(eid, label, ((start, start + len(mention)),), mention)


ENTITIES = (ent("D1", "Drug", "Aspirin"), ent("S1", "Strength", "81 mg"), ent("D2", "Drug", "Warfarin"),
            ent("A1", "ADE", "bleeding"), ent("D3", "Drug", "Tylenol"), ent("S2", "Strength", "500 mg"),
            ent("X1", "Form", "tablet"))
RELATIONS = (Relation("R1", "Strength-Drug", "S1", "D1"), Relation("R2", "ADE-Drug", "A1", "D2"),
             Relation("R3", "Strength-Drug", "S2", "D1"),  # two sentences apart
             Relation("R4", "ADE-Drug", "D3", "A1"),  # against the schema's direction
             Relation("R5", "ADE-Drug", "A9", "D3"),  # no such entity
             Relation("R6", "Form-Drug", "X1", "D3"),  # Form is not in the schema
             Relation("R7", "Strength-Drug", "S1", "D1"),  # the same as R1
             Relation("R8", "ADE-Drug", "D2", "D2"))
DOC = Document("d1", TEXT, entities=ENTITIES, relations=RELATIONS)


def keys(found) -> set[tuple[str, str]]:
    return {c.key for c in found}


# ------------------------------------------------------------------------------------------------ candidates


def test_candidates_follow_the_schema_direction_and_types():
    found = candidates(DOC, None, SCHEMA, UNLIMITED)
    strengths, ades, drugs = ("S1", "S2"), ("A1",), ("D1", "D2", "D3")
    assert keys(found) == {(h, t) for h in strengths + ades for t in drugs}
    assert len(found) == 9
    starts = [(c.head.start, c.tail.start) for c in found]
    assert starts == sorted(starts)  # head-major in text order
    assert {c.allowed for c in found} == {("Strength-Drug",), ("ADE-Drug",)}


@pytest.mark.parametrize(("window", "expected"), [
    (Window(sentences=0), {("S1", "D1"), ("A1", "D2"), ("S2", "D3")}),
    (Window(sentences=1), {("S1", "D1"), ("S1", "D2"), ("A1", "D1"), ("A1", "D2"), ("A1", "D3"), ("S2", "D2"),
                           ("S2", "D3")}),
    (Window(chars=1), {("S1", "D1"), ("S2", "D3")}),  # one space between them
    (Window(chars=0), set()),
    (Window(chars=30, sentences=0), {("S1", "D1"), ("A1", "D2"), ("S2", "D3")}),
    (Window(chars=20), {("S1", "D1"), ("S1", "D2"), ("A1", "D2"), ("A1", "D3"), ("S2", "D3")}),
])
def test_candidates_within_a_window(window, expected):
    assert keys(candidates(DOC, None, SCHEMA, window)) == expected


def test_same_type_pairs_are_candidates_in_both_orders_and_the_reverse_is_a_negative():
    text = "fever and cough"
    schema = TaskSchema("t", (("problem", ""),), (("PIP", ""),), (("PIP", "problem", "problem"),))
    doc = Document("d", text, entities=(ent("P1", "problem", "fever", text), ent("P2", "problem", "cough", text)),
                   relations=(Relation("R1", "PIP", "P1", "P2"),))
    found = {c.key: c.label for c in candidates(doc, None, schema, UNLIMITED)}
    assert found == {("P1", "P2"): "PIP", ("P2", "P1"): NO_RELATION}


def test_gold_labels_and_losses_by_cause():
    losses: Counter[str] = Counter()
    found = candidates(DOC, None, SCHEMA, Window(sentences=1), losses=losses)
    assert {c.key: c.label for c in found if c.label != NO_RELATION} == {("S1", "D1"): "Strength-Drug",
                                                                          ("A1", "D2"): "ADE-Drug"}
    assert sum(c.label == NO_RELATION for c in found) == 5
    assert losses == Counter(gold=8, covered=2, outside_window=1, types_not_allowed=1, argument_missing=1,
                             argument_label_not_in_schema=1, duplicate=1, self_relation=1)


def test_a_pair_with_two_gold_labels_keeps_the_first_and_counts_the_other():
    schema = TaskSchema("t", SCHEMA.entity_labels, SCHEMA.relation_labels,
                        SCHEMA.relation_pairs + (("ADE-Drug", "Strength", "Drug"),))
    doc = DOC.with_(relations=(Relation("R1", "Strength-Drug", "S1", "D1"), Relation("R2", "ADE-Drug", "S1", "D1")))
    losses: Counter[str] = Counter()
    found = candidates(doc, None, schema, Window(sentences=0), losses=losses)
    assert {c.key: c.label for c in found}[("S1", "D1")] == "ADE-Drug"
    assert losses == Counter(gold=2, covered=1, several_labels=1)


def test_a_label_the_schema_does_not_list_for_the_types_keeps_its_gold_label_and_is_counted():
    doc = DOC.with_(relations=(Relation("R1", "ADE-Drug", "S1", "D1"),))
    losses: Counter[str] = Counter()
    found = candidates(doc, None, SCHEMA, Window(sentences=0), losses=losses)
    assert {c.key: c.label for c in found}[("S1", "D1")] == "ADE-Drug"
    assert losses == Counter(gold=1, covered=1, label_outside_schema=1)


def test_predicted_entities_take_gold_labels_by_exact_label_and_spans():
    predicted = [Entity(f"P{k}", e.label, e.spans, e.text) for k, e in enumerate(ENTITIES) if e.id != "D2"]
    predicted.append(Entity("P9", "Drug", ((ENTITIES[2].start, ENTITIES[2].end - 1),), "Warfari"))  # boundary error
    losses: Counter[str] = Counter()
    found = candidates(DOC, predicted, SCHEMA, Window(sentences=0), losses=losses)
    assert {c.key: c.label for c in found} == {("P1", "P0"): "Strength-Drug", ("P3", "P9"): NO_RELATION,
                                               ("P5", "P4"): NO_RELATION}
    assert losses["argument_missing"] == 2  # R2 (Warfarin not predicted exactly) and R5
    unlabelled = candidates(DOC, predicted, SCHEMA, Window(sentences=0), labelled=False)
    assert [c.label for c in unlabelled] == [None] * 3


def test_event_roles_are_candidates_trigger_to_argument():
    text = "Smokes 1 ppd, drinks beer."
    schema = TaskSchema("t", (("Tobacco", ""), ("Alcohol", ""), ("Amount", ""), ("Type", "")),
                        role_pairs=(("Amount", "Tobacco", "Amount"), ("Type", "Alcohol", "Type")),
                        event_labels=("Tobacco", "Alcohol"))
    entities = (ent("T1", "Tobacco", "Smokes", text), ent("T2", "Amount", "1 ppd", text),
                ent("T3", "Alcohol", "drinks", text), ent("T4", "Type", "beer", text))
    doc = Document("d", text, entities=entities,
                   events=(Event("E1", "Tobacco", "T1", (EventArgument("Amount", "T2"),)),
                           Event("E2", "Alcohol", "T3", (EventArgument("Type", "T4"),))))
    found = candidates(doc, None, schema, UNLIMITED)
    assert {c.key: c.label for c in found} == {("T1", "T2"): "Amount", ("T3", "T4"): "Type"}
    assert candidates(doc, None, schema, UNLIMITED, roles=False) == []
    assert labels(schema) == (NO_RELATION, "Amount", "Type")


# ------------------------------------------------------------------------------------------------- markers


def check_map(marked, text):
    mapping = marked.offset_map()
    assert len(mapping) == len(marked.text)
    assert mapping == [marked.to_original(i) for i in range(len(marked.text))]
    for i, orig in enumerate(mapping):
        if orig is not None:
            assert marked.text[i] == text[orig]
            assert marked.to_marked(orig) == i
    assert "".join(marked.text[i] for i, o in enumerate(mapping) if o is not None) == text[marked.start:marked.end]


def test_mark_head_after_tail():
    text = "Aspirin 81 mg daily."
    m = mark(text, ent("S1", "Strength", "81 mg", text), ent("D1", "Drug", "Aspirin", text), context=None)
    assert m.text == "[E2]Aspirin[/E2] [E1]81 mg[/E1] daily."
    assert (m.start, m.end, m.head_at, m.tail_at) == (0, len(text), 17, 0)
    assert m.marks == ((0, 4), (11, 5), (17, 4), (26, 5))
    assert m.offset_map()[:6] == [None, None, None, None, 0, 1]
    assert m.to_original(17) is None and m.to_original(21) == 8 and m.to_original(len(m.text)) == len(text)
    check_map(m, text)


def test_mark_head_before_tail_typed():
    text = "Aspirin 81 mg daily."
    m = mark(text, ent("D1", "Drug", "Aspirin", text), ent("S1", "Strength", "81 mg", text), typed=True, context=None)
    assert m.text == "[E1:Drug]Aspirin[/E1:Drug] [E2:Strength]81 mg[/E2:Strength] daily."
    assert (m.head_at, m.tail_at) == (0, 27)
    check_map(m, text)
    assert set(marker_strings(["Drug"], typed=True)) == {"[E1:Drug]", "[/E1:Drug]", "[E2:Drug]", "[/E2:Drug]"}


def test_mark_adjacent_discontinuous_nested_identical_and_crossing():
    text = "abc def ghi jkl"
    a, b = Entity("a", "X", ((0, 1),), "a"), Entity("b", "X", ((1, 2),), "b")
    assert mark("ab", a, b).text == "[E1]a[/E1][E2]b[/E2]"
    assert mark("ab", b, a).text == "[E2]a[/E2][E1]b[/E1]"
    disc = Entity("h", "X", ((0, 3), (8, 11)), "abc ghi")
    jkl = Entity("t", "X", ((12, 15),), "jkl")
    m = mark(text, disc, jkl)
    assert m.text == "[E1]abc def ghi[/E1] [E2]jkl[/E2]"  # the outer span, gap included
    check_map(m, text)
    outer, inner = Entity("o", "X", ((0, 11),), "abc def ghi"), Entity("i", "X", ((4, 7),), "def")
    assert mark(text, outer, inner).text == "[E1]abc [E2]def[/E2] ghi[/E1] jkl"
    assert mark(text, inner, outer).text == "[E2]abc [E1]def[/E1] ghi[/E2] jkl"
    same = Entity("s", "Y", ((4, 7),), "def")
    assert mark(text, inner, same).text == "abc [E1][E2]def[/E2][/E1] ghi jkl"
    left, right = Entity("l", "X", ((0, 7),), "abc def"), Entity("r", "X", ((4, 11),), "def ghi")
    m = mark(text, left, right)
    assert m.text == "[E1]abc [E2]def[/E1] ghi[/E2] jkl"
    check_map(m, text)


def test_mark_context_cuts_at_whitespace():
    text = "one two three four five six"
    m = mark(text, ent("h", "X", "three", text), ent("t", "X", "four", text), context=5)
    assert m.text == "two [E1]three[/E1] [E2]four[/E2] five"
    assert (m.start, m.end) == (4, 23)
    assert m.to_original(0) == 4 and m.to_marked(8) == 8 and m.to_marked(14) == 23
    check_map(m, text)


# ------------------------------------------------------------------------------------------- examples, round trip


def test_pair_examples_and_stats():
    examples, stats = pair_examples([DOC], SCHEMA, Window(sentences=1), context=None)
    assert len(examples) == 7
    first = examples[0]
    assert (first.doc_id, first.head, first.tail, first.label) == ("d1", "S1", "D1", "Strength-Drug")
    assert first.text.startswith("[E2]Aspirin[/E2] [E1]81 mg[/E1] daily.")
    report = stats.to_json()
    assert report["gold_relations"] == 8 and report["covered"] == 2
    assert report["recall_ceiling"] == round(2 / 7, 4)  # the duplicate is not a relation to find
    assert report["lost"] == {"argument_label_not_in_schema": 1, "argument_missing": 1, "duplicate": 1,
                              "outside_window": 1, "self_relation": 1, "types_not_allowed": 1}
    assert (report["positives"], report["negatives"], report["negatives_per_positive"]) == (2, 5, 2.5)
    assert report["candidates_per_doc"] == {"min": 7, "mean": 7.0, "max": 7}


def test_pairs_to_relations():
    rels = pairs_to_relations(DOC, ENTITIES, {("A1", "D2"): "ADE-Drug", ("S1", "D1"): "Strength-Drug",
                                              ("S2", "D3"): NO_RELATION}, id_prefix="p")
    assert rels == (Relation("pR1", "Strength-Drug", "S1", "D1"), Relation("pR2", "ADE-Drug", "A1", "D2"))
    assert pairs_to_relations(DOC, ENTITIES, [("S1", "D1", "Strength-Drug")]) == (
        Relation("R1", "Strength-Drug", "S1", "D1"),)
    with pytest.raises(ValueError, match="document d1: predicted pair names entity 'Q1'"):
        pairs_to_relations(DOC, ENTITIES, {("Q1", "D1"): "Strength-Drug"})


def gold_of(doc: Document) -> set[tuple[str, str, str]]:
    trigger = {ev.id: ev.trigger for ev in doc.events}
    return {(r.label, r.head, r.tail) for r in doc.relations} | \
        {(a.role, ev.trigger, trigger.get(a.ref, a.ref)) for ev in doc.events for a in ev.arguments}


def test_every_synthetic_corpus_round_trips_its_gold_pairs(synthetic_corpora):  # noqa: F811
    checked = 0
    for name, docs in synthetic_corpora.items():
        schema = resolve_schema(docs, name)
        allowed = {(h, t) for _, h, t in schema.candidate_pairs()}
        for doc in docs:
            gold = gold_of(doc)
            if not gold:
                continue
            by_id = doc.entity_index()
            typed = {g for g in gold if (by_id[g[1]].label, by_id[g[2]].label) in allowed}
            assert typed == gold, name  # the schema merges what the documents show
            found = candidates(doc, None, schema, UNLIMITED)
            labelled = {c.key: c.label for c in found}
            for label, head, tail in typed:
                assert labelled[(head, tail)] == label, (name, doc.id, head, tail)
            assert sum(lb != NO_RELATION for lb in labelled.values()) == len(typed)
            rels = pairs_to_relations(doc, doc.entities, labelled)
            assert {(r.label, r.head, r.tail) for r in rels} == gold
            assert len(rels) == len(gold)
            checked += len(gold)
        _, stats = pair_examples(docs, schema, UNLIMITED)
        assert stats.ceiling == 1.0, name
    assert checked > 100


def test_the_module_imports_no_torch():
    code = "import sys, clinie_nemo.instruct.pairs; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
