"""Static checks of slurm/*.sh, tools/local_slurm.sh and the Dockerfile (no cluster needed): shellcheck,
the required layout of each sbatch script, fail-fast on missing inputs, and the Dockerfile's promises
(docker cannot run here, so its text is checked)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = ["peft_lora.sh", "full_sft.sh", "generate.sh", "evaluate.sh"]


def test_shell_scripts_are_shellcheck_clean() -> None:
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck is not installed")
    files = [str(REPO / "slurm" / s) for s in [*SCRIPTS, "common.sh"]] + [str(REPO / "tools/local_slurm.sh")]
    proc = subprocess.run(["shellcheck", "-x", *files], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_layout(script: str) -> None:
    text = (REPO / "slurm" / script).read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash"
    assert any(line.startswith("# usage:") for line in lines[:5]), "usage header first"
    first_sbatch = next(i for i, line in enumerate(lines) if line.startswith("#SBATCH"))
    first_code = next(i for i, line in enumerate(lines) if line and not line.startswith("#"))
    assert first_sbatch < first_code, "#SBATCH lines must come before any command"
    directives = {line.split()[1].split("=")[0] for line in lines if line.startswith("#SBATCH")}
    assert {"--nodes", "--ntasks-per-node", "--time", "--signal", "--requeue", "--output"} <= directives
    assert re.search(r"#SBATCH --signal=B:USR1@\d+", text)
    assert "cn_header" in text and "cn_require" in text and "cn_launch" in text
    for var in re.findall(r"^([A-Z_]+)=\"\$\{", text, flags=re.M):
        assert f'{var}="${{{var}:-' in text, f"{var} must be configurable as ${{{var}:-default}}"


@pytest.mark.parametrize("script", ["peft_lora.sh", "full_sft.sh"])
def test_training_scripts_read_the_documented_variables(script: str) -> None:
    text = (REPO / "slurm" / script).read_text(encoding="utf-8")
    header = text.split("\n#SBATCH", 1)[0]
    for var in ["ENGINE", "CONTAINER_IMAGE", "CONTAINER_MOUNTS", "MODEL", "RECIPE", "DATA", "OUTPUT", "TP",
                "PP", "NODES", "GPUS_PER_NODE", "OVERRIDES"]:
        assert f'{var}="${{{var}:-' in text, var
        assert re.search(rf"\b{var}\b", header), f"{var} documented in the usage header"


@pytest.mark.parametrize("script, needed", [("peft_lora.sh", "DATA OUTPUT"), ("generate.sh", "RUN RECORDS OUTPUT"),
                                            ("evaluate.sh", "PREDICTIONS RECORDS CORPUS OUTPUT")])
def test_scripts_fail_fast_on_missing_inputs(script: str, needed: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    for var in ("DATA", "OUTPUT", "RUN", "RECORDS", "PREDICTIONS", "CORPUS"):
        env.pop(var, None)
    env["CLINIE_NEMO_HOME"] = str(REPO)
    proc = subprocess.run(["bash", str(REPO / "slurm" / script)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert f"set {needed}" in proc.stderr
    assert "config " in proc.stdout and "versions python" in proc.stdout  # resolved config logged first


def test_training_script_fails_fast_on_a_missing_data_folder(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(CLINIE_NEMO_HOME=str(REPO), DATA=str(tmp_path / "nope"), OUTPUT=str(tmp_path / "run"))
    proc = subprocess.run(["bash", str(REPO / "slurm/peft_lora.sh")], capture_output=True, text=True, env=env,
                          timeout=60)
    assert proc.returncode == 2 and "not found:" in proc.stderr and "training.jsonl" in proc.stderr


def test_dockerfile_keeps_the_container_stack() -> None:
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    code = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert re.fullmatch(r"ARG NEMO_TAG=26\.\d\d", code[0]), "a 26.x default tag for bridge"
    assert code[1] == "FROM nvcr.io/nvidia/nemo:${NEMO_TAG}"
    assert "nemo_toolkit 2.2.1-2.4.x" in text and "`nemo`" in text, "names the NeMo window of the nemo engine"
    installs = [line for line in code if "pip install" in line]
    assert any("--no-deps ." in line for line in installs)
    assert any("-c /tmp/image-constraints.txt" in line and "-r requirements.txt" in line for line in installs)
    for line in installs:
        assert not re.search(r"\b(torch|transformer[-_]engine|megatron[-_]core|megatron[-_]bridge|nemo[-_]toolkit|apex)\b",
                             line), line
    reqs = [r.split(">")[0].split("=")[0].strip().lower() for r in
            (REPO / "requirements.txt").read_text().splitlines() if r.strip() and not r.startswith("#")]
    assert not {"torch", "transformer-engine", "transformer_engine", "megatron-core", "nemo-toolkit",
                "nemo_toolkit", "megatron-bridge"} & set(reqs)


def _common(snippet: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run bash that sources slurm/common.sh, outside Slurm (SLURM_*/CUDA_* cleared, then ``env`` added)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "CUDA_", "MASTER_"))}
    base.update(env)
    return subprocess.run(["bash", "-c", f'set -euo pipefail; . "{REPO}/slurm/common.sh"; {snippet}'],
                          capture_output=True, text=True, env=base, timeout=60)


@pytest.mark.parametrize("env, expected", [
    ({"SLURM_GPUS_ON_NODE": "8"}, "8"),  # --gres=gpu:8: SLURM_GPUS_PER_NODE is unset
    ({"SLURM_GPUS_ON_NODE": "8", "SLURM_GPUS_PER_NODE": "h100:8"}, "8"),  # typed --gpus-per-node=h100:8
    ({"SLURM_GPUS_PER_NODE": "h100:4"}, "4"),  # only the request: its count, not "h100:4"
    ({"CUDA_VISIBLE_DEVICES": "0,1,2"}, "3"),
    ({"CUDA_VISIBLE_DEVICES": "NoDevFiles", "SLURM_GPUS_PER_NODE": "2"}, "2"),
    ({}, "1"),
])
def test_gpus_per_node_from_the_allocation(env: dict[str, str], expected: str) -> None:
    proc = _common("cn_gpus_per_node", **env)
    assert proc.returncode == 0 and proc.stdout.strip() == expected, proc.stderr


def test_training_script_resolves_gpus_from_gres_and_typed_requests(tmp_path: Path) -> None:
    """peft_lora.sh logs its resolved configuration before failing on the missing DATA: GPUS_PER_NODE comes
    from SLURM_GPUS_ON_NODE (here as with `--gres=gpu:h100:8`, where SLURM_GPUS_PER_NODE is unset)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "CUDA_"))}
    env.pop("DATA", None)
    env.update(CLINIE_NEMO_HOME=str(REPO), SLURM_GPUS_ON_NODE="8")
    proc = subprocess.run(["bash", str(REPO / "slurm/peft_lora.sh")], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=60)
    assert proc.returncode == 2 and "config GPUS_PER_NODE=8" in proc.stdout, proc.stdout


