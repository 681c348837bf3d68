"""Per-template scores and the template spread: how much F1 moves with the instruction wording.

``by_template`` scores, for each template name, the documents built only from the records rendered with
that template, against the gold restricted to what those records cover. Which gold is counted for which
template (the *scope* rule):

* entity: for template ``t`` when a ``t`` record's chunk contains it (chunks never cut an entity, so each
  entity lies in exactly one chunk) and, for ``ce --per-label`` records, the record asks for its label;
* relation: ``re_pair`` — for ``t`` when a ``t`` record asked its (head, tail) pair; a gold pair that no
  record asked (not a candidate: crossing chunks, outside the window) falls back to the chunk rule.
  Other tasks (and the fallback) — for ``t`` when a ``t`` record's chunk contains its head or its tail;
* event: for ``t`` when a ``t`` record's chunk contains its trigger or any argument.

So a gold item is never dropped: it is counted for every template whose records could reach part of it,
and a miss that no record could have produced (a relation split across two chunks) counts against each
template touching it. When every chunk is rendered under every template (``render --all-templates``,
mixture ``test_all_templates: true``) each template's gold is the whole gold: the clean measurement.
With ``rotate`` (one template per record) the split is exact for entities and ``re_pair`` relations;
events predicted by ``re_pair`` are approximate (an event's arguments asked under other templates count
as misses). Entities are scored on the entity-restricted gold, relations and events on their own
restricted gold (which keeps the argument entities they need), and the counts are added.

``template_spread``: min, max, mean and sample standard deviation (n-1; 0 for one template) of the
per-template strict micro F1, for entities and relations separately, with the number of templates.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from clinie_nemo.core.document import Document, Entity
from clinie_nemo.evaluation.parsing.merge import add_unplaced, merge_document
from clinie_nemo.evaluation.parsing.parse import RecordParse
from clinie_nemo.evaluation.scoring import RuleSet, score_pairs
from clinie_nemo.evaluation.scoring.scorer import DocumentScore, Scores, kinds_of
from clinie_nemo.instruct import tasks

SPREAD_KINDS = ("entities", "relations")


@dataclass
class Scope:
    """What one template's records of one document cover."""

    chunks: dict[tuple[int, int], set[str] | None] = field(default_factory=dict)  # chunk -> labels (None: all)
    pairs: set[tuple[str, str]] = field(default_factory=set)

    def add(self, record: dict[str, Any]) -> None:
        chunk = (int(record["chunk"][0]), int(record["chunk"][1]))
        label = record.get("label")
        if label is None or self.chunks.get(chunk, set()) is None:
            self.chunks[chunk] = None
        else:
            self.chunks.setdefault(chunk, set()).add(str(label))
        if record.get("pair"):
            self.pairs.add((str(record["pair"][0]), str(record["pair"][1])))

    def holds(self, entity: Entity | None, by_label: bool = False) -> bool:
        if entity is None:
            return False
        for (start, end), labels in self.chunks.items():
            if start <= entity.start and entity.end <= end:
                return not by_label or labels is None or entity.label in labels
        return False


def template_coverage(records: Sequence[dict[str, Any]]) -> str:
    """``single`` (one template), ``all`` (every item — chunk, plus its pair or label — of a task has a record
    under every template of that task seen in the records: ``render --all-templates``) or ``split``
    (templates spread over the records: rotate)."""
    per_chunk: dict[tuple[Any, ...], set[str]] = defaultdict(set)
    per_task: dict[str, set[str]] = defaultdict(set)
    for r in records:
        template = str(r.get("template", ""))
        item = (r["task"], r["doc_id"], int(r["chunk"][0]), int(r["chunk"][1]), str(r.get("pair")), r.get("label"))
        per_chunk[item].add(template)
        per_task[r["task"]].add(template)
    if all(len(t) <= 1 for t in per_task.values()):
        return "single"
    return "all" if all(per_task[key[0]] == seen for key, seen in per_chunk.items()) else "split"


