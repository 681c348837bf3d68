"""Multi-node training simulated on one machine: the local engine's torch.distributed data parallelism.

- Without Slurm: two `clinie-nemo train --engine local` processes with torchrun's env (RANK, WORLD_SIZE,
  MASTER_ADDR, MASTER_PORT) join one gloo group, write one rank file each, and end with the losses of the
  one-process run (the global batch is split, the gradients summed).
- On the REAL local Slurm cluster (tools/local_slurm.sh: 2 nodes, one slurmd each, on this machine):
  slurm/peft_lora.sh with `sbatch --nodes=2 --ntasks-per-node=2` starts 4 ranks over both nodes; each rank
  reports its rank, world size, node and the result of an all_reduce; the job is preempted with SIGTERM
  (to the batch shell and every task, as Slurm's preemption does), checkpoints, requeues itself, resumes
  and ends at the same step count and losses as an uninterrupted run.
- A study whose train stage asks for 2 nodes runs on both nodes with one launcher per stage.
Nothing is mocked: real Slurm daemons, real srun tasks, real torch.distributed (gloo, CPU)."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.cli_plugin import REPO, cli, cli_subprocess
from tests.local_engine_fixtures import synthetic_records, write_records
from tests.local_extra import require_local
from tests.slurm_fixtures import cluster_nodes, job_fields, sbatch, slurm_cluster, wait_job  # noqa: F401

STEPS = 10
TRAIN = ["seq_length=96", "batch.global_batch_size=8", "batch.micro_batch_size=2", "lora.dim=8", "lora.alpha=16",
         "lora.dropout=0.0", "optim.lr=0.005", "optim.warmup_steps=2", "data.validation_interval=0",
         "precision=32", f"max_steps={STEPS}", "checkpoint.save_interval=100", "seed=7"]


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, f"{proc.args}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """Records, a tiny HF model built offline and its model YAML; the one-process reference run."""
    require_local()
    from clinie_nemo.engines.local.runtime import quiet_transformers
    from clinie_nemo.engines.local.tiny_model import TinyModelConfig, build_tiny_model

    root = tmp_path_factory.mktemp("multinode")
    records = write_records(root / "records", synthetic_records(48, seed=1), synthetic_records(8, seed=2))
    quiet_transformers()
    build_tiny_model(records, root / "tiny", TinyModelConfig(vocab_size=320, hidden_size=64, num_layers=2,
                                                             num_heads=4, num_kv_heads=2, seed=0))
    model = yaml.safe_load((REPO / "nemo_configs/models/tiny_local.yaml").read_text())
    hf = json.loads((root / "tiny" / "config.json").read_text())
    model.update(checkpoint=str(root / "tiny"), vocab_size=hf["vocab_size"])
    (root / "tiny.yaml").write_text(yaml.safe_dump(model))
    (root / "logs").mkdir()
    reference = root / "reference"
    ok(cli("train", "--engine", "local", "--model", root / "tiny.yaml", "--recipe", "peft_lora", "--data", records,
           "--output", reference, *TRAIN, env={"OMP_NUM_THREADS": "1"}))
    return {"root": root, "records": records, "model": root / "tiny.yaml", "logs": root / "logs",
            "reference": reference}


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def rank_files(run: Path) -> list[dict]:
    return sorted((json.loads(p.read_text()) for p in (run / "logs").glob("rank-*.json")),
                  key=lambda r: r["rank"])


def assert_same_training(run: Path, reference: Path) -> None:
    """Same step count and (up to float summation order) the same losses as the one-process run."""
    got, want = metrics(run), metrics(reference)
    assert [m["step"] for m in got] == list(range(1, STEPS + 1)), [m["step"] for m in got]
    assert len(want) == STEPS
    for g, w in zip(got, want):
        assert g["loss"] == pytest.approx(w["loss"], rel=1e-3, abs=1e-4), (g, w)
    assert json.loads((run / "DONE").read_text())["steps"] == STEPS
    assert (run / "adapter" / "adapter_model.safetensors").is_file()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_without_slurm_match_one_process(world) -> None:
    """torchrun-style env: two processes, one gloo group, the one-process losses (fails when the engine
    ignores WORLD_SIZE: no rank files, and each process trains the whole batch and writes alone)."""
    run = world["root"] / "two_ranks"
    port = str(free_port())
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "WORLD_SIZE": "2",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
    for var in [v for v in env if v.startswith("SLURM_")]:
        env.pop(var)
    cmd = [sys.executable, "-m", "clinie_nemo", "train", "--engine", "local", "--model", str(world["model"]),
           "--recipe", "peft_lora", "--data", str(world["records"]), "--output", str(run), *TRAIN]
    procs = [subprocess.Popen(cmd, env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for r in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    ranks = rank_files(run)
    assert [(r["rank"], r["world_size"], r["all_reduce_sum"], r["backend"]) for r in ranks] == \
        [(0, 2, 3, "gloo"), (1, 2, 3, "gloo")], ranks
    assert_same_training(run, world["reference"])


# ---- on the real local Slurm cluster -------------------------------------------------------------------

@pytest.fixture(scope="module")
def two_nodes(slurm_cluster) -> list[str]:  # noqa: F811
    nodes = cluster_nodes()
    assert len(nodes) >= 2, (f"the local Slurm cluster ({os.environ.get('SLURM_CONF')}) has {nodes}: this test "
                             "needs 2 nodes; restart it with `tools/local_slurm.sh stop; tools/local_slurm.sh start`")
    return nodes


def submit_training(world, run: Path, name: str) -> str:
    env = {"ENGINE": "local", "DATA": str(world["records"]), "MODEL": str(world["model"]), "OUTPUT": str(run),
           "OVERRIDES": " ".join(TRAIN)}
    return sbatch("--nodes=2", "--ntasks-per-node=2", "--cpus-per-task=1", "--gpus-per-node=1",
                  f"--output={world['logs']}/{name}-%j.out", str(REPO / "slurm/peft_lora.sh"), env=env)


@pytest.mark.slurm
def test_two_nodes_four_ranks_preempted_with_sigterm_requeue_and_resume(world, two_nodes) -> None:
    run = world["root"] / "slurm_2x2"
    job = submit_training(world, run, "train2x2")
    deadline = time.monotonic() + 300
    while len(list((run / "logs").glob("rank-*.json"))) < 4:  # all ranks joined: their stop handlers are set
        fields = job_fields(job)
        assert time.monotonic() < deadline, f"the ranks did not start: {fields.get('JobState')}"
        assert fields.get("JobState") in ("PENDING", "CONFIGURING", "RUNNING"), fields
        time.sleep(0.5)
    time.sleep(1.0)  # (atomic writes: the files are complete; give the ranks a moment to reach training)
    before = {r["rank"]: r["pid"] for r in rank_files(run)}
    # Slurm's preemption signal: SIGTERM to the batch shell and to every task of every step
    ok(subprocess.run(["scancel", "--signal=TERM", "--full", job], capture_output=True, text=True, timeout=30))
    fields = wait_job(job, timeout=480)
    log = next(world["logs"].glob(f"train2x2-{job}.out")).read_text()
    assert fields["JobState"] == "COMPLETED" and int(fields["Restarts"]) == 1, log[-4000:]
    assert "requeueing job" in log and "resuming from step-" in log, log[-4000:]
    assert fields["NumNodes"] == "2" and fields["NumTasks"] == "4", fields

    ranks = rank_files(run)  # written by the requeued run: new processes
    assert [r["rank"] for r in ranks] == [0, 1, 2, 3], ranks
    assert all(r["world_size"] == 4 and r["all_reduce_sum"] == 1 + 2 + 3 + 4 and r["backend"] == "gloo"
               for r in ranks), ranks
    assert {r["node"] for r in ranks} == set(two_nodes[:2]), ranks  # both slurmd nodes, 2 ranks each
    assert sorted((r["slurm_node_id"], r["local_rank"]) for r in ranks) == [("0", 0), ("0", 1), ("1", 0), ("1", 1)]
    assert all(before.get(r["rank"]) != r["pid"] for r in ranks), (before, ranks)
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert len(checkpoints) == 1 and 1 <= int(checkpoints[0].split("-")[1]) < STEPS, checkpoints
    assert_same_training(run, world["reference"])


STUDY_RESOURCES = {"train": {"nodes": 2, "gpus": 1, "cpus": 1, "time": "00:15:00"},
                   "generate": {"cpus": 1, "time": "00:10:00"}, "mix": {"cpus": 1, "time": "00:10:00"},
                   "evaluate": {"cpus": 1, "time": "00:10:00"}}


@pytest.mark.slurm
def test_study_stage_on_two_nodes(world, two_nodes, tmp_path) -> None:
    """A study whose train stage asks for 2 nodes: one launcher for the stage (no nested srun hanging on
    resources the stage's own tasks hold), MASTER_ADDR set, the stage finishes on both nodes."""
    root = tmp_path
    rng = random.Random(0)
    docs = {}
    for i, name in enumerate(("radgraph", "i2b2_2010")):
        ok(cli_subprocess("synth", "--dataset", name, "--docs", "8", "--seed", str(rng.randint(0, 99) + i), "--output",
               root / "release" / name))
        ok(cli_subprocess("convert", "--dataset", name, "--input", root / "release" / name, "--output", root / "docs" / name))
        docs[name] = root / "docs" / name
    study = {"name": "twonode", "engine": "local",
             "datasets": [{"name": n, "train": str(d / "train.jsonl"), "test": str(d / "test.jsonl")}
                          for n, d in docs.items()],
             "held_out": ["radgraph"], "fractions": [0.0], "seeds": [3], "models": {"tiny": str(world["model"])},
             "methods": ["lora"],
             "train_overrides": [t for t in TRAIN if not t.startswith(("max_steps", "checkpoint."))]
             + ["max_steps=4", "checkpoint.save_interval=4"],
             "mixture": {"tasks": ["ce"], "format": "json", "max_tokens": 512, "validation_fraction": 0.2},
             "resources": STUDY_RESOURCES}
    (root / "study.yaml").write_text(yaml.safe_dump(study))
    out = root / "study"
    ok(cli_subprocess("study", root / "study.yaml", "--output", out, "--submit"))
    status = cli_subprocess("status", out, "--wait", "--interval", "2", "--timeout", "300")
    logs = "\n".join(p.read_text(errors="replace")[-2000:] for p in sorted(out.rglob("*.out")))
    assert status.returncode == 0 and "stages: 4 done" in status.stdout, f"{status.stdout}\n{logs}"
    runs = [p.parent for p in out.rglob("DONE") if (p.parent / "metrics.jsonl").is_file()]
    assert len(runs) == 1, runs
    ranks = rank_files(runs[0])
    assert {r["node"] for r in ranks} == set(two_nodes[:2]) and all(r["world_size"] == len(ranks) for r in ranks)


def test_rank_layout_from_torchrun_and_slurm_env() -> None:
    """The rank layout: torch's env:// variables first; Slurm's task ids only inside an srun step (a batch
    script with --ntasks=4 is one process and must not wait for 3 peers); the port follows the job id."""
    from clinie_nemo.core.errors import ConfigError
    from clinie_nemo.engines.local.distributed import PORT_BASE, Layout, from_env

    assert from_env({}) == Layout() and not from_env({}).distributed
    assert from_env({"SLURM_NTASKS": "4", "SLURM_PROCID": "0", "SLURM_JOB_ID": "7"}) == Layout()  # batch script
    torchrun = from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "n1",
                         "MASTER_PORT": "29400"})
    assert torchrun == Layout(rank=3, world_size=4, local_rank=1, master_addr="n1", master_port=29400)
    step = from_env({"SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "4", "SLURM_NTASKS": "8", "SLURM_PROCID": "2",
                     "SLURM_LOCALID": "0", "SLURM_JOB_ID": "40123", "MASTER_ADDR": "gpu01"})
    assert (step.rank, step.world_size, step.local_rank, step.master_addr) == (2, 4, 0, "gpu01")
    assert step.master_port == PORT_BASE + 40123 % 15000 < 32768 and not step.is_main
    assert from_env({"SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "1", "SLURM_PROCID": "0"}) == Layout()
    for bad in ({"WORLD_SIZE": "2"}, {"WORLD_SIZE": "2", "RANK": "2", "MASTER_PORT": "1"},
                {"WORLD_SIZE": "2", "RANK": "1"}, {"WORLD_SIZE": "two"}):
        with pytest.raises(ConfigError):
            from_env(bad)
