"""The parser on a corpus of realistic malformed generations (tests/data/parser_generations.yaml), and
its building blocks: JSON repair, label mapping, placement fallbacks, chunk merging."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from clinie_nemo.core.document import Document, Entity
from clinie_nemo.evaluation.parsing.clean import LabelMap, load_json
from clinie_nemo.evaluation.parsing.merge import merge_document
from clinie_nemo.evaluation.parsing.parse import CAUSES, parse_record
from clinie_nemo.evaluation.parsing.place import PlacementFailure, place_mention

CHUNK = "Pt started on aspirin 81 mg daily. Aspirin held for GI bleed. Rash  and hives noted.\nNo ibuprofen; aspirin restarted."
CHUNK_START = 1000
DOC_TEXT = "x" * CHUNK_START + CHUNK + " trailing text outside the chunk"
ENTITY_LABELS = LabelMap(["ADE", "Drug", "Frequency", "Strength"])
RELATION_LABELS = LabelMap(["Reason-Drug", "Strength-Drug"])
CASES = yaml.safe_load((Path(__file__).resolve().parents[1] / "data" / "parser_generations.yaml").read_text())


def record(fmt: str, task: str = "ce") -> dict:
    return {"id": "r1", "doc_id": "d1", "dataset": "n2c2_2018", "task": task, "format": fmt,
            "chunk": [CHUNK_START, CHUNK_START + len(CHUNK)], "pair": ["T1", "T2"]}


def test_the_corpus_is_big_enough():
    assert len(CASES) >= 50


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_generation(case):
    p = parse_record(record(case["format"]), case["prediction"], DOC_TEXT, ENTITY_LABELS, RELATION_LABELS,
                     case.get("finish_reason"))
    got = [f"{label}|" + ";".join(f"{s}|{e}" for s, e in spans) for label, spans, _ in p.entities]
    assert got == case["expect"]
    if "attributes" in case:
        assert [f"{label}|" + ";".join(f"{k}={v}" for k, v in attrs) for label, _, attrs in p.entities] \
            == case["attributes"]
    expected_failures = case.get("failures", {})
    for cause in CAUSES:
        assert p.failures.get(cause, 0) == expected_failures.get(cause, 0), cause
    rels = [f"{label}|{h[1][0][0]}|{t[1][0][0]}" for label, h, t in p.relations]
    assert rels == case.get("relations", [])


@pytest.mark.parametrize("answer,label,failure", [
    ("Strength-Drug", "Strength-Drug", None), ("strength drug", "Strength-Drug", None),
    ("Answer: Reason-Drug.", "Reason-Drug", None), ("none", None, None), ("None.", None, None),
    ('{"relation": "Strength-Drug"}', "Strength-Drug", None), ("- Causes", None, "invalid_label"),
])
def test_relation_classification_answers(answer, label, failure):
    p = parse_record(record("lines", "re_pair"), answer, DOC_TEXT, ENTITY_LABELS, RELATION_LABELS)
    assert [r[0] for r in p.relations] == ([label] if label else [])
    if label:
        assert p.relations[0][1:] == ("T1", "T2")
    assert sum(p.failures.values()) == (1 if failure else 0)
    if failure:
        assert p.failures[failure] == 1


def test_json_repair_keeps_only_complete_elements():
    value, truncated = load_json('{"entities": [{"label": "A", "text": "x"}, {"label": "B", "te')
    assert truncated and value == {"entities": [{"label": "A", "text": "x"}]}
    with pytest.raises(ValueError):
        load_json("no json here")


def test_placement_prefers_exact_then_casefold_then_whitespace():
    assert place_mention("Aspirin and aspirin", "aspirin") == ((12, 19), "exact")
    assert place_mention("Aspirin and x", "ASPIRIN") == ((0, 7), "casefold")
    assert place_mention("rash\n and  hives", "rash and hives") == ((0, 16), "whitespace")
    with pytest.raises(PlacementFailure) as exc:
        place_mention("aspirin", "aspirin", 2)
    assert exc.value.cause == "ambiguous_occurrence"


def test_merge_dedupes_entities_from_overlapping_chunks_and_shifts_offsets():
    text = "aspirin 81 mg then aspirin"
    gold = Document("d1", text, "n2c2_2018")
    a = parse_record({**record("lines"), "chunk": [0, 13]}, "Drug | aspirin\nStrength | 81 mg", text,
                     ENTITY_LABELS, RELATION_LABELS)
    b = parse_record({**record("lines"), "chunk": [8, 26]}, "Strength | 81 mg\nDrug | aspirin", text,
                     ENTITY_LABELS, RELATION_LABELS)
    merged = merge_document(gold, [a, b])
    assert [(e.label, e.spans, e.text) for e in merged.entities] == [
        ("Drug", ((0, 7),), "aspirin"), ("Strength", ((8, 13),), "81 mg"), ("Drug", ((19, 26),), "aspirin")]


def test_re_pair_merge_uses_gold_entities():
    gold = Document("d1", "aspirin 81 mg", entities=(Entity("T1", "Drug", ((0, 7),), "aspirin"),
                                                     Entity("T2", "Strength", ((8, 13),), "81 mg")))
    p = parse_record({**record("lines", "re_pair"), "pair": ["T2", "T1"]}, "Strength-Drug", gold.text,
                     ENTITY_LABELS, RELATION_LABELS)
    merged = merge_document(gold, [p])
    assert merged.entities == gold.entities
    assert [(r.label, r.head, r.tail) for r in merged.relations] == [("Strength-Drug", "T2", "T1")]


# ------------------------------------------------------------ issue 11: placement and cleaning are exact

def parse_in(chunk: str, fmt: str, prediction: str, labels=("Drug", "Height", "Symptom", "Vitamin")):
    rec = {"id": "r", "doc_id": "d", "task": "ce", "format": fmt, "chunk": [0, len(chunk)]}
    p = parse_record(rec, prediction, chunk, LabelMap(labels), LabelMap(()))
    return [(label, chunk[spans[0][0]:spans[-1][1]], spans) for label, spans, _ in p.entities], p


def test_quotes_that_are_note_text_stay_in_the_mention():
    chunk = 'Reports "dizzy" spells. Height 5\' 10" today. Took aspirin.'
    got, _ = parse_in(chunk, "lines", 'Symptom | "dizzy"\nHeight | 5\' 10"\nDrug | "aspirin"\nDrug | `aspirin`')
    assert [(label, text) for label, text, _ in got] == [
        ("Symptom", '"dizzy"'), ("Height", '5\' 10"'), ("Drug", "aspirin")]  # quotes only peeled when formatting
    got, _ = parse_in(chunk, "json", '[{"label": "Symptom", "text": "\\"dizzy\\""}, {"label": "Drug", "text": "\'aspirin\'"}]')
    assert [text for _, text, _ in got] == ['"dizzy"', "aspirin"]


INLINE_CHUNK = "Pt started on aspirin 81 mg daily. Aspirin held; aspirin restarted."


@pytest.mark.parametrize("prediction,expected", [
    ("Here is the text with the aspirin mentions tagged:\n"  # the preamble holds the mention too
     "Pt started on aspirin 81 mg daily. Aspirin held; <Drug>aspirin</Drug> restarted.", [(49, 56)]),
    ("Here is the text with the aspirin mentions tagged:\n"
     "Pt started on <Drug>aspirin</Drug> 81 mg daily. Aspirin held; aspirin restarted.\nI used <Drug> tags.",
     [(14, 21)]),
    ("Sure, aspirin:\nPt started on aspirin 81 mg daily. Aspirin held; <Drug>aspirin</Drug> restar", [(49, 56)]),
])
def test_inline_prose_preamble_and_trailer_are_not_note_text(prediction, expected):
    got, p = parse_in(INLINE_CHUNK, "inline", prediction)
    assert [spans[0] for _, _, spans in got] == expected
    assert sum(p.failures.values()) == 0


def test_whole_word_matches_rank_before_matches_inside_a_word():
    from clinie_nemo.evaluation.parsing.place import place_mention

    assert place_mention("banana split; Ana seen", "ana") == ((14, 17), "casefold")
    assert place_mention("banana split; Ana and ana", "ana") == ((22, 25), "exact")
    assert place_mention("banana split", "ana") == ((1, 4), "exact_in_word")
    assert place_mention("banana split", "ana", 2) == ((3, 6), "exact_in_word")  # overlapping matches count
    assert place_mention("took 5mg", "5") == ((5, 6), "exact")  # a letter/digit change is a token boundary
    got, _ = parse_in("banana split; Ana seen", "lines", "Symptom | ana")
    assert [text for _, text, _ in got] == ["Ana"]


def test_occurrence_counts_whole_tokens_in_rendering_and_placement():
    from clinie_nemo.core.document import Entity
    from clinie_nemo.instruct.placement import occurrence_index, place_exact
    from clinie_nemo.instruct.render import RenderOptions, render_documents

    text = "MRSA screen negative. Vitamin A given; A repeated. Banana and ana."
    a1, a2 = text.index("Vitamin A") + 8, text.index("; A") + 2
    assert [occurrence_index(text, "A", a1), occurrence_index(text, "A", a2)] == [1, 2]
    assert place_exact(text, "A") == (a1, a1 + 1) and place_exact(text, "A", 3) == (3, 4)  # MRSA's A last
    inside = text.index("Banana") + 1  # the first "ana" inside "Banana": after the whole word "ana"
    assert occurrence_index(text, "ana", inside) == 2
    doc = Document("d", text, "", "test", entities=(
        Entity("T1", "Vitamin", ((a1, a1 + 1),), "A"), Entity("T2", "Vitamin", ((a2, a2 + 1),), "A"),
        Entity("T3", "Drug", ((inside, inside + 3),), "ana")))
    for fmt in ("lines", "json", "inline"):
        result = render_documents([doc], RenderOptions(task="ce", format=fmt))
        assert result.roundtrip.exact, result.roundtrip.to_json()
        record = result.records[0]
        got, p = parse_in(text, fmt, record["output"], labels=("Drug", "Vitamin"))
        assert sorted(spans for _, _, spans in got) == sorted(e.spans for e in doc.entities), fmt
        if fmt == "lines":
            assert record["output"].split("\n") == ["Vitamin | A", "Vitamin | A | #2", "Drug | ana | #2"]
    got, _ = parse_in(text, "lines", "Vitamin | A", labels=("Vitamin",))
    assert [spans for _, _, spans in got] == [((a1, a1 + 1),)]


def test_unplaced_predictions_are_kept_with_label_and_cause():
    """What evaluate scores as false positives: each element said but not placed, with its schema label."""
    p = parse_record(record("lines", "re_e2e"), "Drug | naproxen\nStrength | 81 mg\nDose | 5\n=> Strength-Drug | 2 | 1\n"
                     "=> Causes | 2 | 1\nDrug | aspirin\nADE | rash and", DOC_TEXT, ENTITY_LABELS, RELATION_LABELS,
                     "length")
    assert dict(p.unplaced) == {("entity", "Drug", "mention_not_in_text"): 1, ("entity", None, "invalid_label"): 1,
                                ("relation", "Strength-Drug", "relation_argument_unplaced"): 1,
                                ("relation", None, "invalid_label"): 1, ("entity", "ADE", "truncated_output"): 1}
    assert [label for label, _, _ in p.entities] == ["Strength", "Drug"]
    p = parse_record(record("json"), '{"entities": 7}', DOC_TEXT, ENTITY_LABELS, RELATION_LABELS)
    assert dict(p.unplaced) == {("entity", None, "unparseable"): 1}
