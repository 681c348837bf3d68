"""Study scheduling without a cluster: one rank per Slurm task for multi-node train stages (no nested srun),
the container's python in submitit's job line, per-cell aftercorr arrays split under MaxArraySize, the %N
throttle, one squeue per status poll, the per-stage lock and the requeue cap.

Real here: submitit's own sbatch rendering, the runner and its child processes, the lock on a real folder.
Stand-ins: small `squeue`/`scontrol`/`sacct` scripts on PATH where a test needs Slurm's answers or must count
the calls (the same paths run against the real cluster in test_study_slurm.py), and submitit's check that
`srun` exists (monkeypatched) so its script renders on a machine without Slurm.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import submitit

from clinie_nemo.core.errors import ClinieError
from clinie_nemo.engines import PREEMPTED_EXIT_CODE
from clinie_nemo.study import lock, runner, submit
from clinie_nemo.study.config import load_study
from clinie_nemo.study.executor import executor_settings, index_spec, tasks_per_node
from clinie_nemo.study.plan import build_plan, expand_plan
from clinie_nemo.study.submit import SlurmQueryError, job_groups, stage_state, submit_plan
from tests.cli_plugin import cli
from tests.study.test_study_plan import write_study

RESOURCES = {"train": {"gpus": 4, "nodes": 2, "cpus": 2, "time": "00:20:00"}}


def submitit_script(monkeypatch, tmp: Path, python: str | None, params: dict, map_count: int | None = None) -> str:
    """The sbatch text submitit itself would submit (SlurmExecutor._make_submission_file_text)."""
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 2))  # "srun exists"
    ex = submitit.SlurmExecutor(folder=tmp / "submitit" / "%j", python=python)
    ex.update_parameters(**params)
    if map_count:
        ex.parameters["map_count"] = map_count
    return ex._make_submission_file_text(ex._submitit_command_str, "uid")


def fake_bin(tmp: Path, name: str, body: str) -> Path:
    """A stand-in Slurm command that logs its argv to tmp/calls.log, then runs ``body``."""
    d = tmp / "bin"
    d.mkdir(exist_ok=True)
    path = d / name
    path.write_text(f"#!/bin/sh\necho \"{name} $*\" >> {tmp / 'calls.log'}\n{body}\n")
    path.chmod(0o755)
    return d


def calls(tmp: Path, name: str) -> list[str]:
    log = tmp / "calls.log"
    return [c for c in log.read_text().splitlines() if c.split()[0] == name] if log.exists() else []


def make_stage(tmp: Path, code: str, **spec) -> Path:
    d = tmp / "stages" / "train-0123"
    d.mkdir(parents=True, exist_ok=True)
    full = {"kind": "train", "key": "0123", "argv": [sys.executable, "-c", code], "output": "run",
            "atomic_output": False, "gpus": 1, "upstream": [], **spec}
    (d / "stage.json").write_text(json.dumps(full))
    return d


# ---------------------------------------------------------------- item 1: multi-node stages, no nested srun

def test_multinode_train_is_one_task_per_gpu_in_one_srun(monkeypatch, tmp_path: Path) -> None:
    # the expansion alone (expand_plan: not checked, tiny_local has no bridge recipe): only Slurm settings matter
    plan, _ = expand_plan(load_study(write_study(tmp_path, engine="bridge", resources=RESOURCES)), tmp_path / "out")
    res = plan.config.stage_resources("train")
    assert tasks_per_node("bridge", "train", res) == 4
    python, params = executor_settings(plan.config, plan.study_dir, "train", res, None)
    script = submitit_script(monkeypatch, tmp_path, python, params)
    assert "#SBATCH --nodes=2" in script and "#SBATCH --ntasks-per-node=4" in script
    assert "#SBATCH --gpus-per-node=4" in script
    assert sum(line.startswith("srun") for line in script.splitlines()) == 1  # the only step
    # a single-node stage keeps one task that starts its own workers (torchrun on its one node)
    assert tasks_per_node("bridge", "generate", plan.config.stage_resources("generate")) == 1


def test_multinode_only_for_distributed_train(tmp_path: Path) -> None:
    from clinie_nemo.core.errors import ConfigError

    with pytest.raises(ConfigError, match="resources.generate: nodes 2: only train"):
        load_study(write_study(tmp_path, engine="bridge", resources={"generate": {"gpus": 1, "nodes": 2}}))
    with pytest.raises(ConfigError, match="resources.train: nodes 2: only train stages .* gpus >= 1"):
        load_study(write_study(tmp_path, engine="nemo", resources={"train": {"gpus": 0, "nodes": 2}}))
    # the local engine trains data-parallel across nodes, one rank per node (tests/study/test_multinode_slurm.py)
    local = load_study(write_study(tmp_path, engine="local", resources={"train": {"gpus": 0, "nodes": 2}}))
    assert tasks_per_node("local", "train", local.stage_resources("train")) == 1


def test_first_host_and_port_from_job_id() -> None:
    assert runner.first_host("gpu[003-005,9],cpu1") == "gpu003"
    assert runner.first_host("node7,node8") == "node7"
    assert runner.first_host("rack-[12-13]-ib") == "rack-12-ib"
    assert runner.master_port("1234567") != runner.master_port("1234568")
    assert 1024 < runner.master_port("4242") < 32768 and runner.master_port("4242") != 29500


def test_each_task_is_one_rank_and_the_engines_launch_nothing(monkeypatch, tmp_path: Path) -> None:
    """What a rank of a 2-node x 8-GPU train sees: RANK/WORLD_SIZE/MASTER_* from Slurm; with them the nemo
    engine's command is plain python (no srun inside submitit's step) and bridge starts no launcher."""
    slurm = {"SLURM_JOB_ID": "4242", "SLURM_PROCID": "9", "SLURM_LOCALID": "1", "SLURM_NTASKS": "16",
             "SLURM_NODEID": "1", "SLURM_JOB_NODELIST": "gpu[07-08]"}
    for k, v in slurm.items():
        monkeypatch.setenv(k, v)
    env = runner.rank_env(16)
    assert env == {"MASTER_ADDR": "gpu07", "MASTER_PORT": str(runner.master_port("4242")), "RANK": "9",
                   "LOCAL_RANK": "1", "WORLD_SIZE": "16", "NODE_RANK": "1"}
    from clinie_nemo.engines import nemo
    from clinie_nemo.engines.spec_loader import load_run_spec

    spec = load_run_spec("gatortrongpt_20b", "peft_lora", ["parallel.tensor=8", "parallel.gpus_per_node=8",
                                                           "parallel.nodes=2", "seq_length=2048"])
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert nemo.train_command(spec, "/d", "/r")[0] == "srun", "outside a launch the engine would srun"
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert nemo.train_command(spec, "/d", "/r")[0] == "python"


def test_worker_rank_runs_the_command_but_keeps_no_books(monkeypatch, tmp_path: Path) -> None:
    code = ("import json, os, pathlib; pathlib.Path('run').mkdir(exist_ok=True); "
            "pathlib.Path('run/env-' + os.environ['RANK'] + '.json').write_text(json.dumps(dict(os.environ)))")
    d = make_stage(tmp_path, code, world_size=2)
    base = {"SLURM_JOB_ID": "777", "SLURM_NTASKS": "2", "SLURM_JOB_NODELIST": "n[1-2]", "SLURM_RESTART_COUNT": "0"}
    for k, v in base.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("SLURM_PROCID", "1")
    monkeypatch.setattr(runner, "RANK_WAIT_S", 1.0)
    assert runner.run_stage(d) == 0 and not (d / "run").exists(), "no decision from rank 0: rank 1 runs nothing"
    monkeypatch.setenv("SLURM_PROCID", "0")
    assert runner.run_stage(d) == 0 and (d / "DONE").exists() and (d / "timing.jsonl").exists()
    (d / "DONE").unlink()
    (d / "timing.jsonl").unlink()
    monkeypatch.setenv("SLURM_PROCID", "1")  # rank 0 of this job decided "run": rank 1 runs, writes no DONE
    assert runner.run_stage(d) == 0 and not (d / "DONE").exists() and not (d / "timing.jsonl").exists()
    seen = {r: json.loads((d / "run" / f"env-{r}.json").read_text()) for r in ("0", "1")}
    assert seen["1"]["WORLD_SIZE"] == "2" and seen["1"]["MASTER_ADDR"] == "n1"
    assert seen["0"]["MASTER_PORT"] == seen["1"]["MASTER_PORT"] == str(runner.master_port("777"))


# ---------------------------------------------------------------- item 2: the container's python

def test_container_stage_runs_the_containers_python_in_its_workdir(monkeypatch, tmp_path: Path) -> None:
    res = {"train": {"gpus": 1, "time": "00:20:00", "container": "nvcr.io#nvidia/nemo:25.04",
                     "container_mounts": "/data:/data"}}
    # expand_plan: not checked (tiny_local is an HF checkpoint, which engine nemo refuses); only Slurm settings here
    plan, _ = expand_plan(load_study(write_study(tmp_path, engine="nemo", resources=res)), tmp_path / "out")
    python, params = executor_settings(plan.config, plan.study_dir, "train", plan.config.stage_resources("train"), None)
    line = submitit_script(monkeypatch, tmp_path, python, params).splitlines()
    srun = next(x for x in line if x.startswith("srun"))
    assert "--container-image=nvcr.io#nvidia/nemo:25.04" in srun and "--container-mounts=/data:/data" in srun
    assert f"--container-workdir={plan.study_dir}" in srun
    assert srun.split("--container-mounts=/data:/data ")[1].startswith("python -u -m submitit.core._submit")
    assert sys.executable not in srun, "the host interpreter does not exist inside the container"

    res["train"].update(container_python="/opt/venv/bin/python3", container_workdir="/workspace")
    plan, _ = expand_plan(load_study(write_study(tmp_path, engine="nemo", resources=res)), tmp_path / "out")
    python, params = executor_settings(plan.config, plan.study_dir, "train", plan.config.stage_resources("train"), None)
    srun = next(x for x in submitit_script(monkeypatch, tmp_path, python, params).splitlines() if x.startswith("srun"))
    assert "--container-workdir=/workspace" in srun and "/opt/venv/bin/python3 -u -m submitit" in srun
    # without a container submitit keeps the host's interpreter
    python, params = executor_settings(plan.config, plan.study_dir, "mix", plan.config.stage_resources("mix"), None)
    assert python is None and params["srun_args"] == ["--cpus-per-task=1"]


def test_multinode_stage_takes_whole_nodes_and_the_enroot_image_form(monkeypatch, tmp_path: Path) -> None:
    """Like render_sbatch: a multi-node stage asks for --exclusive and --mem=0, and a registry image in docker's
    form is rewritten to enroot 3.x's ``nvcr.io#...`` (else enroot looks it up on Docker Hub)."""
    res = {"train": {"gpus": 8, "nodes": 2, "time": "1-12:30", "container": "nvcr.io/nvidia/nemo:25.04"}}
    plan, _ = expand_plan(load_study(write_study(tmp_path, engine="nemo", resources=res,  # not checked, as above
                                                 train_overrides=["parallel.tensor=8", "parallel.gpus_per_node=8",
                                                                  "parallel.nodes=2"])), tmp_path / "out")
    python, params = executor_settings(plan.config, plan.study_dir, "train", plan.config.stage_resources("train"), None)
    text = submitit_script(monkeypatch, tmp_path, python, params)
    assert "#SBATCH --exclusive" in text and "#SBATCH --mem=0" in text and "#SBATCH --time=2190" in text
    srun = next(x for x in text.splitlines() if x.startswith("srun"))
    assert "--container-image=nvcr.io#nvidia/nemo:25.04" in srun
    python, params = executor_settings(plan.config, plan.study_dir, "mix", plan.config.stage_resources("mix"), None)
    text = submitit_script(monkeypatch, tmp_path, python, params)
    assert "--exclusive" not in text and "--mem=0" not in text


