"""The real local Slurm cluster for tests marked `slurm`: a session fixture that starts it
(tools/local_slurm.sh) if needed, and small helpers to submit and wait for jobs.

Import the fixture into a test module: ``from tests.slurm_fixtures import slurm_cluster  # noqa: F401``.
Tests skip only where sbatch truly cannot run here (not root and Slurm missing, or no apt-get to install it);
a cluster that should start but does not is a failure, not a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LOCAL_SLURM = REPO / "tools" / "local_slurm.sh"
FINISHED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED",
            "BOOT_FAIL", "DEADLINE"}


def _why_cannot_run() -> str | None:
    have_slurm = all(shutil.which(c) for c in ("sbatch", "slurmctld", "slurmd", "munged"))
    if os.geteuid() != 0:
        return "the local Slurm cluster runs its daemons as root; tests are not running as root"
    if not have_slurm and not shutil.which("apt-get"):
        return "Slurm is not installed and apt-get is unavailable to install it"
    return None


@pytest.fixture(scope="session")
def slurm_cluster() -> dict[str, str]:
    """Start (or reuse) the local cluster (2 nodes unless LOCAL_SLURM_NODES says otherwise; a running one is
    reused as it is); export SLURM_CONF for this process and its children.
    Returns the environment additions ({"SLURM_CONF": path})."""
    why = _why_cannot_run()
    if why:
        pytest.skip(why)
    proc = subprocess.run([str(LOCAL_SLURM), "start"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"tools/local_slurm.sh start failed:\n{proc.stdout}\n{proc.stderr}"
    conf = str(Path(os.environ.get("LOCAL_SLURM_DIR", "/tmp/clinie-slurm")) / "slurm.conf")
    os.environ["SLURM_CONF"] = conf
    return {"SLURM_CONF": conf}


def cluster_nodes() -> list[str]:
    """The node names of the cluster SLURM_CONF points at (`sinfo -N`), sorted."""
    proc = subprocess.run(["sinfo", "-h", "-N", "-o", "%N"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, f"sinfo failed: {proc.stderr}"
    return sorted(set(proc.stdout.split()))


def sbatch(*args: str, env: dict[str, str] | None = None, cwd: str | Path | None = None) -> str:
    """Submit with the real sbatch; returns the job id."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.update(env or {})
    proc = subprocess.run(["sbatch", "--parsable", *args], capture_output=True, text=True, env=full_env,
                          cwd=cwd, timeout=60)
    assert proc.returncode == 0, f"sbatch failed: {proc.stderr}"
    return proc.stdout.strip().split(";")[0]


def job_fields(job_id: str) -> dict[str, str]:
    """`scontrol show job -o` as a dict (finished jobs stay MinJobAge=600 s)."""
    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True,
                         timeout=30).stdout
    fields: dict[str, str] = {}
    for token in out.split():
        key, _, value = token.partition("=")
        fields.setdefault(key, value)
    return fields


def wait_job(job_id: str, timeout: float = 180, release_requeued: bool = True) -> dict[str, str]:
    """Poll until the job ends; returns its fields. A requeued job waits on Slurm's ~2 min BeginTime
    delay: with ``release_requeued`` the test shortens it to 3 s (scontrol update StartTime=now+3). Not to
    now: slurmd refuses a job credential created in the same second its previous run's credential was
    revoked ("Killing non-startable batch JobId=..: Job credential revoked"), which is what the delay is for."""
    deadline = time.monotonic() + timeout
    fields: dict[str, str] = {}
    released: set[str | None] = set()
    while time.monotonic() < deadline:
        fields = job_fields(job_id)
        state = fields.get("JobState", "")
        if state in FINISHED:
            return fields
        if release_requeued and state == "PENDING" and fields.get("Reason") == "BeginTime" \
                and fields.get("Restarts") not in released:  # once per requeue, else it moves on every poll
            released.add(fields.get("Restarts"))
            subprocess.run(["scontrol", "update", f"jobid={job_id}", "StartTime=now+3"], capture_output=True,
                           timeout=30)
        time.sleep(1.0)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s: {fields.get('JobState')}")
