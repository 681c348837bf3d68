"""`clinie-nemo evaluate` end to end on hand-made records, predictions and corpus; bad-input exits."""

from __future__ import annotations

import json

import pytest

from clinie_nemo.core import docs_jsonl
from clinie_nemo.core.document import Document, Entity, Relation
from clinie_nemo.core.fileio import write_jsonl
from tests.cli_plugin import cli

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
    # unplaced predictions are false positives: naproxen (Drug, not in the text), Dose (no such label)
    assert (s["entities"]["strict"]["tp"], s["entities"]["strict"]["fp"], s["entities"]["strict"]["fn"]) == (2, 2, 2)
    assert (s["relations"]["strict"]["tp"], s["relations"]["strict"]["fp"], s["relations"]["strict"]["fn"]) == (0, 1, 1)


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


HALLUCINATED = {  # gold answers plus predictions that cannot be placed
    "n2c2_2018/a/ce/0": "Drug | Aspirin\nStrength | 81 mg\nDrug | warfarin\nDose | 81 mg",
    "n2c2_2018/a/re_pair/0/T1-T3": "Causes-Drug",
}


def test_unplaced_predictions_are_false_positives_everywhere(files):
    """Issue 11: a hallucinated mention (not in the text) is an FP of its label, one with an unknown label an
    FP of row unplaced:invalid_label; strict, lenient, per label, per template, CIs and --compare agree."""
    gold = {r["id"]: r["output"] for r in records()}
    write_preds(files / "gold.jsonl", gold)
    write_preds(files / "pred.jsonl", {**gold, **HALLUCINATED})
    r = evaluate(files, "--json", files / "s.json", "--bootstrap", "30", "--compare", files / "gold.jsonl")
    assert r.returncode == 0, r.stderr
    s = json.loads((files / "s.json").read_text())
    ents, rels = s["entities"], s["relations"]
    for mode in ("strict", "lenient"):
        assert (ents[mode]["tp"], ents[mode]["fp"], ents[mode]["fn"]) == (4, 2, 0)
        assert ents[mode]["precision"] == pytest.approx(4 / 6)
        assert ents["by_label"]["Drug"][mode]["fp"] == 1
        assert ents["by_label"]["unplaced:invalid_label"][mode]["fp"] == 1
        assert (rels[mode]["tp"], rels[mode]["fp"]) == (1, 1)
        assert rels["by_label"]["unplaced:invalid_label"][mode]["fp"] == 1
    assert s["parse"]["failures"]["mention_not_in_text"] == 1 and s["parse"]["failures"]["invalid_label"] == 2
    assert ents["macro"]["strict"]["by_label"]["n"] == 2  # Drug, Strength: the unplaced row is not a label
    assert s["by_template"]["t"]["entities"]["strict"]["fp"] == 2
    assert ents["strict"]["ci95"]["precision"][0] < 1.0  # replicates drawing note a see its false positives
    assert s["comparison"]["ce"]["entities"]["strict"]["delta_f1"] == pytest.approx(0.8 - 1.0)  # P 4/6, R 1
    assert s["comparison"]["re_pair"]["relations"]["lenient"]["delta_f1"] < 0
    assert "unplaced:invalid_label" in r.stdout


def test_unplaced_relations_and_unreadable_output_count(files):
    """A relation whose argument was not placed, and an unreadable output, are false positives too."""
    from clinie_nemo.engines.predictions import Prediction
    from clinie_nemo.evaluation.evaluate import evaluate_predictions
    from clinie_nemo.evaluation.scoring import get_rules

    recs = [{**records()[0], "task": "re_e2e", "id": "e2e", "chunk": [0, 36]},
            {**records()[1], "id": "bad"}]
    preds = {"e2e": Prediction("e2e", "Drug | Aspirin\nStrength | 80 mg\n=> Strength-Drug | 2 | 1"),
             "bad": Prediction("bad", '{"entities": 7}')}
    s = evaluate_predictions(recs, preds, corpus(), get_rules("default")).result
    e2e = s["by_task"]["re_e2e"]
    rel = e2e["relations"]["by_label"]["Strength-Drug"]["strict"]
    assert (rel["tp"], rel["fp"], rel["fn"]) == (0, 1, 1) == tuple(e2e["relations"]["strict"][c] for c in ("tp", "fp", "fn"))
    assert e2e["entities"]["by_label"]["Strength"]["strict"]["fp"] == 1
    assert s["by_task"]["ce"]["entities"]["by_label"]["unplaced:unparseable"]["strict"]["fp"] == 1
    assert s["parse"]["failures"]["relation_argument_unplaced"] == 1
