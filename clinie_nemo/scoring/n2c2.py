"""The 2018 n2c2 track 2 counting rule (``Track2-evaluate-ver4.py``) on flat keys, strict and lenient in one pass.

A key is a flat tuple: ``width`` label fields, then one ``start, end`` pair per argument, e.g. an entity
``("Drug", 10, 17)`` (width 1) or a relation ``("Strength-Drug", "Strength", "Drug", 20, 25, 10, 17)``
(width 3: relation, head and tail labels; then head and tail spans). Discontinuous spans are already
collapsed to (first start, last end), as the official script does, so the key is both the strict key and
the spans compared by overlap.

The rule: predictions are taken in file order; one that matches a gold annotation already matched by an
earlier prediction is dropped (neither TP nor FP); TP = the others that match, FP = those that match
nothing, FN = gold - TP. Strict counts are set arithmetic (a prediction matches exactly its own key).
Lenient: gold annotations with identical keys overlap the same predictions, so they are matched as one
unit; in a group (same labels) whose distinct gold spans are pairwise disjoint at every argument
position, a prediction with a gold key overlaps exactly that key (every other gold span at that position
is disjoint from it); only the other predictions search the gold keys, sorted by (group, first start).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable
from itertools import filterfalse
from operator import itemgetter
from typing import Any

Key = tuple[Any, ...]
Rows = dict[str, list[int]]
_label = itemgetter(0)


def crowded_groups(distinct: Iterable[Key], width: int) -> set[Key]:
    """Groups whose distinct gold spans overlap at some argument position (the shortcut is off there)."""
    keys = sorted(distinct)  # by group, then the first argument's span
    if not keys:
        return set()
    crowded: set[Key] = set()
    for pos in range(width, len(keys[0]), 2):
        ordered = keys if pos == width else sorted(keys, key=lambda k: (k[:width], k[pos], k[pos + 1]))  # noqa: B023
        for a, b in zip(ordered, ordered[1:]):
            if a[pos + 1] > b[pos] and a[:width] == b[:width] and a[pos:pos + 2] != b[pos:pos + 2]:
                crowded.add(a[:width])
    return crowded


class GoldIndex:
    """Distinct gold keys sorted by (group, first start): the candidates of a prediction start in
    ``(start - longest, end)`` within its group, found by bisection (never all pairs)."""

    def __init__(self, distinct: set[Key], width: int):
        self.keys = sorted(distinct)
        self.width = width
        self.longest = max(k[width + 1] - k[width] for k in self.keys)

    def overlapping(self, p: Key) -> list[Key]:
        w = self.width
        group, start, end = p[:w], p[w], p[w + 1]
        keys = self.keys
        lo = bisect_left(keys, (*group, start - self.longest + 1))
        hi = bisect_left(keys, (*group, end), lo)
        if len(p) == w + 2:
            return [g for g in keys[lo:hi] if start < g[w + 1]]
        return [g for g in keys[lo:hi] if start < g[w + 1]
                and all(g[i] < p[i + 1] and p[i] < g[i + 1] for i in range(w + 2, len(p), 2))]


def n2c2_counts(gold: list[Key], pred: list[Key], width: int,
                crowded: set[Key] | None = None) -> tuple[Rows, Rows]:
    """Strict and lenient ``{label: [tp, fp, fn]}`` for one document; every label seen on either side.
    ``crowded``: the result of :func:`crowded_groups` when the caller knows it (else computed here)."""
    distinct = set(gold)
    n_gold = Counter(map(_label, gold))
    strict_tp = Counter(map(_label, distinct.intersection(pred)))
    strict_fp = Counter(map(_label, filterfalse(distinct.__contains__, pred)))
    if crowded is None:
        crowded = crowded_groups(distinct, width)
    lenient_tp: dict[str, int] = {}
    lenient_fp: dict[str, int] = {}
    index: GoldIndex | None = None
    matched: set[Key] = set()
    for p in pred:
        if p in distinct and (not crowded or p[:width] not in crowded):
            n = len(matched)
            matched.add(p)
            if len(matched) > n:
                lenient_tp[p[0]] = lenient_tp.get(p[0], 0) + 1
            continue
        if index is None:
            if not distinct:
                lenient_fp[p[0]] = lenient_fp.get(p[0], 0) + 1
                continue
            index = GoldIndex(distinct, width)
        hits = index.overlapping(p)
        if not hits:
            lenient_fp[p[0]] = lenient_fp.get(p[0], 0) + 1
        elif matched.isdisjoint(hits):
            lenient_tp[p[0]] = lenient_tp.get(p[0], 0) + 1
            matched.update(hits)
        else:
            matched.update(hits)
    labels = n_gold.keys() | strict_tp.keys() | strict_fp.keys() | lenient_fp.keys()
    strict = {x: [strict_tp[x], strict_fp[x], n_gold[x] - strict_tp[x]] for x in labels}
    lenient = {x: [lenient_tp.get(x, 0), lenient_fp.get(x, 0), n_gold[x] - lenient_tp.get(x, 0)] for x in labels}
    return strict, lenient
