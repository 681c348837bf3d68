"""Counts of true positives, false positives and false negatives, and the P/R/F1 derived from them.

Division is guarded: a figure whose denominator is 0 is 0.0 (the convention of the official scorers).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


def safe_div(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall, F1 of one set of counts (each 0.0 when undefined)."""
    precision = safe_div(tp, tp + fp)
    recall = safe_div(tp, tp + fn)
    return precision, recall, safe_div(2 * precision * recall, precision + recall)


@dataclass(frozen=True)
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def precision(self) -> float:
        return prf(self.tp, self.fp, self.fn)[0]

    @property
    def recall(self) -> float:
        return prf(self.tp, self.fp, self.fn)[1]

    @property
    def f1(self) -> float:
        return prf(self.tp, self.fp, self.fn)[2]

    @property
    def gold(self) -> int:
        return self.tp + self.fn

    @property
    def predicted(self) -> int:
        return self.tp + self.fp

    def to_json(self) -> dict[str, Any]:
        p, r, f = prf(self.tp, self.fp, self.fn)
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": p, "recall": r, "f1": f}

    @staticmethod
    def total(items: Iterable[Counts]) -> Counts:
        tp = fp = fn = 0
        for c in items:
            tp += c.tp
            fp += c.fp
            fn += c.fn
        return Counts(tp, fp, fn)


def macro(counts: Iterable[Counts]) -> dict[str, float]:
    """Mean of per-unit precision, recall and F1 (units: labels or documents); zeros when there are none."""
    rows = [prf(c.tp, c.fp, c.fn) for c in counts]
    if not rows:
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0, "n": 0}
    n = len(rows)
    return {"precision": sum(r[0] for r in rows) / n, "recall": sum(r[1] for r in rows) / n,
            "f1": sum(r[2] for r in rows) / n, "n": n}
