"""The study scheduler against the REAL local Slurm cluster through submitit: dependency chains, resubmission
that submits nothing, a failed stage resubmitted while finished ones are kept, and a preempted stage that
requeues itself and resumes. The stage commands here are small Python programs standing in for mix/train/
generate/evaluate (the real commands run in test_slurm_pipeline.py); Slurm, submitit, the runner and the
signals are all real."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clinie_nemo.study.config import load_study
from clinie_nemo.study.plan import StudyPlan, build_plan
from clinie_nemo.study.submit import stage_state, submit_plan
from tests.conftest import cli
from tests.slurm_fixtures import job_fields, slurm_cluster, wait_job  # noqa: F401
from tests.test_study_plan import write_study

pytestmark = pytest.mark.slurm

# a stand-in "trainer": counts STEPS steps, checkpoints on SIGUSR1 and exits 124, resumes from its checkpoint
TRAINER = """
import json, os, pathlib, signal, sys, time
out = pathlib.Path(sys.argv[1]); steps = int(sys.argv[2]); out.mkdir(exist_ok=True)
keys = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "CLINIE_TEST")
(out / "env.json").write_text(json.dumps({k: os.environ.get(k) for k in keys}))
ckpt = out / "checkpoint.json"
step = json.loads(ckpt.read_text())["step"] if ckpt.exists() else 0
starts = out / "starts.txt"; starts.write_text(starts.read_text() + f"{step}\\n" if starts.exists() else f"{step}\\n")
stop = []
signal.signal(signal.SIGUSR1, lambda *a: stop.append(1))
while step < steps:
    time.sleep(0.2); step += 1
    (out / "metrics.jsonl").open("a").write(json.dumps({"step": step}) + "\\n")
    if stop:
        ckpt.write_text(json.dumps({"step": step})); sys.exit(124)
