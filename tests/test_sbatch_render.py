"""Golden tests of the pure sbatch renderer (clinie_nemo.slurm.sbatch). Regenerate a golden file on purpose
with CLINIE_UPDATE_GOLDEN=1; every rendered script must also pass shellcheck."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from clinie_nemo.errors import ConfigError
from clinie_nemo.slurm.sbatch import SbatchJob, directives, render_sbatch

GOLDEN = Path(__file__).parent / "golden"

JOBS = {
    "bridge_4x8_tp8_container": SbatchJob(
        name="llama31-8b-lora",
        command=("clinie-nemo", "train", "--engine", "bridge", "--model", "nemo_configs/models/llama31_8b.yaml",
                 "--recipe", "nemo_configs/train/peft_lora.yaml", "--data", "/data/mix",
                 "--output", "/runs/lora", "parallel.tensor=8", "parallel.nodes=4", "parallel.gpus_per_node=8"),
        nodes=4, gpus_per_node=8, cpus_per_task=8, mem="0", time="04:00:00", partition="gpu",
        account="clinical-nlp", output="/runs/lora/logs/%x-%j.out",
        container_image="nvcr.io/nvidia/nemo:26.04", container_mounts="/data:/data,/runs:/runs",
        env=(("HF_HUB_OFFLINE", "1"), ("NCCL_DEBUG", "WARN")),
    ),
    "local_1gpu_bare_metal": SbatchJob(
        name="tiny-lora", command=("clinie-nemo", "train", "--engine", "local", "--data", "mix dir"),
        gpus_per_node=1, cpus_per_task=2, time="00:20:00", output="logs/%x-%j.out",
    ),
    "cpu_evaluate_array_dependency": SbatchJob(
        name="evaluate", command=("clinie-nemo", "evaluate", "--json", "scores.json"),
        cpus_per_task=1, mem="2G", time="00:10:00", signal_seconds=None, requeue=False,
        array="0-3%2", dependency="afterok:101_0:101_1",
    ),
}


@pytest.mark.parametrize("name", sorted(JOBS))
def test_render_matches_golden(name: str) -> None:
    text = render_sbatch(JOBS[name])
    path = GOLDEN / f"{name}.sbatch"
    if os.environ.get("CLINIE_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(JOBS))
def test_rendered_script_is_shellcheck_clean(name: str, tmp_path: Path) -> None:
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck is not installed")
    script = tmp_path / "job.sh"
    script.write_text(render_sbatch(JOBS[name]), encoding="utf-8")
    proc = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_bridge_job_launches_one_task_per_gpu_in_the_container() -> None:
    text = render_sbatch(JOBS["bridge_4x8_tp8_container"])
    assert "#SBATCH --nodes=4" in text and "#SBATCH --ntasks-per-node=8" in text
    assert "#SBATCH --gpus-per-node=8" in text and "#SBATCH --requeue" in text
    assert "#SBATCH --signal=B:USR1@300" in text
    assert "--container-image=nvcr.io/nvidia/nemo:26.04" in text
    assert "--container-mounts=/data:/data,/runs:/runs" in text
    assert 'scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1' in text
    assert "parallel.tensor=8" in text and 'scontrol requeue "$SLURM_JOB_ID"' in text


def test_bare_metal_has_no_container_flags() -> None:
    text = render_sbatch(JOBS["local_1gpu_bare_metal"])
    assert "--container" not in text
    assert "'mix dir'" in text  # arguments are shell-quoted


def test_render_is_pure_and_ordered() -> None:
    job = JOBS["cpu_evaluate_array_dependency"]
    assert render_sbatch(job) == render_sbatch(job)
    keys = [k for k, _ in directives(job)]
    assert keys.index("dependency") < keys.index("kill-on-invalid-dep")
    assert "signal" not in keys and "requeue" not in keys and "gpus-per-node" not in keys


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "has space"}, "job name"),
    ({"command": ()}, "command is empty"),
    ({"nodes": 0}, "nodes must be"),
    ({"container_mounts": "/a:/a"}, "without container_image"),
    ({"time": "00:05:00"}, "must be shorter than the time limit"),
    ({"time": "5h"}, "invalid Slurm time"),
])
def test_invalid_jobs_are_rejected(kwargs: dict, message: str) -> None:
    base = {"name": "x", "command": ("true",)}
    base.update(kwargs)
    with pytest.raises(ConfigError, match=message):
        SbatchJob(**base)
