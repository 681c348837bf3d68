"""Seeded, order-independent selection rules of a mixture: which documents and records go where, how often.

Every choice sorts items by a SHA-256 key of (seed, purpose, dataset, item id), so it depends on the seed and
on the ids only, never on file order, the Python hash seed or the machine. The rules, precisely:

* Fractions (``held_out_fraction``): the held-out dataset's training documents sorted by key; the fraction
  ``f`` takes the first ``ceil(f * n)`` of them. The order does not depend on ``f``, so the sets are nested
  (the 5% set is a prefix of the 10% set, which is a prefix of the 20% set, ...).
* Validation (``validation_fraction`` ``v``): per dataset, the first ``round_half_up(v * n)`` documents in a
  second key order (purpose ``validation``) go to validation, at most ``n - 1`` so training keeps one.
* Weights: a training record of a dataset with weight ``w`` appears ``floor(w)`` times, plus one more time
  for the first ``round_half_up(frac(w) * n)`` of the dataset's ``n`` records in key order (purpose
  ``weight``). So ``w = 2`` doubles every record, ``w = 0.5`` keeps half of them once, ``w = 1.5`` keeps all
  once and half of them twice.
* Caps: ``cap = c`` keeps the first ``min(c, n)`` records in key order (purpose ``cap``), once each.
* Few-shot: the ``k`` examples of a task are the first ``k`` records of that task rendered from the
  held-out training documents in the fraction order (in smaller chunks, see ``mixture.few_shot_budget``),
  so they come from the documents every non-empty fraction takes first.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def seeded_key(seed: int, purpose: str, dataset: str, item_id: str) -> str:
    return hashlib.sha256(f"{seed}\x1f{purpose}\x1f{dataset}\x1f{item_id}".encode()).hexdigest()


def seeded_order(items: Sequence[T], ident: Callable[[T], str], seed: int, purpose: str, dataset: str) -> list[T]:
    """Items sorted by their seeded key (ties, i.e. duplicate ids, keep their input order)."""
    return sorted(items, key=lambda item: seeded_key(seed, purpose, dataset, ident(item)))


def round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5 + 1e-9))


def fraction_count(n: int, fraction: float) -> int:
    """How many of ``n`` documents a fraction takes: ceil(f * n) (so any f > 0 takes at least one)."""
    if fraction <= 0:
        return 0
    return min(n, math.ceil(fraction * n - 1e-9))


def nested_fraction(items: Sequence[T], ident: Callable[[T], str], fraction: float, seed: int,
                    dataset: str) -> list[T]:
    """The first ceil(f * n) items in the seeded fraction order (nested across fractions)."""
    ordered = seeded_order(items, ident, seed, "fraction", dataset)
    return ordered[:fraction_count(len(ordered), fraction)]


def carve_validation(items: Sequence[T], ident: Callable[[T], str], fraction: float, seed: int,
                     dataset: str) -> tuple[list[T], list[T]]:
    """(training, validation), both in input order; validation gets round(v * n) items, training keeps >= 1."""
    n = len(items)
    n_val = min(round_half_up(fraction * n), max(n - 1, 0)) if fraction > 0 else 0
    chosen = {id(x) for x in seeded_order(items, ident, seed, "validation", dataset)[:n_val]}
    return [x for x in items if id(x) not in chosen], [x for x in items if id(x) in chosen]


def weighted_copies(records: Sequence[dict[str, Any]], weight: float | None, cap: int | None, seed: int,
                    dataset: str) -> list[tuple[dict[str, Any], int]]:
    """(record, copy index) pairs per the weight/cap rule above, in input order (copies adjacent)."""
    ident: Callable[[dict[str, Any]], str] = lambda r: r["id"]  # noqa: E731
    if cap is not None:
        keep = {id(r) for r in seeded_order(records, ident, seed, "cap", dataset)[:cap]}
        return [(r, 0) for r in records if id(r) in keep]
    w = 1.0 if weight is None else weight
    whole = math.floor(w + 1e-12)
    extra_n = round_half_up((w - whole) * len(records))
    extra = {id(r) for r in seeded_order(records, ident, seed, "weight", dataset)[:extra_n]}
    out: list[tuple[dict[str, Any], int]] = []
    for r in records:
        times = whole + (1 if id(r) in extra else 0)
        out.extend((r, k) for k in range(times))
    return out


def copy_record(record: dict[str, Any], copy_index: int) -> dict[str, Any]:
    """Copy 0 is the record itself; copy k > 0 gets the unique id ``<id>#<k>`` and ``copy_of = <id>``."""
    if copy_index == 0:
        return record
    return {**record, "id": f"{record['id']}#{copy_index}", "copy_of": record["id"]}


def few_shot_examples(records_in_doc_order: Sequence[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """The first k records (already in the seeded fraction order of their documents)."""
    return list(records_in_doc_order[:k]) if k > 0 else []
