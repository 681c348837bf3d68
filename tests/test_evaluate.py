"""`clinie-nemo evaluate` end to end on hand-made records, predictions and corpus; bad-input exits."""

from __future__ import annotations

import json

import pytest

from clinie_nemo import docs_jsonl
from clinie_nemo.document import Document, Entity, Relation
from clinie_nemo.fileio import write_jsonl
from tests.conftest import cli

TEXT_A = "Aspirin 81 mg daily. Stop ibuprofen."
TEXT_B = "Heparin drip started."


def corpus() -> list[Document]:
    a = Document("a", TEXT_A, "n2c2_2018", "test", entities=(
        Entity("T1", "Drug", ((0, 7),), "Aspirin"), Entity("T2", "Strength", ((8, 13),), "81 mg"),
        Entity("T3", "Drug", ((26, 35),), "ibuprofen")), relations=(Relation("R1", "Strength-Drug", "T2", "T1"),))
    b = Document("b", TEXT_B, "n2c2_2018", "test", entities=(Entity("T1", "Drug", ((0, 7),), "Heparin"),))
    return [a, b]


def records() -> list[dict]:
    base = {"dataset": "n2c2_2018", "template": "t", "template_hash": "h", "input": "PROMPT"}
    return [
        {**base, "id": "n2c2_2018/a/ce/0", "doc_id": "a", "task": "ce", "format": "lines", "chunk": [0, 20],
         "output": "Drug | Aspirin\nStrength | 81 mg"},
        {**base, "id": "n2c2_2018/a/ce/1", "doc_id": "a", "task": "ce", "format": "json", "chunk": [13, 36],
         "output": '[{"label": "Drug", "text": "ibuprofen"}]'},
        {**base, "id": "n2c2_2018/b/ce/0", "doc_id": "b", "task": "ce", "format": "inline", "chunk": [0, 21],
         "output": "<Drug>Heparin</Drug> drip started."},
        {**base, "id": "n2c2_2018/a/re_pair/0/T2-T1", "doc_id": "a", "task": "re_pair", "format": "lines",
         "chunk": [0, 20], "pair": ["T2", "T1"], "output": "Strength-Drug"},
        {**base, "id": "n2c2_2018/a/re_pair/0/T1-T3", "doc_id": "a", "task": "re_pair", "format": "lines",
         "chunk": [0, 36], "pair": ["T1", "T3"], "output": "none"},
    ]


@pytest.fixture
def files(tmp_path):
    docs_jsonl.write(tmp_path / "docs.jsonl", corpus())
    write_jsonl(tmp_path / "test.jsonl", records())
    return tmp_path


def write_preds(path, preds: dict[str, str]) -> None:
    write_jsonl(path, [{"id": k, "prediction": v, "engine": "local"} for k, v in preds.items()])


def evaluate(tmp, *extra):
    return cli("evaluate", "--records", tmp / "test.jsonl", "--predictions", tmp / "pred.jsonl",
               "--corpus", tmp / "docs.jsonl", *extra)


def test_gold_outputs_as_predictions_score_one(files):
    write_preds(files / "pred.jsonl", {r["id"]: r["output"] for r in records()})
    r = evaluate(files, "--json", files / "scores.json", "--tag", "model=tiny", "--tag", "fraction=0.5",
                 "--bootstrap", "20")
    assert r.returncode == 0, r.stderr
    s = json.loads((files / "scores.json").read_text())
    assert (s["entities"]["strict"]["tp"], s["entities"]["strict"]["f1"]) == (4, 1.0)
    assert s["entities"]["task"] == "ce" and s["relations"]["task"] == "re_pair"
    assert (s["relations"]["strict"]["tp"], s["relations"]["strict"]["fp"]) == (1, 0)
    assert s["meta"] == {"model": "tiny", "fraction": "0.5"}
    assert s["parse"]["records"] == 5 and sum(s["parse"]["failures"].values()) == 0
    assert "ci95" in s["by_task"]["ce"]["entities"]["strict"]
    assert "n2c2_2018/ce" in r.stdout


