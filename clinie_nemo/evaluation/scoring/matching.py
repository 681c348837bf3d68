"""Matching gold and predicted annotations of one document, counted per label.

An annotation to match is an ``Item``: a plain tuple ``(group, exact, segments)`` where ``group`` is
``(label, argument types)`` (only items of the same group can match), ``exact`` the hashable span key
compared in strict mode, and ``segments`` one outer ``(start, end)`` per argument (one for an entity,
head and tail for a relation) compared by overlap in lenient mode.

Strict matching is set arithmetic on the hashable keys. Lenient matching first takes the exact matches,
then sweeps the leftovers per group with a start-sorted index and a window of the longest gold span, so
only candidates that can overlap are looked at (never all pairs).

Two counting policies (see :mod:`clinie_nemo.evaluation.scoring.rules`):
``one_to_one``: each gold item matches at most one prediction; TP = matches, FP = predicted - TP.
``n2c2``: Track2-evaluate-ver4 literally (:mod:`clinie_nemo.evaluation.scoring.n2c2`): predictions in order; one that
matches a gold item already matched by an earlier prediction is dropped (neither TP nor FP); FP = kept
predictions matching nothing.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from clinie_nemo.evaluation.scoring.n2c2 import n2c2_counts
from clinie_nemo.evaluation.scoring.rules import N2C2

Segment = tuple[int, int]
Item = tuple[tuple[Any, ...], Any, tuple[Segment, ...]]


def overlaps(a: Segment, b: Segment) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def lenient_equal(a: Item, b: Item) -> bool:
    return a[0] == b[0] and all(overlaps(x, y) for x, y in zip(a[2], b[2]))


class OverlapIndex:
    """Gold items of one group sorted by their first segment's start: finds the items a prediction
    overlaps by bisecting into the window ``(pred.start - longest, pred.end)``."""

    def __init__(self, items: Sequence[Item], indices: Sequence[int] | None = None):
        order = sorted(indices if indices is not None else range(len(items)), key=lambda i: items[i][2][0][0])
        self.items = items
        self.order = order
        self.starts = [items[i][2][0][0] for i in order]
        self.longest = max((items[i][2][0][1] - items[i][2][0][0] for i in order), default=0)

    def overlapping(self, pred: Item) -> list[int]:
        start, end = pred[2][0]
        lo = bisect_left(self.starts, start - self.longest + 1)
        hi = bisect_right(self.starts, end - 1)
        return [i for i in self.order[lo:hi] if lenient_equal(self.items[i], pred)]


def _one_to_one_both(gold: Sequence[Item], pred: Sequence[Item]) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """Strict and lenient ``{label: [tp, fp, fn]}`` in one pass: the exact matches (a dict of hashable keys,
    shared by both modes), then the overlap sweep over the leftovers for lenient."""
    strict: dict[str, list[int]] = {}
    for g in gold:
        strict.setdefault(g[0][0], [0, 0, 0])[2] += 1
    for p in pred:
        strict.setdefault(p[0][0], [0, 0, 0])[1] += 1
    by_exact: dict[Any, list[int]] = defaultdict(list)
    for i, g in enumerate(gold):
        by_exact[(g[0], g[1])].append(i)
    left_gold = set(range(len(gold)))
    left_pred: list[Item] = []
    for p in pred:
        bucket = by_exact.get((p[0], p[1]))
        if bucket:
            left_gold.discard(bucket.pop())
            row = strict[p[0][0]]
            row[0] += 1
            row[1] -= 1
            row[2] -= 1
        else:
            left_pred.append(p)
    lenient = {label: list(row) for label, row in strict.items()}
    if left_pred and left_gold:
        by_group: dict[Any, list[int]] = defaultdict(list)
        for i in sorted(left_gold):
            by_group[gold[i][0]].append(i)
        indexes = {group: OverlapIndex(gold, idx) for group, idx in by_group.items()}
        for p in left_pred:
            index = indexes.get(p[0])
            if index is None:
                continue
            for i in index.overlapping(p):
                if i in left_gold:
                    left_gold.discard(i)
                    row = lenient[p[0][0]]
                    row[0] += 1
                    row[1] -= 1
                    row[2] -= 1
                    break
    return strict, lenient


def flat_key(item: Item) -> tuple[Any, ...]:
    """An item as a key of scoring/n2c2.py: its group's labels, then each segment's start and end (the n2c2
    rules collapse discontinuous spans, so the segments are also the strict key)."""
    return (*item[0], *(x for segment in item[2] for x in segment))


def count_by_label(gold: Sequence[Item], pred: Sequence[Item], policy: str) -> tuple[dict[str, list[int]], ...]:
    """``({label: [tp, fp, fn]} strict, same lenient)`` for one document; labels with no gold and no
    prediction are absent."""
    if policy != N2C2:
        return _one_to_one_both(gold, pred)
    width = len(gold[0][0]) if gold else len(pred[0][0]) if pred else 1
    return n2c2_counts([flat_key(g) for g in gold], [flat_key(p) for p in pred], width)
