"""`clinie-nemo score` on hand-made files where the official kits' conventions change the counts (issue 11):
PubTator document relations as a set (BioCreative V CDR kit), BioC files whose offsets count XML entities
as written (the CDR kit's BioC release) scoring exactly like their PubTator twins, and brat predictions from
external systems (text column ignored, zero-length span scored, as Track2-evaluate-ver4.py does)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli_plugin import cli


def triple(block: dict, mode: str = "strict") -> tuple[int, int, int]:
    return block[mode]["tp"], block[mode]["fp"], block[mode]["fn"]


def score(tmp_path: Path, gold: Path, pred: Path, fmt: str, *extra: str) -> tuple[dict, str]:
    out = tmp_path / "s.json"
    r = cli("score", "--gold", gold, "--pred", pred, "--format", fmt, "--json", out, "--force", *extra)
    assert r.returncode == 0, r.stderr
    return json.loads(out.read_text()), r.stderr


PT_TEXT = "1|t|Aspirin and rash.\n1|a|Rash followed aspirin.\n"


def test_pubtator_duplicate_relations_count_once(tmp_path):
    """A relation listed twice is one relation on either side (the CDR kit collects CID pairs in a set):
    gold {A-B, C-D} (A-B listed twice), prediction {A-B, E-F} (each listed twice) -> TP 1, FP 1, FN 1.
    Counted as lists this would be TP 2, FP 2, FN 0 (or TP 1, FP 3, FN 2): a different F1."""
    gold = tmp_path / "gold.pubtator"
    pred = tmp_path / "pred.pubtator"
    gold.write_text(PT_TEXT + "1\tCID\tA\tB\n1\tCID\tA\tB\n1\tCID\tC\tD\n")
    pred.write_text(PT_TEXT + "1\tCID\tA\tB\t0.9\n1\tCID\tA\tB\t0.8\n1\tCID\tE\tF\n1\tCID\tE\tF\n")
    s, _ = score(tmp_path, gold, pred, "pubtator")
    assert triple(s["document_relations"]) == (1, 1, 1)
    assert s["document_relations"]["strict"]["f1"] == 0.5


# --- BioC with offsets counting XML references as written (BioCreative V CDR kit) vs its PubTator twin ---

TITLE = "Aspirin & warfarin induced bleeding."
ABSTRACT = "Doses <5 mg & >2 days: warfarin caused hemorrhage & bleeding."
GOLD = [("Chemical", "D001241", "Aspirin", 0), ("Chemical", "D014859", "warfarin", 0),
        ("Disease", "D006470", "bleeding", 0), ("Chemical", "D014859", "warfarin", 1),
        ("Disease", "D006470", "hemorrhage", 1), ("Disease", "D006470", "bleeding", 1)]
# the system misses "hemorrhage", types abstract "warfarin" as Disease, adds "Doses"
PRED = [("Chemical", "D001241", "Aspirin", 0), ("Chemical", "D014859", "warfarin", 0),
        ("Disease", "D006470", "bleeding", 0), ("Disease", "D014859", "warfarin", 1),
        ("Disease", "D006470", "bleeding", 1), ("Disease", "-", "Doses", 1)]


def xml_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def pubtator(mentions: list[tuple[str, str, str, int]]) -> str:
    text = TITLE + "\n" + ABSTRACT
    lines = [f"7|t|{TITLE}", f"7|a|{ABSTRACT}"]
    for label, concept, word, passage in mentions:
        start = text.index(word, 0 if passage == 0 else len(TITLE) + 1)
        lines.append(f"7\t{start}\t{start + len(word)}\t{word}\t{label}\t{concept}")
    lines.append("7\tCID\tD014859\tD006470")
    return "\n".join(lines) + "\n\n"


def bioc(mentions: list[tuple[str, str, str, int]], written: bool) -> str:
    """``written``: passage and annotation offsets count '&amp;' as 5 characters, as the CDR kit's BioC."""
    measure = xml_escape if written else (lambda s: s)
    passages = []
    offset = 0
    for n, (kind, text) in enumerate((("title", TITLE), ("abstract", ABSTRACT))):
        anns = []
        for i, (label, concept, word, passage) in enumerate(mentions):
            if passage != n:
                continue
            start = offset + len(measure(text[:text.index(word)]))
            anns.append(f'<annotation id="{i}"><infon key="type">{label}</infon><infon key="MESH">{concept}'
                        f'</infon><location offset="{start}" length="{len(measure(word))}"/><text>{xml_escape(word)}'
                        "</text></annotation>")
        passages.append(f'<passage><infon key="type">{kind}</infon><offset>{offset}</offset>'
                        f'<text>{xml_escape(text)}</text>\n' + "\n".join(anns) + "</passage>")
        offset += len(measure(text)) + 1
    relation = ('<relation id="R0"><infon key="relation">CID</infon><infon key="Chemical">D014859</infon>'
                '<infon key="Disease">D006470</infon></relation>')
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<collection><source>PubTator</source><document><id>7</id>\n'
            + "\n".join(passages) + relation + "</document></collection>\n")


