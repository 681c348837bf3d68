"""brat reader on handcrafted fixtures: every line type, CRLF, BOM, cross-line fragments, split folders."""

from __future__ import annotations

from clinie_nemo.corpus.readers import READERS, brat
from clinie_nemo.corpus.readers._common import Problems
from clinie_nemo.corpus.readers.brat import read_pair
from tests.corpus_fixtures import FIXTURES, norm, t_lines

BRAT = FIXTURES / "brat"


def docs_by_id():
    return {d.id: d for d in brat.read(BRAT)}


def test_pairs_found_recursively_and_ids_are_relative_paths():
    assert sorted(docs_by_id()) == ["bom/note3", "bom/note4", "sdoh/note1", "split/ann/note2"]
    assert READERS["brat"] is brat


def test_every_fragment_offset_is_exact():
    docs = docs_by_id()
    anns = {"sdoh/note1": BRAT / "sdoh/note1.ann", "split/ann/note2": BRAT / "split/ann/note2.ann",
            "bom/note4": BRAT / "bom/note4.ann"}
    for doc_id, ann in anns.items():
        doc = docs[doc_id]
        expected = t_lines(ann)
        assert [e.id for e in doc.entities] == list(expected)
        for e in doc.entities:
            frags, shown = expected[e.id]
            assert list(e.spans) == sorted(frags)
            assert norm(" ".join(doc.text[s:t] for s, t in frags)) == norm(shown)
            assert e.text == " ".join(doc.text[s:t] for s, t in e.spans)


def test_crlf_offsets_count_carriage_returns_and_cross_line_fragment():
    doc = docs_by_id()["sdoh/note1"]
    assert doc.text.count("\r\n") == 4  # CRLF kept byte-exact
    ents = doc.entity_index()
    assert ents["T13"].text == "due to\r\ncough"  # .ann shows "due to cough"
    assert ents["T12"].spans == ((128, 133), (138, 142)) and ents["T12"].text == "cough rash"
    assert ents["T17"].text == "Café owner"
    assert doc.text[ents["T7"].start:ents["T7"].end] == "Aspirin"


def test_events_nested_without_arguments_and_trailing_whitespace():
    doc = docs_by_id()["sdoh/note1"]
    events = {e.id: e for e in doc.events}
    assert [(a.role, a.ref) for a in events["E1"].arguments] == [
        ("Status", "T2"), ("Amount", "T3"), ("Type", "T4")]
    assert events["E2"].arguments[0].ref == "T6"  # trailing spaces after the last argument
    assert events["E4"].arguments == () and events["E4"].trigger == "T16"
    assert [(a.role, a.ref) for a in events["E5"].arguments] == [("Theme", "E4"), ("Effect", "T12")]


def test_attributes_modifiers_relations_and_metadata():
    doc = docs_by_id()["sdoh/note1"]
    ents = doc.entity_index()
    assert ents["T2"].attrs == {"StatusTimeVal": "current"}
    assert ents["T12"].attrs == {"Uncertain": "true"}  # binary attribute
    assert {e.id: e for e in doc.events}["E2"].attrs == {"Negation": "true"}  # M line on an event
    assert [(r.id, r.label, r.head, r.tail) for r in doc.relations][0] == ("R1", "Strength-Drug", "T8", "T7")
    assert len(doc.relations) == 5
    assert doc.metadata["equiv"] == [{"label": "Equiv", "ids": ["T1", "T2"]}]
    assert doc.metadata["normalizations"] == [
        {"id": "N1", "label": "Reference", "target": "T7", "ref": "RxNorm:1191", "text": "Aspirin"}]
    assert [n["text"] for n in doc.metadata["notes"]] == ["check with pharmacy", ""]


def test_notes_can_be_dropped_deliberately():
    doc = {d.id: d for d in brat.read(BRAT, notes=False)}["sdoh/note1"]
    assert "notes" not in doc.metadata and "equiv" in doc.metadata