# ---------------------------------------------------------------- item 3: dependencies, arrays, throttle

def test_each_train_waits_for_its_own_mix_only(tmp_path: Path) -> None:
    plan = build_plan(load_study(write_study(tmp_path)), tmp_path / "out")  # 8 mixes, 2 trains per mix
    mixes = plan.by_kind("mix")
    job_of = {m.key: f"50_{i}" for i, m in enumerate(mixes)}
    groups = job_groups(plan.by_kind("train"), job_of, max_size=1000)
    assert [(len(g), dep) for g, dep in groups] == [(8, "aftercorr:50"), (8, "aftercorr:50")]
    for stages, _ in groups:  # task i of each train array reads mix task i
        assert [job_of[s.upstream[0]] for s in stages] == [f"50_{i}" for i in range(8)]
    del job_of[mixes[0].key]  # mix 0 finished: its trains need no dependency; the others stay per cell
    groups = job_groups(plan.by_kind("train"), job_of, max_size=1000)
    # the rest still go out as 2 arrays (not 14 jobs), task ids 1-7 lined up with mix tasks 1-7
    assert [(len(g), dep) for g, dep in groups] == [(2, None), (7, "aftercorr:50"), (7, "aftercorr:50")]
    for stages, dep in groups[1:]:
        assert submit.group_task_ids(stages, dep, job_of) == list(range(1, 8))
        assert [job_of[s.upstream[0]] for s in stages] == [f"50_{i}" for i in range(1, 8)]
    # a one-task "array" is submitted as a plain job: it names its parent task instead of aftercorr
    groups = job_groups(plan.by_kind("train")[:1], {mixes[0].key: "50_0"}, max_size=1000)
    assert groups == [(plan.by_kind("train")[:1], "afterok:50_0")]