(out / "DONE").write_text("{}")
"""


def fake_plan(tmp: Path, train_argv=None, fail_once: str | None = None, **study) -> StudyPlan:
    cfg = load_study(write_study(tmp, held_out=["a"], fractions=[0.0], seeds=[1], methods=["lora"], **study))
    plan = build_plan(cfg, tmp / "study")
    stages = {}
    for key, s in plan.stages.items():
        d = plan.stage_dir(key)
        if s.kind == "train" and train_argv:
            argv = train_argv(d)
        else:
            make = "mkdir()" if s.output in ("data", "run") else "write_text('{}')"
            code = f"import pathlib; pathlib.Path({str(d / s.output)!r}).{make}"
            if fail_once == s.kind:
                code = (f"import pathlib, sys; m = pathlib.Path({str(tmp / 'failed_once')!r})\n"
                        f"if not m.exists(): m.write_text('x'); sys.exit(3)\n" + code)
            argv = (sys.executable, "-c", code)
        stages[key] = dataclasses.replace(s, argv=argv)
    return dataclasses.replace(plan, stages=stages)


def wait_stages(plan: StudyPlan, kinds: tuple[str, ...], states: set[str], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    released: set[tuple[str, str | None]] = set()
    while time.monotonic() < deadline:
        now = {k: stage_state(plan.stage_dir(k))[0] for k, s in plan.stages.items() if s.kind in kinds}
        if all(v in states for v in now.values()):
            return now
        for key in plan.stages:  # a requeued job waits ~2 min on BeginTime: shorten it to 3 s (see slurm_fixtures.wait_job)
            job = stage_state(plan.stage_dir(key))[1]
            fields = job_fields(job) if job else {}
            if fields.get("Reason") == "BeginTime" and (job, fields.get("Restarts")) not in released:
                released.add((job, fields.get("Restarts")))  # once per requeue, else it moves on every poll
                subprocess.run(["scontrol", "update", f"jobid={job}", "StartTime=now+3"], capture_output=True)
        time.sleep(1.0)
    raise AssertionError(f"stages not in {states} after {timeout} s: {now}")


def test_chain_runs_then_resubmit_submits_nothing(slurm_cluster, tmp_path: Path) -> None:  # noqa: F811
    plan = fake_plan(tmp_path)
    first = submit_plan(plan)
    assert [j["kind"] for j in first.jobs] == ["mix", "train", "generate", "evaluate"]
    assert first.jobs[1]["dependency"] == f"afterok:{first.jobs[0]['job_ids'][0]}"
    wait_stages(plan, ("evaluate",), {"done"})
    assert {stage_state(plan.stage_dir(k))[0] for k in plan.stages} == {"done"}
    fields = job_fields(first.jobs[1]["job_ids"][0])
    assert "gres/gpu=1" in fields.get("TRES", "") or "gpu" in fields.get("TresPerNode", "")

    again = submit_plan(plan)
    assert again.jobs == [] and set(again.skipped.values()) == {"done"}

    eval_dir = plan.stage_dir(plan.by_kind("evaluate")[0].key)
    cost = json.loads((eval_dir / "cost.json").read_text())
    assert cost["method"] == "lora" and cost["fold"] == "a" and cost["stages"]["train"]["gpus"] == 1
    assert cost["gpu_hours"] > 0 and cost["stages"]["mix"]["gpu_hours"] == 0
    audit = sorted((plan.study_dir / "sbatch").glob("*.sbatch"))
    assert len(audit) == 4 and "clinie-nemo run-stage" in audit[1].read_text()

    status = cli("status", plan.study_dir)
    assert status.returncode == 0, status.stderr
    assert "stages: 4 done" in status.stdout and "heldout-a_frac-0_tiny_lora_seed-1" in status.stdout


def test_failed_stage_resubmits_and_keeps_finished_work(slurm_cluster, tmp_path: Path) -> None:  # noqa: F811
    plan = fake_plan(tmp_path, fail_once="train")
    first = submit_plan(plan)
    wait_stages(plan, ("train",), {"failed"})
    gen_job = first.jobs[2]["job_ids"][0]
    wait_job(gen_job, timeout=60)  # --kill-on-invalid-dep cancels the dependents
    assert job_fields(gen_job)["JobState"] == "CANCELLED"
    mix_dir = plan.stage_dir(plan.by_kind("mix")[0].key)
    mix_done = (mix_dir / "DONE").stat().st_mtime_ns

    second = submit_plan(plan)
    assert [j["kind"] for j in second.jobs] == ["train", "generate", "evaluate"]
    assert second.jobs[0]["dependency"] is None, "finished mix needs no dependency"
    wait_stages(plan, ("evaluate",), {"done"})
    assert (mix_dir / "DONE").stat().st_mtime_ns == mix_done, "finished mix was not rerun"
    assert len(json.loads((mix_dir / "timing.jsonl").read_text().splitlines()[0])) > 0
    assert len((mix_dir / "timing.jsonl").read_text().splitlines()) == 1


def test_preempted_stage_requeues_and_resumes(slurm_cluster, tmp_path: Path) -> None:  # noqa: F811
    steps = 50
    plan = fake_plan(tmp_path, train_argv=lambda d: (sys.executable, "-c", TRAINER, str(d / "run"), str(steps)))
    submission = submit_plan(plan)
    train_job = submission.jobs[1]["job_ids"][0]
    run = plan.stage_dir(plan.by_kind("train")[0].key) / "run"
    deadline = time.monotonic() + 60
    while not (run / "metrics.jsonl").exists() or len((run / "metrics.jsonl").read_text().splitlines()) < 5:
        assert time.monotonic() < deadline, "training did not start"
        time.sleep(0.3)
    # what Slurm sends before a time limit under submitit (--signal=USR2@N): every process of the step
    subprocess.run(["scancel", "--signal=USR2", train_job], check=True)
    wait_stages(plan, ("evaluate",), {"done"}, timeout=150)

    starts = [int(x) for x in (run / "starts.txt").read_text().split()]
    assert len(starts) == 2 and starts[0] == 0 and 0 < starts[1] < steps, starts
    recorded = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert recorded == list(range(1, steps + 1)), "resumed from the checkpoint: every step exactly once"
    segments = (plan.stage_dir(plan.by_kind("train")[0].key) / "timing.jsonl").read_text().splitlines()
    assert [json.loads(s)["rc"] for s in segments] == [124, 0]
    assert int(job_fields(train_job)["Restarts"]) == 1


def test_rendered_sbatch_script_requeues_and_resumes(slurm_cluster, tmp_path: Path) -> None:  # noqa: F811
    """render_sbatch output submitted as is: srun launches the step with RANK/LOCAL_RANK/WORLD_SIZE, the
    B:USR1 signal is forwarded to the step, the job requeues itself and the step resumes."""
    from clinie_nemo.slurm.sbatch import SbatchJob, render_sbatch
    from tests.slurm_fixtures import sbatch

    run, steps = tmp_path / "run", 50
    script = tmp_path / "job.sbatch"
    script.write_text(render_sbatch(SbatchJob(
        name="rendered-requeue", command=(sys.executable, "-c", TRAINER, str(run), str(steps)), gpus_per_node=1,
        time="00:10:00", output=str(tmp_path / "job-%j.out"), env=(("CLINIE_TEST", "1"),))))
    job = sbatch(str(script))
    deadline = time.monotonic() + 60
    while not (run / "metrics.jsonl").exists() or len((run / "metrics.jsonl").read_text().splitlines()) < 3:
        assert time.monotonic() < deadline, "the step did not start"
        time.sleep(0.3)
    subprocess.run(["scancel", "--signal=USR1", "--batch", job], check=True)
    fields = wait_job(job, timeout=120)
    log = (tmp_path / f"job-{job}.out").read_text()
    log += "\nstarts: " + (run / "starts.txt").read_text().replace("\n", " ")
    assert fields["JobState"] == "COMPLETED" and int(fields["Restarts"]) == 1, log
    assert "forwarding SIGUSR1 to the step" in log
    recorded = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert recorded == list(range(1, steps + 1)), log
    assert len((run / "starts.txt").read_text().split()) == 2, log
    env = json.loads((run / "env.json").read_text())
    assert env["RANK"] == "0" and env["LOCAL_RANK"] == "0" and env["WORLD_SIZE"] == "1"
    assert env["MASTER_ADDR"] and env["MASTER_PORT"] == str(15000 + int(job) % 15000) and env["CLINIE_TEST"] == "1"


# ---------------------------------------------------------------- issue 10: scheduling on the real cluster

# one rank of a torch.distributed job: env:// rendezvous from what the runner exported, one all_reduce
DIST_RANK = """
import json, os, pathlib, sys
import torch, torch.distributed as dist
out = pathlib.Path(sys.argv[1]); out.mkdir(exist_ok=True)
dist.init_process_group("gloo")
t = torch.tensor([dist.get_rank() + 1]); dist.all_reduce(t)
keys = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "SLURM_JOB_ID", "SLURM_STEP_ID")
(out / f"rank{dist.get_rank()}.json").write_text(json.dumps({"sum": int(t), **{k: os.environ.get(k) for k in keys}}))
dist.destroy_process_group()
"""


def test_each_slurm_task_is_one_rank_of_one_step(slurm_cluster, tmp_path: Path) -> None:  # noqa: F811
    """A stage of world size 2 as submitit runs a multi-node train (one task per GPU), here 2 tasks on the one
    node: each task is one torch.distributed rank (gloo really initialised), both in submitit's only step,
    MASTER_PORT from the job id; rank 0 alone writes DONE and the timing."""
    import submitit

    from clinie_nemo.study.runner import StageJob, master_port
    from clinie_nemo.study.submit import executor_settings, prepare_stage

    plan = fake_plan(tmp_path, train_argv=lambda d: (sys.executable, "-c", DIST_RANK, str(d / "run")))
    train = plan.by_kind("train")[0]
    d = prepare_stage(plan, train)
    spec = json.loads((d / "stage.json").read_text())
    (d / "stage.json").write_text(json.dumps({**spec, "world_size": 2}))
    python, params = executor_settings(plan, "train", plan.config.stage_resources("train"), None)
    params.update(ntasks_per_node=2, cpus_per_task=1)
    params.pop("gpus_per_node", None)
    ex = submitit.SlurmExecutor(folder=tmp_path / "submitit" / "%j", python=python)
    ex.update_parameters(**params)
    job = ex.submit(StageJob(str(d)))
    fields = wait_job(job.job_id, timeout=150)
    log = "".join(p.read_text() for p in (tmp_path / "submitit").rglob("*.err"))
    assert fields["JobState"] == "COMPLETED", log
    ranks = [json.loads((d / "run" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["sum"] for r in ranks] == [3, 3], "both ranks joined one process group"
    assert {r["RANK"] for r in ranks} == {"0", "1"} and {r["WORLD_SIZE"] for r in ranks} == {"2"}
    assert {r["SLURM_STEP_ID"] for r in ranks} == {"0"}, "no nested srun: every rank runs in submitit's step"
    assert {r["MASTER_PORT"] for r in ranks} == {str(master_port(job.job_id))} and ranks[0]["MASTER_ADDR"]
    assert (d / "DONE").exists() and len((d / "timing.jsonl").read_text().splitlines()) == 1


def test_status_asks_slurm_once_per_poll_on_the_cluster(slurm_cluster, tmp_path: Path, monkeypatch) -> None:  # noqa: F811
    """squeue/scontrol wrapped by scripts that log each call and run the real command."""
    import shutil

    from clinie_nemo.study.status import status_table

    plan = fake_plan(tmp_path)
    submit_plan(plan)
    wait_stages(plan, ("evaluate",), {"done", "queued", "running"})
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("squeue", "scontrol", "sacct"):
        real = shutil.which(name)
        if real:
            (bin_dir / name).write_text(f'#!/bin/sh\necho {name} >> {tmp_path / "calls.log"}\nexec {real} "$@"\n')
            (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    _table, counts = status_table(plan.study_dir)
    made = (tmp_path / "calls.log").read_text().split() if (tmp_path / "calls.log").exists() else []
    unfinished = sum(n for s, n in counts.items() if s != "done")
    assert made.count("scontrol") == 0 and made.count("squeue") == (1 if unfinished else 0), (made, counts)
    wait_stages(plan, ("evaluate",), {"done"})
    (tmp_path / "calls.log").unlink(missing_ok=True)
    _table, counts = status_table(plan.study_dir)
    made = (tmp_path / "calls.log").read_text().split() if (tmp_path / "calls.log").exists() else []
    assert counts == {"done": 4} and "squeue" not in made and "scontrol" not in made, made
    assert made.count("sacct") <= 1, f"accounting (GPU-hours) once for all stages: {made}"


def test_a_duplicate_job_for_a_stage_starts_no_second_trainer(slurm_cluster, tmp_path: Path) -> None:  # noqa: F811
    """The same train stage submitted twice (as after a lost sbatch answer): the second job finds the first
    one's live lock, runs nothing and fails; the first trains once and the chain completes."""
    from clinie_nemo.study.submit import _submit_batch

    sleeper = "import pathlib, sys, time; p = pathlib.Path(sys.argv[1]); p.mkdir(exist_ok=True); " \
              "f = p / 'starts.txt'; f.write_text((f.read_text() if f.exists() else '') + 'x'); time.sleep(8)"
    resources = {"train": {"gpus": 0, "cpus": 1, "time": "00:10:00"}}
    plan = fake_plan(tmp_path, train_argv=lambda d: (sys.executable, "-c", sleeper, str(d / "run")),
                     resources=resources)
    first = submit_plan(plan)
    train = plan.by_kind("train")[0]
    d = plan.stage_dir(train.key)
    deadline = time.monotonic() + 90
    while not (d / "run" / "starts.txt").exists():
        assert time.monotonic() < deadline, "the first trainer did not start"
        time.sleep(0.3)
    [dup] = _submit_batch(plan, "train", plan.config.stage_resources("train"), [d], None, None)
    fields = wait_job(dup, timeout=90)
    assert fields["JobState"] == "FAILED", fields
    wait_stages(plan, ("evaluate",), {"done"})
    assert (d / "run" / "starts.txt").read_text() == "x", "one trainer only"
    logs = "".join(p.read_text() for p in (plan.study_dir / "submitit").rglob(f"{dup}_*.err"))
    assert f"already running in job {first.jobs[1]['job_ids'][0]}" in logs


def test_requeues_are_capped_by_max_requeues(slurm_cluster, tmp_path: Path) -> None:  # noqa: F811
    """A trainer that is stopped every time (exit 124): requeued once (max_requeues 1), then failed clearly."""
    resources = {"train": {"gpus": 1, "time": "00:10:00", "max_requeues": 1}}
    plan = fake_plan(tmp_path, train_argv=lambda d: (sys.executable, "-c", "import sys; sys.exit(124)"),
                     resources=resources)
    first = submit_plan(plan)
    wait_stages(plan, ("train",), {"failed"}, timeout=150)
    train_job = first.jobs[1]["job_ids"][0]
    d = plan.stage_dir(plan.by_kind("train")[0].key)
    segments = [json.loads(s) for s in (d / "timing.jsonl").read_text().splitlines()]
    assert [(s["rc"], s["restart"]) for s in segments] == [(124, 0), (124, 1)]
    assert int(job_fields(train_job)["Restarts"]) == 1 and job_fields(train_job)["JobState"] == "FAILED"
    logs = "".join(p.read_text() for p in (plan.study_dir / "submitit").rglob("*.err"))
    assert "max_requeues 1 reached, not requeueing" in logs
