"""`clinie-nemo score` on hand-made files where the official kits' conventions change the counts (issue 11):
PubTator document relations as a set (BioCreative V CDR kit), BioC files whose offsets count XML entities
as written (the CDR kit's BioC release) scoring exactly like their PubTator twins, and brat predictions from
external systems (text column ignored, zero-length span scored, as Track2-evaluate-ver4.py does)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import cli


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