def scopes_of(records: Sequence[dict[str, Any]]) -> dict[str, dict[tuple[str, str], Scope]]:
    """template -> (task, doc_id) -> Scope."""
    out: dict[str, dict[tuple[str, str], Scope]] = defaultdict(lambda: defaultdict(Scope))
    for rec in records:
        out[str(rec.get("template", ""))][(rec["task"], rec["doc_id"])].add(rec)
    return out


def restrict(gold: Document, scope: Scope, asked: set[tuple[str, str]]) -> tuple[Document, Document]:
    """(gold for entity scoring, gold for relation + event scoring) of one template's scope."""
    index = gold.entity_index()
    entities = tuple(e for e in gold.entities if scope.holds(e, by_label=True))

    def relation_in(head: str, tail: str) -> bool:
        if (head, tail) in asked:
            return (head, tail) in scope.pairs
        return scope.holds(index.get(head)) or scope.holds(index.get(tail))

    relations = tuple(r for r in gold.relations if relation_in(r.head, r.tail))
    events = tuple(ev for ev in gold.events
                   if scope.holds(index.get(ev.trigger)) or any(scope.holds(index.get(a.ref)) for a in ev.arguments))
    needed = {r.head for r in relations} | {r.tail for r in relations} | {ev.trigger for ev in events} \
        | {a.ref for ev in events for a in ev.arguments}
    rel_entities = tuple(e for e in gold.entities if e.id in needed or scope.holds(e))
    return (replace(gold, entities=entities, relations=(), events=()),
            replace(gold, entities=rel_entities, relations=relations, events=events))


def score_template(task: str, kinds: tuple[str, ...], docs: dict[str, Document], scopes: dict[str, Scope],
                   parses: dict[str, list[RecordParse]], asked: dict[str, set[tuple[str, str]]],
                   rules: RuleSet, triggers: set[str], roles: set[str]) -> Scores:
    merges_events = tasks.get(task).MERGES_EVENTS
    ent_kinds = tuple(k for k in kinds if k == "entities")
    rel_kinds = tuple(k for k in kinds if k != "entities")
    documents: list[DocumentScore] = []
    for doc_id in sorted(scopes):
        gold = docs[doc_id]
        ent_gold, rel_gold = restrict(gold, scopes[doc_id], asked.get(doc_id, set()))
        combined = DocumentScore(gold.id, gold.dataset)
        for g, ks, events in ((ent_gold, ent_kinds, False), (rel_gold, rel_kinds, True)):
            if not ks:
                continue
            pred = merge_document(g, parses.get(doc_id, []), triggers if events and merges_events else set(), roles)
            combined.counts.update(score_pairs([(g, pred)], rules, kinds=ks).documents[0].counts)
        add_unplaced(combined, parses.get(doc_id, []), [k for k in kinds if k in kinds_of(rules)],
                     triggers if merges_events else (), roles, rules)  # unplaced predictions: false positives
        documents.append(combined)
    return Scores(documents, rules, tuple(k for k in kinds_of(rules) if k in kinds))


def spread(values: Sequence[float]) -> dict[str, Any]:
    values = list(values)
    if not values:
        return {"templates": 0}
    return {"min": min(values), "max": max(values), "mean": statistics.fmean(values),
            "sd": statistics.stdev(values) if len(values) > 1 else 0.0, "templates": len(values)}


