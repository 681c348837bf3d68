"""Per-template scores (`evaluate` -> by_template, template_spread) with hand-computed counts."""

from __future__ import annotations

import json
import math

import pytest

from clinie_nemo.core import docs_jsonl
from clinie_nemo.core.document import Document, Entity, Event, EventArgument, Relation
from clinie_nemo.core.fileio import write_jsonl
from clinie_nemo.evaluation.template_scores import Scope, restrict, spread
from tests.cli_plugin import cli

TEXT_A = "Aspirin 81 mg daily. Stop ibuprofen."  # chunks [0, 20] and [21, 36]
TEXT_B = "Heparin drip started."


def corpus() -> list[Document]:
    a = Document("a", TEXT_A, "n2c2_2018", "test", entities=(
        Entity("T1", "Drug", ((0, 7),), "Aspirin"), Entity("T2", "Strength", ((8, 13),), "81 mg"),
        Entity("T3", "Drug", ((26, 35),), "ibuprofen")), relations=(Relation("R1", "Strength-Drug", "T2", "T1"),))
    b = Document("b", TEXT_B, "n2c2_2018", "test", entities=(Entity("T1", "Drug", ((0, 7),), "Heparin"),))
    return [a, b]


def rec(rid: str, doc: str, task: str, chunk: list[int], template: str, **extra) -> dict:
    return {"input": "PROMPT", "output": "", "id": rid, "dataset": "n2c2_2018", "task": task, "template": template,
            "template_hash": template[:1] * 16, "format": "lines", "doc_id": doc, "chunk": chunk, **extra}


# two templates spread over the records as `rotate` would
RECORDS = [
    rec("n2c2_2018/a/ce/0", "a", "ce", [0, 20], "alpha"),
    rec("n2c2_2018/a/ce/1", "a", "ce", [21, 36], "beta"),
    rec("n2c2_2018/b/ce/0", "b", "ce", [0, 21], "alpha"),
    rec("n2c2_2018/a/re_pair/0/T2-T1", "a", "re_pair", [0, 20], "beta", pair=["T2", "T1"]),
    rec("n2c2_2018/a/re_pair/0/T1-T2", "a", "re_pair", [0, 20], "alpha", pair=["T1", "T2"]),
]
PREDICTIONS = {
    "n2c2_2018/a/ce/0": "Drug | Aspirin",  # alpha: T1 found, T2 (Strength) missed
    "n2c2_2018/a/ce/1": "Drug | ibuprofen\nDrug | Stop",  # beta: T3 found, "Stop" spurious
    "n2c2_2018/b/ce/0": "Drug | Heparin",  # alpha: found
    "n2c2_2018/a/re_pair/0/T2-T1": "Strength-Drug",  # beta: the gold pair, right
    "n2c2_2018/a/re_pair/0/T1-T2": "Strength-Drug",  # alpha: reversed direction, spurious
}


@pytest.fixture
def scored(tmp_path):
    docs_jsonl.write(tmp_path / "docs.jsonl", corpus())
    write_jsonl(tmp_path / "test.jsonl", RECORDS)
    write_jsonl(tmp_path / "pred.jsonl", [{"id": k, "prediction": v} for k, v in PREDICTIONS.items()])
    r = cli("evaluate", "--records", tmp_path / "test.jsonl", "--predictions", tmp_path / "pred.jsonl",
            "--corpus", tmp_path / "docs.jsonl", "--json", tmp_path / "scores.json")
    assert r.returncode == 0, r.stderr
    return r, json.loads((tmp_path / "scores.json").read_text())


def counts(block: dict) -> tuple[int, int, int]:
    return block["tp"], block["fp"], block["fn"]


def test_per_template_counts_are_hand_computed(scored):
    _, s = scored
    # overall: entities TP 3 (Aspirin, ibuprofen, Heparin), FP 1 (Stop), FN 1 (81 mg)
    assert counts(s["entities"]["strict"]) == (3, 1, 1)
    bt = s["by_template"]
    assert sorted(bt) == ["alpha", "beta"]
    assert (bt["alpha"]["records"], bt["beta"]["records"]) == (3, 2)
    # alpha covers a[0:20] and b: gold Aspirin, 81 mg, Heparin; predicted Aspirin, Heparin
    assert counts(bt["alpha"]["entities"]["strict"]) == (2, 0, 1)
    assert bt["alpha"]["entities"]["strict"]["f1"] == pytest.approx(0.8)
    # beta covers a[21:36]: gold ibuprofen; predicted ibuprofen, Stop
    assert counts(bt["beta"]["entities"]["strict"]) == (1, 1, 0)
    assert bt["beta"]["entities"]["strict"]["f1"] == pytest.approx(2 / 3)
    # per-template gold adds up to the overall gold when no chunk is shared
    assert sum(bt[t]["entities"]["strict"]["tp"] + bt[t]["entities"]["strict"]["fn"] for t in bt) == 4
    # the gold pair (T2, T1) was asked only under beta: alpha's reversed answer is a FP and no FN
    assert counts(bt["beta"]["relations"]["strict"]) == (1, 0, 0)
    assert counts(bt["alpha"]["relations"]["strict"]) == (0, 1, 0)
    assert bt["alpha"]["relations"]["task"] == "re_pair" and bt["alpha"]["entities"]["task"] == "ce"
    assert counts(bt["alpha"]["entities"]["lenient"]) == (2, 0, 1)


