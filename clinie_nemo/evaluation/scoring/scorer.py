"""Scoring gold against predicted documents: per-document counts, then micro/macro/per-label totals.

``score_pairs`` keeps, per document, ``{(kind, mode, label): [tp, fp, fn]}``; everything else (micro
totals, per label, per dataset, macro over labels and over documents, bootstrap CIs) is summed from
those counts, so nothing is matched twice. Kinds: ``entities``, ``relations``, ``events``, and
``relations_untyped`` when the rule set asks for it (RadGraph). Modes: ``strict`` and ``lenient``.
"""

from __future__ import annotations

import gc
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from clinie_nemo.core.document import Document
from clinie_nemo.evaluation.scoring.counts import Counts, macro
from clinie_nemo.evaluation.scoring.events import count_events, event_items
from clinie_nemo.evaluation.scoring.items import entity_items, relation_items
from clinie_nemo.evaluation.scoring.matching import Item, count_by_label
from clinie_nemo.evaluation.scoring.merged_spans import merged_counts
from clinie_nemo.evaluation.scoring.rules import ANY_LABEL, SET, RuleSet, normalise_concept_id

MODES = ("strict", "lenient")
Key = tuple[str, str, str]
UNPLACED = "unplaced:"  # row label prefix of predictions evaluate could not place (no schema label)


@dataclass
class DocumentScore:
    doc_id: str
    dataset: str
    counts: dict[Key, list[int]] = field(default_factory=dict)

    def total(self, kind: str, mode: str) -> Counts:
        return Counts.total(Counts(*v) for (k, m, _), v in self.counts.items() if k == kind and m == mode)


def kinds_of(rules: RuleSet) -> tuple[str, ...]:
    untyped = ("relations_untyped",) if rules.untyped_relations_too else ()
    return ("entities", "relations", "events", *untyped, "document_relations")


def concept_labels(doc: Document, how: str = "") -> dict[str, set[str]]:
    """The labels of the entities carrying each concept id (``a|b`` = two ids), ids normalised by ``how``."""
    out: dict[str, set[str]] = {}
    for e in doc.entities:
        for cid in dict(e.attributes).get("concept_id", "").split("|"):
            if (key := normalise_concept_id(cid, how)):
                out.setdefault(key, set()).add(e.label)
    return out


def document_relation_rows(doc: Document, how: str = "") -> list[tuple[str, str, str]]:
    """PubTator/BioC document-level relations (``metadata["relations"]``: [label, id1, id2, extra...]) as
    (label, id1, id2), concept ids normalised by ``how`` (a rule set's ``concept_ids``)."""
    rows = doc.metadata.get("relations") or ()
    return [(str(r[0]), normalise_concept_id(str(r[1]), how), normalise_concept_id(str(r[2]), how))
            for r in rows if isinstance(r, (list, tuple)) and len(r) >= 3]


def document_relation_kept(row: tuple[str, str, str], labels: Collection[str] | None,
                           concepts: dict[str, set[str]]) -> bool:
    """Under ``--labels``: a relation named by label, or (labels naming entity labels only) one whose
    concept ids are not carried only by entities of labels left out."""
    if labels is None or not getattr(labels, "by_arguments", False):
        return labels is None or row[0] in labels
    return all(c not in concepts or not concepts[c].isdisjoint(labels) for c in row[1:])


def document_relations(doc: Document, labels: Collection[str] | None,
                       rules: RuleSet | None = None) -> Counter[tuple[str, ...]]:
    """The document-level relations compared as (label, id1, id2) with no span; extra columns such as system
    scores are ignored. A set (each count 1): a relation listed twice counts once on either side, as in the
    BioCreative V CDR evaluation kit, which collects each document's CID pairs into a set before counting.
    Concept ids are normalised as ``rules.concept_ids`` says (bc5cdr: ``D001`` = ``MESH:D001``)."""
    how = rules.concept_ids if rules is not None else ""
    concepts = concept_labels(doc, how) if getattr(labels, "by_arguments", False) else {}
    return Counter({r for r in document_relation_rows(doc, how) if document_relation_kept(r, labels, concepts)})


