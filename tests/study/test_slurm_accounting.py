"""Cost from `sacct` on a REAL second local cluster with accounting (slurmdbd + a private MariaDB), started
beside the main test cluster on other ports by `tools/local_slurm.sh start --accounting` and stopped after."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from clinie_nemo.study.cost import accounting_available, stage_cost
from tests.slurm_fixtures import LOCAL_SLURM, _why_cannot_run

pytestmark = pytest.mark.slurm

PORTS = {"LOCAL_SLURM_CTLD_PORT": "7817", "LOCAL_SLURM_SLURMD_PORT": "7818", "LOCAL_SLURM_DBD_PORT": "7819",
         "LOCAL_SLURM_DB_PORT": "3308"}


@pytest.fixture(scope="module")
def accounting_cluster(tmp_path_factory):
    why = _why_cannot_run()
    if why:
        pytest.skip(why)
    env = {**os.environ, **PORTS, "LOCAL_SLURM_DIR": str(tmp_path_factory.mktemp("acct"))}
    proc = subprocess.run([str(LOCAL_SLURM), "start", "--accounting"], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    env["SLURM_CONF"] = str(Path(env["LOCAL_SLURM_DIR"]) / "slurm.conf")
    yield env
    subprocess.run([str(LOCAL_SLURM), "stop"], env=env, capture_output=True, text=True, timeout=120)


def test_stage_cost_comes_from_sacct(accounting_cluster, tmp_path: Path, monkeypatch) -> None:
    env = accounting_cluster
    job = subprocess.run(["sbatch", "--parsable", "--gpus-per-node=1", "-o", "/dev/null", "--wrap", "sleep 2"],
                         env=env, capture_output=True, text=True, check=True).stdout.strip()
    stage = tmp_path / "train-x"
    stage.mkdir()
    # the job's own timing says 1 s on 0 GPUs; sacct's record (>= 2 s on 1 GPU) must win
    (stage / "timing.jsonl").write_text(json.dumps({"job_id": job, "elapsed_s": 1.0, "gpus": 0}) + "\n")
    monkeypatch.setenv("SLURM_CONF", env["SLURM_CONF"])
    assert accounting_available()
    deadline = time.monotonic() + 90
    while True:
        state = subprocess.run(["sacct", "-n", "-X", "-P", "-j", job, "-o", "State"], env=env,
                               capture_output=True, text=True).stdout.strip()
        cost = stage_cost(stage)
        if state == "COMPLETED" and cost["source"] == "sacct":
            break
        assert time.monotonic() < deadline, cost
        time.sleep(1)
    assert cost["elapsed_s"] >= 2 and cost["gpu_hours"] == pytest.approx(cost["elapsed_s"] / 3600, abs=1e-6) and cost["job_ids"] == [job]
    sacct = subprocess.run(["sacct", "-n", "-X", "-P", "-j", job, "-o", "AllocTRES"], env=env,
                           capture_output=True, text=True).stdout
    assert "gres/gpu=1" in sacct


def test_main_cluster_has_no_accounting(monkeypatch) -> None:
    monkeypatch.setenv("SLURM_CONF", "/nonexistent/slurm.conf")
    assert not accounting_available()
