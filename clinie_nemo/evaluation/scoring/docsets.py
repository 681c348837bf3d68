"""Pairing gold and predicted documents by id, under a rule set's policy for sets that differ.

``intersection`` (n2c2 and MEDDOCAN scripts): only ids on both sides are scored; the skipped counts are reported.
``identical`` (brat_scoring): any difference is an error naming the ids. ``gold``: every gold document
is scored, one without predictions scores as empty (reported), a prediction for an unknown id is an
error, unless the rule set's ``skip_unknown_documents`` says that its official script ignores them (the
BC5CDR kit): then it is skipped and listed. Duplicate ids on either side are always an error.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from clinie_nemo.core.document import Document
from clinie_nemo.core.errors import InputError, Problem
from clinie_nemo.evaluation.scoring.rules import (
    DOCS_GOLD,
    DOCS_IDENTICAL,
    DOCS_INTERSECTION,
    RuleSet,
)

SHOW_IDS = 10


@dataclass(frozen=True)
class Alignment:
    pairs: list[tuple[Document, Document | None]]
    gold_only: tuple[str, ...]  # gold ids with no prediction (skipped or scored empty, per policy)
    pred_only: tuple[str, ...]  # predicted ids with no gold (skipped under intersection)

    def notes(self, policy: str) -> list[str]:
        out = []
        if self.gold_only:
            what = "skipped" if policy == DOCS_INTERSECTION else "scored as empty predictions"
            out.append(f"{len(self.gold_only)} gold documents without predictions {what}: {_ids(self.gold_only)}")
        if self.pred_only:
            out.append(f"{len(self.pred_only)} predicted documents without gold skipped: {_ids(self.pred_only)}")
        return out


def _ids(ids: Sequence[str]) -> str:
    shown = ", ".join(ids[:SHOW_IDS])
    return shown + (f", ... ({len(ids) - SHOW_IDS} more)" if len(ids) > SHOW_IDS else "")


def _check_unique(docs: Sequence[Document], where: str) -> None:
    dup = [i for i, n in Counter(d.id for d in docs).items() if n > 1]
    if dup:
        raise InputError(Problem(where, None, f"duplicate document ids: {_ids(sorted(dup))}"))


def align_documents(gold: Sequence[Document], pred: Sequence[Document], rules: RuleSet,
                    gold_where: str = "gold", pred_where: str = "predictions") -> Alignment:
    _check_unique(gold, gold_where)
    _check_unique(pred, pred_where)
    pred_by_id = {d.id: d for d in pred}
    gold_ids = {d.id for d in gold}
    gold_only = tuple(d.id for d in gold if d.id not in pred_by_id)
    pred_only = tuple(d.id for d in pred if d.id not in gold_ids)
    policy = rules.documents
    if policy == DOCS_IDENTICAL and (gold_only or pred_only):
        problems = []
        if gold_only:
            problems.append(Problem(pred_where, None, f"no predictions for {len(gold_only)} gold documents: "
                                    f"{_ids(gold_only)}"))
        if pred_only:
            problems.append(Problem(pred_where, None, f"{len(pred_only)} predicted documents not in the gold set: "
                                    f"{_ids(pred_only)}"))
        raise InputError(problems, header=f"rules {rules.name!r} need identical gold and predicted document sets")
    if policy == DOCS_GOLD and pred_only and not rules.skip_unknown_documents:
        raise InputError(Problem(pred_where, None, f"{len(pred_only)} predicted documents not in the gold set: "
                                 f"{_ids(pred_only)}"))
    if policy == DOCS_INTERSECTION:
        pairs = [(g, pred_by_id[g.id]) for g in gold if g.id in pred_by_id]
    elif policy == DOCS_GOLD:
        pairs = [(g, pred_by_id.get(g.id)) for g in gold]
    else:
        pairs = [(g, pred_by_id[g.id]) for g in gold]
    return Alignment(pairs, gold_only, pred_only)