def test_bioc_offsets_counting_references_as_written_score_like_the_pubtator_twin(tmp_path):
    for name, content in (("gold.pubtator", pubtator(GOLD)), ("pred.pubtator", pubtator(PRED)),
                          ("gold.xml", bioc(GOLD, True)), ("pred.xml", bioc(PRED, True)),
                          ("gold_decoded.xml", bioc(GOLD, False))):
        (tmp_path / name).write_text(content)
    assert "&amp;" in (tmp_path / "gold.xml").read_text() and "&lt;" in (tmp_path / "gold.xml").read_text()
    twin, _ = score(tmp_path, tmp_path / "gold.pubtator", tmp_path / "pred.pubtator", "pubtator")
    # Chemical: Aspirin, title warfarin right, abstract warfarin missed; Disease: two bleeding right,
    # hemorrhage missed, warfarin-as-Disease and Doses spurious
    assert triple(twin["entities"]["by_label"]["Chemical"]) == (2, 0, 1)
    assert triple(twin["entities"]["by_label"]["Disease"]) == (2, 2, 1)
    written, _ = score(tmp_path, tmp_path / "gold.xml", tmp_path / "pred.xml", "bioc")
    assert {k: written[k] for k in ("entities", "document_relations")} == \
        {k: twin[k] for k in ("entities", "document_relations")}
    # the same documents, whichever way the offsets were written
    from clinie_nemo.corpus.readers import READERS

    pt = next(iter(READERS["pubtator"].read(tmp_path / "gold.pubtator")))
    for xml in ("gold.xml", "gold_decoded.xml"):
        doc = next(iter(READERS["bioc"].read(tmp_path / xml)))
        assert doc.text == pt.text
        assert [(e.label, e.spans, e.text) for e in doc.entities] == [(e.label, e.spans, e.text) for e in pt.entities]
        assert doc.metadata["relations"] == [["CID", "D014859", "D006470"]]


def test_bioc_offset_inside_a_reference_is_a_located_problem(tmp_path):
    xml = bioc(GOLD, True)
    bad = tmp_path / "bad.xml"
    # annotation 1 (title "warfarin", written at 14) moved to 9: inside '&amp;' (written 8-13)
    moved = xml.replace('<location offset="14" length="8"/>', '<location offset="9" length="8"/>')
    assert moved != xml
    bad.write_text(moved)
    r = cli("convert", "--format", "bioc", "--input", bad, "--output", tmp_path / "o.jsonl")
    assert r.returncode == 2 and "bad.xml:5: document 7: annotation 1 " in r.stderr, r.stderr
    assert "inside an XML reference" in r.stderr
    assert not (tmp_path / "o.jsonl").exists()


# --- brat predictions from an external system, read as Track2-evaluate-ver4.py reads them ---

NOTE = "Patient took aspirin 81 mg daily.\n"  # aspirin 13-20, 81 mg 21-26, daily 27-32
GOLD_ANN = ("T1\tDrug 13 20\taspirin\nT2\tStrength 21 26\t81 mg\nT3\tFrequency 27 32\tdaily\n"
            "R1\tStrength-Drug Arg1:T2 Arg2:T1\n")


def brat_pair(folder: Path, ann: str, note: str = NOTE) -> Path:
    folder.mkdir()
    (folder / "n1.txt").write_text(note)
    (folder / "n1.ann").write_text(ann)
    return folder


def test_brat_system_text_column_and_zero_length_span_score_like_the_official_script(tmp_path):
    """Track2-evaluate-ver4.py never compares the text column with the note, and keeps a zero-length span:
    strict, it matches nothing (a false positive); lenient, its overlap test
    ``g.end > s.start and g.start < s.end`` accepts 22-22 inside gold 21-26."""
    gold = brat_pair(tmp_path / "gold", GOLD_ANN)
    pred = brat_pair(tmp_path / "pred", "T1\tDrug 13 20\tAspirin tablets\nT2\tStrength 22 22\t\n"
                     "T3\tFrequency 27 32\tdaily\nR1\tStrength-Drug Arg1:T2 Arg2:T1\n")
    s, stderr = score(tmp_path, gold, pred, "brat", "--rules", "n2c2_2018")
    assert triple(s["entities"], "strict") == (2, 1, 1)
    assert triple(s["entities"], "lenient") == (3, 0, 0)
    assert triple(s["relations"], "strict") == (0, 1, 1)
    assert triple(s["relations"], "lenient") == (1, 0, 0)
    assert "warning:" in stderr and "2 predicted annotations" in stderr
    assert "1 zero-length span" in stderr and "1 text column disagrees with the note" in stderr
    assert "n1.ann:1" in stderr and "n1.ann:2" in stderr
    assert "aspirin" not in stderr.lower() and "tablets" not in stderr and "daily" not in stderr


def test_brat_gold_keeps_strict_validation(tmp_path):
    gold = brat_pair(tmp_path / "gold", GOLD_ANN.replace("\taspirin\n", "\tAspirin tablets\n"))
    pred = brat_pair(tmp_path / "pred", GOLD_ANN)
    r = cli("score", "--gold", gold, "--pred", pred, "--format", "brat")
    assert r.returncode == 2 and "n1.ann:1: annotated text disagrees" in r.stderr and "Traceback" not in r.stderr
