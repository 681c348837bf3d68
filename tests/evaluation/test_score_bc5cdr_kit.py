"""The ``bc5cdr`` rule set against the BioCreative V CDR kit's own counts (tests/data/bc5cdr_kit/PROVENANCE.md:
each figure below was printed by the kit's jar on these very files): mentions, CID relations, BioC and
PubTator, concept ids with and without ``MESH:``, repeated lines, predicted documents the gold lacks, and
``--labels`` keeping the relations between kept entities."""

from __future__ import annotations

import pytest

from clinie_nemo.core.document import Document, Entity
from clinie_nemo.core.errors import InputError
from clinie_nemo.corpus.readers import bioc, pubtator
from clinie_nemo.evaluation.scoring import score_pairs
from clinie_nemo.evaluation.scoring.docsets import align_documents
from clinie_nemo.evaluation.scoring.items import KeptLabels
from clinie_nemo.evaluation.scoring.rules import RULES, normalise_concept_id
from tests.bc5cdr_kit import (
    CID_BIOC,
    CID_PT,
    DNER_BIOC,
    DNER_PT,
    GOLD_BIOC,
    GOLD_PT,
    duplicated_lines,
    kit_file,
    mesh_prefixed,
    with_extra_document,
    without_disease_and_cid,
)

KIT_DISEASE = (303, 105, 121)  # eval_mention.sh (Disease), BioC and PubTator alike
KIT_CHEMICAL_CID_RUN = (455, 8, 55)  # Evaluate mention Chemical, gold vs the CID run
KIT_CID = (90, 533, 33)  # eval_relation.sh (CID), BioC and PubTator alike
QUIET = {"on_warning": lambda _w: None}


def _docs(tmp_path, name, system=False):
    reader = bioc if str(name).endswith(".xml") else pubtator
    path = name if not isinstance(name, str) else kit_file(name, tmp_path)
    return list(reader.read(path, system=system, **QUIET))


def _counts(gold, pred, rules="bc5cdr", labels=None):
    alignment = align_documents(gold, pred, RULES[rules])
    totals = score_pairs(alignment.pairs, RULES[rules], labels).totals()
    return {(k, label): (c.tp, c.fp, c.fn) for (k, m, label), c in totals.items() if m == "strict"}


@pytest.mark.parametrize("gold,dner,cid", [(GOLD_BIOC, DNER_BIOC, CID_BIOC), (GOLD_PT, DNER_PT, CID_PT)])
def test_kit_counts_bioc_and_pubtator(tmp_path, gold, dner, cid):
    g = _docs(tmp_path, gold)
    mentions = _counts(g, _docs(tmp_path, dner, system=True))
    assert mentions[("entities", "Disease")] == KIT_DISEASE
    relations = _counts(g, _docs(tmp_path, cid, system=True))
    assert relations[("document_relations", "CID")] == KIT_CID
    assert relations[("entities", "Disease")] == KIT_DISEASE
    assert relations[("entities", "Chemical")] == KIT_CHEMICAL_CID_RUN


def test_default_rules_count_individual_mentions_bc5cdr_skips_them(tmp_path):
    g, p = _docs(tmp_path, GOLD_BIOC), _docs(tmp_path, DNER_BIOC, system=True)
    default = _counts(g, p, "default")[("entities", "Disease")]
    assert default != KIT_DISEASE and default[0] > KIT_DISEASE[0]  # IndividualMentions the DNER run also has


@pytest.mark.parametrize("gold_mesh,pred_mesh", [(False, True), (True, False), (True, True)])
def test_mesh_prefix_spellings_score_the_same(tmp_path, gold_mesh, pred_mesh):
    gold = kit_file(GOLD_PT, tmp_path)
    pred = kit_file(CID_PT, tmp_path)
    if gold_mesh:
        gold = mesh_prefixed(gold, tmp_path / "gold_mesh.PubTator")
    if pred_mesh:
        pred = mesh_prefixed(pred, tmp_path / "cid_mesh.PubTator")
    g, p = _docs(tmp_path, gold), _docs(tmp_path, pred, system=True)
    assert _counts(g, p)[("document_relations", "CID")] == KIT_CID
    if gold_mesh != pred_mesh:  # the plain rules compare ids as written: the prefix costs every match
        assert _counts(g, p, "default")[("document_relations", "CID")][0] < KIT_CID[0]


