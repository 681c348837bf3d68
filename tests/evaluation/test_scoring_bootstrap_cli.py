"""Bootstrap confidence intervals, the paired test, and `clinie-nemo score` on documents JSONL."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clinie_nemo.core import docs_jsonl
from clinie_nemo.evaluation.scoring import RULES, score_pairs
from clinie_nemo.evaluation.scoring.bootstrap import confidence_interval, doc_matrix, paired_bootstrap
from tests.cli_plugin import cli
from tests.scoring_fixtures import doc, ent


def test_interval_brackets_the_point_estimate_and_is_seeded():
    rng = np.random.default_rng(1)
    m = np.stack([rng.integers(5, 10, 200), rng.integers(0, 3, 200), rng.integers(0, 3, 200)], axis=1)
    tp, fp, fn = m.sum(axis=0)
    f1 = 2 * tp / (2 * tp + fp + fn)
    ci = confidence_interval(m, n=300, seed=7)
    assert ci["f1"][0] < f1 < ci["f1"][1]
    assert ci == confidence_interval(m, n=300, seed=7)
    assert ci != confidence_interval(m, n=300, seed=8)


def test_constant_documents_give_a_zero_width_interval():
    m = np.tile([[3, 1, 1]], (50, 1))
    assert confidence_interval(m, n=100)["precision"] == [0.75, 0.75]


def test_paired_bootstrap_identical_systems_p_is_one_and_clear_winner_p_small():
    rng = np.random.default_rng(2)
    a = np.stack([rng.integers(8, 10, 100), rng.integers(0, 2, 100), rng.integers(0, 2, 100)], axis=1)
    same = paired_bootstrap(a, a.copy(), n=200, seed=0)
    assert same["delta_f1"] == 0.0 and same["p_value"] == 1.0
    worse = a.copy()
    worse[:, 0] -= 4
    worse[:, 2] += 4
    diff = paired_bootstrap(a, worse, n=200, seed=0)
    assert diff["delta_f1"] > 0.1 and diff["p_value"] < 0.01 and diff["ci95"][0] > 0
    with pytest.raises(ValueError):
        paired_bootstrap(a, a[:10])


def test_doc_matrix_rows_follow_documents():
    g = [doc(ent("T1", "Drug", (0, 7)), doc_id="a"), doc(ent("T1", "Drug", (0, 7)), doc_id="b")]
    p = [doc(ent("T1", "Drug", (0, 7)), doc_id="a"), doc(doc_id="b")]
    scores = score_pairs(zip(g, p), RULES["default"])
    assert doc_matrix(scores, "entities", "strict").tolist() == [[1, 0, 0], [0, 0, 1]]


def test_score_command_on_documents_jsonl(tmp_path):
    gold = [doc(ent("T1", "Drug", (0, 7)), ent("T2", "Strength", (8, 13)), doc_id=f"n{i}") for i in range(4)]
    pred = [doc(ent("T1", "Drug", (0, 7)), doc_id=f"n{i}") for i in range(4)]
    docs_jsonl.write(tmp_path / "gold.jsonl", gold)
    docs_jsonl.write(tmp_path / "pred.jsonl", pred)
    out = tmp_path / "s.json"
    r = cli("score", "--gold", tmp_path / "gold.jsonl", "--pred", tmp_path / "pred.jsonl", "--bootstrap", "50",
            "--json", out)
    assert r.returncode == 0, r.stderr
    assert "entities" in r.stdout and "Strength" in r.stdout
    result = json.loads(out.read_text())
    assert (result["entities"]["strict"]["tp"], result["entities"]["strict"]["fn"]) == (4, 4)
    assert "ci95" in result["entities"]["strict"]
    again = cli("score", "--gold", tmp_path / "gold.jsonl", "--pred", tmp_path / "pred.jsonl", "--json", out)
    assert again.returncode == 2 and "--force" in again.stderr
    r = cli("score", "--gold", tmp_path / "gold.jsonl", "--pred", tmp_path / "pred.jsonl", "--labels", "Strength",
            "--json", out, "--force")
    assert json.loads(out.read_text())["entities"]["strict"]["tp"] == 0


def test_score_command_sdoh_needs_identical_document_sets(tmp_path):
    docs_jsonl.write(tmp_path / "gold.jsonl", [doc(doc_id="a"), doc(doc_id="b")])
    docs_jsonl.write(tmp_path / "pred.jsonl", [doc(doc_id="a")])
    r = cli("score", "--gold", tmp_path / "gold.jsonl", "--pred", tmp_path / "pred.jsonl", "--rules", "sdoh")
    assert r.returncode == 2 and "identical" in r.stderr and "Traceback" not in r.stderr
    r = cli("score", "--gold", tmp_path / "gold.jsonl", "--pred", tmp_path / "pred.jsonl", "--rules", "n2c2_2018")
    assert r.returncode == 0 and "1 gold documents without predictions skipped" in r.stderr
    r = cli("score", "--gold", tmp_path / "gold.jsonl", "--pred", tmp_path / "pred.jsonl", "--rules", "bogus")
    assert r.returncode == 2 and "n2c2_2018" in r.stderr


def test_score_compare_two_systems(tmp_path):
    gold = [doc(ent("T1", "Drug", (0, 7)), ent("T2", "Strength", (8, 13)), doc_id=f"n{i}") for i in range(30)]
    better = [doc(ent("T1", "Drug", (0, 7)), ent("T2", "Strength", (8, 13)), doc_id=f"n{i}") for i in range(30)]
    worse = [doc(ent("T1", "Drug", (0, 7)), doc_id=f"n{i}") if i % 2 else g for i, g in enumerate(gold)]
    for name, docs in (("gold", gold), ("a", better), ("b", worse)):
        docs_jsonl.write(tmp_path / f"{name}.jsonl", docs)
    out = tmp_path / "c.json"
    r = cli("score", "--gold", tmp_path / "gold.jsonl", "--pred", tmp_path / "a.jsonl", "--compare",
            tmp_path / "b.jsonl", "--bootstrap", "300", "--json", out)
    assert r.returncode == 0, r.stderr
    c = json.loads(out.read_text())["comparison"]["entities"]["strict"]
    # A: 60/60; B: 45 TP, 15 FN -> F1 0.8571
    assert c["delta_f1"] == pytest.approx(1 - 90 / 105)
    assert c["p_value"] < 0.01 and c["ci95"][0] > 0
    assert "F1 A - B" in r.stdout
