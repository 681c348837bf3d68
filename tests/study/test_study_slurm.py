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
import uuid
from pathlib import Path

import pytest

from clinie_nemo.study.config import load_study
from clinie_nemo.study.plan import StudyPlan, build_plan
from clinie_nemo.study.submit import stage_state, submit_plan
from tests.cli_plugin import cli_subprocess as cli  # Slurm tests: see cli_subprocess
from tests.local_extra import needs_local
from tests.slurm_fixtures import job_fields, slurm_cluster, wait_job  # noqa: F401
from tests.study.test_study_plan import write_study

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


def fake_plan(tmp: Path, train_argv=None, fail_once: str | None = None, stage_argv=None, **study) -> StudyPlan:
    grid = {"held_out": ["a"], "fractions": [0.0], "seeds": [1], "methods": ["lora"], **study}
    cfg = load_study(write_study(tmp, **grid))
    plan = build_plan(cfg, tmp / "study")
    stages = {}
    for key, s in plan.stages.items():
        d = plan.stage_dir(key)
        if stage_argv and stage_argv(plan, s, d):
            argv = stage_argv(plan, s, d)
        elif s.kind == "train" and train_argv:
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
    assert len(audit) == 4
    for job in first.jobs:  # the audit copy is the script Slurm stored for the job
        [key] = job["stages"]
        stored = subprocess.run(["scontrol", "write", "batch_script", job["job_ids"][0], "-"], capture_output=True,
                                timeout=60, check=True).stdout
        assert (plan.study_dir / "sbatch" / f"{plan.stages[key].dirname}.sbatch").read_bytes() == stored
        assert b"submitit.core._submit" in stored and b"#SBATCH --requeue" in stored

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
    from clinie_nemo.study.sbatch import SbatchJob, render_sbatch
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


@needs_local
def test_each_slurm_task_is_one_rank_of_one_step(slurm_cluster, tmp_path: Path) -> None:  # noqa: F811
    """A stage of world size 2 as submitit runs a multi-node train (one task per GPU), here 2 tasks on the one
    node: each task is one torch.distributed rank (gloo really initialised), both in submitit's only step,
    MASTER_PORT from the job id; rank 0 alone writes DONE and the timing."""
    import submitit

    from clinie_nemo.study.executor import executor_settings
    from clinie_nemo.study.runner import StageJob, master_port
    from clinie_nemo.study.submit import prepare_stage

    plan = fake_plan(tmp_path, train_argv=lambda d: (sys.executable, "-c", DIST_RANK, str(d / "run")))
    train = plan.by_kind("train")[0]
    d = prepare_stage(plan, train)
    spec = json.loads((d / "stage.json").read_text())
    (d / "stage.json").write_text(json.dumps({**spec, "world_size": 2}))
    python, params = executor_settings(plan.config, plan.study_dir, "train", plan.config.stage_resources("train"),
                                       None)
    params.update(ntasks_per_node=2, cpus_per_task=1, srun_args=["--cpus-per-task=1"])
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


# ---------------------------------------------------------------- issue 15: submits on the real cluster

def sbatch_wrapper(tmp: Path, monkeypatch=None, fail_at: int | None = None, sleep: float = 0,
                   hold: bool = False) -> dict[str, str]:
    """A `sbatch` first on PATH that logs each call (tmp/sbatch.log), optionally refuses call ``fail_at`` the
    way a QOS limit does, sleeps, holds the job (--hold), then runs the real sbatch. Returns the PATH env."""
    import shutil

    bin_dir = tmp / "bin"
    real = shutil.which("sbatch", path=os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                                                        if Path(p) != bin_dir))  # never this wrapper itself
    assert real, "sbatch not found"
    bin_dir.mkdir(exist_ok=True)
    log, counter = tmp / "sbatch.log", tmp / "sbatch.count"
    script = bin_dir / "sbatch"
    script.write_text(
        "#!/bin/sh\n"
        f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n + 1)); echo $n > {counter}\n"
        f'echo "sbatch $*" >> {log}\n'
        + (f'if [ "$n" = "{fail_at}" ]; then echo "sbatch: error: Batch job submission failed: Job violates '
           'accounting/QOS policy (job submit limit, user\'s size and/or time limits)" >&2; exit 1; fi\n'
           if fail_at else "")
        + (f"sleep {sleep}\n" if sleep else "")
        + f'exec {real} {"--hold " if hold else ""}"$@"\n')
    script.chmod(0o755)
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    if monkeypatch is not None:
        monkeypatch.setenv("PATH", env["PATH"])
    return env


