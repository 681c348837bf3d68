"""Evaluate generated predictions: parse each record, merge chunks into documents, score per task.

``evaluate_predictions`` is what ``clinie-nemo evaluate`` runs. Per task kind (``ce``, ``re_pair``,
``re_e2e``) it builds one predicted document per gold document and scores it with the rule set, the kinds
each task's predictions can say (``SCORES``) taken from the task registry (:mod:`clinie_nemo.instruct.tasks`).
The headline figures in the result (each task's ``HEADLINE`` rank): ``entities`` from ``ce`` (else
``re_e2e``), ``relations`` from ``re_pair`` (else ``re_e2e``), ``events`` from the task that predicted
events (``re_e2e``, else ``re_pair``); every task's full scores
are under ``by_task``; per template name under ``by_template``, with ``template_spread`` (see
:mod:`clinie_nemo.evaluation.template_scores`). When the records cover every chunk under every template
(``template_coverage: "all"``, from ``render --all-templates``), each (document, template) is scored as
its own unit ``<doc_id>@<template>``: the headline counts are summed over templates (the gold counted once
per template), never a union of the templates' answers. ``parse`` counts records, placed mentions and failures by cause, overall and per
``dataset/task``; ``placed_by`` counts placed mentions by rank tier (:mod:`clinie_nemo.evaluation.parsing.place`)
and ``placed_in_word`` those placed inside a word because no whole-token match exists; ``repeated``: mentions and relations an answer said again (repeated lines; they
count as predictions under the rule set's ``duplicates=count``, once under ``set``; the same mention from
two overlapping chunks is one prediction either way, see :mod:`clinie_nemo.evaluation.parsing.merge`). A prediction that cannot be placed is also a false positive in every score (per label
where its label is known, else under ``unplaced:<cause>``; see :func:`clinie_nemo.evaluation.parsing.merge.add_unplaced`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, NamedTuple

from clinie_nemo.core.document import Document
from clinie_nemo.core.errors import InputError, Problem
from clinie_nemo.core.progress import progress
from clinie_nemo.engines.predictions import Prediction
from clinie_nemo.evaluation.parsing.clean import LabelMap
from clinie_nemo.evaluation.parsing.merge import add_unplaced, event_schema, merge_document
from clinie_nemo.evaluation.parsing.parse import CAUSES, RecordParse, parse_record
from clinie_nemo.evaluation.parsing.place import IN_WORD
from clinie_nemo.evaluation.scoring import RuleSet, Scores, score_pairs
from clinie_nemo.evaluation.scoring.bootstrap import add_confidence_intervals
from clinie_nemo.evaluation.template_scores import by_template, template_coverage
from clinie_nemo.instruct import tasks


def label_maps(docs: Sequence[Document]) -> dict[str, tuple[LabelMap, LabelMap]]:
    """Per dataset: (entity labels, relation labels + event roles) seen in the gold documents."""
    ents: dict[str, set[str]] = defaultdict(set)
    rels: dict[str, set[str]] = defaultdict(set)
    for d in docs:
        ents[d.dataset].update(e.label for e in d.entities)
        rels[d.dataset].update(r.label for r in d.relations)
        rels[d.dataset].update(a.role for ev in d.events for a in ev.arguments)
    return {ds: (LabelMap(sorted(ents[ds])), LabelMap(sorted(rels[ds]))) for ds in ents.keys() | rels.keys()}


def parse_all(records: Sequence[dict[str, Any]], predictions: dict[str, Prediction],
              docs: dict[str, Document]) -> list[RecordParse]:
    maps = label_maps(list(docs.values()))
    unknown = [r for r in records if r["doc_id"] not in docs]
    if unknown:
        raise InputError(Problem("records", None, f"{len(unknown)} records name documents not in the corpus, "
                                 f"e.g. {unknown[0]['id']!r} -> {unknown[0]['doc_id']!r}"))
    out = []
    for rec in progress(records, "parse", total=len(records), unit="rec"):
        doc = docs[rec["doc_id"]]
        ent_map, rel_map = maps.get(doc.dataset, (LabelMap(()), LabelMap(())))
        pred = predictions.get(rec["id"])
        if pred is None:
            p = RecordParse(rec["id"], rec["doc_id"], doc.dataset, rec["task"])
            p.failures["missing_prediction"] += 1
        else:
            p = parse_record(rec, pred.text, doc.text, ent_map, rel_map, pred.finish_reason)
            p.dataset = doc.dataset
        out.append(p)
    return out


def parse_summary(parses: Sequence[RecordParse]) -> dict[str, Any]:
    def block(ps: Sequence[RecordParse]) -> dict[str, Any]:
        failures: Counter[str] = Counter({c: 0 for c in CAUSES})
        how: Counter[str] = Counter()
        for p in ps:
            failures.update(p.failures)
            how.update(p.how)
        return {"records": len(ps), "placed": sum(p.placed for p in ps), "failures": dict(failures),
                "placed_by": dict(how), "placed_in_word": sum(n for k, n in how.items() if k.endswith(IN_WORD)),
                "repeated": sum(p.repeated for p in ps),
                "records_with_failures": sum(1 for p in ps if sum(p.failures.values()))}

    groups: dict[str, list[RecordParse]] = defaultdict(list)
    for p in parses:
        groups[f"{p.dataset or '(none)'}/{p.task}"].append(p)
    return {**block(parses), "by_dataset_task": {k: block(v) for k, v in sorted(groups.items())}}


class Evaluation(NamedTuple):
    result: dict[str, Any]  # the scores JSON written as scores.json
    predicted: dict[str, list[Document]]  # task -> predicted documents (gold order)
    scores: dict[str, Scores]  # task -> per-document counts (for bootstrap comparisons)


def evaluate_predictions(records: Sequence[dict[str, Any]], predictions: dict[str, Prediction],
                         corpus: Sequence[Document], rules: RuleSet, bootstrap: int = 0,
                         seed: int = 0, per_template: bool = True) -> Evaluation:
    docs = {d.id: d for d in corpus}
    parses = parse_all(records, predictions, docs)
    triggers, roles = event_schema(corpus)
    coverage = template_coverage(records)
    # every chunk under every template: each (document, template) is its own scoring unit "<doc>@<template>"
    # (the gold once per template), so the headline is micro over templates, not a union of their answers
    template_of = {r["id"]: str(r.get("template", "")) for r in records} if coverage == "all" else {}
    units: dict[str, Document] = {}
    by_task: dict[str, dict[str, list[RecordParse]]] = defaultdict(lambda: defaultdict(list))
    for p in parses:
        unit = f"{p.doc_id}@{template_of[p.record_id]}" if template_of else p.doc_id
        if unit not in units:
            units[unit] = replace(docs[p.doc_id], id=unit) if template_of else docs[p.doc_id]
        by_task[p.task][unit].append(p)
    result: dict[str, Any] = {"by_task": {}, "template_coverage": coverage}
    predicted: dict[str, list[Document]] = {}
    task_scores: dict[str, Scores] = {}
    for task, per_doc in sorted(by_task.items()):
        gold = [units[d] for d in sorted(per_doc)]
        spec = tasks.get(task)  # what its predictions can say, and whether they merge into events
        with_events = spec.MERGES_EVENTS
        pred = [merge_document(g, per_doc[g.id], triggers if with_events else set(), roles) for g in gold]
        scores = score_pairs(zip(gold, pred), rules, kinds=spec.SCORES)
        for doc_score in scores.documents:  # unplaced predictions are false positives (before any total)
            add_unplaced(doc_score, per_doc[doc_score.doc_id], scores.kinds, triggers if with_events else (), roles,
                         rules)
        task_scores[task] = scores
        result["by_task"][task] = scores.to_json()
        if bootstrap:
            add_confidence_intervals(result["by_task"][task], scores, bootstrap, seed)
        predicted[task] = pred
    for kind, sources in tasks.headline_sources().items():
        for task in sources:
            block = result["by_task"].get(task, {}).get(kind)
            if block and (kind != "events" or block["strict"]["tp"] + block["strict"]["fp"] + block["strict"]["fn"]):
                result[kind] = {**block, "task": task}
                break
        else:
            result[kind] = {}
    if per_template:
        result["by_template"], result["template_spread"] = by_template(
            records, parses, docs, rules, triggers, roles, bootstrap, seed)
    result["parse"] = parse_summary(parses)
    result["rules"] = {"name": rules.name, "description": rules.description}
    if bootstrap:
        result["bootstrap"] = {"replicates": bootstrap, "seed": seed,
                               "unit": "document x template" if template_of else "document"}
    return Evaluation(result, predicted, task_scores)
