"""Bad input for every reader: every problem of a file located (file:line) with the annotation line
quoted and never note text; exit 2 from the CLI with no traceback and no output file; --skip-invalid
converts the rest and reports what it skipped."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from clinie_nemo.core.errors import InputError
from clinie_nemo.corpus.readers import READERS, SkipReport
from tests.cli_plugin import cli
from tests.corpus_fixtures import FIXTURES

SECRET = "Zebulon Quackenbush"  # stands for PHI: in the note, never in any annotation
NOTE = f"Patient {SECRET} takes aspirin 81 mg daily.\nNo rash.\n"


def write_brat(folder: Path, ann: str, name: str = "doc") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.txt").write_text(NOTE)
    (folder / f"{name}.ann").write_text(ann)
    return folder


def convert_fails(fmt: str, src: Path, tmp_path: Path, *expected: str) -> str:
    out = tmp_path / "out.jsonl"
    res = cli("convert", "--format", fmt, "--input", src, "--output", out)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert SECRET not in res.stderr and SECRET not in res.stdout
    assert not out.exists() and not list(tmp_path.glob(".out.jsonl*"))  # no output, no temp file left
    for text in expected:
        assert text in res.stderr, res.stderr
    return res.stderr


# a line that did not parse as an annotation is never quoted (it may be note text): UNQUOTED instead
UNQUOTED = "(not quoted)"
BRAT_CASES = {
    "malformed line": ("T1\tDrug zero 7\taspirin\n", "doc.ann:1: malformed text-bound", UNQUOTED),
    "offset outside the text": ("T1\tDrug 20 900\taspirin\n", "doc.ann:1: offsets 20 900 outside",
                                "T1\tDrug 20 900\taspirin"),
    "text disagrees": ("T1\tDrug 0 7\taspirin\n", "doc.ann:1: annotated text disagrees", "T1\tDrug 0 7"),
    "relation to missing id": ("T1\tDrug 34 41\taspirin\nR1\tStrength-Drug Arg1:T9 Arg2:T1\n",
                               "doc.ann:2: relation R1 refers to missing id T9", "Arg1:T9"),
    "event to missing id": ("T1\tDrug 34 41\taspirin\nE1\tMed:T1 Theme:E7\nE2\tMed:T1 Theme:E1\n",
                            "doc.ann:2: event E1 refers to missing id E7", "doc.ann:3: event E2"),
    "attribute to missing id": ("T1\tDrug 34 41\taspirin\nA1\tNegated T4\n",
                                "doc.ann:2: attribute refers to missing id T4", "A1\tNegated T4"),
    "non-decimal digit in offsets": ("T1\tDrug 34 4\u00b9\taspirin\n", "doc.ann:1: malformed text-bound",
                                     UNQUOTED),
    "unknown line type": ("X1\tfoo\n", "doc.ann:1: unknown annotation line type", UNQUOTED),
}


@pytest.mark.parametrize("case", sorted(BRAT_CASES))
def test_brat_bad_input(tmp_path, case):
    ann, *expected = BRAT_CASES[case]
    src = write_brat(tmp_path / "corpus", ann)
    quoted = UNQUOTED not in expected
    stderr = convert_fails("brat", src, tmp_path, *(e for e in expected if e != UNQUOTED))
    assert ("    | " in stderr) == quoted  # the .ann line is quoted when it parsed as an annotation


def test_brat_collects_every_problem_of_every_file(tmp_path):
    src = write_brat(tmp_path / "corpus", "T1\tDrug 0 7\taspirin\nT2\tDrug 34 41\taspirin\nR1\tX Arg1:T2 Arg2:T5\n"
                     "T3\tDose 42 47\t81 mg\nQ\n")
    write_brat(src / "sub", "T1\tDrug 1 2 3\tbad\n", name="other")
    with pytest.raises(InputError) as exc:
        list(READERS["brat"].read(src))
    lines = [(Path(p.path).name, p.line) for p in exc.value.problems]
    assert lines == [("doc.ann", 1), ("doc.ann", 3), ("doc.ann", 5), ("other.ann", 1)]


def test_brat_missing_txt_and_empty_folder(tmp_path):
    src = tmp_path / "corpus"
    src.mkdir()
    (src / "lonely.ann").write_text("T1\tDrug 0 3\tabc\n")
    convert_fails("brat", src, tmp_path, "no .txt note found for lonely")
    (src / "lonely.ann").unlink()
    convert_fails("brat", src, tmp_path, "no .ann files found under this folder")
    convert_fails("brat", tmp_path / "missing", tmp_path, "no such file or folder")


def test_brat_skip_invalid_keeps_the_rest_and_reports(tmp_path):
    src = write_brat(tmp_path / "corpus", "T1\tDrug 34 41\taspirin\nT2\tDrug 0 7\tbad\nR1\tX Arg1:T2 Arg2:T1\n"
                     "T3\tDose 42 47\t81 mg\nE1\tMed:T1 Dose:T3\n")
    (tmp_path / "corpus/orphan.ann").write_text("T1\tDrug 0 3\tabc\n")
    out = tmp_path / "docs.jsonl"
    res = cli("convert", "--format", "brat", "--input", src, "--output", out, "--skip-invalid")
    assert res.returncode == 0, res.stderr
    docs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [d["id"] for d in docs] == ["doc"]
    assert [e["id"] for e in docs[0]["entities"]] == ["T1", "T3"] and docs[0]["relations"] == []
    report = json.loads((tmp_path / "docs.skipped.json").read_text())
    assert report["skipped"] == 3
    assert [(Path(p["path"]).name, p["line"]) for p in report["problems"]] == [
        ("doc.ann", 2), ("doc.ann", 3), ("orphan.ann", None)]
    assert report["problems"][0]["quote"] == "T2\tDrug 0 7\tbad"
    assert SECRET not in json.dumps(report)
    # callable form, in the library
    seen = SkipReport()
    assert len(list(READERS["brat"].read(src, skip_invalid=seen))) == 1 and len(seen.problems) == 3


def test_i2b2_bad_input(tmp_path):
    src = tmp_path / "rel"
    (src / "txt").mkdir(parents=True)
    (src / "concept").mkdir()
    (src / "rel").mkdir()
    (src / "txt/r1.txt").write_text(f"He met {SECRET} .\nnystatin powder for rash .\n")
    (src / "concept/r1.con").write_text('c="nystatin powder" 2:0 2:1||t="treatment"\nc="rash" 2:9 2:9||t="problem"\n'
                                        'c="rash" 2:3 2:3||t="problem"\nc="aspirin" 2:0 2:0||t="treatment"\n'
                                        'nonsense\n')
    (src / "rel/r1.rel").write_text('c="nystatin powder" 2:0 2:1||r="TrAP"||c="powder for" 2:1 2:2\n')
    convert_fails("i2b2", src, tmp_path, "r1.con:2: token address 2:9 2:9 outside the line",
                  "r1.con:4: mention text disagrees with the note at 2:0 2:0", 'c="aspirin"',
                  "r1.con:5: malformed .con line", "r1.rel:1: relation refers to a concept missing from .con")


def test_radgraph_bad_input(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"1": {"text": "x",\n "entities": {]}}\n')
    convert_fails("radgraph", bad, tmp_path, "bad.json:2: invalid JSON")
    report = {"r1": {"text": f"{SECRET} has small effusion .", "entities": {
        "1": {"tokens": "small", "label": "OBS-DP", "start_ix": 3, "end_ix": 3, "relations": [["modify", "9"]]},
        "2": {"tokens": "effusion", "label": "OBS-DP", "start_ix": 2, "end_ix": 2, "relations": []},
        "3": {"tokens": "x", "label": "OBS-DP", "start_ix": 40, "end_ix": 41, "relations": []}}}}
    bad.write_text(json.dumps(report, indent=1))
    convert_fails("radgraph", bad, tmp_path, "entity 2 tokens disagree", "entity 3 token indices 40-41 outside",
                  "bad.json:5: report r1: relation modify of entity 1 refers to missing entity 9",
                  "bad.json:17: report r1: entity 2")


def test_pubtator_bad_input(tmp_path):
    bad = tmp_path / "bad.pubtator"
    bad.write_text(f"1|t|{SECRET} took aspirin.\n1|a|No rash.\n1\t25\t32\taspirin\tChemical\tD001241\n"
                   "1\t0\t500\taspirin\tChemical\tD001241\n1\t0\t3\tfoo\tChemical\t-\n1\tgarbage\n")
    convert_fails("pubtator", bad, tmp_path, "bad.pubtator:4: offsets 0-500 outside",
                  "bad.pubtator:5: mention text disagrees", "bad.pubtator:6: malformed line")


def test_bioc_bad_input(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text("<collection><document><id>1</id><passage>\n<offset>0</offset><text>x</text>\n</collection>")
    convert_fails("bioc", bad, tmp_path, "bad.xml:3: invalid XML")
    xml = (FIXTURES / "bioc/cdr_sample.xml").read_text()
    xml = xml.replace('offset="0" length="10"', 'offset="0" length="900"')
    xml = xml.replace('<text>delirium</text>', '<text>dementia</text>').replace('refid="2"', 'refid="99"')
    xml = xml.replace("A series of six cases.", f"{SECRET:<22}")
    bad.write_text(xml)
    convert_fails("bioc", bad, tmp_path, "bad.xml:13: document 1378968: annotation 0 offsets outside",
                  "bad.xml:19: document 1378968: annotation 1 text disagrees",
                  "relation R1 refers to missing annotation 99")


def test_output_is_never_overwritten_without_force(tmp_path):
    out = tmp_path / "docs.jsonl"
    out.write_text("keep me\n")
    src = shutil.copytree(FIXTURES / "brat", tmp_path / "brat")
    res = cli("convert", "--format", "brat", "--input", src, "--output", out)
    assert res.returncode == 2 and "--force" in res.stderr and out.read_text() == "keep me\n"
    res = cli("convert", "--format", "brat", "--input", src, "--output", out, "--force")
    assert res.returncode == 0 and out.read_text() != "keep me\n"


# --- the wrong format: a note read as annotations must never be echoed (issue 11) ---

NOTE_LINES = (f"Patient {SECRET} seen today.\n"
              f"T1 {SECRET} was told\n"  # starts like a brat id
              f"T2\t{SECRET} 3 4\tx\n"  # a brat T line with note text in its label field
              f"BP\t{SECRET}\t120\t80\n"  # a table row: four tab-separated fields
              f"{SECRET}|x|y\n\n"
              f"{SECRET}\n"  # one word-ish block: no title line
              f'c="{SECRET}" 1:0||t="problem"\n')


def wrong_format_inputs(tmp_path: Path) -> dict[str, Path]:
    """For each reader, a folder or file of the wrong kind holding note text with the sentinel."""
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "n1.txt").write_text(NOTE_LINES)
    (notes / "n1.ann").write_text(NOTE_LINES)  # a note saved as .ann
    i2b2 = tmp_path / "i2b2"
    (i2b2 / "txt").mkdir(parents=True)
    (i2b2 / "concept").mkdir()
    (i2b2 / "txt/r1.txt").write_text(NOTE_LINES)
    (i2b2 / "concept/r1.con").write_text(NOTE_LINES)
    xml = tmp_path / "other.xml"
    xml.write_text(f"<notes><note><body>{SECRET} seen today.</body></note></notes>\n")
    return {"brat": notes, "pubtator": notes, "i2b2": i2b2, "bioc": xml, "bioc ": notes / "n1.txt",
            "radgraph": notes / "n1.txt", "jsonl": notes / "n1.txt"}


def test_wrong_format_never_echoes_note_text(tmp_path):
    for fmt, src in wrong_format_inputs(tmp_path).items():
        out = tmp_path / f"out-{fmt.strip()}.jsonl"
        r = cli("convert", "--format", fmt.strip(), "--input", src, "--output", out)
        assert r.returncode == 2, (fmt, r.stderr)
        assert "Traceback" not in r.stderr and not out.exists(), (fmt, r.stderr)
        assert SECRET not in r.stderr and "Zebulon" not in r.stderr and SECRET not in r.stdout, (fmt, r.stderr)
        assert "seen today" not in r.stderr and "'BP'" not in r.stderr, (fmt, r.stderr)
        assert f"{src.name}" in r.stderr, (fmt, r.stderr)  # the problem is still located


def test_i2b2_folder_without_con_files_is_an_error(tmp_path):
    src = tmp_path / "test_data"
    src.mkdir()
    (src / "record-1.txt").write_text("He was started on nystatin powder .\n")
    res = cli("convert", "--format", "i2b2", "--input", src, "--output", tmp_path / "out.jsonl")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert f"{src}: no .con concept files found under this folder" in res.stderr
    assert not (tmp_path / "out.jsonl").exists()
    # a release where one record lacks its .con: located, not an empty document
    (tmp_path / "rel/txt").mkdir(parents=True)
    (tmp_path / "rel/concept").mkdir()
    for name in ("r1", "r2"):
        (tmp_path / f"rel/txt/{name}.txt").write_text("He was started on nystatin powder .\n")
    (tmp_path / "rel/concept/r1.con").write_text('c="nystatin powder" 1:4 1:5||t="treatment"\n')
    convert_fails("i2b2", tmp_path / "rel", tmp_path, "r2.txt: no .con concept file for record txt/r2")
