"""`clinie-nemo score` on handcrafted brat folders (n2c2-2018-like notes, system folder with and without
.txt copies, files on one side only) and PubTator files (CDR-like, system with a score column); every
counter hand-computed; --labels restricting the types."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.cli_plugin import cli

DATA = Path(__file__).resolve().parents[1] / "data"
BRAT, PUBTATOR = DATA / "score_brat", DATA / "score_pubtator"


def triple(block: dict, mode: str) -> tuple[int, int, int]:
    return block[mode]["tp"], block[mode]["fp"], block[mode]["fn"]


def score_json(tmp_path, *args) -> tuple[dict, str]:
    out = tmp_path / "s.json"
    r = cli("score", *args, "--json", out)
    assert r.returncode == 0, r.stderr
    return json.loads(out.read_text()), r.stderr


def test_brat_folders_n2c2_rules(tmp_path):
    s, stderr = score_json(tmp_path, "--gold", BRAT / "gold", "--pred", BRAT / "system", "--format", "brat",
                           "--rules", "n2c2_2018")
    # note1: duplicate Metoprolol dropped (not FP), BID vs "BID (twice a day)", Form missed, spurious Sig,
    # discontinuous "rash ... hives" matched by its outer span; note2: Reason typed ADE, Duration boundary
    assert triple(s["entities"], "strict") == (15, 4, 4)
    assert triple(s["entities"], "lenient") == (17, 2, 2)
    assert triple(s["entities"]["by_label"]["Drug"], "strict") == (6, 1, 0)
    assert triple(s["entities"]["by_label"]["ADE"], "strict") == (3, 1, 0)
    # relations: reversed Frequency-Drug, missing Form-Drug, Reason-Drug on a wrongly typed argument,
    # Duration-Drug on a boundary error (matches when lenient)
    assert triple(s["relations"], "strict") == (9, 3, 4)
    assert triple(s["relations"], "lenient") == (10, 2, 3)
    assert s["documents"] == 2 and s["documents_skipped"] == {"gold_only": 1, "pred_only": 1}
    assert "1 gold documents without predictions skipped: note3" in stderr
    assert "1 predicted documents without gold skipped: note4" in stderr


def test_brat_default_rules_count_duplicates_and_fragments(tmp_path):
    s, _ = score_json(tmp_path, "--gold", BRAT / "gold", "--pred", BRAT / "system", "--format", "brat",
                      "--rules", "i2b2_2010")
    # one-to-one: the duplicate Metoprolol is a false positive; outer span still matches (collapsed)
    assert triple(s["entities"], "strict") == (15, 5, 4)


def test_brat_system_folder_with_only_ann_files(tmp_path):
    shutil.copytree(BRAT, tmp_path / "b")
    for txt in (tmp_path / "b" / "system").glob("*.txt"):
        txt.unlink()
    s, _ = score_json(tmp_path, "--gold", tmp_path / "b" / "gold", "--pred", tmp_path / "b" / "system",
                      "--format", "brat", "--rules", "n2c2_2018")
    assert triple(s["entities"], "strict") == (15, 4, 4)


def test_brat_labels_restrict_types(tmp_path):
    s, _ = score_json(tmp_path, "--gold", BRAT / "gold", "--pred", BRAT / "system", "--format", "brat",
                      "--rules", "n2c2_2018", "--labels", "Drug,ADE,ADE-Drug")
    assert sorted(s["entities"]["by_label"]) == ["ADE", "Drug"]
    assert triple(s["entities"], "strict") == (9, 2, 0)
    assert sorted(s["relations"]["by_label"]) == ["ADE-Drug"] and triple(s["relations"], "strict") == (3, 0, 0)


def test_brat_sdoh_rules_refuse_different_document_sets(tmp_path):
    r = cli("score", "--gold", BRAT / "gold", "--pred", BRAT / "system", "--format", "brat", "--rules", "sdoh")
    assert r.returncode == 2 and "note3" in r.stderr and "note4" in r.stderr and "Traceback" not in r.stderr


def test_pubtator_files(tmp_path):
    s, _ = score_json(tmp_path, "--gold", PUBTATOR / "gold.pubtator", "--pred", PUBTATOR / "system.pubtator",
                      "--format", "pubtator")
    # 10001: "asystole" for "cardiac asystole" (lenient only), "depression" missed;
    # 10002: "hypertensive" typed Chemical, spurious "rats"; 10003 perfect
    assert triple(s["entities"], "strict") == (11, 3, 3)
    assert triple(s["entities"], "lenient") == (12, 2, 2)
    assert triple(s["entities"]["by_label"]["Disease"], "strict") == (3, 2, 3)
    # CID pairs by concept ids (the system's score column ignored): 10002 names the wrong chemical
    assert triple(s["document_relations"], "strict") == (2, 1, 1)


def test_pubtator_labels_restrict_types(tmp_path):
    s, _ = score_json(tmp_path, "--gold", PUBTATOR / "gold.pubtator", "--pred", PUBTATOR / "system.pubtator",
                      "--format", "pubtator", "--labels", "Chemical")
    assert list(s["entities"]["by_label"]) == ["Chemical"]
    assert triple(s["entities"], "strict") == (8, 1, 0)
    assert "document_relations" not in s
