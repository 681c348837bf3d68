"""A generate job preempted on the REAL local Slurm cluster resumes with no prediction lost or duplicated.

slurm/generate.sh with the local engine (a tiny model trained through the CLI, one prompt per batch so the
job runs long enough to be stopped mid-way) is stopped while it writes predictions:
- `scancel --signal=USR1 --batch` (the time-limit signal, B:USR1): the batch shell forwards SIGUSR1, the
  generator saves the batch in flight and exits 124, the job requeues itself;
- `scontrol requeue` (an admin's requeue, what PreemptMode=REQUEUE does): Slurm sends SIGTERM to the job
  and requeues it itself.
Either way the requeued run resumes from the partial file and the predictions equal, byte for byte, those of
an uninterrupted run (the same CLI, one thread, as the job's --cpus-per-task=1)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from clinie_nemo.engines.predictions import partial_path
from tests.cli_plugin import REPO
from tests.cli_plugin import cli_subprocess as cli  # Slurm tests: see cli_subprocess
from tests.local_engine_fixtures import synthetic_records, write_records
from tests.local_extra import require_local
from tests.slurm_fixtures import job_fields, sbatch, slurm_cluster, wait_job  # noqa: F401

pytestmark = pytest.mark.slurm
N = 60
GEN = ["max_new_tokens=16", "batch_size=1"]


def ok(res: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert res.returncode == 0, f"{res.args}\n{res.stderr[-3000:]}"
    return res


@pytest.fixture(scope="module")
def world(tmp_path_factory, slurm_cluster) -> dict[str, Path]:  # noqa: F811
    """A finished local run (tiny model, 2 LoRA steps), N test records, and their uninterrupted predictions."""
    require_local()
    from clinie_nemo.engines.local.runtime import quiet_transformers
    from clinie_nemo.engines.local.tiny_model import TinyModelConfig, build_tiny_model

    root = tmp_path_factory.mktemp("genresume_slurm")
    data = write_records(root / "data", synthetic_records(16))
    quiet_transformers()
    build_tiny_model(data, root / "tiny", TinyModelConfig(vocab_size=320, hidden_size=64, num_layers=2,
                                                         num_heads=4, num_kv_heads=2, seed=0))
    ok(cli("train", "--engine", "local", "--model", "tiny_local", "--recipe", "local_tiny_lora", "--data", data,
           "--output", root / "run", f"model.checkpoint={root / 'tiny'}", "max_steps=2", "seq_length=96",
           "batch.global_batch_size=4", "batch.micro_batch_size=4", "checkpoint.save_interval=2",
           "optim.warmup_steps=1", "data.validation_interval=0"))
    rows = [{**r, "input": r["input"] + " again" * (i % 7)} for i, r in enumerate(synthetic_records(N, seed=4))]
    records = root / "test.jsonl"
    records.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ok(cli("generate", "--run", root / "run", "--records", records, "--output", root / "full.jsonl", *GEN,
           env={"OMP_NUM_THREADS": "1"}))
    (root / "logs").mkdir()
    return {"root": root, "run": root / "run", "records": records, "full": root / "full.jsonl",
            "logs": root / "logs"}


def submit_and_wait_for_progress(world: dict[str, Path], name: str) -> tuple[str, Path]:
    out = world["root"] / f"{name}.jsonl"
    job = sbatch("--cpus-per-task=1", f"--output={world['logs']}/{name}-%j.out", str(REPO / "slurm/generate.sh"),
                 env={"ENGINE": "local", "RUN": str(world["run"]), "RECORDS": str(world["records"]),
                      "OUTPUT": str(out), "OVERRIDES": " ".join(GEN), "CLINIE_NEMO_HOME": str(REPO)})
    deadline = time.monotonic() + 240
    while not (partial_path(out).exists() and len(partial_path(out).read_text().splitlines()) >= 4):
        state = job_fields(job).get("JobState")
        assert time.monotonic() < deadline and state in ("PENDING", "RUNNING"), (state, logs_of(world, name, job))
        time.sleep(0.2)
    return job, out


def logs_of(world: dict[str, Path], name: str, job: str) -> str:
    found = list(world["logs"].glob(f"{name}-{job}.out"))
    return found[0].read_text() if found else ""


def check_resumed(world: dict[str, Path], name: str, job: str, out: Path, fields: dict[str, str]) -> str:
    log = logs_of(world, name, job)
    assert fields["JobState"] == "COMPLETED" and int(fields["Restarts"]) >= 1, log[-4000:]
    assert "resuming: " in log and f"of {N} predictions already in" in log, log[-4000:]
    done_before = int(log.split("resuming: ")[1].split()[0])
    assert 3 <= done_before < N, log[-4000:]  # stopped mid-way, and what was saved was not redone
    assert out.read_bytes() == world["full"].read_bytes()  # nothing lost, nothing duplicated, same order
    assert not partial_path(out).exists()
    assert "pt given" not in log  # no note text in the job log
    return log


def test_generate_job_stopped_with_usr1_requeues_itself_and_resumes(world) -> None:
    job, out = submit_and_wait_for_progress(world, "usr1")
    # what Slurm sends before the time limit (--signal=B:USR1@120), to the batch shell
    subprocess.run(["scancel", "--signal=USR1", "--batch", job], check=True, timeout=30)
    fields = wait_job(job, timeout=300)
    log = check_resumed(world, "usr1", job, out, fields)
    assert int(fields["Restarts"]) == 1, log[-4000:]
    assert "signal SIGUSR1" in log and "step exited 124" in log and "requeueing job" in log, log[-4000:]


def test_generate_job_requeued_by_slurm_resumes(world) -> None:
    job, out = submit_and_wait_for_progress(world, "requeue")
    # an admin's (or PreemptMode=REQUEUE's) requeue: Slurm signals the job (SIGTERM) and queues it again
    subprocess.run(["scontrol", "requeue", job], check=True, timeout=30)
    fields = wait_job(job, timeout=300)
    log = check_resumed(world, "requeue", job, out, fields)
    # the generator saved the batch in flight on the first stop signal and exited 124, not killed by the next
    # one (exit 138): Slurm's SIGTERM, or the SIGUSR1 the job shell forwards to its step (srun runs under setsid,
    # so which one arrives first is a race); the shell saw that Slurm had requeued the job and did not again
    assert ("signal SIGTERM" in log or "signal SIGUSR1" in log) and "step exited 124" in log, log[-4000:]
    assert f"Slurm requeued job {job} itself" in log, log[-4000:]