@pytest.mark.parametrize("engine, gpus, stage, tasks", [
    ("bridge", 8, "train", "8"), ("nemo", 8, "train", "8"), ("local", 8, "train", "1"),
    ("bridge", 8, "generate", "1"),  # one vLLM per node (tensor parallel over the node's GPUs)
    ("nemo", 4, "generate", "4"),  # Lightning under Slurm: ntasks-per-node == devices
    ("local", 4, "generate", "1"),
])
def test_tasks_per_node(engine: str, gpus: int, stage: str, tasks: str) -> None:
    proc = _common(f"cn_tasks_per_node {engine} {gpus} {stage}")
    assert proc.returncode == 0 and proc.stdout.strip() == tasks, proc.stderr


def test_generate_script_runs_one_task_per_node() -> None:
    text = (REPO / "slurm/generate.sh").read_text(encoding="utf-8")
    assert re.search(r'cn_tasks_per_node "\$ENGINE" "\$GPUS_PER_NODE" generate\)', text)


@pytest.mark.parametrize("image, expected", [
    ("nvcr.io/nvidia/nemo:26.04", "nvcr.io#nvidia/nemo:26.04"),
    ("nvcr.io#nvidia/nemo:26.04", "nvcr.io#nvidia/nemo:26.04"),
    ("user@nvcr.io/nvidia/nemo:25.04", "user@nvcr.io#nvidia/nemo:25.04"),
    ("localhost:5000/team/nemo:1", "localhost:5000#team/nemo:1"),
    ("ubuntu:22.04", "ubuntu:22.04"),
    ("nvidia/cuda:12.4.0", "nvidia/cuda:12.4.0"),
    ("/shared/clinie-nemo.sqsh", "/shared/clinie-nemo.sqsh"),
])
def test_container_image_in_enroot_syntax_same_rule_as_render_sbatch(image: str, expected: str) -> None:
    from clinie_nemo.slurm.sbatch import pyxis_image

    proc = _common(f'CONTAINER_IMAGE="{image}"; cn_container_flags; printf "%s\\n" "${{CN_CONTAINER[@]}}"')
    assert proc.returncode == 0, proc.stderr
    assert f"--container-image={expected}" in proc.stdout.splitlines()
    assert pyxis_image(image) == expected
    assert ("enroot 3.x syntax" in proc.stdout) == (image != expected)


def test_container_image_with_a_scheme_is_rejected() -> None:
    proc = _common('CONTAINER_IMAGE="docker://nvcr.io/nvidia/nemo:26.04"; cn_container_flags')
    assert proc.returncode == 2 and "without a scheme" in proc.stderr