def test_arrays_split_under_max_array_size_and_stay_aligned(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(submit, "max_array_size", lambda: 3)
    plan = build_plan(load_study(write_study(tmp_path)), tmp_path / "out")
    sub = submit_plan(plan, dry_run=True)
    sizes = {k: [len(j["stages"]) for j in sub.jobs if j["kind"] == k] for k in ("mix", "train")}
    assert sizes["mix"] == [3, 3, 2] and sorted(sizes["train"]) == [2, 2, 3, 3, 3, 3]
    assert all(len(j["stages"]) <= 3 for j in sub.jobs) and sub.submitted == 56
    assert all(j["dependency"].startswith("aftercorr:") for j in sub.jobs if j["kind"] != "mix")


def test_max_array_size_read_once_from_scontrol(monkeypatch, tmp_path: Path) -> None:
    bin_dir = fake_bin(tmp_path, "scontrol", 'echo "MaxArraySize            = 5"')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    submit.max_array_size.cache_clear()
    try:
        assert submit.max_array_size() == 5 and submit.max_array_size() == 5
        assert len(calls(tmp_path, "scontrol")) == 1
    finally:
        submit.max_array_size.cache_clear()


def test_throttle_per_stage_kind(monkeypatch, tmp_path: Path) -> None:
    res = {"train": {"gpus": 1, "time": "00:20:00", "array_parallelism": 2}}
    plan = build_plan(load_study(write_study(tmp_path, resources=res)), tmp_path / "out")
    python, params = executor_settings(plan.config, plan.study_dir, "train", plan.config.stage_resources("train"), "aftercorr:9")
    script = submitit_script(monkeypatch, tmp_path, python, params, map_count=8)
    assert "#SBATCH --array=0-7%2" in script and "#SBATCH --dependency=aftercorr:9" in script
    python, params = executor_settings(plan.config, plan.study_dir, "mix", plan.config.stage_resources("mix"), None)
    assert "#SBATCH --array=0-7%8" in submitit_script(monkeypatch, tmp_path, python, params, map_count=8)


# ---------------------------------------------------------------- item 3: one Slurm query per poll

def _submitted_study(tmp_path: Path):
    plan = build_plan(load_study(write_study(tmp_path)), tmp_path / "out")
    plan.study_dir.mkdir(parents=True)
    from clinie_nemo.study.plan import plan_json

    (plan.study_dir / "plan.json").write_text(json.dumps(plan_json(plan)))
    for i, key in enumerate(plan.stages):
        d = plan.stage_dir(key)
        d.mkdir(parents=True)
        (d / "job.json").write_text(json.dumps({"jobs": [{"job_id": f"{100 + i // 8}_{i % 8}"}]}))
    return plan


def test_status_asks_slurm_once_per_poll(monkeypatch, tmp_path: Path) -> None:
    plan = _submitted_study(tmp_path)
    answer = "\\n".join([*(f"100_{i}|COMPLETED" for i in range(8)), "101_0|RUNNING", "101_1|PENDING"])
    bin_dir = fake_bin(tmp_path, "squeue", f'printf "{answer}\\n"')
    fake_bin(tmp_path, "scontrol", "exit 1")
    fake_bin(tmp_path, "sacct", "exit 1")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    from clinie_nemo.study.status import status_table

    table, counts = status_table(plan.study_dir)
    assert len(calls(tmp_path, "squeue")) == 1 and calls(tmp_path, "scontrol") == []
    assert len(calls(tmp_path, "sacct")) == 1, "one accounting call for the jobs squeue no longer knows"
    assert counts["running"] == 1 and counts["queued"] == 1 and counts["failed"] == 8
    assert counts["lost"] == len(plan.stages) - 10 and "101_0" in table


def test_a_failed_slurm_query_submits_nothing(monkeypatch, tmp_path: Path) -> None:
    plan = _submitted_study(tmp_path)
    bin_dir = fake_bin(tmp_path, "squeue", "echo 'slurm_load_jobs error: Socket timed out' >&2; exit 1")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    def no_executor(folder):
        raise AssertionError("submitted although the jobs' states were unknown")

    with pytest.raises(SlurmQueryError, match="Socket timed out"):
        submit_plan(plan, executor_factory=no_executor)
    # the CLI: a clear error, exit 2, no traceback
    env_path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    proc = cli("status", plan.study_dir, env={"PATH": env_path})
    assert proc.returncode == 2 and "squeue failed" in proc.stderr and "Traceback" not in proc.stderr


# ---------------------------------------------------------------- item 3: a lock per stage

TRAINER = ("import pathlib, sys, time; run = pathlib.Path('run'); run.mkdir(exist_ok=True); "
           "f = run / 'starts.txt'; f.write_text((f.read_text() if f.exists() else '') + 'x'); "
           "time.sleep(float(sys.argv[1]))")


def _run_stage_proc(d: Path, job_id: str, sleep: float, restart: str = "0") -> subprocess.Popen:
    env = {**os.environ, "SLURM_JOB_ID": job_id, "SLURM_RESTART_COUNT": restart, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.Popen([sys.executable, "-m", "clinie_nemo", "run-stage", str(d)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_second_job_for_the_same_stage_runs_nothing(tmp_path: Path) -> None:
    d = make_stage(tmp_path, TRAINER)
    spec = json.loads((d / "stage.json").read_text())
    spec["argv"].append("3")
    (d / "stage.json").write_text(json.dumps(spec))
    first = _run_stage_proc(d, "1001", 3)
    deadline = time.monotonic() + 30
    while not (d / "run" / "starts.txt").exists():
        assert time.monotonic() < deadline, first.communicate()
        time.sleep(0.1)
    assert lock.lock_owner(d) == "1001" and stage_state(d, {})[0] == "running"
    second = _run_stage_proc(d, "1002", 0)  # e.g. resubmitted after a lost sbatch answer
    out2 = second.communicate(timeout=60)
    assert second.returncode == runner.DUPLICATE_EXIT_CODE, out2
    assert "already running in job 1001" in out2[1]
    first.communicate(timeout=60)
    assert first.returncode == 0 and (d / "DONE").exists()
    assert (d / "run" / "starts.txt").read_text() == "x", "exactly one trainer started"
    assert not (d / lock.LOCK_NAME).exists(), "released after the run"


def test_stale_or_own_lock_is_taken_over(tmp_path: Path) -> None:
    d = tmp_path / "s"
    d.mkdir()
    assert lock.acquire(d, "1") is None
    assert lock.acquire(d, "2") == "1"
    assert lock.acquire(d, "1") is None, "the same job after a requeue"
    old = time.time() - lock.STALE_S - 10
    os.utime(d / lock.LOCK_NAME, (old, old))  # the owner stopped heart-beating (killed)
    assert lock.lock_owner(d) is None
    assert lock.acquire(d, "2") is None and lock.lock_owner(d) == "2"
    lock.release(d, "1")
    assert lock.lock_owner(d) == "2", "only the owner releases"


# ---------------------------------------------------------------- item 3: requeue cap

def _requeues(tmp: Path) -> list[str]:
    return [c for c in calls(tmp, "scontrol") if c.startswith("scontrol requeue")]


def test_requeues_stop_at_max_requeues(monkeypatch, tmp_path: Path, capsys) -> None:
    """The cap counts the stage's OWN requeues (.clinie-requeues-JOBID in the stage folder)."""
    d = make_stage(tmp_path, "import sys; sys.exit(124)", max_requeues=2)
    bin_dir = fake_bin(tmp_path, "scontrol", "exit 0")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "31")
    for restart in ("0", "1"):
        monkeypatch.setenv("SLURM_RESTART_COUNT", restart)
        assert runner.run_stage(d, requeue_self=True) == PREEMPTED_EXIT_CODE
    assert _requeues(tmp_path) == ["scontrol requeue 31"] * 2
    assert (d / ".clinie-requeues-31").read_text().strip() == "2"
    monkeypatch.setenv("SLURM_RESTART_COUNT", "2")
    assert runner.run_stage(d, requeue_self=True) == runner.REQUEUE_CAP_EXIT_CODE
    assert len(_requeues(tmp_path)) == 2, "no requeue beyond max_requeues"
    assert "max_requeues 2 reached, not requeueing" in capsys.readouterr().err
    (d / ".clinie-requeues-31").write_text("3\n")  # requeued from outside beyond the cap: do not even start
    segments = (d / "timing.jsonl").read_text().splitlines()
    assert runner.run_stage(d, requeue_self=True) == runner.REQUEUE_CAP_EXIT_CODE
    assert (d / "timing.jsonl").read_text().splitlines() == segments
    with pytest.raises(RuntimeError, match="more than max_requeues"):
        runner.StageJob(str(d))()


def test_preemptions_slurm_requeued_do_not_use_up_max_requeues(monkeypatch, tmp_path: Path) -> None:
    """SLURM_RESTART_COUNT=7 from 7 preemptions Slurm requeued itself (PreemptMode=REQUEUE): before, a stage
    with max_requeues=2 refused to run at all (7 > 2); only its own requeues count."""
    d = make_stage(tmp_path, "import sys; sys.exit(124)", max_requeues=2)
    bin_dir = fake_bin(tmp_path, "scontrol", "exit 0")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "32")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "7")
    assert runner.run_stage(d, requeue_self=True) == PREEMPTED_EXIT_CODE
    assert _requeues(tmp_path) == ["scontrol requeue 32"]


def test_no_second_requeue_of_a_job_slurm_requeued(monkeypatch, tmp_path: Path, capsys) -> None:
    """PreemptMode=REQUEUE: while the stage handles the SIGTERM, `scontrol show job` already shows Restarts+1
    (seen on Slurm 22.05); our `scontrol requeue` would fail with "Job is pending execution"."""
    d = make_stage(tmp_path, "import sys; sys.exit(124)", max_requeues=2)
    bin_dir = fake_bin(tmp_path, "scontrol", 'if [ "$1" = show ]; then echo "JobId=33 JobState=COMPLETING Restarts=1"; '
                       'else echo "Job is pending execution" >&2; exit 1; fi')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "33")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0")
    assert runner.run_stage(d, requeue_self=True) == PREEMPTED_EXIT_CODE
    assert _requeues(tmp_path) == [] and not (d / ".clinie-requeues-33").exists()
    assert "Slurm requeued job 33 itself" in capsys.readouterr().err


