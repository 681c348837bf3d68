"""`score --labels` naming entity labels only keeps the relations whose arguments are all kept (brat fast
path, one or two workers), and notes how many it leaves out; naming a relation label keeps that label."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_plugin import cli

DATA = Path(__file__).parents[1] / "data" / "score_brat"


def _score(tmp_path: Path, *extra: str) -> tuple[dict, str]:
    out = tmp_path / "s.json"
    r = cli("score", "--gold", DATA / "gold", "--pred", DATA / "system", "--format", "brat", "--rules", "n2c2_2018",
            "--json", out, "--force", *extra)
    assert r.returncode == 0, r.stderr
    return json.loads(out.read_text()), r.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_entity_labels_keep_relations_between_kept_entities(tmp_path, workers):
    whole, _ = _score(tmp_path, "--workers", workers)
    kept, err = _score(tmp_path, "--workers", workers, "--labels", "Drug,Strength")
    assert list(kept["relations"]["by_label"]) == ["Strength-Drug"]
    assert kept["relations"]["by_label"]["Strength-Drug"] == whole["relations"]["by_label"]["Strength-Drug"]
    assert sorted(kept["entities"]["by_label"]) == ["Drug", "Strength"]
    assert "note: --labels leaves out" in err and "an argument's label is not in --labels" in err


def test_a_named_relation_label_keeps_only_that_label(tmp_path):
    whole, _ = _score(tmp_path)
    kept, err = _score(tmp_path, "--labels", "Drug,ADE-Drug")
    assert list(kept["relations"]["by_label"]) == ["ADE-Drug"]
    assert kept["relations"]["by_label"]["ADE-Drug"] == whole["relations"]["by_label"]["ADE-Drug"]
    assert "because their label is not in --labels" in err


def test_every_relation_kept_no_note(tmp_path):
    labels = sorted({line.split()[1] for f in (DATA / "gold").glob("*.ann") for line in f.read_text().splitlines()
                     if line.startswith("T")} | {"Drug"})
    whole, _ = _score(tmp_path)
    kept, err = _score(tmp_path, "--labels", ",".join(labels))
    assert kept["relations"]["strict"] == whole["relations"]["strict"] and "note: --labels" not in err
