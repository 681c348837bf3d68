"""PNG plots of a report (matplotlib, Agg backend): F1 against held-out data fraction per dataset,
zero-shot vs few-shot, LoRA vs full fine-tuning, and F1 per instruction template
(:mod:`clinie_nemo.evaluation.reporting.template_plot`). A plot without the runs it needs is skipped, with
the reason returned to the caller. Several seeds of one setting are averaged (error bar: their range;
a single run shows its bootstrap 95% CI)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from statistics import mean

from clinie_nemo.evaluation.reporting.runs import Run
from clinie_nemo.evaluation.reporting.template_plot import plot_template_variance


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _spread(runs: list[Run]) -> tuple[float, float, float]:
    """(mean, lower error, upper error) of CE F1 over runs."""
    values = [r.ce_f1 for r in runs if r.ce_f1 is not None]
    m = mean(values)
    if len(values) == 1 and runs[0].ce_ci:
        lo, hi = runs[0].ce_ci
    else:
        lo, hi = min(values), max(values)
    return m, max(0.0, m - lo), max(0.0, hi - m)


def _folds(runs: list[Run]) -> list[str]:
    return sorted({r.tag("fold", "all") or "all" for r in runs})


def plot_fraction(runs: list[Run], out: Path) -> str | None:
    usable = [r for r in runs if r.fraction is not None and r.ce_f1 is not None]
    if len({r.fraction for r in usable}) < 2:
        return "F1 vs fraction: needs runs at two or more held-out fractions (tag fraction=...)"
    plt = _pyplot()
    folds = _folds(usable)
    fig, axes = plt.subplots(1, len(folds), figsize=(4.2 * len(folds), 3.6), squeeze=False, sharey=True)
    for ax, fold in zip(axes[0], folds):
        lines: dict[str, dict[float, list[Run]]] = defaultdict(lambda: defaultdict(list))
        for r in usable:
            if (r.tag("fold", "all") or "all") == fold:
                shots = f" / {r.few_shot_k}-shot" if r.few_shot_k else ""
                lines[f"{r.tag('method', '?')} / {r.tag('model', '?')}{shots}"][r.fraction].append(r)
        for name, points in sorted(lines.items()):
            xs = sorted(points)
            stats = [_spread(points[x]) for x in xs]
            ax.errorbar(xs, [s[0] for s in stats], yerr=[[s[1] for s in stats], [s[2] for s in stats]],
                        marker="o", capsize=3, label=name)
        fractions = sorted({r.fraction for r in usable})
        ax.set_xscale("symlog", linthresh=max(min(f for f in fractions if f > 0), 1e-3))
        ax.set_xticks(fractions, [f"{f:g}" for f in fractions])
        ax.set_title(f"held out: {fold}")
        ax.set_xlabel("fraction of held-out training data")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("CE strict F1")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return None


def _bars(groups: dict[str, dict[str, list[Run]]], title: str, out: Path) -> None:
    plt = _pyplot()
    folds = sorted(groups)
    series = sorted({s for g in groups.values() for s in g}, key=lambda s: (s != "zero-shot", len(s), s))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(4.5, 1.6 * len(folds) + 2), 3.6))
    for i, name in enumerate(series):
        xs, ys, lo, hi = [], [], [], []
        for j, fold in enumerate(folds):
            if name in groups[fold]:
                m, el, eh = _spread(groups[fold][name])
                xs.append(j + (i - (len(series) - 1) / 2) * width)
                ys.append(m)
                lo.append(el)
                hi.append(eh)
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=name)
    ax.set_xticks(range(len(folds)), folds)
    ax.set_ylabel("CE strict F1")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def plot_few_shot(runs: list[Run], out: Path) -> str | None:
    usable = [r for r in runs if r.ce_f1 is not None and (r.fraction in (None, 0.0))]
    if len({r.few_shot_k for r in usable}) < 2:
        return "zero- vs few-shot: needs zero-shot runs (fraction=0) with two or more few_shot_k values"
    groups: dict[str, dict[str, list[Run]]] = defaultdict(lambda: defaultdict(list))
    for r in usable:
        groups[r.tag("fold", "all") or "all"]["zero-shot" if r.few_shot_k == 0 else f"{r.few_shot_k}-shot"].append(r)
    _bars(groups, "zero-shot vs few-shot (held-out fraction 0)", out)
    return None


def plot_lora_full(runs: list[Run], out: Path) -> str | None:
    usable = [r for r in runs if r.ce_f1 is not None and r.tag("method").lower() in ("lora", "full")]
    if len({r.tag("method").lower() for r in usable}) < 2:
        return "LoRA vs full: needs runs tagged method=lora and method=full"
    groups: dict[str, dict[str, list[Run]]] = defaultdict(lambda: defaultdict(list))
    top = {}
    for r in usable:
        fold = r.tag("fold", "all") or "all"
        top[fold] = max(top.get(fold, -1.0), r.fraction if r.fraction is not None else -1.0)
    for r in usable:
        fold = r.tag("fold", "all") or "all"
        if (r.fraction if r.fraction is not None else -1.0) == top[fold]:
            groups[fold][r.tag("method").lower()].append(r)
    _bars(groups, "LoRA vs full fine-tuning (largest fraction per fold)", out)
    return None


PLOTS = {"f1_vs_fraction.png": plot_fraction, "zero_vs_few_shot.png": plot_few_shot,
         "lora_vs_full.png": plot_lora_full, "template_variance.png": plot_template_variance}
