"""The 2018 n2c2 track 2 counting rule (``Track2-evaluate-ver4.py``) on flat keys, strict and lenient in one pass.

A key is a flat tuple: ``width`` label fields, then one ``start, end`` pair per argument, e.g. an entity
``("Drug", 10, 17)`` (width 1) or a relation ``("Strength-Drug", "Strength", "Drug", 20, 25, 10, 17)``
(width 3: relation, head and tail labels; then head and tail spans). Discontinuous spans are already
collapsed to (first start, last end), as the official script does, so the key is both the strict key and
the spans compared by overlap.

The rule: predictions are taken in file order; one that matches a gold annotation already matched by an
earlier prediction is dropped (neither TP nor FP); TP = the others that match, FP = those that match
nothing, FN = distinct gold - TP. Strict counts are set arithmetic (a prediction matches exactly its own key).
Lenient: gold annotations with identical keys overlap the same predictions, so they are matched as one
unit; a prediction equal to an *isolated* gold key (at every argument position its span overlaps no other
distinct gold span of the group) overlaps exactly that key; only the other predictions search the gold
keys, sorted by (group, first start).

One deliberate difference: a gold annotation written twice (same labels, same spans: e.g. a relation line
repeated under another id, as in the clinical-trials-gov corpus) is one gold annotation here. The official
loops keep both copies, and the first prediction that matches one also marks the other as matched, so the
second prediction is dropped and the copy is a false negative no system can avoid (gold scored against
itself would stay below 1.0).
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


def crowded_segments(segments: Iterable[Key]) -> set[Key]:
    """The distinct ``(*group, start, end)`` segments that overlap another one of their group."""
    ordered = sorted(set(segments))
    crowded: set[Key] = set()
    reach: Key | None = None  # the segment with the furthest end so far in this group
    for i, seg in enumerate(ordered):
        if reach is not None and reach[:-2] == seg[:-2] and reach[-1] > seg[-2]:
            crowded.add(seg)
            crowded.add(reach)
        nxt = ordered[i + 1] if i + 1 < len(ordered) else None
        if nxt is not None and nxt[:-2] == seg[:-2] and nxt[-2] < seg[-1]:
            crowded.add(seg)
        if reach is None or reach[:-2] != seg[:-2] or seg[-1] > reach[-1]:
            reach = seg
    return crowded


def isolated_keys(distinct: set[Key], width: int) -> set[Key]:
    """Gold keys whose span at every argument position overlaps no other distinct span of their group
    there: a prediction equal to such a key overlaps that key and no other gold key."""
    if not distinct:
        return set()
    n = len(next(iter(distinct)))
    if n == width + 2:
        return distinct - crowded_segments(distinct)
    crowded = [crowded_segments((*k[:width], k[pos], k[pos + 1]) for k in distinct) for pos in range(width, n, 2)]
    return {k for k in distinct
            if not any((*k[:width], k[pos], k[pos + 1]) in c for pos, c in zip(range(width, n, 2), crowded))}


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
        if len(p) == w + 4:  # a relation: head (bisected) and tail
            tail_start, tail_end = p[w + 2], p[w + 3]
            return [g for g in keys[lo:hi] if start < g[w + 1] and g[w + 2] < tail_end and tail_start < g[w + 3]]
        return [g for g in keys[lo:hi] if start < g[w + 1]
                and all(g[i] < p[i + 1] and p[i] < g[i + 1] for i in range(w + 2, len(p), 2))]


def n2c2_counts(gold: list[Key], pred: list[Key], width: int,
                isolated: set[Key] | None = None) -> tuple[Rows, Rows]:
    """Strict and lenient ``{label: [tp, fp, fn]}`` for one document; every label seen on either side.
    ``isolated``: :func:`isolated_keys` of the gold keys when the caller knows it (else computed here)."""
    distinct = set(gold)
    n_gold = Counter(map(_label, distinct))  # a repeated gold key is one annotation (module docstring)
    strict_tp = Counter(map(_label, distinct.intersection(pred)))
    strict_fp = Counter(map(_label, filterfalse(distinct.__contains__, pred)))
    if isolated is None:
        isolated = isolated_keys(distinct, width)
    lenient_tp: dict[str, int] = {}
    lenient_fp: dict[str, int] = {}
    index: GoldIndex | None = None
    matched: set[Key] = set()
    for p in pred:
        if p in isolated:
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
