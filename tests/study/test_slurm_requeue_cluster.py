"""Requeue behaviour on the REAL local Slurm cluster: a render_sbatch script stopped with SIGTERM (what Slurm
sends at preemption; before, only the B:USR1 time signal was trapped) forwards SIGUSR1 to the step, requeues
itself and resumes to the same step count; a step that keeps asking to be requeued (exit 124) is requeued at
most MAX_REQUEUES times (SLURM_RESTART_COUNT), then the job fails with a log line, both for render_sbatch
scripts and slurm/peft_lora.sh; MASTER_PORT comes from the job id. The steps are small stand-in programs (the
real trainer runs in test_slurm_pipeline.py); Slurm, srun, scontrol and the signals are real.

Preemption (tools/local_slurm.sh: partitions preempt-requeue (PreemptMode=REQUEUE) and preempt-cancel
(PreemptMode=CANCEL) are preempted by a job in "urgent"): a 1-node job whose one task is run-stage running the
bridge engine's launcher (real torchrun, 2 gloo ranks: tests/bridge_like.py) is preempted for real in both
modes and resumes to the same step count. REQUEUE: Slurm requeues it itself (our requeue would fail with "Job
is pending execution"), and that does not use up MAX_REQUEUES. `scancel --full` (a signal to the batch shell's
process group) must not make srun abort the step: srun runs in its own session."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clinie_nemo.study.sbatch import SbatchJob, render_sbatch
from tests.cli_plugin import REPO
from tests.engines.test_bridge_launcher_signals import stage_folder, steps_of
from tests.local_extra import needs_local
from tests.slurm_fixtures import cluster_nodes, job_fields, sbatch, slurm_cluster, wait_job  # noqa: F401

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
        time.sleep(float(os.environ.get("SAVE_S", "0")))  # a slow checkpoint
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
    assert "stop signal" in log and "requeueing (requeue 1 of at most 3)" in log, log
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


def _wait_for(predicate, what: str, timeout: float = 120) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.3)


def test_scancel_full_does_not_make_srun_abort_the_step(slurm_cluster, tmp_path: Path) -> None:  # noqa: F811
    """`scancel --full --signal=TERM` signals the batch shell's whole process group (slurmstepd killpg). Without
    setsid, srun was in it: SIGTERM made srun abort the step ("forcing job termination", "Job step aborted"),
    which kills the tasks KillWait+2 s later whatever they are doing; now only the shell's trap gets it,
    forwards SIGUSR1, the (slow, 2 s) checkpoint completes, the job requeues and resumes."""
    run, steps = tmp_path / "run", 30
    script = tmp_path / "job.sbatch"
    script.write_text(render_sbatch(SbatchJob(
        name="full-term", command=(sys.executable, "-c", TRAINER, str(run), str(steps)), time="00:10:00",
        output=str(tmp_path / "job-%j.out"), env=(("SAVE_S", "2"),))))
    job = sbatch(str(script))
    _wait_for(lambda: (run / "metrics.jsonl").exists() and len((run / "metrics.jsonl").read_text().split()) >= 3,
              "the step did not start")
    subprocess.run(["scancel", "--signal=TERM", "--full", job], check=True, timeout=30)
    fields = wait_job(job, timeout=150)
    log = (tmp_path / f"job-{job}.out").read_text()
    assert "forcing job termination" not in log and "Job step aborted" not in log, log
    assert fields["JobState"] == "COMPLETED" and int(fields["Restarts"]) == 1, log
    recorded = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert recorded == list(range(1, steps + 1)), "resumed from the checkpoint: every step exactly once"


def _preempt(node: str) -> str:
    """A job in the high-tier partition that needs the GPU of ``node``: Slurm preempts the job holding it."""
    return sbatch("-p", "urgent", "-w", node, "--gres=gpu:1", "--time=00:02:00", "--output=/dev/null", "--wrap", "true")


@needs_local
@pytest.mark.parametrize("mode", ["REQUEUE", "CANCEL"])
def test_preempted_bridge_like_job_resumes_to_the_same_step_count(slurm_cluster, tmp_path: Path,  # noqa: F811
                                                                   mode: str) -> None:
    """Real preemption of a 1-node x 2-rank job (run-stage -> bridge launcher -> torchrun -> 2 gloo ranks).
    Slurm sends SIGTERM to every process and SIGKILL KillWait (15 s here) later: the ranks checkpoint in time.
    REQUEUE: Slurm requeued the job; the script sees it and does not requeue again (before, its `scontrol
    requeue` failed and the preemption counted against MAX_REQUEUES). Then, in the resumed run, a time-limit
    stop (B:USR1) must still get its own requeue with MAX_REQUEUES=1 (before: SLURM_RESTART_COUNT=1, the
    preemption, had used it up and the job failed). CANCEL: Slurm cancels; the script requeues it itself."""
    steps = 24
    stage, run = stage_folder(tmp_path, steps=steps)
    node = cluster_nodes()[0]
    partition = {"REQUEUE": "preempt-requeue", "CANCEL": "preempt-cancel"}[mode]
    script = tmp_path / "job.sbatch"
    script.write_text(render_sbatch(SbatchJob(
        name=f"preempt-{mode.lower()}", command=(sys.executable, "-m", "clinie_nemo", "run-stage", str(stage)),
        gpus_per_node=1, cpus_per_task=2, time="00:10:00", partition=partition, output=str(tmp_path / "job-%j.out"),
        extra_directives=(("nodelist", node),), env=(("BRIDGE_LIKE_SAVE_S", "0.5"), ("MAX_REQUEUES", "1")))))
    job = sbatch(str(script), cwd=str(REPO))
    ranks_at = lambda n: lambda: min(len(steps_of(run, 0)), len(steps_of(run, 1))) >= n  # noqa: E731
    _wait_for(ranks_at(3), "the ranks did not start training", timeout=180)
    urgent = _preempt(node)
    if mode == "REQUEUE":
        # resumed after Slurm's own requeue: stop it once more the way the time limit does (B:USR1)
        _wait_for(lambda: job_fields(job).get("Restarts") == "1" or job_fields(job).get("JobState") == "FAILED",
                  "not requeued")
        wait_job(urgent, timeout=60)
        deadline, released = time.monotonic() + 180, False
        while len((run / "starts-rank0.txt").read_text().split()) < 2 or not ranks_at(
                int((run / "starts-rank0.txt").read_text().split()[-1]) + 3)():
            assert time.monotonic() < deadline, "did not resume"
            state = job_fields(job)
            assert state.get("JobState") not in ("FAILED", "COMPLETED"), state
            if not released and state.get("JobState") == "PENDING" and state.get("Reason") == "BeginTime":
                released = True  # once (see wait_job): Slurm's ~2 min BeginTime delay after a requeue, cut to 3 s
                subprocess.run(["scontrol", "update", f"jobid={job}", "StartTime=now+3"], capture_output=True,
                               timeout=30)
            time.sleep(1)
        subprocess.run(["scancel", "--signal=USR1", "--batch", job], check=True, timeout=30)
    fields = wait_job(job, timeout=300)
    log = (tmp_path / f"job-{job}.out").read_text()
    own = tmp_path / f".clinie-requeues-{job}"
    assert fields["JobState"] == "COMPLETED", log
    if mode == "REQUEUE":
        assert int(fields["Restarts"]) == 2, log
        assert "DUE TO PREEMPTION" in log and "Slurm requeued the job itself" in log, log
        assert "Job is pending execution" not in log, "no second requeue of a job Slurm requeued"
        assert "requeueing (requeue 1 of at most 1)" in log and own.read_text().strip() == "1", log
    else:
        assert int(fields["Restarts"]) == 1, log
        assert "DUE TO PREEMPTION" in log and "requeueing (requeue 1 of at most 1)" in log, log
        assert own.read_text().strip() == "1"
    starts = (run / "starts-rank0.txt").read_text().split()
    assert starts[0] == "0" and all(int(a) < int(b) for a, b in zip(starts, starts[1:])), starts
    assert (run / "starts-rank1.txt").read_text().split() == starts
    for rank in (0, 1):
        assert steps_of(run, rank) == list(range(1, steps + 1)), f"rank {rank}: every step exactly once"
    assert (stage / "DONE").exists() and (run / "DONE").exists()
