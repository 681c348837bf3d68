"""Document-level bootstrap: 95% confidence intervals for micro P/R/F1, and a paired bootstrap test.

Documents are resampled with replacement (seeded numpy Generator); each replicate sums the sampled
documents' TP/FP/FN and recomputes micro P/R/F1; the interval is the 2.5th-97.5th percentile. The paired
test resamples the same documents for both systems and reports the observed F1 difference (A - B), its
interval, and a two-sided p-value: twice the smaller share of replicates on either side of zero.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from clinie_nemo.evaluation.scoring.scorer import MODES, Scores

BATCH = 200


def doc_matrix(scores: Scores, kind: str, mode: str) -> np.ndarray:
    """``(documents, 3)`` int array of per-document TP, FP, FN for one kind and mode."""
    rows = [(c.tp, c.fp, c.fn) for c in (d.total(kind, mode) for d in scores.documents)]
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


def _prf(sums: np.ndarray) -> np.ndarray:
    """``(replicates, 3)`` TP/FP/FN -> ``(replicates, 3)`` precision/recall/F1, 0 where undefined."""
    tp, fp, fn = (sums[:, i].astype(float) for i in range(3))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        r = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    return np.stack([p, r, f], axis=1)


def _replicates(matrices: list[np.ndarray], n: int, seed: int) -> list[np.ndarray]:
    """P/R/F1 of ``n`` resamples, the same document draws for every matrix."""
    rng = np.random.default_rng(seed)
    docs = matrices[0].shape[0]
    out: list[list[np.ndarray]] = [[] for _ in matrices]
    done = 0
    while done < n:
        size = min(BATCH, n - done)
        idx = rng.integers(0, docs, size=(size, docs)) if docs else np.zeros((size, 0), dtype=np.int64)
        for slot, m in enumerate(matrices):
            out[slot].append(_prf(m[idx].sum(axis=1) if docs else np.zeros((size, 3))))
        done += size
    return [np.concatenate(parts) for parts in out]


def confidence_interval(matrix: np.ndarray, n: int = 1000, seed: int = 0,
                        level: float = 0.95) -> dict[str, list[float]]:
    (reps,) = _replicates([matrix], n, seed)
    lo, hi = 100 * (1 - level) / 2, 100 * (1 + level) / 2
    return {name: [float(np.percentile(reps[:, i], lo)), float(np.percentile(reps[:, i], hi))]
            for i, name in enumerate(("precision", "recall", "f1"))}


def paired_bootstrap(a: np.ndarray, b: np.ndarray, n: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Compare two systems scored on the same documents (rows in the same order)."""
    if a.shape != b.shape:
        raise ValueError("paired bootstrap needs both systems scored on the same documents")
    observed = float(_prf(a.sum(axis=0, keepdims=True))[0, 2] - _prf(b.sum(axis=0, keepdims=True))[0, 2])
    reps_a, reps_b = _replicates([a, b], n, seed)
    delta = reps_a[:, 2] - reps_b[:, 2]
    p = min(1.0, 2 * min(float(np.mean(delta <= 0)), float(np.mean(delta >= 0))))
    return {"delta_f1": observed, "ci95": [float(np.percentile(delta, 2.5)), float(np.percentile(delta, 97.5))],
            "p_value": p, "replicates": n, "seed": seed}


def add_confidence_intervals(result: dict[str, Any], scores: Scores, n: int, seed: int = 0) -> None:
    """Put ``ci95`` beside every kind's strict and lenient micro figures in ``result`` (in place)."""
    for kind in scores.kinds:
        if kind not in result:
            continue
        for mode in MODES:
            result[kind][mode]["ci95"] = confidence_interval(doc_matrix(scores, kind, mode), n, seed)
    result["bootstrap"] = {"replicates": n, "seed": seed, "unit": "document"}


def compare_systems(a: Scores, b: Scores, n: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Paired bootstrap of system A against system B for every kind and mode either has counts for; both
    must be scored on the same documents in the same order."""
    if [d.doc_id for d in a.documents] != [d.doc_id for d in b.documents]:
        raise ValueError("paired comparison needs both systems scored on the same documents")
    out: dict[str, Any] = {}
    for kind in a.kinds:
        if kind not in b.kinds:
            continue
        for mode in MODES:
            ma, mb = doc_matrix(a, kind, mode), doc_matrix(b, kind, mode)
            if ma.any() or mb.any():
                out.setdefault(kind, {})[mode] = paired_bootstrap(ma, mb, n, seed)
    return out


def comparison_lines(comparison: dict[str, Any]) -> list[str]:
    lines = [f"{'kind':<18} {'mode':<8} {'F1 A - B':>9}  {'95% CI':<20} {'p':>7}"]
    for kind, modes in comparison.items():
        for mode, c in modes.items():
            lines.append(f"{kind:<18} {mode:<8} {c['delta_f1']:>+9.4f}  [{c['ci95'][0]:+.4f}, {c['ci95'][1]:+.4f}]"
                         f" {c['p_value']:>7.4f}")
    return lines
