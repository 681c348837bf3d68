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
    assert "24.xx-25.04" in text and "`nemo`" in text, "names the older tag family for the nemo engine"
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
