"""``clinie-nemo demo --slurm``: the same grid as the local demo, scheduled on a running Slurm cluster through
`clinie-nemo study --submit` (mix -> train -> generate -> evaluate jobs), waited for, then reported.

The corpora, the tiny model and every YAML are made exactly as in the local demo; only the four per-cell
stages move to Slurm. The study folder is ``OUT/study``; follow it with `clinie-nemo status OUT/study`.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from clinie_nemo.core.errors import ClinieError
from clinie_nemo.core.progress import say
from clinie_nemo.demo import configs
from clinie_nemo.demo.pipeline import build_corpora, build_mixtures, finish_report, prepare_models, rules_for
from clinie_nemo.demo.runner import DemoStepFailed, Runner
from clinie_nemo.demo.settings import DemoSettings

POLL_SECONDS = 5.0


def check_cluster() -> None:
    """A reachable Slurm controller, or a clear error saying how to start the local one."""
    if shutil.which("sbatch") is None or shutil.which("scontrol") is None:
        raise ClinieError("--slurm needs the Slurm client commands (sbatch, scontrol) on PATH; "
                          "start a local cluster with `tools/local_slurm.sh start`")
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ClinieError(f"--slurm: `scontrol ping` failed ({exc})") from None
    if ping.returncode != 0 or "UP" not in ping.stdout:
        raise ClinieError("--slurm: no Slurm controller answers `scontrol ping`; start the local cluster with "
                          "`tools/local_slurm.sh start` (or run the demo without --slurm)")


def wait_for_study(study_dir: Path, timeout_s: float) -> None:
    """Poll the study's stage states until every stage is done; fail on a failed or lost stage."""
    from clinie_nemo.study.status import stage_rows

    deadline = time.monotonic() + timeout_s
    last = ""
    while True:
        rows = stage_rows(study_dir)
        counts: dict[str, int] = {}
        for r in rows.values():
            counts[r["state"]] = counts.get(r["state"], 0) + 1
        line = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        if line != last:
            say(f"      stages: {line}")
            last = line
        if counts.get("done", 0) == len(rows):
            return
        bad = [key for key, r in rows.items() if r["state"] in ("failed", "lost")]
        if bad:
            raise DemoStepFailed(f"study stage(s) {', '.join(sorted(bad))} {rows[bad[0]]['state']}; see "
                                 f"`clinie-nemo status {study_dir}` and the logs under {study_dir}")
        if time.monotonic() > deadline:
            raise DemoStepFailed(f"the study did not finish within {timeout_s / 60:.0f} minutes; it keeps running: "
                                 f"`clinie-nemo status {study_dir}`")
        time.sleep(POLL_SECONDS)


def run_slurm(out: Path, s: DemoSettings, timeout_s: float = 3600.0) -> Runner:
    check_cluster()
    run = Runner(out, total_steps=8)
    docs = build_corpora(run, out, s)
    data = build_mixtures(run, out, docs, s, s.fractions)  # for the tokenizer and the base model
    model_yaml, recipes, generate_yaml = prepare_models(run, out, data, s)
    study_yaml = configs.study_config(docs, out / "config", s, model_yaml, recipes, generate_yaml,
                                      rules_for(s.held_out))
    study_dir = out / "study"
    with run.step("Submit the study to Slurm and wait: mix -> train -> generate -> evaluate per cell",
                  "`clinie-nemo study` schedules a whole leave-one-dataset-out grid as dependent job arrays; "
                  "rerunning it skips finished stages"):
        run.cli("study", str(study_yaml), "--output", str(study_dir), "--submit")
        wait_for_study(study_dir, timeout_s)
    finish_report(run, out, study_dir, s)
    return run
