"""`clinie-nemo score` on the BioCreative V CDR kit's files as released and on prediction variants the kit
scores (tests/data/bc5cdr_kit/PROVENANCE.md has the kit's counts for each): exit 0, the kit's figures,
located warnings on stderr for what was read leniently or ignored; ``--labels`` keeps CID relations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bc5cdr_kit import (
    CID_BIOC,
    CID_PT,
    DNER_BIOC,
    DNER_PT,
    GOLD_BIOC,
    GOLD_PT,
    REPLACED_PMIDS,
    annotation_lines_only,
    kit_file,
    shifted_text_column,
    with_empty_mention,
    with_extra_document,
    without_title_lines,
)
from tests.cli_plugin import cli

KIT_DISEASE, KIT_CID = (303, 105, 121), (90, 533, 33)


def _score(tmp_path: Path, gold: Path, pred: Path, fmt: str, *extra: str) -> tuple[dict, str]:
    out = tmp_path / "s.json"
    r = cli("score", "--gold", gold, "--pred", pred, "--format", fmt, "--json", out, "--force", *extra)
    assert r.returncode == 0, r.stderr
    return json.loads(out.read_text()), r.stderr


def _row(result: dict, kind: str, label: str) -> tuple[int, int, int]:
    s = result[kind]["by_label"][label]["strict"]
    return s["tp"], s["fp"], s["fn"]


def test_bioc_as_released_scores_like_the_kit_with_warnings(tmp_path):
    gold = kit_file(GOLD_BIOC, tmp_path)
    result, err = _score(tmp_path, gold, kit_file(DNER_BIOC, tmp_path), "bioc", "--rules", "bc5cdr")
    assert _row(result, "entities", "Disease") == KIT_DISEASE
    for pmid in REPLACED_PMIDS:
        assert f"warning: {gold}:" in err and f"document {pmid}: passage offsets count XML references" in err
    assert "document 11587867: annotation 7 (an IndividualMention" in err
    result, _ = _score(tmp_path, gold, kit_file(CID_BIOC, tmp_path), "bioc", "--rules", "bc5cdr")
    assert _row(result, "document_relations", "CID") == KIT_CID


def test_bioc_default_rules_no_longer_refuse_the_kit_files(tmp_path):
    result, _ = _score(tmp_path, kit_file(GOLD_BIOC, tmp_path), kit_file(DNER_BIOC, tmp_path), "bioc")
    assert _row(result, "entities", "Disease") != KIT_DISEASE  # IndividualMentions counted: say bc5cdr


KIT_CHEMICAL = (455, 8, 55)


@pytest.mark.parametrize("variant,what,chemical", [
    (shifted_text_column, "mentions whose text column disagrees with the note", KIT_CHEMICAL),
    (annotation_lines_only, "documents with no title/abstract lines read from their annotation lines", KIT_CHEMICAL),
    (without_title_lines, "documents with an abstract but no title line", KIT_CHEMICAL),
    (with_empty_mention, "empty mentions (start = end) kept", (455, 9, 55)),  # the kit: the empty Chemical is FP
])
def test_prediction_variants_the_kit_scores(tmp_path, variant, what, chemical):
    pred = variant(kit_file(CID_PT, tmp_path), tmp_path / "variant.PubTator")
    result, err = _score(tmp_path, kit_file(GOLD_PT, tmp_path), pred, "pubtator", "--rules", "bc5cdr")
    assert _row(result, "entities", "Disease") == KIT_DISEASE
    assert _row(result, "entities", "Chemical") == chemical
    assert _row(result, "document_relations", "CID") == KIT_CID
    assert f"warning: {pred}:" in err and what in err and "(lines " in err


def test_shifted_text_column_in_gold_is_still_refused(tmp_path):
    gold = shifted_text_column(kit_file(GOLD_PT, tmp_path), tmp_path / "gold.PubTator")
    r = cli("score", "--gold", gold, "--pred", kit_file(DNER_PT, tmp_path), "--format", "pubtator")
    assert r.returncode == 2 and "mention text disagrees" in r.stderr and "Traceback" not in r.stderr


def test_extra_predicted_document_skipped_and_listed_under_bc5cdr(tmp_path):
    pred = with_extra_document(kit_file(DNER_PT, tmp_path), tmp_path / "extra.PubTator")
    gold = kit_file(GOLD_PT, tmp_path)
    result, err = _score(tmp_path, gold, pred, "pubtator", "--rules", "bc5cdr")
    assert _row(result, "entities", "Disease") == KIT_DISEASE
    assert "1 predicted documents without gold skipped: 99999999" in err
    assert result["documents_skipped"]["pred_only"] == 1
    r = cli("score", "--gold", gold, "--pred", pred, "--format", "pubtator")
    assert r.returncode == 2 and "not in the gold set" in r.stderr  # the default rules: no official script


def test_labels_keep_cid_relations_and_note_what_they_drop(tmp_path):
    gold, pred = kit_file(GOLD_PT, tmp_path), kit_file(CID_PT, tmp_path)
    result, err = _score(tmp_path, gold, pred, "pubtator", "--rules", "bc5cdr", "--labels", "Chemical,Disease")
    assert _row(result, "document_relations", "CID") == KIT_CID and "note: --labels" not in err
    result, err = _score(tmp_path, gold, pred, "pubtator", "--rules", "bc5cdr", "--labels", "Disease")
    assert "document_relations" not in result or not result["document_relations"]["by_label"]
    assert "note: --labels leaves out 746 relations" in err  # 123 gold + 623 predicted CID pairs
    result, err = _score(tmp_path, gold, pred, "pubtator", "--rules", "bc5cdr", "--labels", "Disease,CID")
    assert _row(result, "document_relations", "CID") == KIT_CID and list(result["entities"]["by_label"]) == ["Disease"]
    assert "note: --labels" not in err