def by_template(records: Sequence[dict[str, Any]], parses: Sequence[RecordParse], docs: dict[str, Document],
                rules: RuleSet, triggers: set[str], roles: set[str], bootstrap: int = 0,
                seed: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    """(``by_template`` section, ``template_spread`` section) of the scores JSON; with ``bootstrap`` N, the
    spread's sd gets a document-bootstrap 95% interval (``sd_ci95``)."""
    template_of = {r["id"]: str(r.get("template", "")) for r in records}
    asked: dict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
    for r in records:
        if r.get("pair"):
            asked[(r["task"], r["doc_id"])].add((str(r["pair"][0]), str(r["pair"][1])))
    grouped: dict[tuple[str, str], dict[str, list[RecordParse]]] = defaultdict(lambda: defaultdict(list))
    for p in parses:
        grouped[(template_of.get(p.record_id, ""), p.task)][p.doc_id].append(p)
    out: dict[str, Any] = {}
    kept: dict[str, dict[str, Scores]] = defaultdict(dict)  # kind -> template -> scores of the headline task
    for template, per_key in sorted(scopes_of(records).items()):
        task_scores: dict[str, Scores] = {}
        block: dict[str, Any] = {"records": sum(1 for r in records if str(r.get("template", "")) == template),
                                 "by_task": {}}
        for task in sorted({t for t, _ in per_key}):
            scopes = {d: s for (t, d), s in per_key.items() if t == task}
            kinds = tasks.get(task).SCORES
            scores = score_template(task, kinds, docs, scopes, grouped[(template, task)],
                                    {d: asked[(task, d)] for d in scopes}, rules, triggers, roles)
            task_scores[task] = scores
            full = scores.to_json()
            block["by_task"][task] = {k: {m: full[k][m] for m in ("strict", "lenient")}
                                      for k in kinds if k in full} | {"documents": full["documents"]}
        for kind, sources in tasks.headline_sources().items():
            for task in sources:
                found = block["by_task"].get(task, {}).get(kind)
                if found and (kind != "events" or sum(found["strict"][c] for c in ("tp", "fp", "fn"))):
                    block[kind] = {**found, "task": task}
                    kept[kind][template] = task_scores[task]
                    break
        out[template] = block
    summary = {kind: spread([b[kind]["strict"]["f1"] for b in out.values() if kind in b]) for kind in SPREAD_KINDS}
    if bootstrap:
        for kind in SPREAD_KINDS:
            if len(kept[kind]) >= 2:
                summary[kind]["sd_ci95"] = spread_interval(kind, kept[kind], bootstrap, seed)
    return out, summary


def spread_interval(kind: str, per_template: dict[str, Scores], n: int, seed: int) -> list[float]:
    """2.5th-97.5th percentile of the per-template strict F1 sd over document resamples (the same draws for
    every template; a document outside a template's scope adds nothing to that template)."""
    import numpy as np

    from clinie_nemo.evaluation.scoring.bootstrap import _replicates, doc_matrix

    doc_ids = sorted({d.doc_id for s in per_template.values() for d in s.documents})
    row = {d: i for i, d in enumerate(doc_ids)}
    matrices = []
    for scores in per_template.values():
        m = np.zeros((len(doc_ids), 3), dtype=np.int64)
        for d, counts in zip(scores.documents, doc_matrix(scores, kind, "strict")):
            m[row[d.doc_id]] = counts
        matrices.append(m)
    f1 = np.stack([reps[:, 2] for reps in _replicates(matrices, n, seed)], axis=1)
    sds = f1.std(axis=1, ddof=1)
    return [float(np.percentile(sds, 2.5)), float(np.percentile(sds, 97.5))]


def template_table(section: dict[str, Any]) -> str:
    """Per-template strict/lenient micro F1 with counts, for stdout."""
    header = f"{'template':<24} {'kind':<10} {'records':>8} {'TP':>6} {'FP':>6} {'FN':>6} {'P':>7} {'R':>7} " \
             f"{'F1':>7} {'F1 lenient':>10}"
    lines = [header, "-" * len(header)]
    for template, block in sorted(section.items()):
        for kind in ("entities", "relations", "events"):
            if kind not in block:
                continue
            s, le = block[kind]["strict"], block[kind]["lenient"]
            lines.append(f"{template[:24]:<24} {kind:<10} {block['records']:>8} {s['tp']:>6} {s['fp']:>6} {s['fn']:>6} "
                         f"{s['precision']:>7.4f} {s['recall']:>7.4f} {s['f1']:>7.4f} {le['f1']:>10.4f}")
    return "\n".join(lines)


def spread_lines(summary: dict[str, Any]) -> list[str]:
    return [f"template spread {kind}: strict F1 sd {s['sd']:.4f}"
            + (" [{:.4f}, {:.4f}]".format(*s["sd_ci95"]) if "sd_ci95" in s else "")
            + f", min {s['min']:.4f}, max {s['max']:.4f}, mean {s['mean']:.4f} over {s['templates']} templates"
            for kind, s in summary.items() if s.get("templates")]
