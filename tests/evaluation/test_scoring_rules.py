"""Hand-computed TP/FP/FN for every rule set and case (missed, spurious, wrong label, off-by-one,
overlap, discontinuous, duplicates, relation direction, typed/untyped relations, SDOH events)."""

from __future__ import annotations

import pytest

from clinie_nemo.core.errors import ConfigError, InputError
from clinie_nemo.evaluation.scoring import RULES, get_rules, score_pairs
from clinie_nemo.evaluation.scoring.docsets import align_documents
from tests.scoring_fixtures import counts, doc, ent, event, rel


def score(gold, pred, rules="default", labels=None):
    return score_pairs([(gold, pred)], get_rules(rules), labels).to_json()


ALL = sorted(RULES)
LABELLED = [name for name in ALL if not RULES[name].ignore_labels]  # label-free rule sets: see below


@pytest.mark.parametrize("rules", LABELLED)
def test_missed_and_spurious(rules):
    gold = doc(ent("T1", "Drug", (0, 7)), ent("T2", "Strength", (8, 13)))
    pred = doc(ent("T1", "Drug", (0, 7)), ent("T9", "Frequency", (14, 19)))
    r = score(gold, pred, rules)
    assert r["entities"]["by_label"]["Strength"]["strict"]["fn"] == 1
    if RULES[rules].gold_label_documents:  # BC5CDR kit: no gold Frequency here, Frequency predictions unscored
        assert counts(r, "entities", "strict") == counts(r, "entities", "lenient") == (1, 0, 1)
        return
    assert counts(r, "entities", "strict") == (1, 1, 1)
    assert counts(r, "entities", "lenient") == (1, 1, 1)
    assert r["entities"]["by_label"]["Frequency"]["strict"]["fp"] == 1
    assert r["entities"]["strict"]["f1"] == pytest.approx(0.5)


@pytest.mark.parametrize("rules", ALL)
def test_wrong_label_is_one_fp_and_one_fn_in_both_modes(rules):
    r = score(doc(ent("T1", "Drug", (0, 7))), doc(ent("T1", "Reason", (0, 7))), rules)
    if RULES[rules].ignore_labels:  # label-free: the span alone matches
        expected = (1, 0, 0)
    elif RULES[rules].gold_label_documents:  # BC5CDR kit: no gold Reason, the Reason prediction unscored
        expected = (0, 0, 1)
    else:
        expected = (0, 1, 1)
    assert counts(r, "entities", "strict") == expected
    assert counts(r, "entities", "lenient") == expected
    if not RULES[rules].ignore_labels:
        r = score(doc(ent("T1", "Drug", (0, 7)), ent("T2", "Reason", (8, 13))),
                  doc(ent("T1", "Reason", (0, 7))), rules)
        assert counts(r, "entities", "strict")[:2] == (0, 1)  # with a gold Reason, a wrong label is an FP everywhere


@pytest.mark.parametrize("rules", ALL)
def test_off_by_one_counts_only_when_lenient(rules):
    r = score(doc(ent("T1", "Drug", (35, 44))), doc(ent("T1", "Drug", (35, 43))), rules)
    assert counts(r, "entities", "strict") == (0, 1, 1)
    assert counts(r, "entities", "lenient") == (1, 0, 0)


@pytest.mark.parametrize("rules", ALL)
def test_touching_spans_do_not_overlap(rules):
    r = score(doc(ent("T1", "Dosage", (8, 13))), doc(ent("T1", "Dosage", (13, 19))), rules)
    assert counts(r, "entities", "lenient") == (0, 1, 1)


def test_one_prediction_overlapping_two_gold_default_matches_one():
    gold = doc(ent("T1", "ADE", (52, 56)), ent("T2", "ADE", (61, 66)))
    pred = doc(ent("T1", "ADE", (52, 66)))
    r = score(gold, pred, "default")
    assert counts(r, "entities", "lenient") == (1, 0, 1)
    assert counts(r, "entities", "strict") == (0, 1, 2)