# ---------------------------------------------------------------- issue 15: what submitit really submits

def fake_slurm(monkeypatch, tmp: Path, squeue: str = "exit 0") -> None:
    """sbatch that keeps a copy of every script it is given (got/<job id>.sh) and answers like sbatch;
    srun for submitit's "are we on a cluster" check; the rest answering nothing."""
    counter, got = tmp / "job_counter", tmp / "got"
    body = (f'n=$(cat {counter} 2>/dev/null || echo 100); n=$((n + 1)); echo $n > {counter}; '
            f'mkdir -p {got}; cp "$1" {got}/$n.sh; echo "Submitted batch job $n"')
    bin_dir = fake_bin(tmp, "sbatch", body)
    fake_bin(tmp, "srun", "exit 0")
    fake_bin(tmp, "scontrol", "exit 1")
    fake_bin(tmp, "squeue", squeue)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    submit.max_array_size.cache_clear()


def submitted_scripts(tmp: Path, sub) -> dict[str, str]:
    """kind -> the script sbatch got for the kind's first job (fake_slurm's copies)."""
    return {j["kind"]: (tmp / "got" / f"{j['job_ids'][0].split('_')[0]}.sh").read_text() for j in sub.jobs}


def test_submitted_scripts_requeue_and_send_no_wckey(monkeypatch, tmp_path: Path) -> None:
    """The scripts submitit really gave sbatch, default resources: --requeue always (JobRequeue=0 clusters),
    no --wckey=submitit, and --cpus-per-task on submitit's srun (srun does not read SLURM_CPUS_PER_TASK)."""
    fake_slurm(monkeypatch, tmp_path)
    plan = build_plan(load_study(write_study(tmp_path, held_out=["a"], fractions=[0.0], seeds=[1],
                                             methods=["lora"])), tmp_path / "out")
    scripts = submitted_scripts(tmp_path, submit_plan(plan))
    assert list(scripts) == ["mix", "train", "generate", "evaluate"]
    for kind, text in scripts.items():
        assert "#SBATCH --requeue" in text.splitlines(), kind
        assert "wckey" not in text, kind
        srun = next(x for x in text.splitlines() if x.startswith("srun"))
        cpus = plan.config.stage_resources(kind).cpus
        assert f" --cpus-per-task={cpus} " in srun and srun.index("--cpus-per-task") < srun.index("-m submitit"), kind


