"""`clinie-nemo render` end to end through the real CLI, and its errors (exit 2, valid names, no
traceback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clinie_nemo import docs_jsonl
from tests.conftest import cli
from tests.instruct_fixtures import hard_document


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "docs.jsonl"
    docs_jsonl.write(path, [hard_document("a"), hard_document("b")])
    return path


def test_render_writes_records_and_prints_round_trip_counts(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "records.jsonl"
    proc = cli("render", "--corpus", corpus, "--task", "re_e2e", "--format", "inline", "--output", out)
    assert proc.returncode == 0, proc.stderr
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
    (("--task", "ce", "--max-tokens", "20"), "do not fit max_tokens=20"),
])
def test_bad_input_exits_2_with_valid_names(corpus: Path, tmp_path: Path, args: tuple[str, ...],
                                            expected: str) -> None:
    out = tmp_path / "r.jsonl"
    proc = cli("render", "--corpus", corpus, *args, "--output", out)
    assert proc.returncode == 2
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()
