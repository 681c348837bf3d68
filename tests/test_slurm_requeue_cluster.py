"""Requeue behaviour on the REAL local Slurm cluster: a render_sbatch script stopped with SIGTERM (what Slurm
sends at preemption; before, only the B:USR1 time signal was trapped) forwards SIGUSR1 to the step, requeues
itself and resumes to the same step count; a step that keeps asking to be requeued (exit 124) is requeued at
most MAX_REQUEUES times (SLURM_RESTART_COUNT), then the job fails with a log line, both for render_sbatch
scripts and slurm/peft_lora.sh; MASTER_PORT comes from the job id. The steps are small stand-in programs (the
real trainer runs in test_slurm_pipeline.py); Slurm, srun, scontrol and the signals are real."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clinie_nemo.slurm.sbatch import SbatchJob, render_sbatch
from tests.conftest import REPO
from tests.slurm_fixtures import sbatch, slurm_cluster, wait_job  # noqa: F401

pytestmark = pytest.mark.slurm

# counts STEPS steps of 0.2 s; on SIGUSR1 checkpoints and exits 124; resumes from its checkpoint
TRAINER = """
import json, os, pathlib, signal, sys, time
out = pathlib.Path(sys.argv[1]); steps = int(sys.argv[2]); out.mkdir(exist_ok=True)
(out / "env.json").write_text(json.dumps({k: os.environ.get(k) for k in ("MASTER_PORT", "SLURM_JOB_ID")}))
ckpt = out / "checkpoint.json"
step = json.loads(ckpt.read_text())["step"] if ckpt.exists() else 0
with (out / "starts.txt").open("a") as fh:
    fh.write(f"{step}\\n")
stop = []
signal.signal(signal.SIGUSR1, lambda *a: stop.append(1))
while step < steps:
    time.sleep(0.2); step += 1
    with (out / "metrics.jsonl").open("a") as fh:
        fh.write(json.dumps({"step": step}) + "\\n")
    if stop:
        ckpt.write_text(json.dumps({"step": step})); sys.exit(124)
"""

# a step that always checkpoints at once and asks to be requeued
ALWAYS_124 = "import pathlib, sys; p = pathlib.Path(sys.argv[1]); p.write_text(p.read_text() + 'x' if p.exists() else 'x'); sys.exit(124)"


def test_rendered_script_requeues_on_sigterm_and_resumes(slurm_cluster, tmp_path: Path) -> None:  # noqa: F811
    run, steps = tmp_path / "run", 40
    script = tmp_path / "job.sbatch"
    script.write_text(render_sbatch(SbatchJob(
        name="term-requeue", command=(sys.executable, "-c", TRAINER, str(run), str(steps)), time="00:10:00",
        output=str(tmp_path / "job-%j.out"))))
    job = sbatch(str(script))
    deadline = time.monotonic() + 60
    while not (run / "metrics.jsonl").exists() or len((run / "metrics.jsonl").read_text().splitlines()) < 3:
        assert time.monotonic() < deadline, "the step did not start"
        time.sleep(0.3)
    subprocess.run(["scancel", "--signal=TERM", "--batch", job], check=True, timeout=30)
    fields = wait_job(job, timeout=120)
    log = (tmp_path / f"job-{job}.out").read_text()
    assert fields["JobState"] == "COMPLETED" and int(fields["Restarts"]) == 1, log
    assert "stop signal" in log and "requeueing (restart 1 of at most 3)" in log, log
    recorded = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert recorded == list(range(1, steps + 1)), "resumed from the checkpoint: every step exactly once"
    assert len((run / "starts.txt").read_text().split()) == 2
    env = json.loads((run / "env.json").read_text())
    assert env["MASTER_PORT"] == str(15000 + int(job) % 15000), env


def test_rendered_script_stops_requeueing_after_max_requeues(slurm_cluster, tmp_path: Path) -> None:  # noqa: F811
    starts = tmp_path / "starts"
    script = tmp_path / "job.sbatch"
    script.write_text(render_sbatch(SbatchJob(
        name="requeue-cap", command=(sys.executable, "-c", ALWAYS_124, str(starts)), time="00:10:00",
        output=str(tmp_path / "job-%j.out"), max_requeues=1)))
    job = sbatch(str(script))
    fields = wait_job(job, timeout=120)
    log = (tmp_path / f"job-{job}.out").read_text()
    assert fields["JobState"] == "FAILED" and int(fields["Restarts"]) == 1, log
    assert fields["ExitCode"].startswith("124:"), fields["ExitCode"]
    assert starts.read_text() == "xx", "ran once, requeued once, then failed"
    assert "requeued 1 times already (MAX_REQUEUES=1): not requeueing again, the job fails" in log, log


def test_training_script_stops_requeueing_after_max_requeues(slurm_cluster, tmp_path: Path) -> None:  # noqa: F811
    """slurm/peft_lora.sh with a stand-in interpreter whose training step always exits 124."""
    fake = tmp_path / "python"
    fake.write_text(f"#!/bin/bash\nif [[ \" $* \" == *\" train \"* ]]; then echo x >> {tmp_path}/starts; "
                    "exit 124; fi\necho 'versions python stand-in'\n")
    fake.chmod(0o755)
    data = tmp_path / "mix"
    data.mkdir()
    (data / "training.jsonl").write_text("")
    job = sbatch("--cpus-per-task=1", f"--output={tmp_path}/train-%j.out", str(REPO / "slurm/peft_lora.sh"),
                 env={"ENGINE": "local", "DATA": str(data), "OUTPUT": str(tmp_path / "run"), "PYTHON": str(fake),
                      "MAX_REQUEUES": "2", "CLINIE_NEMO_HOME": str(REPO)})
    fields = wait_job(job, timeout=180)
    log = (tmp_path / f"train-{job}.out").read_text()
    assert fields["JobState"] == "FAILED" and int(fields["Restarts"]) == 2, log
    assert (tmp_path / "starts").read_text().split() == ["x", "x", "x"]
    assert "requeued 2 times already (MAX_REQUEUES=2): not requeueing again, the job fails" in log, log
    assert f":{15000 + int(job) % 15000}" in log, "MASTER_PORT from the job id in the header line"
