"""The MEDDOCAN "merged spans" count (SPANS subtrack, ``Subtrack 2 [merged]`` of the official evaluate.py).

As the official script (classes.py ``Annotation.add_spans``, ``EvaluateSubtrack2merged``) computes it, per
document: each side's spans are sorted (repeats included) and each one is joined to the span before it when
only non-alphanumeric characters (``str.isalnum``) lie between the previous span's end and its start in that
side's note; the join is ``(previous start, this end)`` as written, so a span nested in the previous one
(an empty gap) shortens the join to the nested span's end, exactly as the script does. Then

- matched = (gold spans & system spans) | (gold merged & system merged), as sets; TP = its size;
- FP = system spans not among the gold spans and contained in no matched span;
- FN = gold spans not among the system spans and contained in no matched span.

TP therefore counts strict matches and merged matches together (gold against itself gives TP above the
number of gold spans), which is how the script reports it. Spans are the entities' outer spans.
"""

from __future__ import annotations

from collections.abc import Iterable

Span = tuple[int, int]


def all_non_alphanumeric(text: str) -> bool:
    return not any(c.isalnum() for c in text)


def merge(spans: Iterable[Span], text: str) -> list[Span]:
    """The spans joined across non-alphanumeric gaps, in the script's order (sorted, repeats kept)."""
    merged: list[Span] = []
    for y in sorted(spans):
        if merged and all_non_alphanumeric(text[merged[-1][1]:y[0]]):
            x = merged.pop()
            merged.append((x[0], y[1]))
        else:
            merged.append(y)
    return merged


def _contained(span: Span, containers: list[Span]) -> bool:
    return any(c[0] <= span[0] and span[1] <= c[1] for c in containers)


def merged_counts(gold: Iterable[Span], pred: Iterable[Span], gold_text: str, pred_text: str) -> list[int]:
    """``[tp, fp, fn]`` of one document under the merged-spans rule (see the module docstring)."""
    gold, pred = list(gold), list(pred)
    g_strict, p_strict = set(gold), set(pred)
    matched = (g_strict & p_strict) | (set(merge(gold, gold_text)) & set(merge(pred, pred_text)))
    containers = sorted(matched)
    fp = sum(1 for s in p_strict - g_strict if not _contained(s, containers))
    fn = sum(1 for s in g_strict - p_strict if not _contained(s, containers))
    return [len(matched), fp, fn]
