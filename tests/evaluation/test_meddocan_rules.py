"""The MEDDOCAN rule sets (meddocan, meddocan_spans, meddocan_merged_spans) against the official MEDDOCAN
evaluate.py on an extract of the MEDDOCAN test set (tests/data/meddocan): the counts asserted here are the
ones the official script printed on the same gold and system files (PROVENANCE.md), on the brat fast path,
the full-reader fallback (BOM notes, repeated ids), the documents path and the CLI; and the label-free
``spans`` rule set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clinie_nemo.core import docs_jsonl
from clinie_nemo.core.document import Document, Entity
from clinie_nemo.corpus.readers import READERS
from clinie_nemo.corpus.readers._common import Problems
from clinie_nemo.corpus.readers.brat import find_pairs, read_pair
from clinie_nemo.evaluation.scoring import RULES, score_pairs
from clinie_nemo.evaluation.scoring.brat_folders import score_brat_folders
from clinie_nemo.evaluation.scoring.docsets import align_documents
from clinie_nemo.evaluation.scoring.merged_spans import merge, merged_counts
from tests.cli_plugin import cli
from tests.evaluation.meddocan_systems import GOLD, write_systems

# (documents, TP, FP, FN) printed by the official evaluate.py (brat ner / brat spans) on these files
KIT = {
    ("repeated", "meddocan"): (20, 462, 0, 0),
    ("repeated", "meddocan_spans"): (20, 462, 0, 0),
    ("repeated", "meddocan_merged_spans"): (20, 484, 0, 0),
    ("missing", "meddocan"): (17, 395, 0, 0),
    ("missing", "meddocan_spans"): (17, 395, 0, 0),
    ("missing", "meddocan_merged_spans"): (17, 414, 0, 0),
    ("perturbed", "meddocan"): (20, 294, 184, 168),
    ("perturbed", "meddocan_spans"): (20, 354, 124, 108),
    ("perturbed", "meddocan_merged_spans"): (20, 359, 78, 105),
}


@pytest.fixture(scope="module")
def systems(tmp_path_factory) -> dict[str, Path]:
    return write_systems(tmp_path_factory.mktemp("meddocan"))


def triple(c) -> tuple[int, int, int]:
    return c.tp, c.fp, c.fn


def read_system(folder: Path) -> list[Document]:
    """A system folder as documents, read as `score --format brat` reads predictions."""
    problems, tolerated = Problems(), []
    docs = [read_pair(ann, txt, doc_id, problems, system=tolerated) for ann, txt, doc_id in find_pairs(folder)]
    assert not problems.found
    return [d for d in docs if d is not None]


@pytest.mark.parametrize(("system", "rules"), sorted(KIT))
def test_both_score_paths_give_the_official_counts(systems, system, rules):
    n_docs, *counts = KIT[(system, rules)]
    folders = score_brat_folders(GOLD, systems[system], RULES[rules])
    assert len(folders.scores.documents) == n_docs
    assert triple(folders.scores.total("entities", "strict")) == tuple(counts)
    if system != "repeated":
        assert folders.fast and folders.fallback  # plain files and BOM notes: both paths taken
    alignment = align_documents(list(READERS["brat"].read(GOLD)), read_system(systems[system]), RULES[rules])
    documents = score_pairs(alignment.pairs, RULES[rules])
    assert len(documents.documents) == n_docs
    assert triple(documents.total("entities", "strict")) == tuple(counts)
    assert documents.total("entities", "lenient") == folders.scores.total("entities", "lenient")


def _doubled(doc: Document) -> Document:
    """Every entity twice, the copy under a new id (a repeated prediction in a documents file)."""
    copies = tuple(Entity(f"{e.id}x", e.label, e.spans, e.text) for e in doc.entities)
    return doc.with_(entities=doc.entities + copies)


def test_cli_brat_and_jsonl_agree_with_the_official_script(systems, tmp_path):
    r = cli("score", "--gold", GOLD, "--pred", systems["repeated"], "--format", "brat", "--rules", "meddocan",
            "--json", tmp_path / "brat.json")
    assert r.returncode == 0, r.stderr
    assert "462 line repeated with its id (read once)" in r.stderr
    s = json.loads((tmp_path / "brat.json").read_text())
    assert (s["entities"]["strict"]["tp"], s["entities"]["strict"]["fp"], s["entities"]["strict"]["fn"]) == (462, 0, 0)

    docs_jsonl.write(tmp_path / "gold.jsonl", READERS["brat"].read(GOLD))
    pred = [_doubled(d) for d in read_system(systems["missing"])]
    docs_jsonl.write(tmp_path / "pred.jsonl", pred)
    for rules in ("meddocan", "meddocan_merged_spans"):
        r = cli("score", "--gold", tmp_path / "gold.jsonl", "--pred", tmp_path / "pred.jsonl", "--rules", rules,
                "--json", tmp_path / f"{rules}.json")
        assert r.returncode == 0, r.stderr
        assert "3 gold documents without predictions skipped" in r.stderr
        s = json.loads((tmp_path / f"{rules}.json").read_text())
        n_docs, *counts = KIT[("missing", rules)]
        assert s["documents"] == n_docs
        assert [s["entities"]["strict"][k] for k in ("tp", "fp", "fn")] == counts


def test_merged_spans_follow_the_script_literally():
    text = "Juan Pérez, 45 años; Madrid"
    # "Juan" + "Pérez" joined across " "; "45 años" joined too (", " between); "Madrid" after "; " as well
    assert merge([(0, 4), (5, 10), (12, 19), (21, 27)], text) == [(0, 27)]
    assert merge([(0, 10), (2, 4)], text) == [(0, 4)]  # a nested span: the join ends at its end, as written
    # system predicts the whole name where gold has two parts: a merged match, nothing missed or spurious
    assert merged_counts([(0, 4), (5, 10)], [(0, 10)], text, text) == [1, 0, 0]
    # a spurious span inside a matched one is forgiven
    assert merged_counts([(12, 19)], [(12, 19), (15, 19)], text, text) == [1, 0, 0]


def test_spans_rules_ignore_labels_count_duplicates_and_score_every_gold_document():
    text = "Ana vive en Lugo."
    gold = [Document("a", text, entities=(Entity("T1", "NOMBRE", ((0, 3),), "Ana"),
                                          Entity("T2", "TERRITORIO", ((12, 16),), "Lugo"))),
            Document("b", text, entities=(Entity("T1", "NOMBRE", ((0, 3),), "Ana"),))]
    pred = [Document("a", text, entities=(Entity("T1", "PAIS", ((12, 16),), "Lugo"),
                                          Entity("T2", "PAIS", ((12, 16),), "Lugo")))]
    scores = score_pairs(align_documents(gold, pred, RULES["spans"]).pairs, RULES["spans"])
    assert triple(scores.total("entities", "strict")) == (1, 1, 2)  # relabelled match, duplicate FP, b missed
    scores = score_pairs(align_documents(gold, pred, RULES["meddocan_spans"]).pairs, RULES["meddocan_spans"])
    assert triple(scores.total("entities", "strict")) == (1, 0, 1)  # set, and only document a
    scores = score_pairs(align_documents(gold, pred, RULES["meddocan"]).pairs, RULES["meddocan"])
    assert triple(scores.total("entities", "strict")) == (0, 1, 2)