def test_submitted_scripts_carry_qos_constraint_reservation_exclusive_wckey(monkeypatch, tmp_path: Path) -> None:
    fake_slurm(monkeypatch, tmp_path)
    res = {"train": {"gpus": 1, "cpus": 3, "time": "00:20:00", "qos": "high", "constraint": "a100|h100",
                     "reservation": "maint", "exclusive": "user", "wckey": "proj1"},
           "generate": {"gpus": 1, "cpus": 2, "time": "00:20:00", "exclusive": True}}
    plan = build_plan(load_study(write_study(tmp_path, held_out=["a"], fractions=[0.0], seeds=[1],
                                             methods=["lora"], resources=res)), tmp_path / "out")
    scripts = submitted_scripts(tmp_path, submit_plan(plan))
    train = scripts["train"].splitlines()
    for line in ("#SBATCH --qos=high", "#SBATCH --constraint='a100|h100'", "#SBATCH --reservation=maint",
                 "#SBATCH --exclusive=user", "#SBATCH --wckey=proj1", "#SBATCH --cpus-per-task=3"):
        assert line in train, line
    assert "#SBATCH --exclusive" in scripts["generate"].splitlines()
    for kind in ("mix", "generate", "evaluate"):
        assert "--wckey" not in scripts[kind] and "--qos" not in scripts[kind] and "--reservation" not in scripts[kind]
    assert "--exclusive" not in scripts["mix"]