def empty_like(doc: Document) -> Document:
    """The document with no annotations: what a missing prediction scores as."""
    return Document(id=doc.id, text=doc.text, dataset=doc.dataset, split=doc.split)


def score_document(gold: Document, pred: Document, rules: RuleSet, labels: Collection[str] | None = None,
                   kinds: Collection[str] | None = None) -> DocumentScore:
    """Counts of one document; ``kinds`` limits what is scored (default: every kind of the rule set)."""
    wanted = set(kinds_of(rules) if kinds is None else kinds)
    items: dict[str, tuple[Any, Any]] = {}
    if "entities" in wanted:
        items["entities"] = (entity_items(gold, rules, labels), entity_items(pred, rules, labels))
    if "relations" in wanted:
        items["relations"] = (relation_items(gold, rules, True, labels), relation_items(pred, rules, True, labels))
    if "relations_untyped" in wanted:
        items["relations_untyped"] = (relation_items(gold, rules, False, labels),
                                      relation_items(pred, rules, False, labels))
    score = score_items(DocumentScore(gold.id, gold.dataset), items, rules, (gold.text, pred.text or gold.text))
    if "document_relations" in wanted and (gold.metadata.get("relations") or pred.metadata.get("relations")):
        g_rel, p_rel = document_relations(gold, labels, rules), document_relations(pred, labels, rules)
        if rules.gold_label_documents:
            p_rel = Counter(gold_labels_only(g_rel, list(p_rel)))
        for label in {k[0] for k in g_rel} | {k[0] for k in p_rel}:
            tp = sum((g_rel & p_rel)[k] for k in g_rel if k[0] == label)
            row = [tp, sum(n for k, n in p_rel.items() if k[0] == label) - tp,
                   sum(n for k, n in g_rel.items() if k[0] == label) - tp]
            for mode in MODES:
                score.counts[("document_relations", mode, label)] = list(row)
    if "events" in wanted and (gold.events or pred.events):
        g_ev, p_ev = event_items(gold, rules, labels), event_items(pred, rules, labels)
        for mode in MODES:
            for label, row in count_events(g_ev, p_ev, mode == "lenient").items():
                score.counts[("events", mode, label)] = row
    return score


def as_rules_see(items: list[Item], kind: str, rules: RuleSet) -> list[Item]:
    """Items as the rule set compares them: label-free entities share one label (``ANY_LABEL``); under
    ``duplicates=SET`` an item repeated (same group, same span key) is kept once, in first-seen order."""
    if rules.ignore_labels and kind == "entities":
        items = [((ANY_LABEL,), exact, segments) for _, exact, segments in items]
    if rules.duplicates == SET:
        items = list(dict.fromkeys(items))
    return items


def gold_labels_only(gold: Collection[Any], pred: list[Any]) -> list[Any]:
    """The predictions whose label (first item of the group, or of the row) the gold side has: the BC5CDR
    kit, run for one type, scores only the documents with a gold item of that type."""
    labels = {g[0][0] if isinstance(g[0], tuple) else g[0] for g in gold}
    return [x for x in pred if (x[0][0] if isinstance(x[0], tuple) else x[0]) in labels]


def score_items(score: DocumentScore, items: dict[str, tuple[Any, Any]], rules: RuleSet,
                texts: tuple[str, str] | None = None) -> DocumentScore:
    """Add the strict and lenient counts per label of each kind's (gold items, predicted items), the
    items first seen as the rule set sees them (:func:`as_rules_see`). ``texts``: the gold and predicted
    notes, needed by ``merge_spans`` rule sets (strict entities: scoring/merged_spans.py)."""
    counts = score.counts
    for kind, (g, p) in items.items():
        if not g and not p:
            continue
        g, p = as_rules_see(g, kind, rules), as_rules_see(p, kind, rules)
        if rules.gold_label_documents:
            p = gold_labels_only(g, p)
        for mode, rows in zip(MODES, count_by_label(g, p, rules.multiple_matches)):
            for label, row in rows.items():
                counts[(kind, mode, label)] = row
        if rules.merge_spans and kind == "entities":
            if texts is None:
                raise ValueError(f"rules {rules.name!r} merge spans across the note: pass the note texts")
            for label in {item[0][0] for item in (*g, *p)}:
                counts[(kind, "strict", label)] = merged_counts(
                    [item[2][0] for item in g if item[0][0] == label],
                    [item[2][0] for item in p if item[0][0] == label], *texts)
    return score


