"""Scoring gold against predicted documents: per-document counts, then micro/macro/per-label totals.

``score_pairs`` keeps, per document, ``{(kind, mode, label): [tp, fp, fn]}``; everything else (micro
totals, per label, per dataset, macro over labels and over documents, bootstrap CIs) is summed from
those counts, so nothing is matched twice. Kinds: ``entities``, ``relations``, ``events``, and
``relations_untyped`` when the rule set asks for it (RadGraph). Modes: ``strict`` and ``lenient``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from clinie_nemo.document import Document
from clinie_nemo.scoring.counts import Counts, macro
from clinie_nemo.scoring.events import count_events, event_items
from clinie_nemo.scoring.items import entity_items, relation_items
from clinie_nemo.scoring.matching import count_by_label
from clinie_nemo.scoring.rules import RuleSet

MODES = ("strict", "lenient")
Key = tuple[str, str, str]


@dataclass
class DocumentScore:
    doc_id: str
    dataset: str
    counts: dict[Key, list[int]] = field(default_factory=dict)

    def total(self, kind: str, mode: str) -> Counts:
        return Counts.total(Counts(*v) for (k, m, _), v in self.counts.items() if k == kind and m == mode)


def kinds_of(rules: RuleSet) -> tuple[str, ...]:
    return ("entities", "relations", "events") + (("relations_untyped",) if rules.untyped_relations_too else ())


def empty_like(doc: Document) -> Document:
    """The document with no annotations: what a missing prediction scores as."""
    return Document(id=doc.id, text=doc.text, dataset=doc.dataset, split=doc.split)


def score_document(gold: Document, pred: Document, rules: RuleSet,
                   labels: Collection[str] | None = None) -> DocumentScore:
    score = DocumentScore(gold.id, gold.dataset)
    kinds: dict[str, tuple[Any, Any]] = {
        "entities": (entity_items(gold, rules, labels), entity_items(pred, rules, labels)),
        "relations": (relation_items(gold, rules, True, labels), relation_items(pred, rules, True, labels)),
    }
    if rules.untyped_relations_too:
        kinds["relations_untyped"] = (relation_items(gold, rules, False, labels),
                                      relation_items(pred, rules, False, labels))
    for kind, (g, p) in kinds.items():
        if not g and not p:
            continue
        for mode in MODES:
            for label, row in count_by_label(g, p, mode == "lenient", rules.multiple_matches).items():
                score.counts[(kind, mode, label)] = row
    if gold.events or pred.events:
        g_ev, p_ev = event_items(gold, rules, labels), event_items(pred, rules, labels)
        for mode in MODES:
            for label, row in count_events(g_ev, p_ev, mode == "lenient").items():
                score.counts[("events", mode, label)] = row
    return score


def score_pairs(pairs: Iterable[tuple[Document, Document | None]], rules: RuleSet,
                labels: Collection[str] | None = None) -> Scores:
    docs = [score_document(g, p if p is not None else empty_like(g), rules, labels) for g, p in pairs]
    return Scores(docs, rules)


@dataclass
class Scores:
    documents: list[DocumentScore]
    rules: RuleSet

    @property
    def kinds(self) -> tuple[str, ...]:
        return kinds_of(self.rules)

    def totals(self, documents: Iterable[DocumentScore] | None = None) -> dict[Key, Counts]:
        summed: dict[Key, list[int]] = defaultdict(lambda: [0, 0, 0])
        for doc in self.documents if documents is None else documents:
            for key, (tp, fp, fn) in doc.counts.items():
                row = summed[key]
                row[0] += tp
                row[1] += fp
                row[2] += fn
        return {key: Counts(*row) for key, row in summed.items()}

    def total(self, kind: str, mode: str) -> Counts:
        return Counts.total(c for (k, m, _), c in self.totals().items() if k == kind and m == mode)

    def kind_json(self, kind: str, totals: dict[Key, Counts],
                  documents: list[DocumentScore] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        labels = sorted({label for (k, _, label) in totals if k == kind})
        for mode in MODES:
            out[mode] = Counts.total(totals.get((kind, mode, label), Counts()) for label in labels).to_json()
        out["by_label"] = {label: {mode: totals.get((kind, mode, label), Counts()).to_json() for mode in MODES}
                           for label in labels}
        docs = self.documents if documents is None else documents
        out["macro"] = {mode: {
            "by_label": macro(totals.get((kind, mode, label), Counts()) for label in labels),
            "by_document": macro(d.total(kind, mode) for d in docs),
        } for mode in MODES}
        return out

    def to_json(self) -> dict[str, Any]:
        totals = self.totals()
        out: dict[str, Any] = {kind: self.kind_json(kind, totals) for kind in self.kinds}
        datasets = sorted({d.dataset for d in self.documents})
        if len(datasets) > 1:
            out["by_dataset"] = {}
            for name in datasets:
                docs = [d for d in self.documents if d.dataset == name]
                sub = self.totals(docs)
                out["by_dataset"][name or "(none)"] = {
                    kind: {mode: Counts.total(c for (k, m, _), c in sub.items() if k == kind and m == mode).to_json()
                           for mode in MODES} for kind in self.kinds}
        out["rules"] = {"name": self.rules.name, "description": self.rules.description}
        out["documents"] = len(self.documents)
        return out