def test_audit_copy_is_the_script_sbatch_got(monkeypatch, tmp_path: Path) -> None:
    fake_slurm(monkeypatch, tmp_path)
    plan = build_plan(load_study(write_study(tmp_path)), tmp_path / "out")
    sub = submit_plan(plan)
    assert len(calls(tmp_path, "sbatch")) == len(sub.jobs) == 7
    for key, stage in plan.stages.items():
        [job] = json.loads((plan.stage_dir(key) / "job.json").read_text())["jobs"]
        submitted = (tmp_path / "got" / f"{job['job_id'].split('_')[0]}.sh").read_bytes()
        audit = (plan.study_dir / "sbatch" / f"{stage.dirname}.sbatch").read_bytes()
        assert audit == submitted, stage.dirname
        assert b"submitit.core._submit" in audit


# ---------------------------------------------------------------- issue 15: resubmit with a partial upstream

def test_resubmit_under_a_partly_finished_array_sends_arrays_not_one_job_per_stage(monkeypatch,
                                                                                   tmp_path: Path) -> None:
    """Mix array 50: task 0 finished, tasks 1-7 still running, nothing downstream queued (the previous submit
    stopped after the mix array). Trains go out as 3 arrays (mix 0's 2 trains free; 2 x tasks 1-7
    aftercorr:50), generate and evaluate alike: 9 sbatch calls, where one job per stage took 45."""
    answer = "\\n".join(f"50_{i}|RUNNING" for i in range(1, 8))
    fake_slurm(monkeypatch, tmp_path, squeue=f'printf "{answer}\\n"')
    plan = build_plan(load_study(write_study(tmp_path)), tmp_path / "out")
    for i, stage in enumerate(plan.by_kind("mix")):
        d = plan.stage_dir(stage.key)
        d.mkdir(parents=True)
        (d / "job.json").write_text(json.dumps({"jobs": [{"job_id": f"50_{i}"}]}))
        if i == 0:
            (d / "DONE").write_text("{}")
    sub = submit_plan(plan)
    assert len(calls(tmp_path, "sbatch")) == len(sub.jobs) == 9, [(j["kind"], j["dependency"]) for j in sub.jobs]
    assert sub.submitted == 16 * 3
    trains = [j for j in sub.jobs if j["kind"] == "train"]
    assert [(len(j["stages"]), j["dependency"], j["task_ids"]) for j in trains] == [
        (2, None, None), (7, "aftercorr:50", list(range(1, 8))), (7, "aftercorr:50", list(range(1, 8)))]
    mix_task = {s.key: i for i, s in enumerate(plan.by_kind("mix"))}
    for job in trains[1:]:
        array = job["job_ids"][0].split("_")[0]
        script = (tmp_path / "got" / f"{array}.sh").read_text().splitlines()
        assert "#SBATCH --array=1-7%7" in script and "#SBATCH --dependency=aftercorr:50" in script
        for key, job_id in zip(job["stages"], job["job_ids"]):
            task = mix_task[plan.stages[key].upstream[0]]
            assert job_id == f"{array}_{task}", "task i of the train array is the child of mix task i"
            # the pickle the Slurm task with this id loads (submitit's own paths) runs this very stage
            pickle = submitit.core.utils.JobPaths(plan.study_dir / "submitit" / "%j", job_id=job_id).submitted_pickle
            delayed = submitit.core.utils.DelayedSubmission.load(pickle)
            assert delayed.function.stage_dir == str(plan.stage_dir(key))
    gens = [j for j in sub.jobs if j["kind"] == "generate"]
    assert [j["task_ids"] for j in gens] == [[0, 1], list(range(1, 8)), list(range(1, 8))]


