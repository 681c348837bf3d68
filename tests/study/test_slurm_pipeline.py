"""The sbatch scripts and `clinie-nemo study` end to end on the REAL local Slurm cluster, with the local
engine, a tiny model built offline and synthetic corpora: train -> generate -> evaluate through
slurm/*.sh with afterok dependencies; a training job preempted with SIGUSR1 that requeues itself, resumes
from its checkpoint and ends at the same step count; a 2 held-out x 2 fractions mini study submitted,
finished, reported, and resubmitted without submitting anything; and the srun step of the bridge/nemo
scripts fitting the allocation (one task per GPU, the job's CPUs split among them) when GPUs are asked for
on the sbatch command line."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.cli_plugin import REPO
from tests.cli_plugin import cli_subprocess as cli  # Slurm tests: see cli_subprocess
from tests.local_extra import require_local
from tests.slurm_fixtures import job_fields, sbatch, slurm_cluster, wait_job  # noqa: F401

pytestmark = pytest.mark.slurm

DATASETS = ("radgraph", "i2b2_2010")
FAST = ["seq_length=512", "batch.global_batch_size=4", "batch.micro_batch_size=4", "lora.dim=8", "lora.alpha=16",
        "lora.dropout=0.0", "optim.lr=0.005", "data.validation_interval=0", "precision=32",
        "optim.warmup_steps=0"]  # peft_lora's study warmup (50) must stay below these runs' max_steps


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, f"{proc.args}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc


@pytest.fixture(scope="module")
def world(tmp_path_factory, slurm_cluster) -> dict[str, Path]:  # noqa: F811
    """Synthetic corpora (native format -> documents JSONL), one mix, a tiny model and its model YAML."""
    require_local()
    root = tmp_path_factory.mktemp("slurm_world")
    for i, name in enumerate(DATASETS):
        ok(cli("synth", "--dataset", name, "--docs", "8", "--seed", str(i), "--output", root / "release" / name))
        ok(cli("convert", "--dataset", name, "--input", root / "release" / name, "--output", root / "docs" / name))
    mixture = {"name": "slurm-test", "seed": 3, "tasks": ["ce"], "format": "json", "max_tokens": 512,
               "validation_fraction": 0.2, "held_out": "radgraph", "held_out_fraction": 0.5,
               "datasets": [{"name": n, "train": str(root / "docs" / n / "train.jsonl"),
                             "test": str(root / "docs" / n / "test.jsonl")} for n in DATASETS]}
    (root / "mixture.yaml").write_text(yaml.safe_dump(mixture))
    ok(cli("mix", root / "mixture.yaml", "--output", root / "mix", "--quiet"))
    ok(cli("tiny-model", "--corpus", root / "mix", "--output", root / "tiny", "--vocab-size", "512",
           "--hidden", "64", "--layers", "2", "--heads", "4", "--kv-heads", "2"))
    model = yaml.safe_load((REPO / "nemo_configs/models/tiny_local.yaml").read_text())
    hf = json.loads((root / "tiny" / "config.json").read_text())
    model.update(checkpoint=str(root / "tiny"), vocab_size=hf["vocab_size"])
    (root / "tiny.yaml").write_text(yaml.safe_dump(model))
    (root / "logs").mkdir()
    return {"root": root, "mix": root / "mix", "model": root / "tiny.yaml", "docs": root / "docs",
            "logs": root / "logs"}


def metrics_steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def test_sbatch_train_then_generate_then_evaluate(world) -> None:
    root, logs = world["root"], world["logs"]
    run, pred, scores = root / "run", root / "pred.jsonl", root / "scores.json"
    common = {"ENGINE": "local", "DATA": str(world["mix"])}
    train = sbatch("--cpus-per-task=2", f"--output={logs}/train-%j.out", str(REPO / "slurm/peft_lora.sh"),
                   env={**common, "MODEL": str(world["model"]), "OUTPUT": str(run),
                        "OVERRIDES": " ".join([*FAST, "max_steps=4", "checkpoint.save_interval=2"])})
    gen = sbatch(f"--dependency=afterok:{train}", "--cpus-per-task=2", f"--output={logs}/gen-%j.out",
                 str(REPO / "slurm/generate.sh"), env={**common, "RUN": str(run), "OUTPUT": str(pred)})
    ev = sbatch(f"--dependency=afterok:{gen}", f"--output={logs}/eval-%j.out", str(REPO / "slurm/evaluate.sh"),
                env={**common, "PREDICTIONS": str(pred), "OUTPUT": str(scores),
                     "CORPUS": str(world["docs"] / "radgraph" / "test.jsonl"),
                     "TAGS": "model=tiny method=lora fold=radgraph fraction=0.5 seed=3"})
    for job in (train, gen, ev):
        fields = wait_job(job, timeout=240)
        log = next(logs.glob(f"*-{job}.out")).read_text()
        assert fields["JobState"] == "COMPLETED", log[-3000:]
        assert "versions python" in log and f"nodes {socket.gethostname().split('.')[0]}" in log
    assert (run / "DONE").exists() and (run / "adapter").is_dir() and metrics_steps(run)[-1] == 4
    assert (run / "logs").is_dir()
    records = (world["mix"] / "test.jsonl").read_text().splitlines()
    predictions = [json.loads(line) for line in pred.read_text().splitlines()]
    assert len(predictions) == len(records) and {"id", "prediction"} <= set(predictions[0])
    result = json.loads(scores.read_text())
    assert "f1" in result["entities"]["strict"] and result["meta"]["method"] == "lora"


def test_preempted_training_requeues_and_resumes(world) -> None:
    root, logs = world["root"], world["logs"]
    run = root / "run_preempt"
    steps = 20
    env = {"ENGINE": "local", "DATA": str(world["mix"]), "MODEL": str(world["model"]), "OUTPUT": str(run),
           "OVERRIDES": " ".join([*FAST, f"max_steps={steps}", "checkpoint.save_interval=100"])}
    job = sbatch("--cpus-per-task=2", f"--output={logs}/preempt-%j.out", str(REPO / "slurm/peft_lora.sh"), env=env)
    deadline = time.monotonic() + 180
    while not ((run / "metrics.jsonl").exists() and len(metrics_steps(run)) >= 3):
        assert time.monotonic() < deadline, "training did not start"
        assert job_fields(job).get("JobState") in ("PENDING", "RUNNING"), job_fields(job)
        time.sleep(0.5)
    # what Slurm sends before the time limit (--signal=B:USR1@300) or a preempting admin
    subprocess.run(["scancel", "--signal=USR1", "--batch", job], check=True)
    fields = wait_job(job, timeout=240)
    log = (logs / f"preempt-{job}.out").read_text()
    assert fields["JobState"] == "COMPLETED" and int(fields["Restarts"]) == 1, log[-3000:]
    assert "requeueing job" in log
    recorded = metrics_steps(run)
    assert recorded[-1] == steps and sorted(set(recorded)) == list(range(1, steps + 1)), recorded
    assert (run / "DONE").exists()

    # nothing finished is recomputed: the same job again returns at once and leaves the run untouched
    before = (run / "metrics.jsonl").read_bytes()
    again = sbatch("--cpus-per-task=1", f"--output={logs}/again-%j.out", str(REPO / "slurm/peft_lora.sh"), env=env)
    assert wait_job(again, timeout=120)["JobState"] == "COMPLETED"
    assert "nothing to do" in (logs / f"again-{again}.out").read_text()
    assert (run / "metrics.jsonl").read_bytes() == before


def test_mini_study_submits_finishes_reports_and_resubmits_nothing(world) -> None:
    root = world["root"]
    study = {"name": "mini", "engine": "local",
             "datasets": [{"name": n, "train": str(world["docs"] / n / "train.jsonl"),
                           "test": str(world["docs"] / n / "test.jsonl")} for n in DATASETS],
             "held_out": list(DATASETS), "fractions": [0.0, 0.5], "seeds": [3], "models": {"tiny": str(world["model"])},
             "methods": ["lora"], "train_overrides": [*FAST, "max_steps=2", "checkpoint.save_interval=2"],
             "mixture": {"tasks": ["ce"], "format": "json", "max_tokens": 512, "validation_fraction": 0.2},
             "resources": {"train": {"gpus": 1, "cpus": 1, "time": "00:10:00"},
                           "generate": {"cpus": 1, "time": "00:10:00"},  # CPU: runs beside a training job
                           "mix": {"cpus": 1, "time": "00:10:00"}, "evaluate": {"cpus": 1, "time": "00:10:00"}}}
    (root / "study.yaml").write_text(yaml.safe_dump(study))
    out = root / "study"
    first = ok(cli("study", root / "study.yaml", "--output", out, "--submit"))
    assert "submitted 16 stage(s) in 4 job(s)" in first.stdout
    status = ok(cli("status", out, "--wait", "--interval", "2", "--timeout", "420"))
    assert "stages: 16 done" in status.stdout and status.stdout.count("heldout-") == 4

    report = ok(cli("report", out, "--output", root / "report"))
    table = (root / "report" / "report.md").read_text()
    assert "radgraph" in table and "i2b2_2010" in table
    pngs = list((root / "report").glob("*.png"))
    assert pngs and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs), report.stderr

    costs = list(out.glob("stages/evaluate-*/cost.json"))
    assert len(costs) == 4 and all(json.loads(c.read_text())["gpu_hours"] > 0 for c in costs)
    cost = ok(cli("status", out, "--cost"))
    assert "| tiny | lora | radgraph | 0.5 | 3 | 2 |" in cost.stdout

    again = ok(cli("study", root / "study.yaml", "--output", out, "--submit"))
    assert "submitted 0 stage(s) in 0 job(s)" in again.stdout and "skipped: 16 done" in again.stdout


# The bridge and nemo engines need GPUs: this stand-in interpreter runs the scripts' own Python (versions)
# and, for `-m clinie_nemo train|generate`, reports what Slurm gave each task of the step instead.
FAKE_ENGINE = """#!/bin/bash
if [ "$1" = -m ] && [ "$2" = clinie_nemo ]; then
  echo "task rank=$RANK world=$WORLD_SIZE ntasks=$SLURM_NTASKS cpus=$SLURM_CPUS_PER_TASK omp=$OMP_NUM_THREADS" \\
    "gpus=${SLURM_GPUS_ON_NODE:-} node=$SLURMD_NODENAME stage=$3"
  exit 0