def test_normalise_concept_id_as_the_kit():
    assert normalise_concept_id("D001", "mesh") == "MESH:D001"
    assert normalise_concept_id(" MESH:D001 ", "mesh") == "MESH:D001"
    assert normalise_concept_id("CHEBI:32875", "mesh") == "CHEBI:32875"
    assert normalise_concept_id("-1", "mesh") == "" and normalise_concept_id("D001", "") == "D001"


def test_repeated_lines_count_once(tmp_path):
    g = _docs(tmp_path, GOLD_PT)
    dner = _docs(tmp_path, duplicated_lines(kit_file(DNER_PT, tmp_path), tmp_path / "dner_dup.PubTator"), True)
    cid = _docs(tmp_path, duplicated_lines(kit_file(CID_PT, tmp_path), tmp_path / "cid_dup.PubTator"), True)
    assert _counts(g, dner)[("entities", "Disease")] == KIT_DISEASE
    assert _counts(g, cid)[("document_relations", "CID")] == KIT_CID
    assert _counts(g, dner, "default")[("entities", "Disease")][1] > KIT_DISEASE[1]  # counted: more FP


def test_predicted_document_without_gold_is_skipped_under_bc5cdr_only(tmp_path):
    g = _docs(tmp_path, GOLD_PT)
    extra = _docs(tmp_path, with_extra_document(kit_file(CID_PT, tmp_path), tmp_path / "x.PubTator"), True)
    alignment = align_documents(g, extra, RULES["bc5cdr"])
    assert alignment.pred_only == ("99999999",) and len(alignment.pairs) == 50
    assert "1 predicted documents without gold skipped: 99999999" in alignment.notes("gold")
    assert _counts(g, extra)[("document_relations", "CID")] == KIT_CID
    with pytest.raises(InputError, match="not in the gold set"):
        align_documents(g, extra, RULES["default"])


def test_individual_mention_skipped_by_attribute():
    text = "renal and hepatic dysfunction"
    whole = Entity("1", "Disease", ((0, 29),), text, (("CompositeRole", "CompositeMention"),))
    part = Entity("2", "Disease", ((0, 5), (18, 29)), "renal dysfunction", (("CompositeRole", "IndividualMention"),))
    gold = Document("d", text, entities=(whole, part))
    pred = Document("d", text, entities=(whole,))
    assert _counts([gold], [pred])[("entities", "Disease")] == (1, 0, 0)
    assert _counts([gold], [pred], "default")[("entities", "Disease")] == (1, 0, 1)


def test_labels_keep_relations_between_kept_entities(tmp_path):
    g, p = _docs(tmp_path, GOLD_PT), _docs(tmp_path, CID_PT, system=True)
    by_arguments = _counts(g, p, labels=KeptLabels({"Chemical", "Disease"}, by_arguments=True))
    assert by_arguments[("document_relations", "CID")] == KIT_CID
    assert by_arguments[("entities", "Disease")] == KIT_DISEASE
    only_disease = _counts(g, p, labels=KeptLabels({"Disease"}, by_arguments=True))
    assert ("document_relations", "CID") not in only_disease  # every CID has a Chemical argument
    named = _counts(g, p, labels=KeptLabels({"Disease", "CID"}))
    assert named[("document_relations", "CID")] == KIT_CID and ("entities", "Chemical") not in named
    plain = _counts(g, p, labels={"Chemical", "Disease"})  # a plain label set (evaluate's API) as before
    assert ("document_relations", "CID") not in plain


def test_predictions_of_a_label_the_gold_document_lacks_are_not_scored(tmp_path):
    """The kit, run for Disease (or CID), drops the predictions of documents with no gold Disease (CID):
    document 26094 without its gold Disease mentions and CID pairs -> kit 295/105/119 and 90/531/32."""
    gold = _docs(tmp_path, without_disease_and_cid(kit_file(GOLD_PT, tmp_path), tmp_path / "g.PubTator"))
    pred = _docs(tmp_path, CID_PT, system=True)
    kit = _counts(gold, pred)
    assert kit[("entities", "Disease")] == (295, 105, 119)
    assert kit[("document_relations", "CID")] == (90, 531, 32)
    assert kit[("entities", "Chemical")] == KIT_CHEMICAL_CID_RUN  # 26094 keeps its Chemicals
    default = _counts(gold, pred, "default")
    assert default[("entities", "Disease")][1] > 105 and default[("document_relations", "CID")][1] > 531
