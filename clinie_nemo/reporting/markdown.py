"""The markdown table of a report: one row per run, strict F1 with 95% CIs, GPU-hours."""

from __future__ import annotations

from clinie_nemo.reporting.runs import META_COLUMNS, Run


def _f1(f1: float | None, ci: tuple[float, float] | None) -> str:
    if f1 is None:
        return "-"
    return f"{f1:.4f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def runs_table(runs: list[Run]) -> str:
    header = ["run", *META_COLUMNS, "CE strict F1 [95% CI]", "RE strict F1 [95% CI]", "GPU-h"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for run in runs:
        cells = [run.path, *(run.tag(k, "-") or "-" for k in META_COLUMNS), _f1(run.ce_f1, run.ce_ci),
                 _f1(run.re_f1, run.re_ci), f"{run.gpu_hours:.2f}" if run.gpu_hours is not None else "-"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
