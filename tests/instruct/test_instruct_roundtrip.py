"""Every task x target format round-trips exactly: gold -> target text -> exact inverse -> the same
annotations, on hand-made hard cases and on random documents (hypothesis)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clinie_nemo.core.document import (
    Document,
    Entity,
    Event,
    EventArgument,
    Relation,
    check_offsets,
    fragments_text,
)
from clinie_nemo.instruct.formats import FORMATS
from clinie_nemo.instruct.render import RenderOptions, decode_record, render_documents
from clinie_nemo.instruct.roundtrip import annotation_keys
from clinie_nemo.instruct.tasks import TASKS, TaskOptions
from tests.hypothesis_profiles import examples
from tests.instruct_fixtures import hard_document

CASES = [(t, f) for t in sorted(TASKS) for f in sorted(FORMATS)]


@pytest.mark.parametrize(("task", "fmt"), CASES)
def test_hard_document_round_trips_exactly(task: str, fmt: str) -> None:
    result = render_documents([hard_document()], RenderOptions(task=task, format=fmt))
    rt = result.roundtrip
    assert rt.exact, rt.to_json()
    assert not rt.losses
    if task == "re_pair":
        assert rt.gold["relations"] == 5  # 4 relations + 1 event role
    else:
        assert rt.gold["entities"] == 16
    if task == "re_e2e":
        assert (rt.gold["relations"], rt.gold["events"]) == (4, 1)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_repeated_mention_maps_back_to_its_occurrence(fmt: str) -> None:
    doc = hard_document()
    result = render_documents([doc], RenderOptions(task="ce", format=fmt))
    record = result.records[0]
    ann, failures = decode_record(record, record["output"], doc)
    assert not failures
    second_aspirin = next(e for e in doc.entities if e.id == "T3")
    decoded = [e for e in ann.entities if e.label == "Drug" and e.text == "Aspirin"]
    assert sorted(e.spans for e in decoded) == sorted([((0, 7),), second_aspirin.spans])
    assert doc.text[second_aspirin.start - 2:second_aspirin.start] == "\r\n"


def test_lines_format_spells_occurrence_and_fragments() -> None:
    out = render_documents([hard_document()], RenderOptions(task="ce", format="lines")).records[0]["output"]
    lines = out.split("\n")
    assert "Drug | Aspirin | #2" in lines
    assert "ADE | rash ... hives" in lines
    assert "ADE | hives \\| itch" in lines
    assert "Reason | aa | #2" in lines
    assert "StatusTime | quit | StatusTimeVal=past" in lines


def test_inline_output_is_the_text_with_tags() -> None:
    doc = hard_document()
    out = render_documents([doc], RenderOptions(task="ce", format="inline")).records[0]["output"]
    import re
    # the note's own "<Drug>" stays (it is text), every real tag goes
    tag = r'</?(Drug|Strength|ADE|Tobacco|StatusTime|Reason)( [a-zA-Z]+="[^"]*")*>'
    stripped = re.sub(tag, "", out.replace("<Drug> tag", "§ tag"))
    assert stripped == doc.text.strip().replace("<Drug> tag", "§ tag")


# ------------------------------------------------------------------------------------- property-based

ALPHABET = "ab .|\\\r\n<>é≥#=;\"Dx"
LABELS = ("Drug", "ADE", "Tobacco", "StatusTime")


@st.composite
def documents(draw: st.DrawFn) -> Document:
    text = draw(st.text(alphabet=ALPHABET, min_size=4, max_size=60))
    n = len(text)
    entities: list[Entity] = []
    for k in range(draw(st.integers(0, 8))):
        s = draw(st.integers(0, n - 1))
        e = draw(st.integers(s + 1, min(n, s + 12)))
        spans = [(s, e)]
        if draw(st.booleans()) and e < n - 1:
            s2 = draw(st.integers(e, n - 1))
            spans.append((s2, draw(st.integers(s2 + 1, min(n, s2 + 6)))))
        label = draw(st.sampled_from(LABELS))
        attrs = (("StatusTimeVal", draw(st.sampled_from(["past", "a=b;c"]))),) if label == "StatusTime" else ()
        entities.append(Entity(f"T{k + 1}", label, tuple(spans), fragments_text(text, spans), attrs))
    relations, events = [], []
    plain = [e for e in entities if e.label in ("Drug", "ADE")]
    for k in range(draw(st.integers(0, 4))):
        if len(plain) >= 2:
            h, t = draw(st.sampled_from(plain)), draw(st.sampled_from(plain))
            if h.id != t.id:
                relations.append(Relation(f"R{k}", f"{h.label}-{t.label}", h.id, t.id))
    status = [e for e in entities if e.label == "StatusTime"]
    for k, trig in enumerate(e for e in entities if e.label == "Tobacco"):
        args = tuple(EventArgument("Status", s.id) for s in status[:draw(st.integers(0, len(status)))])
        events.append(Event(f"E{k + 1}", "Tobacco", trig.id, args))
    return Document("prop", text, "", "", tuple(entities), tuple(relations), tuple(events))


@settings(max_examples=examples(60), suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents(), task=st.sampled_from(sorted(TASKS)), fmt=st.sampled_from(sorted(FORMATS)))
def test_random_documents_round_trip(doc: Document, task: str, fmt: str) -> None:
    assert check_offsets(doc) == []
    result = render_documents([doc], RenderOptions(task=task, format=fmt))
    # the SFT loaders read input/output with .strip(" "): nothing of ours may be lost to that
    assert all(r["output"] == r["output"].strip(" ") and r["input"] == r["input"].strip(" ")
               for r in result.records)
    rt = result.roundtrip
    declared = set(rt.losses) - {"pair_has_several_labels"}
    if fmt == "inline" and "tag_like_text_collision" in declared:
        return  # the one ambiguity inline cannot express; counted, asserted in a unit test below
    assert not declared, rt.to_json()
    if "pair_has_several_labels" in rt.losses:
        assert rt.recovered["relations"] + rt.losses["pair_has_several_labels"] == rt.gold["relations"]
        return
    assert rt.exact, rt.to_json()


def test_tag_like_text_collision_is_counted() -> None:
    text = "<Drug>x</Drug>"
    doc = Document("c", text, entities=(Entity("T1", "Drug", ((0, 6),), "<Drug>"),))
    rt = render_documents([doc], RenderOptions(task="ce", format="inline")).roundtrip
    assert rt.losses["tag_like_text_collision"] >= 1


def test_decode_record_reports_unreadable_predictions_by_cause() -> None:
    doc = hard_document()
    for fmt, bad, cause in (("json", "[{", "unparseable_json"), ("inline", "<Drug>Aspirin", "unclosed_tag"), ("inline", "Aspirin", "text_altered"),
                            ("lines", "Drug | nowhere", "mention_not_in_text")):
        record = render_documents([doc], RenderOptions(task="ce", format=fmt)).records[0]
        ann, failures = decode_record(record, bad, doc)
        assert failures[cause] == 1, (fmt, failures)


def test_keys_ignore_ids() -> None:
    doc = hard_document()
    from clinie_nemo.instruct.target import Annotations
    a = annotation_keys(Annotations(doc.entities, doc.relations, doc.events), doc.entity_index())
    renamed = tuple(Entity("X" + e.id, e.label, e.spans, e.text, e.attributes) for e in doc.entities)
    b = annotation_keys(Annotations(renamed), {})
    assert a["entities"] == b["entities"]


def test_per_label_ce_gives_one_record_per_label_and_round_trips() -> None:
    result = render_documents([hard_document()], RenderOptions(task="ce", format="json",
                                                               task_options=TaskOptions(per_label=True)))
    assert sorted(r["label"] for r in result.records) == sorted(result.schema.entity_names)
    assert all(r["id"].endswith("/" + r["label"]) for r in result.records)
    assert result.roundtrip.exact


def test_re_pair_role_answers_assemble_into_events() -> None:
    from clinie_nemo.instruct.target import assemble_events

    doc = hard_document()
    result = render_documents([doc], RenderOptions(task="re_pair", format="json"))
    relations = []
    for record in result.records:
        ann, failures = decode_record(record, record["output"], doc, schema=result.schema)
        assert not failures
        relations.extend(ann.relations)
    plain, events = assemble_events(doc.entities, tuple(relations), result.schema)
    assert [(e.label, e.trigger, [(a.role, a.ref) for a in e.arguments]) for e in events] == \
        [("Tobacco", "T7", [("Status", "T8")])]
    assert sorted((r.label, r.head, r.tail) for r in plain) == sorted(
        (r.label, r.head, r.tail) for r in doc.relations)


def test_re_pair_negative_sampling_is_seeded_and_follows_the_ratio() -> None:
    docs = [hard_document(f"d{i}") for i in range(4)]

    def render(seed: int, ratio: float | None):
        return render_documents(docs, RenderOptions(task="re_pair", format="lines", seed=seed,
                                                    task_options=TaskOptions(negative_ratio=ratio, seed=seed)))

    everything = render(1, None)
    positives = sum(r["output"] != "none" for r in everything.records)
    assert positives == 4 * 5
    sampled = render(1, 1.0)
    assert sum(r["output"] != "none" for r in sampled.records) == positives
    assert sum(r["output"] == "none" for r in sampled.records) == positives  # 5 per chunk, 36 available
    assert render(1, 1.0).records == sampled.records
    assert {r["id"] for r in render(2, 1.0).records} != {r["id"] for r in sampled.records}
    assert sampled.roundtrip.exact


def test_re_pair_window_counts_the_relations_it_excludes() -> None:
    doc = hard_document()
    narrow = render_documents([doc], RenderOptions(task="re_pair", format="json",
                                                   task_options=TaskOptions(pair_window_sentences=0)))
    # only Reason-Drug (cafe-au-lait spots -> 2nd Aspirin, a line earlier) crosses a sentence
    assert narrow.roundtrip.losses["pair_outside_window"] == 1
    assert narrow.roundtrip.recovered["relations"] == narrow.roundtrip.gold["relations"] - 1
    chars = render_documents([doc], RenderOptions(task="re_pair", format="json",
                                                  task_options=TaskOptions(pair_window_chars=5)))
    assert chars.roundtrip.losses["pair_outside_window"] >= 1
    assert all(len(json.loads(r["output"])) == 1 for r in chars.records)


def test_restricted_labels_count_what_they_leave_out() -> None:
    doc = hard_document()
    pairs = render_documents([doc], RenderOptions(task="re_pair", format="lines", labels=("Drug", "Strength")))
    # ADE-Drug x2, Reason-Drug, the Tobacco event role: their entities are outside the kept labels
    assert pairs.roundtrip.losses["pair_label_not_in_schema"] == 4
    assert pairs.roundtrip.recovered["relations"] == 1
    ce = render_documents([doc], RenderOptions(task="ce", format="json", labels=("Drug",)))
    drugs = sum(e.label == "Drug" for e in doc.entities)
    assert ce.roundtrip.losses["entity_label_not_in_schema"] == len(doc.entities) - drugs
    assert ce.roundtrip.recovered["entities"] == drugs


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_event_attributes_and_nested_event_arguments_round_trip(fmt: str) -> None:
    """brat ``A1 Negation E1`` (an attribute on the event) and an event argument that is another event."""
    from tests.instruct_fixtures import ent

    text = "Denies smoking; drinks beer daily."
    entities = (ent(text, "T1", "Tobacco", "smoking"), ent(text, "T2", "StatusTime", "Denies",
                                                           attrs={"StatusTimeVal": "none"}),
                ent(text, "T3", "Alcohol", "drinks"), ent(text, "T4", "Amount", "beer"),
                ent(text, "T5", "Frequency", "daily"))
    events = (Event("E1", "Tobacco", "T1", (EventArgument("Status", "T2"),), (("Negation", "true"),)),
              Event("E2", "Alcohol", "T3", (EventArgument("Amount", "T4"), EventArgument("Frequency", "T5"),
                                            EventArgument("Related", "E1"))))
    doc = Document("ev", text, entities=entities, events=events)
    rt = render_documents([doc], RenderOptions(task="re_e2e", format=fmt)).roundtrip
    assert rt.exact and not rt.losses, rt.to_json()
    assert rt.recovered["events"] == 2


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_relation_whose_argument_is_an_event_is_rendered(fmt: str) -> None:
    """brat allows ``R1 Arg1:E2 Arg2:T1`` (an event as a relation argument): it renders as a relation from the
    event's trigger, the way scoring reads it (scoring/items.py argument_index), instead of being dropped."""
    from tests.instruct_fixtures import ent

    text = "Denies smoking; drinks beer daily."
    entities = (ent(text, "T1", "Tobacco", "smoking"), ent(text, "T3", "Alcohol", "drinks"),
                ent(text, "T4", "Amount", "beer"))
    events = (Event("E1", "Tobacco", "T1", ()), Event("E2", "Alcohol", "T3", (EventArgument("Amount", "T4"),)))
    doc = Document("evrel", text, entities=entities, events=events, relations=(Relation("R1", "Related", "E2", "E1"),))
    rt = render_documents([doc], RenderOptions(task="re_e2e", format=fmt)).roundtrip
    assert not rt.losses, rt.to_json()
    assert rt.exact and rt.recovered["relations"] == 1 and rt.recovered["events"] == 2


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_target_survives_the_loaders_space_strip(fmt: str) -> None:
    """NeMo/Bridge GPTSFTDataset read ``example[key].strip(" ")``: a mention ending with a space (brat
    oddity) on the last line must not lose it."""
    text = "took foo  now"
    doc = Document("sp", text, entities=(Entity("T1", "Drug", ((5, 9),), "foo "),))
    record = render_documents([doc], RenderOptions(task="ce", format=fmt)).records[0]
    stripped = record["output"].strip(" ")
    assert stripped == record["output"]
    ann, failures = decode_record(record, stripped, doc)
    assert not failures and [e.spans for e in ann.entities] == [((5, 9),)]