def test_n2c2_pare_down_lenient_two_predictions_one_gold():
    # gold "rash and hives"; two predictions inside it: the second matches an already matched gold -> dropped
    gold = doc(ent("T1", "ADE", (52, 66)))
    pred = doc(ent("T1", "ADE", (52, 56)), ent("T2", "ADE", (61, 66)))
    assert counts(score(gold, pred, "n2c2_2018"), "entities", "lenient") == (1, 0, 0)
    assert counts(score(gold, pred, "default"), "entities", "lenient") == (1, 1, 0)


def test_n2c2_pare_down_prediction_spanning_two_gold_then_second_prediction_dropped():
    gold = doc(ent("T1", "ADE", (52, 56)), ent("T2", "ADE", (61, 66)))
    pred = doc(ent("T1", "ADE", (52, 66)), ent("T2", "ADE", (61, 66)))
    # P1 marks both gold tags; P2 matches G2 (already matched) -> dropped; TP 1, FP 0, FN 2 - 1
    assert counts(score(gold, pred, "n2c2_2018"), "entities", "lenient") == (1, 0, 1)
    # strict: P2 exact on G2 -> TP; P1 matches nothing -> FP; G1 missed
    assert counts(score(gold, pred, "n2c2_2018"), "entities", "strict") == (1, 1, 1)


def test_duplicate_predictions_fp_by_default_dropped_by_n2c2():
    gold = doc(ent("T1", "Drug", (0, 7)))
    pred = doc(ent("T1", "Drug", (0, 7)), ent("T2", "Drug", (0, 7)), ent("T3", "Drug", (35, 44)),
               ent("T4", "Drug", (35, 44)))
    assert counts(score(gold, pred, "default"), "entities", "strict") == (1, 3, 0)
    # n2c2: the second exact copy is dropped; copies matching no gold stay FP
    assert counts(score(gold, pred, "n2c2_2018"), "entities", "strict") == (1, 2, 0)


def test_discontinuous_default_needs_every_fragment_n2c2_collapses():
    gold = doc(ent("T1", "ADE", (52, 56), (61, 66)))
    outer = doc(ent("T1", "ADE", (52, 66)))
    same = doc(ent("T1", "ADE", (52, 56), (61, 66)))
    assert counts(score(gold, outer, "default"), "entities", "strict") == (0, 1, 1)
    assert counts(score(gold, outer, "default"), "entities", "lenient") == (1, 0, 0)
    assert counts(score(gold, same, "default"), "entities", "strict") == (1, 0, 0)
    assert counts(score(gold, outer, "n2c2_2018"), "entities", "strict") == (1, 0, 0)
    assert counts(score(gold, outer, "i2b2_2010"), "entities", "strict") == (1, 0, 0)


DRUG, STRENGTH = ent("T1", "Drug", (0, 7)), ent("T2", "Strength", (8, 13))


@pytest.mark.parametrize("rules", ALL)
def test_relation_direction_counts(rules):
    gold = doc(DRUG, STRENGTH, rel("R1", "Strength-Drug", "T2", "T1"))
    flipped = doc(DRUG, STRENGTH, rel("R1", "Strength-Drug", "T1", "T2"))
    right = doc(DRUG, STRENGTH, rel("R7", "Strength-Drug", "T2", "T1"))
    assert counts(score(gold, flipped, rules), "relations", "strict") == (0, 1, 1)
    assert counts(score(gold, flipped, rules), "relations", "lenient") == (0, 1, 1)
    assert counts(score(gold, right, rules), "relations", "strict") == (1, 0, 0)


@pytest.mark.parametrize("rules", ALL)
def test_relation_argument_off_by_one_matches_only_lenient(rules):
    gold = doc(DRUG, STRENGTH, rel("R1", "Strength-Drug", "T2", "T1"))
    pred = doc(ent("T1", "Drug", (0, 6)), STRENGTH, rel("R1", "Strength-Drug", "T2", "T1"))
    assert counts(score(gold, pred, rules), "relations", "strict") == (0, 1, 1)
    assert counts(score(gold, pred, rules), "relations", "lenient") == (1, 0, 0)