def test_index_spec() -> None:
    assert index_spec([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert index_spec([3]) == "3" and index_spec([]) == ""


# ---------------------------------------------------------------- issue 15: the study lock, clock skew

def test_a_submit_holding_the_study_lock_keeps_a_second_one_out(monkeypatch, tmp_path: Path) -> None:
    fake_slurm(monkeypatch, tmp_path)
    plan = build_plan(load_study(write_study(tmp_path)), tmp_path / "out")
    plan.study_dir.mkdir(parents=True)
    held = plan.study_dir / "SUBMIT.lock"  # another submit, heart-beating
    held.write_text(json.dumps({"job_id": "submit pid 1 on other-host"}))
    with pytest.raises(ClinieError, match="submit pid 1 on other-host"):
        submit_plan(plan)
    assert calls(tmp_path, "sbatch") == [] and not (plan.study_dir / "plan.json").exists()
    held.unlink()
    assert submit_plan(plan).submitted == 56
    assert not held.exists(), "released after the submit"


@pytest.fixture
def skewed_clock(monkeypatch):
    """The local clock off by ``skew`` seconds from the file system's (an NFS client vs its server)."""
    real = time.time
    offsets = getattr(lock, "_CLOCK_OFFSETS", {})  # the measured file system clock offsets, forgotten
    offsets.clear()

    def skew(seconds: float) -> None:
        monkeypatch.setattr(time, "time", lambda: real() + seconds)
        offsets.clear()

    yield skew, real
    offsets.clear()


def test_a_live_lock_is_live_when_the_local_clock_runs_ahead(skewed_clock, tmp_path: Path) -> None:
    skew, _real = skewed_clock
    assert lock.acquire(tmp_path, "1") is None  # just created: its owner is alive
    skew(+3600)  # the lock's mtime is an hour in the local clock's past
    assert lock.lock_owner(tmp_path) == "1", "a live lock read as stale: a second trainer would start"
    assert lock.acquire(tmp_path, "2") == "1"


def test_a_dead_lock_is_stale_when_the_local_clock_runs_behind(skewed_clock, tmp_path: Path) -> None:
    skew, real = skewed_clock
    assert lock.acquire(tmp_path, "1") is None
    old = real() - lock.STALE_S - 20  # its owner stopped heart-beating 200 s ago (file system clock)
    os.utime(tmp_path / lock.LOCK_NAME, (old, old))
    skew(-3600)  # the lock's mtime is in the local clock's future
    assert lock.lock_owner(tmp_path) is None, "a dead lock read as live: the stage would never run again"
    assert lock.acquire(tmp_path, "2") is None and lock.lock_owner(tmp_path) == "2"
    assert not list(tmp_path.glob(".clock-*")), "the clock probe is removed"


def test_a_running_array_task_is_known_by_its_array_id(monkeypatch, tmp_path: Path) -> None:
    """A stage running under array task 50_3 (its lock, written by the runner in that task) reads as running
    in job "50_3", not in its unique SLURM_JOB_ID: its children line up with it (aftercorr), not afterok."""
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "50")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    d = tmp_path / "stage"
    d.mkdir()
    assert lock.acquire(d, "53") is None
    assert stage_state(d, {}) == ("running", "50_3") and lock.lock_owner(d) == "53"
