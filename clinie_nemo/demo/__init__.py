"""`clinie-nemo demo`: the study's protocol in miniature (synthetic corpora, a tiny model, CPU, minutes).

:func:`run_demo` is the entry point; :mod:`.pipeline` runs it locally, :mod:`.on_slurm` through
`clinie-nemo study --submit`, :mod:`.settings` holds the knobs, :mod:`.configs` writes the YAMLs the
commands read, :mod:`.summary` the per fraction x method table and the note on what the numbers mean.
"""

from __future__ import annotations

from pathlib import Path

from clinie_nemo.demo.settings import DEFAULT, PRESETS, QUICK, DemoSettings

__all__ = ["DEFAULT", "PRESETS", "QUICK", "DemoSettings", "output_files", "run_demo"]


def run_demo(out: str | Path, settings: DemoSettings = DEFAULT, force: bool = False, slurm: bool = False,
             slurm_timeout_s: float = 3600.0) -> dict[str, Path]:
    """Run the demo into ``out``; returns the files to open (name -> path)."""
    from clinie_nemo.core.progress import say
    from clinie_nemo.demo.pipeline import prepare_output, run_local

    out_path = Path(out)
    if slurm:
        from clinie_nemo.demo.on_slurm import check_cluster, run_slurm

        check_cluster()  # before touching the output folder
        prepare_output(out_path, force)
        runner = run_slurm(out_path, settings, slurm_timeout_s)
    else:
        prepare_output(out_path, force)
        runner = run_local(out_path, settings)
    import json

    from clinie_nemo.core.fileio import atomic_write

    timings = runner.timings()
    with atomic_write(out_path / "timings.json") as fh:
        json.dump(timings, fh, indent=2)
    say(f"\ndemo finished in {runner.elapsed()} (CPU {timings['cpu_s']:.0f} s in this process; "
        f"{runner.commands} clinie-nemo commands)")
    return output_files(out_path, slurm)


def output_files(out: Path, slurm: bool = False) -> dict[str, Path]:
    from clinie_nemo.demo.summary import NOTE_FILE, TABLE_FILE

    report = out / "report"
    runs = out / "study" if slurm else out / "runs"
    files = {"demo table (fraction x method, parse statistics)": report / TABLE_FILE,
             "what the numbers mean": report / NOTE_FILE,
             "report (all runs, CIs)": report / "report.md"}
    for png in sorted(report.glob("*.png")):
        files[f"plot {png.stem}"] = png
    for pred in sorted(runs.rglob("predictions.jsonl")):
        files[f"predictions {pred.parent.relative_to(runs)}"] = pred
    return files
