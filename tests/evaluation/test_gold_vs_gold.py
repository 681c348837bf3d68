"""Gold scored against itself is 1.0 (no FP, no FN) under every rule set in RULES: on the clinical-trials-gov
extract whose relation lines repeat under new ids (tests/data/ctgov; both `score --format brat` paths and
the documents path) and on every synthetic corpus, read by its dataset's reader. The one exception is
written out: n2c2_2018 lenient, where the official pare-down drops a gold tag that overlaps an already
matched one of its type (see test_gold_as_prediction.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinie_nemo.corpus import synth
from clinie_nemo.corpus.readers import READERS
from clinie_nemo.evaluation.scoring import RULES, Scores, score_pairs
from clinie_nemo.evaluation.scoring.brat_folders import score_brat_folders
from clinie_nemo.evaluation.scoring.rules import N2C2, SET

CTGOV = Path(__file__).resolve().parents[1] / "data" / "ctgov" / "gold"


def assert_perfect(scores: Scores, what: str, allow_lenient_misses: bool = False) -> None:
    totals = scores.totals()
    assert totals, what
    for (kind, mode, label), c in totals.items():
        if allow_lenient_misses and mode == "lenient":
            assert c.fp == 0 and c.tp + c.fn == totals[(kind, "strict", label)].tp, (what, kind, label, c)
            continue
        assert (c.fp, c.fn) == (0, 0) and c.tp > 0, (what, kind, mode, label, c)


def plain_copy(src: Path, dst: Path) -> Path:
    """The extract as plain T/R files (events replaced by their trigger, attributes dropped), so that the
    brat fast path scores it; the repeated relation lines stay."""
    dst.mkdir()
    for ann in src.glob("*.ann"):
        lines = ann.read_text(encoding="utf-8").splitlines()
        trigger = {x.split("\t")[0]: x.split("\t")[1].split()[0].split(":")[1] for x in lines if x.startswith("E")}
        out = [x for x in lines if x.startswith("T")]
        for x in lines:
            if x.startswith("R"):
                rid, (label, a1, a2) = x.split("\t")[0], x.split("\t")[1].split()
                h, t = a1.split(":")[1], a2.split(":")[1]
                out.append(f"{rid}\t{label} Arg1:{trigger.get(h, h)} Arg2:{trigger.get(t, t)}")
        (dst / ann.name).write_text("".join(x + "\n" for x in out), encoding="utf-8")
        (dst / ann.with_suffix(".txt").name).write_bytes(ann.with_suffix(".txt").read_bytes())
    return dst


def test_the_extract_repeats_relations_under_new_ids():
    repeated = 0
    for ann in CTGOV.glob("*.ann"):
        bodies = [x.split("\t")[1] for x in ann.read_text(encoding="utf-8").splitlines() if x.startswith("R")]
        repeated += len(bodies) - len(set(bodies))
    assert repeated == 11  # the 11 false negatives n2c2_2018 gave gold against itself before


@pytest.mark.parametrize("rules", sorted(RULES))
def test_ctgov_gold_against_itself_scores_one(rules, tmp_path):
    folders = score_brat_folders(CTGOV, CTGOV, RULES[rules])
    assert len(folders.scores.documents) == 8 and folders.fallback == 8  # events and attributes: the reader
    assert_perfect(folders.scores, "brat reader path")
    once = RULES[rules].duplicates == SET or RULES[rules].multiple_matches == N2C2
    assert folders.scores.total("relations", "strict").tp == (217 if once else 228)  # 228 lines, 11 repeats
    docs = list(READERS["brat"].read(CTGOV))
    assert_perfect(score_pairs([(d, d) for d in docs], RULES[rules]), "documents path")
    plain = plain_copy(CTGOV, tmp_path / "plain")
    fast = score_brat_folders(plain, plain, RULES[rules])
    assert fast.fast == 8
    assert_perfect(fast.scores, "brat fast path")


@pytest.mark.parametrize("dataset", synth.GENERATOR_NAMES)
def test_synthetic_gold_against_itself_scores_one_under_every_rule_set(synthetic_corpora, dataset):
    docs = synthetic_corpora[dataset]
    assert docs
    for name, rules in RULES.items():
        assert_perfect(score_pairs([(d, d) for d in docs], rules), f"{dataset} under {name}",
                       allow_lenient_misses=name == "n2c2_2018")