def test_radgraph_relations_with_and_without_entity_types():
    gold = doc(ent("T1", "OBS-DA", (52, 56)), ent("T2", "ANAT-DP", (61, 66)), rel("R1", "located_at", "T1", "T2"))
    pred = doc(ent("T1", "OBS-U", (52, 56)), ent("T2", "ANAT-DP", (61, 66)), rel("R1", "located_at", "T1", "T2"))
    r = score(gold, pred, "radgraph")
    assert counts(r, "relations", "strict") == (0, 1, 1)
    assert counts(r, "relations_untyped", "strict") == (1, 0, 0)
    assert counts(r, "entities", "strict") == (1, 1, 1)
    assert "relations_untyped" not in score(gold, pred, "default")


def test_duplicate_relations_default_fp_n2c2_dropped():
    gold = doc(DRUG, STRENGTH, rel("R1", "Strength-Drug", "T2", "T1"))
    pred = doc(DRUG, STRENGTH, rel("R1", "Strength-Drug", "T2", "T1"), rel("R2", "Strength-Drug", "T2", "T1"))
    assert counts(score(gold, pred, "default"), "relations", "strict") == (1, 1, 0)
    assert counts(score(gold, pred, "n2c2_2018"), "relations", "strict") == (1, 0, 0)


def sdoh_gold():
    return doc(
        ent("T1", "Tobacco", (68, 74)), ent("T2", "StatusTime", (68, 74), attrs={"StatusTimeVal": "current"}),
        ent("T3", "Amount", (75, 80)), event("E1", "Tobacco", "T1", ("Status", "T2"), ("Amount", "T3")),
        ent("T4", "LivingStatus", (82, 87)), ent("T5", "StatusTime", (82, 87), attrs={"StatusTimeVal": "current"}),
        ent("T6", "TypeLiving", (88, 93), attrs={"TypeLivingVal": "alone"}),
        event("E2", "LivingStatus", "T4", ("Status", "T5"), ("Type", "T6")))


def sdoh_pred():
    return doc(
        # trigger overlaps but is not exact; StatusTime moved to another word (value still right);
        # Amount off by one
        ent("T1", "Tobacco", (68, 73)), ent("T2", "StatusTime", (75, 80), attrs={"StatusTimeVal": "current"}),
        ent("T3", "Amount", (75, 79)), event("E1", "Tobacco", "T1", ("Status", "T2"), ("Amount", "T3")),
        # exact trigger, right status, wrong TypeLiving value; then the same event again (duplicate)
        ent("T4", "LivingStatus", (82, 87)), ent("T5", "StatusTime", (82, 87), attrs={"StatusTimeVal": "current"}),
        ent("T6", "TypeLiving", (88, 93), attrs={"TypeLivingVal": "with_family"}),
        event("E2", "LivingStatus", "T4", ("Status", "T5"), ("Type", "T6")),
        ent("T14", "LivingStatus", (82, 87)), ent("T15", "StatusTime", (82, 87), attrs={"StatusTimeVal": "current"}),
        ent("T16", "TypeLiving", (88, 93), attrs={"TypeLivingVal": "with_family"}),
        event("E12", "Wrong label ignored", "T14", ("Status", "T15"), ("Type", "T16")))


def test_sdoh_events_lenient_is_the_challenge_default():
    r = score(sdoh_gold(), sdoh_pred(), "sdoh")
    assert counts(r, "events", "lenient") == (4, 5, 2)
    rows = r["events"]["by_label"]
    assert rows["Tobacco/Trigger"]["lenient"] == {**rows["Tobacco/Trigger"]["lenient"], "tp": 1, "fp": 0, "fn": 0}
    assert (rows["Tobacco/StatusTime/current"]["lenient"]["tp"], rows["Tobacco/Amount"]["lenient"]["fp"],
            rows["Tobacco/Amount"]["lenient"]["fn"]) == (1, 1, 1)
    assert rows["LivingStatus/TypeLiving/alone"]["lenient"]["fn"] == 1
    assert rows["LivingStatus/TypeLiving/with_family"]["lenient"]["fp"] == 2
    assert (rows["LivingStatus/Trigger"]["lenient"]["tp"], rows["LivingStatus/Trigger"]["lenient"]["fp"]) == (1, 1)