def sbatch_calls(tmp: Path) -> int:
    log = tmp / "sbatch.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def jobs_named(prefix: str) -> list[str]:
    """Every job and array task Slurm knows (finished ones included) whose name starts with ``prefix``."""
    out = subprocess.run(["squeue", "-h", "--array", "--states=all", "-o", "%i|%j"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    return [line.split("|")[0] for line in out.splitlines() if line.split("|")[-1].startswith(prefix)]


def cancel(job_ids) -> None:
    bases = sorted({j.split("_")[0] for j in job_ids})
    if bases:
        subprocess.run(["scancel", *bases], capture_output=True, timeout=60)


def test_invalid_last_cell_submits_nothing(slurm_cluster, tmp_path: Path) -> None:  # noqa: F811
    """The study's LAST cell has an invalid model: `study --submit` exits 2 naming that cell, and Slurm never
    saw a job of the study (before, the mix array was submitted and the train array refused)."""
    from tests.study.test_study_plan import bad_model

    name = f"lastcell{uuid.uuid4().hex[:8]}"  # finished jobs of earlier runs stay listed (MinJobAge)
    study = write_study(tmp_path, name=name, held_out=["a"], fractions=[0.0], seeds=[1], methods=["lora"],
                        models={"tiny": "tiny_local", "zbad": bad_model(tmp_path)})
    env = sbatch_wrapper(tmp_path, hold=True)
    proc = cli("study", study, "--output", tmp_path / "out", "--submit", env=env)
    submitted = jobs_named(f"{name}-")
    cancel(submitted)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "cell heldout-a_frac-0_zbad_lora_seed-1:" in proc.stderr and "num_kv_heads=3" in proc.stderr
    assert sbatch_calls(tmp_path) == 0 and submitted == [], submitted
    assert not (tmp_path / "out").exists()


def test_two_concurrent_submits_on_one_folder_submit_once(slurm_cluster, tmp_path: Path) -> None:  # noqa: F811
    """Two `study --submit` started together on one folder (sbatch slowed to 2 s a call, jobs held): the study
    lock lets one submit the 4 stages; the other submits nothing and says who holds the lock. The audit copies
    are byte for byte the scripts Slurm stored (scontrol write batch_script)."""
    name = f"race{uuid.uuid4().hex[:8]}"
    study = write_study(tmp_path, name=name, held_out=["a"], fractions=[0.0], seeds=[1], methods=["lora"])
    env = sbatch_wrapper(tmp_path, sleep=2, hold=True)
    full_env = {**os.environ, **env, "PYTHONPATH": f"{Path(__file__).resolve().parents[2]}{os.pathsep}"
                                                   f"{os.environ.get('PYTHONPATH', '')}"}
    argv = [sys.executable, "-m", "clinie_nemo", "study", str(study), "--output", str(tmp_path / "out"), "--submit"]
    procs = [subprocess.Popen(argv, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    submitted = jobs_named(f"{name}-")
    try:
        codes = sorted(p.returncode for p in procs)
        report = [(p.returncode, o[1][-600:]) for p, o in zip(procs, outs)]
        assert len({j.split("_")[0] for j in submitted}) == 4 and sbatch_calls(tmp_path) == 4, (submitted, report)
        assert codes == [0, 2], report
        loser = next(o for p, o in zip(procs, outs) if p.returncode == 2)
        assert "is submitting this study now" in loser[1] and "nothing was submitted" in loser[1], loser[1]
        study_dir = tmp_path / "out"
        for stage_dir in (study_dir / "stages").iterdir():
            [job] = json.loads((stage_dir / "job.json").read_text())["jobs"]
            stored = subprocess.run(["scontrol", "write", "batch_script", job["job_id"], "-"], capture_output=True,
                                    timeout=60, check=True).stdout
            audit = (study_dir / "sbatch" / f"{stage_dir.name}.sbatch").read_bytes()
            assert audit == stored, stage_dir.name
            assert b"#SBATCH --requeue" in stored and b"wckey" not in stored
    finally:
        cancel(submitted)


MIX_WAIT = """
import pathlib, sys, time
out, index, release = pathlib.Path(sys.argv[1]), int(sys.argv[2]), pathlib.Path(sys.argv[3])
deadline = time.time() + 300
while index >= 2 and not release.exists() and time.time() < deadline:
    time.sleep(0.2)
out.mkdir()
"""
TRAIN_AFTER_MIX = """
import pathlib, sys
mix, run = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
if not mix.is_dir():
    sys.exit(f"train started before its mix {mix} finished")
run.mkdir()
"""


def test_resubmit_after_a_partial_failure_sends_arrays_not_one_job_per_cell(slurm_cluster, tmp_path: Path,  # noqa: F811
                                                                           monkeypatch) -> None:
    """6 cells. The first submit stops after the mix array (sbatch refuses the train array, as a QOS limit
    does); mixes 0-1 finish, 2-5 keep running. The resubmit sends each kind as 2 arrays (the children of the
    finished mixes, free; the children of mix tasks 2-5 as ONE array with task ids 2-5, aftercorr): 6 sbatch
    calls, 6 jobs (one job per stage sent 15). Each train starts only after its own mix."""
    release = tmp_path / "release"

    def argv(plan, stage, d):
        mixes = plan.by_kind("mix")
        if stage.kind == "mix":
            return (sys.executable, "-c", MIX_WAIT, str(d / "data"), str(mixes.index(stage)), str(release))
        if stage.kind == "train":
            return (sys.executable, "-c", TRAIN_AFTER_MIX, str(plan.stage_dir(stage.upstream[0]) / "data"),
                    str(d / "run"))
        return None

    plan = fake_plan(tmp_path, stage_argv=argv, fractions=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
                     resources={"train": {"gpus": 0, "cpus": 1, "time": "00:10:00"},
                                "generate": {"gpus": 0, "cpus": 1, "time": "00:10:00"}})
    assert len(plan.cells) == 6 and len(plan.by_kind("mix")) == 6
    sbatch_wrapper(tmp_path, monkeypatch, fail_at=2)
    with pytest.raises(Exception, match="Job violates accounting/QOS policy") as refused:
        submit_plan(plan)
    submitted: list[str] = []
    try:
        mixes = plan.by_kind("mix")
        deadline = time.monotonic() + 120
        while not all((plan.stage_dir(m.key) / "DONE").exists() for m in mixes[:2]):
            assert time.monotonic() < deadline, "mixes 0-1 did not finish"
            time.sleep(0.5)
        assert not any((plan.stage_dir(m.key) / "DONE").exists() for m in mixes[2:])

        (tmp_path / "sbatch.log").unlink()
        sbatch_wrapper(tmp_path, monkeypatch)  # sbatch accepts everything again
        again = submit_plan(plan)
        submitted = [j for job in again.jobs for j in job["job_ids"]]
        layout = [(j["kind"], len(j["stages"]), j["dependency"] and j["dependency"].split(":")[0], j.get("task_ids"))
                  for j in again.jobs]
        assert sbatch_calls(tmp_path) == 6 and len({j.split("_")[0] for j in submitted}) == 6, layout
        assert [x for x in layout if x[0] == "train"] == [("train", 2, None, None),
                                                           ("train", 4, "aftercorr", [2, 3, 4, 5])]
        mix_array = json.loads((plan.stage_dir(mixes[2].key) / "job.json").read_text())["jobs"][0]["job_id"]
        for i, m in enumerate(mixes[2:], start=2):
            [train] = [s for s in plan.by_kind("train") if s.upstream[0] == m.key]
            job = json.loads((plan.stage_dir(train.key) / "job.json").read_text())["jobs"][-1]["job_id"]
            assert job.endswith(f"_{i}") and job_fields(job).get("Dependency", "").startswith(
                f"aftercorr:{mix_array.split('_')[0]}"), (job, job_fields(job).get("Dependency"))
        release.write_text("go")
        wait_stages(plan, ("evaluate",), {"done"}, timeout=300)
        for train in plan.by_kind("train"):
            assert (plan.stage_dir(train.key) / "run").is_dir(), "a train started before its mix"
        from clinie_nemo.core.errors import ClinieError

        assert isinstance(refused.value, ClinieError), "sbatch's refusal is a clear error (exit 2), not a traceback"
    finally:
        release.write_text("go")
        cancel(submitted)
