"""`clinie-nemo render` end to end through the real CLI, and its errors (exit 2, valid names, no
traceback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clinie_nemo.core import docs_jsonl
from tests.cli_plugin import cli
from tests.instruct_fixtures import hard_document


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "docs.jsonl"
    docs_jsonl.write(path, [hard_document("a"), hard_document("b")])
    return path


def test_render_writes_records_and_prints_round_trip_counts(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "records.jsonl"
    report = tmp_path / "report.json"
    proc = cli("render", "--corpus", corpus, "--task", "re_e2e", "--format", "inline", "--output", out,
               "--report", report)
    assert proc.returncode == 0, proc.stderr
    counts = json.loads(report.read_text())
    assert counts["records"] == 2 and counts["roundtrip"]["events"] == {"gold": 2, "recovered": 2, "spurious": 0}
    assert counts["tokens"] == "fallback:words+punct" and counts["cross_chunk"] == {}
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["documents/a/re_e2e/0", "documents/b/re_e2e/0"]
    assert {k for k in rows[0]} >= {"input", "output", "id", "dataset", "task", "template", "template_hash",
                                    "format", "doc_id", "chunk"}
    assert "entities   32/32 recovered (100.00%)" in proc.stdout
    assert "events     2/2 recovered" in proc.stdout
    assert "Aspirin" not in proc.stdout + proc.stderr  # no note text in logs
    again = cli("render", "--corpus", corpus, "--task", "ce", "--output", out)
    assert again.returncode == 2 and "--force" in again.stderr
    forced = cli("render", "--corpus", corpus, "--task", "ce", "--messages", "--output", out, "--force")
    assert forced.returncode == 0
    row = json.loads(out.read_text().splitlines()[0])
    assert [m["role"] for m in row["messages"]] == ["user", "assistant"] and "input" not in row


@pytest.mark.parametrize(("args", "expected"), [
    (("--task", "cee"), "unknown task 'cee'; valid: ce, re_e2e, re_pair"),
    (("--task", "ce", "--format", "xml"), "unknown format 'xml'; valid: inline, json, lines"),
    (("--task", "ce", "--template", "nope"), "valid: ce_annotator, ce_extract"),
    (("--task", "ce", "--labels", "Drug,Nope"), "unknown entity label 'Nope'; valid: ADE, Drug"),
    (("--task", "ce", "--max-tokens", "20"), "prompt without any text already takes"),
    (("--task", "ce", "--max-tokens", "200"), "document a: characters 22-61 (5 annotated spans) do not fit max_tokens=200"),
    (("--task", "ce", "--dataset", "n2c2_2019"), "unknown dataset 'n2c2_2019'; valid: i2b2_2010, n2c2_2018"),
])
def test_bad_input_exits_2_with_valid_names(corpus: Path, tmp_path: Path, args: tuple[str, ...],
                                            expected: str) -> None:
    out = tmp_path / "r.jsonl"
    proc = cli("render", "--corpus", corpus, *args, "--output", out)
    assert proc.returncode == 2
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_registered_dataset_schema_fills_definitions(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    proc = cli("render", "--corpus", corpus, "--task", "re_pair", "--format", "json", "--dataset", "n2c2_2018",
               "--negative-ratio", "1", "--output", out)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(r["dataset"] == "n2c2_2018" and r["id"].startswith("n2c2_2018/") for r in rows)
    assert "- Strength-Drug (Strength -> Drug)" in rows[0]["input"]
    answers = [json.loads(r["output"])["relation"] for r in rows]
    positives = sum(a != "none" for a in answers)
    assert positives > 0 and answers.count("none") <= positives
    # entities outside the dataset's schema (Tobacco, StatusTime) are counted, not silently dropped
    ce = cli("render", "--corpus", corpus, "--task", "ce", "--dataset", "n2c2_2018", "--output", out, "--force")
    assert ce.returncode == 0, ce.stderr
    assert "entities   28/32 recovered" in ce.stdout
    assert any(line.split() == ["entity_label_not_in_schema", "4"] for line in ce.stdout.splitlines())
