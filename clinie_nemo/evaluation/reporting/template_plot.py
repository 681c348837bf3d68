"""``template_variance.png``: per run, the strict F1 of each instruction template (one point per template,
a box over them), CE and RE side by side. Runs scored under a single template are left out; with none
scored under two or more, the plot is skipped with the reason."""

from __future__ import annotations

from pathlib import Path

from clinie_nemo.evaluation.reporting.runs import Run

KINDS = (("entities", "CE"), ("relations", "RE"))


def plot_template_variance(runs: list[Run], out: Path) -> str | None:
    usable = [r for r in runs if any(len(r.template_f1.get(k, {})) >= 2 for k, _ in KINDS)]
    if not usable:
        return "template variance: needs runs scored under two or more templates (render --all-templates)"
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [(k, name) for k, name in KINDS if any(len(r.template_f1.get(k, {})) >= 2 for r in usable)]
    templates = sorted({t for r in usable for k, _ in kinds for t in r.template_f1.get(k, {})})
    markers = "os^Dvp*hX<>"
    colours = plt.get_cmap("tab10")
    width = max(4.0, 0.9 * len(usable) + 2.0)
    fig, axes = plt.subplots(1, len(kinds), figsize=(width * len(kinds) + 1.6, 4.2), squeeze=False, sharey=True)
    for ax, (kind, name) in zip(axes[0], kinds):
        rows = [(x, r.template_f1.get(kind, {})) for x, r in enumerate(usable)]
        boxes = [(x, list(f1s.values())) for x, f1s in rows if len(f1s) >= 2]
        ax.boxplot([v for _, v in boxes], positions=[x for x, _ in boxes], widths=0.5, showfliers=False,
                   medianprops={"color": "grey"})
        for i, template in enumerate(templates):
            xs = [x + (i - (len(templates) - 1) / 2) * 0.06 for x, f1s in rows if template in f1s]
            ys = [f1s[template] for _, f1s in rows if template in f1s]
            if xs:
                ax.scatter(xs, ys, marker=markers[i % len(markers)], color=colours(i % 10), s=28, zorder=3,
                           label=template)
        for x, r in enumerate(usable):
            s = r.spread.get(kind)
            if s:
                ax.annotate(f"sd {s['sd']:.3f}", (x, s["max"]), textcoords="offset points", xytext=(0, 6),
                            ha="center", fontsize=7)
        ax.set_xticks(range(len(usable)), [r.label for r in usable], rotation=25, ha="right", fontsize=7)
        ax.set_title(f"{name}: strict F1 per template")
        ax.set_xlim(-0.6, len(usable) - 0.4)
        ax.grid(axis="y", alpha=0.3)
    low = min(f for r in usable for k, _ in kinds for f in r.template_f1.get(k, {}).values())
    axes[0][0].set_ylim(max(0.0, low - 0.08), 1.06)
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="template", title_fontsize=7)
    axes[0][0].set_ylabel("strict micro F1")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return None