def test_messy_predictions_are_counted(files):
    write_preds(files / "pred.jsonl", {
        "n2c2_2018/a/ce/0": "Sure:\n```\n- drug | aspirin\n- Dose | 81 mg\n```",
        "n2c2_2018/a/ce/1": '[{"label": "Drug", "text": "naproxen"}, {"label": "Drug", "te',
        "n2c2_2018/b/ce/0": "<Drug>Heparin</Drug> drip started.",
        "n2c2_2018/a/re_pair/0/T2-T1": "Reason-Drug",
        "n2c2_2018/a/re_pair/0/T1-T3": "none",
    })
    r = evaluate(files, "--json", files / "scores.json")
    assert r.returncode == 0, r.stderr
    s = json.loads((files / "scores.json").read_text())
    assert s["parse"]["failures"] == {"unparseable": 0, "invalid_label": 2, "mention_not_in_text": 1,
                                      "ambiguous_occurrence": 0, "truncated_output": 1}
    assert s["parse"]["placed_by"] == {"casefold": 1, "exact": 1}
    assert (s["entities"]["strict"]["tp"], s["entities"]["strict"]["fp"], s["entities"]["strict"]["fn"]) == (2, 0, 2)
    assert (s["relations"]["strict"]["tp"], s["relations"]["strict"]["fn"]) == (0, 1)


@pytest.mark.parametrize("lines,message", [
    ([{"id": "nope", "prediction": ""}], "unknown record id 'nope'"),
    ([{"id": "n2c2_2018/b/ce/0", "prediction": ""}, {"id": "n2c2_2018/b/ce/0", "prediction": ""}],
     "duplicate prediction"),
    ([{"id": "n2c2_2018/b/ce/0"}], 'expected {"id": str, "prediction": str}'),
    ([{"id": "n2c2_2018/b/ce/0", "prediction": ""}], "no prediction for 4 of 5 records"),
])
def test_bad_predictions_exit_2_with_location(files, lines, message):
    write_jsonl(files / "pred.jsonl", lines)
    r = evaluate(files)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    if "unknown" in message or "duplicate" in message:
        assert "pred.jsonl:" in r.stderr


def test_allow_missing_scores_missing_records_as_empty(files):
    write_preds(files / "pred.jsonl", {"n2c2_2018/b/ce/0": "<Drug>Heparin</Drug> drip"})
    r = evaluate(files, "--allow-missing", "--json", files / "s.json")
    assert r.returncode == 0, r.stderr
    s = json.loads((files / "s.json").read_text())
    assert s["parse"]["failures"]["missing_prediction"] == 4
    assert (s["entities"]["strict"]["tp"], s["entities"]["strict"]["fn"]) == (1, 3)


def test_records_of_unknown_documents_and_bad_tags(files):
    write_jsonl(files / "test.jsonl", [{**records()[0], "doc_id": "zzz"}])
    write_preds(files / "pred.jsonl", {records()[0]["id"]: ""})
    r = evaluate(files)
    assert r.returncode == 2 and "not in the corpus" in r.stderr
    r = evaluate(files, "--tag", "novalue")
    assert r.returncode == 2 and "KEY=VALUE" in r.stderr


def test_compare_and_brat_out(files):
    write_preds(files / "pred.jsonl", {r["id"]: r["output"] for r in records()})
    worse = {r["id"]: r["output"] for r in records()}
    worse["n2c2_2018/a/ce/0"] = "Drug | Aspirin"
    write_preds(files / "b.jsonl", worse)
    r = evaluate(files, "--compare", files / "b.jsonl", "--bootstrap", "50", "--json", files / "s.json",
                 "--brat-out", files / "brat")
    assert r.returncode == 0, r.stderr
    s = json.loads((files / "s.json").read_text())
    assert s["comparison"]["ce"]["entities"]["strict"]["delta_f1"] == pytest.approx(1 - 6 / 7)
    assert "F1 A - B" in r.stdout
    ann = (files / "brat" / "ce" / "a.ann").read_text()
    assert "Strength 8 13\t81 mg" in ann and (files / "brat" / "re_pair" / "a.ann").exists()