def test_sdoh_events_strict_needs_exact_trigger():
    r = score(sdoh_gold(), sdoh_pred(), "sdoh")
    # Tobacco not aligned: 3 gold misses + 3 predicted false positives; LivingStatus as in lenient
    assert counts(r, "events", "strict") == (2, 7, 4)
    assert r["events"]["by_label"]["Tobacco/StatusTime/current"]["strict"] == {
        "tp": 0, "fp": 1, "fn": 1, "precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_default_events_match_roles_and_exact_argument_spans():
    r = score(sdoh_gold(), sdoh_pred(), "default")
    # every argument compared by role + label + exact span, values ignored:
    # Tobacco: Trigger TP; Status (moved) FN+FP; Amount (off by one) FN+FP.
    # Living: Trigger, Status, Type (same span, other value) TP; the duplicate event: 3 FP
    assert counts(r, "events", "lenient") == (4, 5, 2)
    rows = r["events"]["by_label"]
    assert (rows["Tobacco/Status"]["lenient"]["fp"], rows["Tobacco/Status"]["lenient"]["fn"]) == (1, 1)
    assert rows["LivingStatus/Type"]["lenient"]["tp"] == 1


def test_gold_as_prediction_is_perfect_for_every_rule_set():
    gold = doc(DRUG, STRENGTH, rel("R1", "Strength-Drug", "T2", "T1"), ent("T3", "ADE", (52, 56), (61, 66)))
    for name in ALL:
        r = score(gold, gold, name)
        for kind in ("entities", "relations"):
            for mode in ("strict", "lenient"):
                assert r[kind][mode]["f1"] == 1.0, (name, kind, mode)
    r = score(sdoh_gold(), sdoh_gold(), "sdoh")
    assert counts(r, "events", "strict") == (6, 0, 0)


def test_labels_restrict_every_kind():
    gold = doc(DRUG, STRENGTH, rel("R1", "Strength-Drug", "T2", "T1"))
    pred = doc(DRUG, rel("R1", "Strength-Drug", "T2", "T1"))
    r = score(gold, pred, "default", labels={"Drug"})
    assert counts(r, "entities", "strict") == (1, 0, 0)
    assert counts(r, "relations", "strict") == (0, 0, 0)
    assert list(r["entities"]["by_label"]) == ["Drug"]


def test_micro_sums_documents_and_macro_by_document():
    g1, p1 = doc(DRUG, doc_id="a"), doc(DRUG, doc_id="a")
    g2, p2 = doc(STRENGTH, doc_id="b"), doc(doc_id="b")
    r = score_pairs([(g1, p1), (g2, p2)], RULES["n2c2_2018"]).to_json()
    assert counts(r, "entities", "strict") == (1, 0, 1)
    assert r["entities"]["macro"]["strict"]["by_document"]["f1"] == pytest.approx(0.5)
    assert r["entities"]["macro"]["strict"]["by_label"]["recall"] == pytest.approx(0.5)


def test_document_sets_per_rules():
    gold = [doc(DRUG, doc_id="a"), doc(DRUG, doc_id="b")]
    pred = [doc(DRUG, doc_id="a"), doc(DRUG, doc_id="c")]
    inter = align_documents(gold, pred, RULES["n2c2_2018"])
    assert [g.id for g, _ in inter.pairs] == ["a"] and inter.gold_only == ("b",) and inter.pred_only == ("c",)
    with pytest.raises(InputError, match="identical"):
        align_documents(gold, pred, RULES["sdoh"])
    with pytest.raises(InputError, match="not in the gold set"):
        align_documents(gold, pred, RULES["default"])
    scored_empty = align_documents(gold, pred[:1], RULES["default"])
    assert [(g.id, p is None) for g, p in scored_empty.pairs] == [("a", False), ("b", True)]
    with pytest.raises(InputError, match="duplicate document ids"):
        align_documents(gold, [pred[0], pred[0]], RULES["n2c2_2018"])


def test_unknown_rules_lists_valid_names():
    with pytest.raises(ConfigError, match="n2c2_2018"):
        get_rules("nope")
