"""i2b2, RadGraph, PubTator, BioC and JSONL readers on handcrafted fixtures: exact offsets everywhere."""

from __future__ import annotations

import re

from clinie_nemo.core import docs_jsonl
from clinie_nemo.corpus.readers import READERS, SkipReport
from tests.corpus_fixtures import FIXTURES, norm


def test_i2b2_line_token_offsets_assertions_and_relations():
    docs = {d.id: d for d in READERS["i2b2"].read(FIXTURES / "i2b2")}
    assert sorted(docs) == ["beth/txt/record-1", "test_data/record-2"]
    doc = docs["beth/txt/record-1"]
    con = (FIXTURES / "i2b2/beth/concept/record-1.con").read_text().splitlines()
    mentions = [re.match(r'c="(.*)" \d', line)[1] for line in con]
    assert [e.text.lower() for e in doc.entities] == mentions  # exact, case-insensitive, in .con order
    for e in doc.entities:
        assert doc.text[e.start:e.end] == e.text
    ents = doc.entity_index()
    assert ents["T1"].spans == ((46, 61),) and ents["T1"].text == "nystatin powder"
    # .ast concepts merged into the .con problems, not duplicated
    assert len(doc.entities) == 7
    assert {e.text: e.attrs.get("assertion") for e in doc.entities if e.label == "problem"} == {
        "the perianal rash": "present", "pneumonia": "absent", "infection": "hypothetical", "fever": "absent"}
    assert ents["T7"].text == "fever"  # double space on that line: whitespace tokens
    assert [(r.label, ents[r.head].text, ents[r.tail].text) for r in doc.relations] == [
        ("TrAP", "nystatin powder", "the perianal rash"), ("TeRP", "CT scan", "pneumonia"),
        ("TeCP", "Chest x-ray", "infection")]


def test_i2b2_crlf_and_concept_across_lines():
    doc = {d.id: d for d in READERS["i2b2"].read(FIXTURES / "i2b2")}["test_data/record-2"]
    e = doc.entities[0]
    assert doc.text[e.start:e.end] == "Congestive heart\r\nfailure exacerbation"
    assert norm(e.text).lower() == "congestive heart failure exacerbation"
    assert doc.text[doc.entities[1].start:doc.entities[1].end] == "Tylenol"


def test_radgraph_token_indices_to_offsets_and_relations_on_source():
    docs = {d.id: d for d in READERS["radgraph"].read(FIXTURES / "radgraph/train.json")}
    doc = docs["p10/p10000032/s50414267.txt"]
    raw = __import__("json").loads((FIXTURES / "radgraph/train.json").read_text())
    for e in doc.entities:
        assert doc.text[e.start:e.end] == raw[doc.id]["entities"][e.id]["tokens"]
    assert doc.split == "train" and doc.metadata["data_source"] == "MIMIC-CXR"
    assert ("located_at", "3", "2") in [(r.label, r.head, r.tail) for r in doc.relations]
    assert doc.entity_index()["7"].spans == ((99, 112),)


def test_radgraph_labeler_choice_for_test_split():
    path = FIXTURES / "radgraph/test.json"
    one = next(iter(READERS["radgraph"].read(path)))
    two = next(iter(READERS["radgraph"].read(path, labeler="labeler_2")))
    assert one.metadata["labeler"] == "labeler_1" and len(one.entities) == 4
    assert two.metadata["labeler"] == "labeler_2" and len(two.entities) == 3
    assert [two.text[e.start:e.end] for e in two.entities] == ["pleural", "effusion", "atelectasis"]
    assert ("suggestive_of", "3", "2") in [(r.label, r.head, r.tail) for r in two.relations]


def test_radgraph_flat_labeler_layout_is_read_too(tmp_path):
    raw = __import__("json").loads((FIXTURES / "radgraph/test.json").read_text())
    raw["1"]["labeler_1"] = raw["1"]["labeler_1"]["entities"]
    (tmp_path / "flat.json").write_text(__import__("json").dumps(raw))
    flat = next(iter(READERS["radgraph"].read(tmp_path / "flat.json")))
    assert flat == next(iter(READERS["radgraph"].read(FIXTURES / "radgraph/test.json")))