@pytest.mark.parametrize("env, port", [
    ({"SLURM_JOB_ID": "123456"}, str(15000 + 123456 % 15000)),
    ({"SLURM_JOB_ID": "123457"}, str(15000 + 123457 % 15000)),
    ({"SLURM_JOB_ID": "123456", "MASTER_PORT": "31000"}, "31000"),
    ({}, "29500"),  # outside Slurm
])
def test_master_port_from_the_job_id(env: dict[str, str], port: str) -> None:
    proc = _common('scontrol() { :; }; cn_header >/dev/null 2>&1; echo "$MASTER_PORT"', PYTHON="true", **env)
    assert proc.returncode == 0 and proc.stdout.strip() == port, proc.stderr


def test_srun_gets_cpus_per_task_and_multi_node_usage_takes_whole_nodes() -> None:
    common = (REPO / "slurm/common.sh").read_text(encoding="utf-8")
    launcher = common.split("launcher=(srun", 1)[1].split(")", 1)[0]
    assert '--cpus-per-task="$SLURM_CPUS_PER_TASK"' in launcher
    for script in ("peft_lora.sh", "full_sft.sh"):
        header = (REPO / "slurm" / script).read_text(encoding="utf-8").split("\n#SBATCH", 1)[0]
        assert re.search(r"sbatch --nodes=\d+ --exclusive --mem=0 ", header), script


@pytest.mark.parametrize("ours, restarts, max_requeues, requeued", [
    (None, "0", "3", True), ("2", "2", "3", True), ("3", "3", "3", False), (None, "1", "0", False),
    ("1", "5", "3", True),  # 4 preemptions requeued by Slurm itself: they do not use up MAX_REQUEUES
])
def test_requeue_is_capped_by_our_own_requeues(ours: str | None, restarts: str, max_requeues: str, requeued: bool,
                                               tmp_path: Path) -> None:
    """The cap counts only our requeues (a counter file), not SLURM_RESTART_COUNT, which counts preemptions too.
    scontrol is a stand-in (a shell function) here; tests/test_slurm_requeue_cluster.py runs the real one."""
    count = tmp_path / "requeues"
    if ours is not None:
        count.write_text(ours + "\n")
    stub = f'scontrol() {{ if [ "$1" = show ]; then echo "JobId=77 JobState=RUNNING Restarts={restarts}"; else echo "scontrol $*"; fi; }}'
    proc = _common(f"{stub}; cn_requeue_or_fail 124", SLURM_JOB_ID="77", SLURM_RESTART_COUNT=restarts,
                   MAX_REQUEUES=max_requeues, CN_REQUEUE_COUNT_FILE=str(count))
    if requeued:
        assert proc.returncode == 0 and "scontrol requeue 77" in proc.stdout
        assert count.read_text().strip() == str(int(ours or 0) + 1)
    else:
        assert proc.returncode == 124 and "scontrol requeue" not in proc.stdout
        assert "not requeueing again, the job fails" in proc.stdout


@pytest.mark.parametrize("show, requeue_rc", [
    ("JobState=COMPLETING Restarts=3", 1),  # Slurm's own requeue seen before ours (Restarts grew)
    ("JobState=PENDING Restarts=2", 1),  # pending again
])
def test_no_second_requeue_when_slurm_requeued_the_job(show: str, requeue_rc: int, tmp_path: Path) -> None:
    """PreemptMode=REQUEUE: Slurm requeues the job itself; ours would fail (ESLURM_JOB_PENDING), and must not count."""
    count = tmp_path / "requeues"
    stub = (f'scontrol() {{ if [ "$1" = show ]; then echo "JobId=77 {show}"; else echo "scontrol $*"; '
            f'return {requeue_rc}; fi; }}')
    proc = _common(f"{stub}; cn_requeue_or_fail 124", SLURM_JOB_ID="77", SLURM_RESTART_COUNT="2",
                   MAX_REQUEUES="3", CN_REQUEUE_COUNT_FILE=str(count))
    assert proc.returncode == 0 and "Slurm requeued job 77 itself" in proc.stdout, proc.stdout + proc.stderr
    assert "scontrol requeue" not in proc.stdout and not count.exists()


def test_a_failed_requeue_of_a_job_slurm_requeued_meanwhile_is_a_success(tmp_path: Path) -> None:
    """The preemption's requeue lands between our check and our `scontrol requeue` (which then fails)."""
    count, state = tmp_path / "requeues", tmp_path / "state"
    state.write_text("JobState=RUNNING Restarts=0")
    stub = (f'scontrol() {{ if [ "$1" = show ]; then echo "JobId=77 $(cat {state})"; '
            f'else echo "JobState=COMPLETING Restarts=1" > {state}; echo "Job is pending execution" >&2; return 1; fi; }}')
    proc = _common(f"{stub}; cn_requeue_or_fail 124", SLURM_JOB_ID="77", MAX_REQUEUES="3",
                   CN_REQUEUE_COUNT_FILE=str(count))
    assert proc.returncode == 0 and "Slurm requeued job 77 meanwhile" in proc.stdout, proc.stdout + proc.stderr