def test_bom_removed_whether_or_not_the_tool_counted_it():
    docs = docs_by_id()
    for doc_id in ("bom/note3", "bom/note4"):  # note3: offsets count the BOM (brat); note4: they do not
        doc = docs[doc_id]
        assert not doc.text.startswith("\ufeff")
        assert [doc.text[e.start:e.end] for e in doc.entities] == ["Metformin", "BID"]


def test_single_file_paths_and_options():
    one = list(brat.read(BRAT / "sdoh/note1.ann", dataset="n2c2_2022_sdoh", split="train"))
    assert [d.id for d in one] == ["note1"] and one[0].dataset == "n2c2_2022_sdoh" and one[0].split == "train"
    via_txt = list(brat.read(BRAT / "sdoh/note1.txt"))
    assert via_txt[0].entities == one[0].entities


def test_reading_streams_one_document_at_a_time():
    it = brat.read(BRAT)
    first = next(it)
    assert first.id == "bom/note3"  # a generator: later files not needed yet


def test_relation_arguments_in_reverse_order_and_attribute_on_relation(tmp_path):
    (tmp_path / "d.txt").write_text("aspirin 81 mg\n")
    (tmp_path / "d.ann").write_text("T1\tDrug 0 7\taspirin\nT2\tStrength 8 13\t81 mg\n"
                                    "R1\tStrength-Drug Arg2:T1 Arg1:T2\nA1\tNegated R1\n")
    from clinie_nemo.corpus.readers import SkipReport

    report = SkipReport()
    doc = next(iter(brat.read(tmp_path, skip_invalid=report)))
    assert (doc.relations[0].head, doc.relations[0].tail) == ("T2", "T1")
    assert [p.message for p in report.problems] == [
        "an attribute applies to an entity or an event, not to relation R1"]


def test_fragments_listed_out_of_order_and_annotated_text_with_other_whitespace(tmp_path):
    """The fast path (note slice == annotated text) and its fallbacks give the same entities: fragments
    written out of text order are compared in line order and stored sorted; an annotated text whose
    whitespace differs from the note's still matches; a text that really differs is an error."""
    (tmp_path / "d.txt").write_text("swelling of the\nface and throat\n")
    (tmp_path / "d.ann").write_text("T1\tADE 25 31;0 8\tthroat swelling\n"
                                    "T2\tADE 0 20\tswelling  of the face\n"
                                    "T3\tADE 0 8;25 31\tswelling throat \n"
                                    "T4\tADE 0 8\tswolen\n")
    from clinie_nemo.corpus.readers import SkipReport

    report = SkipReport()
    ents = {e.id: e for e in next(iter(brat.read(tmp_path, skip_invalid=report))).entities}
    assert ents["T1"].spans == ((0, 8), (25, 31)) and ents["T1"].text == "swelling throat"
    assert ents["T2"].spans == ((0, 20),) and ents["T2"].text == "swelling of the\nface"
    assert ents["T3"].text == "swelling throat"
    assert "T4" not in ents
    assert [(p.line, p.message, p.quote) for p in report.problems] == [
        (4, "annotated text disagrees with the note at 0 8", "T4\tADE 0 8\tswolen")]


def test_system_line_repeated_verbatim_is_read_once(tmp_path):
    (tmp_path / "d.txt").write_text("Ana vive en Lugo.", encoding="utf-8")
    ann = tmp_path / "d.ann"
    line = "T1\tNOMBRE 0 3\tAna"
    ann.write_text(f"{line}\n{line}\nT2\tPAIS 12 16\tLugo\nT2\tPAIS 0 3\tAna\n", encoding="utf-8")
    problems, tolerated = Problems(), []
    doc = read_pair(ann, tmp_path / "d.txt", "d", problems, system=tolerated)
    assert [e.id for e in doc.entities] == ["T1", "T2"]
    assert tolerated == [(ann, 2, "line repeated with its id (read once)")]
    assert [(p.line, p.message) for p in problems.found] == [(4, "duplicate annotation id T2")]  # other content
    gold = Problems()
    read_pair(ann, tmp_path / "d.txt", "d", gold)
    assert [p.line for p in gold.found] == [2, 4]  # a gold file may not repeat an id at all