def test_pubtator_offsets_concepts_and_document_relations():
    path = FIXTURES / "pubtator/cdr_sample.PubTator.txt"
    docs = list(READERS["pubtator"].read(path))
    assert [d.id for d in docs] == ["26094", "6794356"]
    doc = docs[0]
    mention_lines = [line.split("\t") for line in path.read_text().splitlines()
                     if line.startswith("26094\t") and line.split("\t")[1].isdigit()]
    assert len(doc.entities) == len(mention_lines)
    for e, fields in zip(doc.entities, mention_lines):
        assert (e.start, e.end) == (int(fields[1]), int(fields[2]))
        assert doc.text[e.start:e.end] == fields[3] and e.attrs["concept_id"] == fields[5]
    assert doc.text.startswith("Antihypertensive drugs and depression: a reappraisal.\nEighty-nine")
    assert doc.metadata["relations"] == [["CID", "D017706", "D003371"], ["CID", "D003000", "D003866", "0.87"]]
    assert docs[1].text.endswith("clonidine.\n")  # empty abstract line


def test_bioc_passages_discontinuous_and_relations():
    doc = next(iter(READERS["bioc"].read(FIXTURES / "bioc")))
    assert doc.id == "1378968"
    assert doc.text.startswith("Famotidine-associated delirium.\nA series")
    ents = doc.entity_index()
    assert doc.text[ents["2"].start:ents["2"].end] == "Famotidine" and ents["2"].start == 55
    assert ents["3"].spans == ((71, 80), (93, 103)) and ents["3"].text == "histamine antagonist"
    for e in doc.entities:
        assert " ".join(doc.text[s:t] for s, t in e.spans) == e.text
    assert ents["1"].attrs["concept_id"] == "D003693"
    assert [(r.label, r.head, r.tail) for r in doc.relations] == [("treats", "2", "4")]
    assert doc.metadata["relations"] == [["CID", "D015738", "D003693"]]


def test_jsonl_reader_wraps_docs_jsonl(tmp_path):
    docs = list(READERS["brat"].read(FIXTURES / "brat"))
    docs_jsonl.write(tmp_path / "d.jsonl", docs)
    back = list(READERS["jsonl"].read(tmp_path / "d.jsonl", split="test"))
    assert [d.with_(split="") for d in back] == docs and {d.split for d in back} == {"test"}


def test_jsonl_skip_invalid_skips_bad_lines(tmp_path):
    docs = list(READERS["pubtator"].read(FIXTURES / "pubtator"))
    docs_jsonl.write(tmp_path / "d.jsonl", docs)
    lines = (tmp_path / "d.jsonl").read_text().splitlines()
    broken = lines[0].replace('"spans": [[0, 22]]', '"spans": [[0, 23]]')
    (tmp_path / "bad.jsonl").write_text("\n".join([broken, "{not json", lines[1]]) + "\n")
    report = SkipReport()
    kept = list(READERS["jsonl"].read(tmp_path / "bad.jsonl", skip_invalid=report))
    assert [d.id for d in kept] == ["6794356"]
    assert [(p.line, p.message.split(":")[0]) for p in report.problems] == [
        (1, "document 26094"), (2, "invalid JSON (Expecting property name enclosed in double quotes at column 2)")]


def test_bioc_sentence_level_passages(tmp_path):
    xml = ('<collection><source>x</source><document><id>7</id><passage><offset>0</offset>'
           '<sentence><offset>0</offset><text>No fever.</text></sentence>'
           '<sentence><offset>10</offset><text>Mild cough.</text>'
           '<annotation id="A1"><infon key="type">Problem</infon><location offset="15" length="5"/>'
           '<text>cough</text></annotation></sentence></passage></document></collection>')
    (tmp_path / "s.xml").write_text(xml)
    doc = next(iter(READERS["bioc"].read(tmp_path / "s.xml")))
    assert doc.text == "No fever.\nMild cough."
    assert [(e.id, e.label, doc.text[e.start:e.end]) for e in doc.entities] == [("A1", "Problem", "cough")]
