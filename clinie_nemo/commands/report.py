"""`clinie-nemo report`: one markdown table across runs and PNG plots (F1 vs fraction, shots, LoRA/full,
F1 per template)."""

from __future__ import annotations

import argparse

NAME = "report"
HELP = "Collect every scores.json under run folders into a markdown table and PNG plots."
EXAMPLES = """
  clinie-nemo report runs/ --output report/
  clinie-nemo report runs/lora runs/full --output report/ --force
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dirs", nargs="+", metavar="DIR", help="run folders (searched recursively for scores.json)")
    p.add_argument("--output", required=True, help="report folder: report.md and *.png")
    p.add_argument("--force", action="store_true", help="replace an existing report folder")


def run(args: argparse.Namespace) -> int:
    from clinie_nemo.core.fileio import atomic_dir
    from clinie_nemo.core.progress import say
    from clinie_nemo.evaluation.reporting.plots import PLOTS
    from clinie_nemo.evaluation.reporting.runs import collect_runs, runs_table

    runs = collect_runs(args.dirs)
    table = runs_table(runs)
    with atomic_dir(args.output, args.force) as tmp:
        notes = []
        for name, plot in PLOTS.items():
            reason = plot(runs, tmp / name)
            if reason:
                notes.append(f"- skipped {name}: {reason}")
            else:
                notes.append(f"![{name}]({name})")
        (tmp / "report.md").write_text(f"# Runs ({len(runs)})\n\n{table}\n## Plots\n\n" + "\n\n".join(notes) + "\n",
                                       encoding="utf-8")
    print(table)
    for line in notes:
        if line.startswith("- skipped"):
            say(line[2:])
    say(f"wrote {args.output}/report.md")
    return 0