@contextmanager
def gc_paused() -> Iterator[None]:
    """Scoring allocates many small acyclic tuples; with a large corpus in memory, the cyclic collector
    would traverse the whole heap again and again (a third of the time). Paused, then restored."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def score_pairs(pairs: Iterable[tuple[Document, Document | None]], rules: RuleSet,
                labels: Collection[str] | None = None, kinds: Collection[str] | None = None) -> Scores:
    """Score gold/pred pairs (a missing prediction scores as empty); ``kinds`` as in score_document."""
    with gc_paused():
        docs = [score_document(g, p if p is not None else empty_like(g), rules, labels, kinds) for g, p in pairs]
    return Scores(docs, rules, tuple(k for k in kinds_of(rules) if kinds is None or k in kinds))


@dataclass
class Scores:
    documents: list[DocumentScore]
    rules: RuleSet
    kinds: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.kinds:
            self.kinds = kinds_of(self.rules)

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

    def per_document(self, documents: Iterable[DocumentScore] | None = None) -> dict[tuple[str, str], list[Counts]]:
        """``{(kind, mode): [each document's total]}`` for every kind and mode, in one pass over the counts."""
        table: dict[tuple[str, str], list[Counts]] = {(k, m): [] for k in self.kinds for m in MODES}
        for doc in self.documents if documents is None else documents:
            sums: dict[tuple[str, str], list[int]] = {}
            for (kind, mode, _), (tp, fp, fn) in doc.counts.items():
                row = sums.get((kind, mode))
                if row is None:
                    sums[(kind, mode)] = [tp, fp, fn]
                else:
                    row[0] += tp
                    row[1] += fp
                    row[2] += fn
            for key, column in table.items():
                row = sums.get(key)
                column.append(Counts(*row) if row is not None else Counts())
        return table

    def kind_json(self, kind: str, totals: dict[Key, Counts], documents: list[DocumentScore] | None = None,
                  per_document: dict[tuple[str, str], list[Counts]] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        labels = sorted({label for (k, _, label) in totals if k == kind})
        for mode in MODES:
            out[mode] = Counts.total(totals.get((kind, mode, label), Counts()) for label in labels).to_json()
        out["by_label"] = {label: {mode: totals.get((kind, mode, label), Counts()).to_json() for mode in MODES}
                           for label in labels}
        if per_document is None:
            per_document = self.per_document(documents)
        out["macro"] = {mode: {
            "by_label": macro(totals.get((kind, mode, label), Counts()) for label in labels
                              if not label.startswith(UNPLACED)),
            "by_document": macro(per_document.get((kind, mode)) or
                                 [Counts()] * len(self.documents if documents is None else documents)),
        } for mode in MODES}
        return out

    def to_json(self) -> dict[str, Any]:
        totals = self.totals()
        per_document = self.per_document()
        out: dict[str, Any] = {kind: self.kind_json(kind, totals, per_document=per_document) for kind in self.kinds
                               if kind != "document_relations" or any(k[0] == kind for k in totals)}
        datasets = sorted({d.dataset for d in self.documents})
        if datasets:
            out["by_dataset"] = {}
            for name in datasets:
                docs = [d for d in self.documents if d.dataset == name]
                sub = totals if len(docs) == len(self.documents) else self.totals(docs)
                out["by_dataset"][name or "(none)"] = {
                    kind: {mode: Counts.total(c for (k, m, _), c in sub.items() if k == kind and m == mode).to_json()
                           for mode in MODES} for kind in self.kinds}
        out["rules"] = {"name": self.rules.name, "description": self.rules.description}
        out["documents"] = len(self.documents)
        return out