fi
exec PYTHON "$@"
"""


def _gpus_per_node() -> int:
    out = subprocess.run(["sinfo", "-h", "-N", "-o", "%G"], capture_output=True, text=True, timeout=30).stdout
    return min(int(g.rsplit(":", 1)[1]) for g in out.split() if g.startswith("gpu:"))


@pytest.mark.parametrize("script, engine, nodes", [("peft_lora.sh", "bridge", 1), ("peft_lora.sh", "nemo", 2),
                                                   ("generate.sh", "nemo", 1)])
def test_gpus_asked_on_the_command_line_give_one_task_per_gpu_within_the_allocation(
        tmp_path: Path, slurm_cluster, script: str, engine: str, nodes: int) -> None:  # noqa: F811
    """`sbatch --gpus-per-node=G slurm/peft_lora.sh` keeps the script's --ntasks-per-node=1: srun used to take
    the job's SLURM_NTASKS and ran one task instead of G (seen on Slurm 22.05), or asked for G x
    --cpus-per-task CPUs, more than the job holds. The step now has nodes x G tasks with the job's CPUs split
    among them. This cluster's nodes have 2 CPUs; with fewer than 2 fake GPUs per node (LOCAL_SLURM_GPUS)
    GPUS_PER_NODE=2 stands for them."""
    gpus = 2
    fake = tmp_path / "fake_python"
    fake.write_text(FAKE_ENGINE.replace("PYTHON", sys.executable))
    fake.chmod(0o755)
    run, records = tmp_path / "run", tmp_path / "records.jsonl"
    (tmp_path / "mix").mkdir()
    (tmp_path / "mix" / "training.jsonl").write_text("{}\n")
    run.mkdir()
    (run / "DONE").write_text("")
    records.write_text("{}\n")
    env = {"ENGINE": engine, "PYTHON": str(fake), "DATA": str(tmp_path / "mix"), "RUN": str(run),
           "RECORDS": str(records), "OUTPUT": str(tmp_path / ("pred.jsonl" if script == "generate.sh" else "out"))}
    args = [f"--nodes={nodes}", "--cpus-per-task=2", f"--output={tmp_path}/%j.out"]
    if _gpus_per_node() >= gpus:
        args.insert(0, f"--gpus-per-node={gpus}")  # the one documented way to ask for GPUs
    else:
        env["GPUS_PER_NODE"] = str(gpus)
    job = sbatch(*args, str(REPO / "slurm" / script), env=env)
    fields = wait_job(job, timeout=120)
    log = (tmp_path / f"{job}.out").read_text()
    assert fields["JobState"] == "COMPLETED", log[-3000:]
    tasks = sorted(line for line in log.splitlines() if line.startswith("task rank="))
    world = nodes * gpus
    assert len(tasks) == world, log[-3000:]
    assert sorted(int(t.split("rank=")[1].split()[0]) for t in tasks) == list(range(world))
    for line in tasks:
        assert f"world={world} ntasks={world} cpus=1 omp=1" in line, line  # 2 CPUs per node / 2 tasks
        if "GPUS_PER_NODE" not in env:
            assert f"gpus={gpus}" in line
    assert len({t.split("node=")[1].split()[0] for t in tasks}) == nodes
    assert f"srun {nodes} node(s) x {gpus} task(s) x 1 CPU(s)" in log
    assert "instead of --cpus-per-task=2" in log  # the fitting is logged, not silent
    assert "[clinie-nemo] error" not in log  # common.sh's ERR trap stays quiet when nothing failed