def test_spread_summary(scored):
    r, s = scored
    ce = s["template_spread"]["entities"]
    assert ce["templates"] == 2
    assert (ce["min"], ce["max"]) == (pytest.approx(2 / 3), pytest.approx(0.8))
    assert ce["mean"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert ce["sd"] == pytest.approx((0.8 - 2 / 3) / math.sqrt(2))  # sample sd of two values
    re = s["template_spread"]["relations"]
    assert (re["min"], re["max"], re["templates"]) == (0.0, 1.0, 2)
    assert re["sd"] == pytest.approx(math.sqrt(0.5))
    assert "== by template" in r.stdout and "alpha" in r.stdout and "template spread entities" in r.stdout


def test_one_template_prints_no_template_table(tmp_path):
    docs_jsonl.write(tmp_path / "docs.jsonl", corpus())
    one = [{**r, "template": "alpha"} for r in RECORDS]
    write_jsonl(tmp_path / "test.jsonl", one)
    write_jsonl(tmp_path / "pred.jsonl", [{"id": k, "prediction": v} for k, v in PREDICTIONS.items()])
    r = cli("evaluate", "--records", tmp_path / "test.jsonl", "--predictions", tmp_path / "pred.jsonl",
            "--corpus", tmp_path / "docs.jsonl", "--json", tmp_path / "scores.json")
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "scores.json").read_text())
    assert "== by template" not in r.stdout
    # one template = the whole run: its counts are the headline counts
    assert s["by_template"]["alpha"]["entities"]["strict"] == {k: v for k, v in s["entities"]["strict"].items()
                                                               if k in ("tp", "fp", "fn", "precision", "recall", "f1")}
    assert s["template_spread"]["entities"] == {"min": 0.75, "max": 0.75, "mean": 0.75, "sd": 0.0, "templates": 1}


def test_scope_rule_cross_chunk_relation_and_events():
    """A relation split across chunks of two templates counts (as reachable gold) for both; an event for
    each template holding its trigger or an argument; entities only for the chunk that contains them."""
    doc = Document("d", "Smokes daily. Quit 2010.", "x", "test", entities=(
        Entity("T1", "Tobacco", ((0, 6),), "Smokes"), Entity("T2", "Status", ((7, 12),), "daily"),
        Entity("T3", "Time", ((19, 23),), "2010")),
        relations=(Relation("R1", "Has", "T1", "T3"),),
        events=(Event("E1", "Tobacco", "T1", (EventArgument("Status", "T2"),)),))
    first, second = Scope(), Scope()
    first.add({"chunk": [0, 13]})
    second.add({"chunk": [14, 24]})
    ent1, rel1 = restrict(doc, first, set())
    ent2, rel2 = restrict(doc, second, set())
    assert [e.id for e in ent1.entities] == ["T1", "T2"] and [e.id for e in ent2.entities] == ["T3"]
    assert [r.id for r in rel1.relations] == ["R1"] == [r.id for r in rel2.relations]
    assert [e.id for e in rel1.events] == ["E1"] and rel2.events == ()
    assert {e.id for e in rel2.entities} == {"T1", "T3"}  # the relation's arguments come along
    label_only = Scope()
    label_only.add({"chunk": [0, 13], "label": "Status"})
    assert [e.id for e in restrict(doc, label_only, set())[0].entities] == ["T2"]


def test_spread_edge_cases():
    assert spread([]) == {"templates": 0}
    assert spread([0.5]) == {"min": 0.5, "max": 0.5, "mean": 0.5, "sd": 0.0, "templates": 1}


def test_coverage_kinds():
    from clinie_nemo.evaluation.template_scores import template_coverage

    assert template_coverage([{**r, "template": "alpha"} for r in RECORDS]) == "single"
    assert template_coverage(RECORDS) == "split"
    both = [{**r, "id": r["id"] + "@" + t, "template": t} for r in RECORDS for t in ("alpha", "beta")]
    assert template_coverage(both) == "all"
    # a re_pair chunk holding pairs under both templates is still a split, not every item under every template
    assert template_coverage(both[:6] + RECORDS[3:]) == "split"


def test_scored_split_coverage_keeps_documents_as_units(scored):
    _, s = scored
    assert s["template_coverage"] == "split" and s["by_task"]["ce"]["documents"] == 2
