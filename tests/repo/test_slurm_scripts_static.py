"""Static checks of slurm/*.sh, tools/local_slurm.sh and the Dockerfile (no cluster needed): shellcheck,
the required layout of each sbatch script, fail-fast on missing inputs, and the Dockerfile's promises
(docker cannot run here, so its text is checked). The scripts run here with the Slurm commands taken off
PATH (``no_slurm_env``): nothing of this file may depend on the machine having Slurm. srun with pyxis cannot
run here: its container behaviour is checked against a stand-in srun that records what it was asked."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = ["peft_lora.sh", "full_sft.sh", "generate.sh", "evaluate.sh"]
SLURM_COMMANDS = {"scontrol", "srun", "sbatch", "squeue", "sinfo", "scancel", "sacct", "salloc", "sacctmgr"}


@pytest.fixture(scope="session")
def no_slurm_path(tmp_path_factory) -> str:
    """PATH with the Slurm commands taken out: each PATH folder holding one is replaced by a folder of links
    to everything else in it (what a laptop or a CI machine without Slurm has)."""
    root = tmp_path_factory.mktemp("no_slurm_path")
    dirs = []
    for i, entry in enumerate(os.environ.get("PATH", "").split(os.pathsep)):
        folder = Path(entry)
        if not folder.is_dir() or not any((folder / c).exists() for c in SLURM_COMMANDS):
            dirs.append(entry)
            continue
        mirror = root / str(i)
        mirror.mkdir()
        for item in folder.iterdir():
            if item.name not in SLURM_COMMANDS:
                (mirror / item.name).symlink_to(item)
        dirs.append(str(mirror))
    path = os.pathsep.join(dirs)
    assert shutil.which("scontrol", path=path) is None and shutil.which("bash", path=path)
    return path


@pytest.fixture
def no_slurm_env(no_slurm_path) -> dict[str, str]:
    """This process's environment outside Slurm: no SLURM_*/CUDA_*/MASTER_* variables, no Slurm commands."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "CUDA_", "MASTER_"))}
    env["PATH"] = no_slurm_path
    return env


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
def test_scripts_fail_fast_on_missing_inputs(script: str, needed: str, tmp_path: Path, no_slurm_env) -> None:
    env = no_slurm_env
    for var in ("DATA", "OUTPUT", "RUN", "RECORDS", "PREDICTIONS", "CORPUS"):
        env.pop(var, None)
    env["CLINIE_NEMO_HOME"] = str(REPO)
    proc = subprocess.run(["bash", str(REPO / "slurm" / script)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert f"set {needed}" in proc.stderr
    assert "config " in proc.stdout and "versions python" in proc.stdout  # resolved config logged first


def test_training_script_fails_fast_on_a_missing_data_folder(tmp_path: Path, no_slurm_env) -> None:
    env = no_slurm_env
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


def test_training_script_resolves_gpus_from_gres_and_typed_requests(tmp_path: Path, no_slurm_env) -> None:
    """peft_lora.sh logs its resolved configuration before failing on the missing DATA: GPUS_PER_NODE comes
    from SLURM_GPUS_ON_NODE (here as with `--gres=gpu:h100:8`, where SLURM_GPUS_PER_NODE is unset)."""
    env = no_slurm_env
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
    from clinie_nemo.study.sbatch import pyxis_image

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
    assert '--ntasks="$CN_NTASKS"' in launcher and '--cpus-per-task="$CN_CPUS_PER_TASK"' in launcher
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
    scontrol is a stand-in (a shell function) here; tests/study/test_slurm_requeue_cluster.py runs the real one."""
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


def _stub(folder: Path, name: str, body: str) -> None:
    """An executable shell script ``folder/name`` (a stand-in for a Slurm command)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("#!/bin/bash\n" + body + "\n", encoding="utf-8")
    (folder / name).chmod(0o755)


def test_a_failing_scontrol_is_named_not_a_silent_exit(tmp_path: Path, no_slurm_env) -> None:
    """Inside a job, `scontrol show hostnames` (common.sh, MASTER_ADDR) failing under `set -euo pipefail`
    used to end the script with its exit code and nothing on stderr (its stderr went to /dev/null)."""
    _stub(tmp_path / "bin", "scontrol", 'echo "slurm_load_jobs error: Unable to contact slurm controller" >&2; exit 1')
    env = dict(no_slurm_env, PATH=f"{tmp_path / 'bin'}{os.pathsep}{no_slurm_env['PATH']}", CLINIE_NEMO_HOME=str(REPO),
               SLURM_JOB_ID="41", SLURM_JOB_NODELIST="node[1-2]", DATA=str(tmp_path), OUTPUT=str(tmp_path / "run"))
    proc = subprocess.run(["bash", str(REPO / "slurm/peft_lora.sh")], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=60)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "scontrol show hostnames node[1-2] failed (exit 1)" in proc.stderr
    assert "Unable to contact slurm controller" in proc.stderr  # scontrol's own reason, not hidden


def test_a_failing_checkout_lookup_is_named_not_a_silent_exit(tmp_path: Path, no_slurm_env) -> None:
    """The scripts' first lines ask `scontrol show job` for the script's checkout (sbatch runs a spool copy):
    a pipeline `scontrol | grep | head | cut` that ended the script silently when scontrol failed."""
    _stub(tmp_path / "bin", "scontrol", 'echo "scontrol: error: Invalid job id specified" >&2; exit 1')
    env = dict(no_slurm_env, PATH=f"{tmp_path / 'bin'}{os.pathsep}{no_slurm_env['PATH']}", SLURM_JOB_ID="42")
    env.pop("CLINIE_NEMO_HOME", None)
    for script in SCRIPTS:
        proc = subprocess.run(["bash", str(REPO / "slurm" / script)], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=60)
        assert proc.returncode == 2, (script, proc.returncode, proc.stderr)
        assert "scontrol show job 42 failed (exit 1); set CLINIE_NEMO_HOME" in proc.stderr, script


def test_any_command_that_ends_a_script_under_set_e_is_named(no_slurm_env) -> None:
    """The ERR trap of common.sh: a failing pipeline under pipefail names the command, its exit code and line."""
    env = dict(no_slurm_env)
    proc = subprocess.run(["bash", "-c", f'set -euo pipefail; . "{REPO}/slurm/common.sh"\n'
                           'x="$(false | cat)"\necho "not reached"'], capture_output=True, text=True, env=env,
                          timeout=60)
    assert proc.returncode == 1 and "not reached" not in proc.stdout
    assert proc.stderr.count("[clinie-nemo] error:") == 1, proc.stderr  # once: not again from the subshell
    assert 'exit code 1 from `x="$(false | cat)"`' in proc.stderr and "line 2" in proc.stderr


@pytest.mark.parametrize("env, tasks, ntasks, cpus", [
    # sbatch --gpus-per-node=8 peft_lora.sh: the script's 1 task x 8 CPUs, 8 tasks -> 1 CPU each, not 64 CPUs
    ({"SLURM_JOB_CPUS_PER_NODE": "8", "SLURM_CPUS_PER_TASK": "8", "SLURM_JOB_NUM_NODES": "1"}, 8, "8", "1"),
    # --ntasks-per-node=8 --gpus-per-node=8 on 4 nodes: 64 CPUs per node, 8 each as asked
    ({"SLURM_JOB_CPUS_PER_NODE": "64(x4)", "SLURM_CPUS_PER_TASK": "8", "SLURM_JOB_NUM_NODES": "4"}, 8, "32", "8"),
    # --exclusive hands over the whole node: still the --cpus-per-task asked for, not more
    ({"SLURM_JOB_CPUS_PER_NODE": "128(x2)", "SLURM_CPUS_PER_TASK": "8", "SLURM_JOB_NUM_NODES": "2"}, 8, "16", "8"),
    # unequal nodes: what fits the smallest
    ({"SLURM_JOB_CPUS_PER_NODE": "32,16(x2)", "SLURM_CPUS_PER_TASK": "8", "SLURM_JOB_NUM_NODES": "3"}, 4, "12", "4"),
    # no --cpus-per-task: the node's CPUs split among the tasks
    ({"SLURM_CPUS_ON_NODE": "12", "SLURM_JOB_NUM_NODES": "1"}, 4, "4", "3"),
])
def test_the_step_fits_the_allocation(env: dict[str, str], tasks: int, ntasks: str, cpus: str) -> None:
    proc = _common(f'cn_step_layout {tasks}; echo "$CN_NTASKS $CN_CPUS_PER_TASK"', **env)
    assert proc.returncode == 0 and proc.stdout.split()[-2:] == [ntasks, cpus], (proc.stdout, proc.stderr)


def test_a_step_that_cannot_fit_says_what_to_ask_for() -> None:
    proc = _common("cn_step_layout 8", SLURM_JOB_CPUS_PER_NODE="4", SLURM_CPUS_PER_TASK="4", SLURM_JOB_NUM_NODES="1")
    assert proc.returncode == 2
    assert "holds 4 CPU(s) per node but the step runs 8 task(s) per node" in proc.stderr
    assert "--ntasks-per-node=8" in proc.stderr


def _container_job(tmp_path: Path, env: dict[str, str], srun_body: str, script: str = "peft_lora.sh",
                   **extra: str) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    """Run ``script`` as Slurm would inside a 1-node job with CONTAINER_IMAGE set, with a stand-in srun (pyxis
    and enroot cannot run here) that appends its arguments to srun.calls and then runs ``srun_body``; the
    submission folder ``tmp_path/submit`` is neither mounted nor the image's working directory."""
    bin_dir, submit = tmp_path / "bin", tmp_path / "submit"
    _stub(bin_dir, "srun", f'printf "%s\\0" "$@" >>"{tmp_path}/srun.calls"; printf "\\n" >>"{tmp_path}/srun.calls"\n'
          + srun_body)
    _stub(bin_dir, "scontrol", 'echo node1')
    (submit / "mix").mkdir(parents=True)
    (submit / "mix" / "training.jsonl").write_text("{}\n")
    full = dict(env, PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", CLINIE_NEMO_HOME=str(REPO), SLURM_JOB_ID="77",
                SLURM_JOB_NODELIST="node1", SLURM_JOB_NUM_NODES="1", SLURM_JOB_CPUS_PER_NODE="8",
                SLURM_CPUS_PER_TASK="8", SLURM_GPUS_ON_NODE="1", ENGINE="bridge", DATA="mix", OUTPUT="runs/lora",
                CONTAINER_IMAGE="nvcr.io/nvidia/nemo:26.08", CONTAINER_MOUNTS=f"{submit}:{submit}")
    full.update(extra)
    proc = subprocess.run(["bash", str(REPO / "slurm" / script)], capture_output=True, text=True, env=full,
                          cwd=submit, timeout=60)
    calls_file = tmp_path / "srun.calls"
    calls = [(line + "\0").split("\0")[:-1] for line in calls_file.read_text().split("\0\n") if line] \
        if calls_file.exists() else []
    return proc, calls


def test_container_step_runs_in_the_image_not_in_the_host_submission_folder(tmp_path: Path, no_slurm_env) -> None:
    """No --container-workdir=$PWD (pyxis v0.24.0 pyxis_slurmstepd.c:1653-1657 chdir()s there inside the
    container: "couldn't chdir" unless mounted, the host checkout shadowing the image's package when it is);
    the paths handed to the step are absolute, so they mean the same inside the image's working directory."""
    proc, calls = _container_job(tmp_path, no_slurm_env, "exit 0")
    assert proc.returncode == 0 and not proc.stderr, (proc.stdout, proc.stderr)
    step = next(c for c in calls if any(a.startswith("--container-image=") for a in c))
    assert not any(a.startswith("--container-workdir") for a in step), step
    assert "--container-image=nvcr.io#nvidia/nemo:26.08" in step
    submit = tmp_path / "submit"
    assert "--data" in step and step[step.index("--data") + 1] == str(submit / "mix")
    assert step[step.index("--output") + 1] == str(submit / "runs/lora")


def test_the_steps_first_task_prints_the_versions_inside_the_container(tmp_path: Path, no_slurm_env) -> None:
    """The stand-in srun runs the step's command as task 0 (the rank wrapper, then the interpreter): the
    versions line comes from inside the step, once, before the engine starts."""
    fake = tmp_path / "python"
    _stub(tmp_path, "python", 'if [ "$1" = -m ]; then echo "engine rank=$RANK world=$WORLD_SIZE"; exit 0; fi\n'
          f'exec {sys.executable} "$@"')
    run_task = 'while [[ "$1" == --* ]]; do shift; done\nSLURM_PROCID=0 SLURM_LOCALID=0 SLURM_NTASKS=1 exec "$@"'
    proc, _ = _container_job(tmp_path, no_slurm_env, run_task, PYTHON=str(fake))
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    out = proc.stdout.splitlines()
    versions = [i for i, line in enumerate(out) if line.startswith("versions python")]
    engine = [i for i, line in enumerate(out) if line == "engine rank=0 world=1"]
    assert len(versions) == 1 and len(engine) == 1 and versions[0] < engine[0], proc.stdout


def test_container_workdir_is_only_what_the_user_names(tmp_path: Path, no_slurm_env) -> None:
    proc, calls = _container_job(tmp_path, no_slurm_env, "exit 0", CONTAINER_WORKDIR="/workspace")
    step = next(c for c in calls if any(a.startswith("--container-image=") for a in c))
    assert proc.returncode == 0 and "--container-workdir=/workspace" in step


def test_the_container_image_is_imported_once_per_job(tmp_path: Path, no_slurm_env) -> None:
    """pyxis imports (or unpacks) the image for every srun step that names it, and removes unnamed containers
    after the step (pyxis README, --container-name): a separate step only to print the versions imported the
    image twice. One container step per job now; its first task prints the versions."""
    proc, calls = _container_job(tmp_path, no_slurm_env, "exit 0")
    assert proc.returncode == 0, proc.stderr
    assert sum(any(a.startswith("--container-image=") for a in c) for c in calls) == 1, calls


def test_pyxis_errors_reach_the_log_as_they_are(tmp_path: Path, no_slurm_env) -> None:
    """The step's stderr and exit code are srun's: no "could not start IMAGE" guess in their place."""
    pyxis = ('echo "slurmstepd: error: pyxis: couldn\'t chdir to /home/u/clinie: No such file or directory" >&2\n'
             'echo "srun: error: node1: task 0: Exited with exit code 1" >&2\nexit 1')
    proc, calls = _container_job(tmp_path, no_slurm_env, pyxis)
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "pyxis: couldn't chdir to /home/u/clinie: No such file or directory" in proc.stderr
    assert "could not start" not in proc.stdout + proc.stderr
    assert "step finished with exit code 1" in proc.stdout


def test_a_path_outside_the_container_mounts_is_warned_about(tmp_path: Path, no_slurm_env) -> None:
    proc, _ = _container_job(tmp_path, no_slurm_env, "exit 0", CONTAINER_MOUNTS="/data:/data,/runs:/runs")
    assert proc.returncode == 0, proc.stderr
    submit = tmp_path / "submit"
    assert f"warning: DATA={submit}/mix is not inside a CONTAINER_MOUNTS folder mounted at the same path" in proc.stdout
    assert f"warning: OUTPUT={submit}/runs/lora is not inside" in proc.stdout
    proc, _ = _container_job(tmp_path / "ok", no_slurm_env, "exit 0")  # the submission folder mounted as itself
    assert proc.returncode == 0 and "warning:" not in proc.stdout, proc.stdout


def _moby_pattern(pattern: str) -> re.Pattern[str]:
    """A .dockerignore line as moby/patternmatcher patternmatcher.go Pattern.compile reads it (exact names,
    `*` and `?` within one path segment, `**` across segments)."""
    out, i = "^", 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
            out += ".*" if i >= len(pattern) else "(.*/)?"
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + "$")


def _docker_sends(path: str, lines: list[str]) -> bool:
    """Whether `docker build` sends ``path`` of the context (moby/patternmatcher MatchesOrParentMatches: in
    order, a pattern matching the path or one of its parent folders excludes it, a later `!` one re-includes)."""
    excluded = False
    parents = path.split("/")
    candidates = ["/".join(parents[:i + 1]) for i in range(len(parents))]
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        rx = _moby_pattern(os.path.normpath(line.lstrip("!")))
        if negate != excluded:
            continue
        if any(rx.match(c) for c in candidates):
            excluded = not negate
    return not excluded


def test_dockerignore_sends_only_what_the_dockerfile_copies() -> None:
    """The build context is the checkout, where users keep clinical data and runs (README: release/, docs/,
    data/, runs/, studies/, tiny_model/, demo_out/ ...): none of it may be sent to the Docker daemon."""
    lines = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert _docker_sends("clinie_nemo", ["*", "!clinie_nemo"]) and not _docker_sends("x", ["*", "!clinie_nemo"])
    user_files = ["data/radgraph-0.2/training.jsonl", "runs/lora/adapter/x.safetensors", "out/x", "demo_out/report",
                  ".bridge-contract/site/megatron/__init__.py", ".venv/bin/python", "release/n2c2_2018/100035.txt",
                  "docs/radgraph/train.jsonl", "brat_view/a.ann", "studies/readme/plan.json", "tiny_model/config.json",
                  "clinie-nemo.sqsh", "slurm-train-12.out", "mixture.yaml", ".git/HEAD", "tests/commands/test_cli.py",
                  "clinie_nemo/__pycache__/cli.cpython-312.pyc", "clinie_nemo.egg-info/PKG-INFO"]
    sent = [f for f in user_files if _docker_sends(f, lines)]
    assert not sent, f".dockerignore lets these into the build context: {sent}"
    copied = []
    for line in (REPO / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if line.startswith("COPY "):
            copied += line.split()[1:-1]
    assert {"pyproject.toml", "clinie_nemo", "slurm", "tools"} <= set(copied)
    for src in copied:
        files = [src] if (REPO / src).is_file() else \
            [str(p.relative_to(REPO)) for p in (REPO / src).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        assert files, src
        missing = [f for f in files if not _docker_sends(f, lines)]
        assert not missing, f"COPY {src}: .dockerignore keeps out {missing[:5]}"
    assert not any(fnmatch.fnmatch(line.strip(), "!*data*") for line in lines)


def test_one_documented_way_to_ask_for_gpus() -> None:
    """`--gres=gpu:N` beside the scripts' own `#SBATCH --gpus-per-node` is fatal from Slurm 26.05
    (CHANGELOG/slurm-26.05.md "Make --gres=gpu:N and --gpus-per-node mutually exclusive"): the README and
    the scripts name --gpus-per-node only, and mention --gres only to warn against it."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    paragraphs = [p for p in readme.split("\n\n") if "--gres" in p]
    assert len(paragraphs) == 1 and "Do not add" in paragraphs[0] and "mutually exclusive" in paragraphs[0], paragraphs
    assert "one way only, `--gpus-per-node=N`" in paragraphs[0]
    for script in SCRIPTS:
        text = (REPO / "slurm" / script).read_text(encoding="utf-8")
        assert "#SBATCH --gres" not in text
        for line in text.splitlines():
            if "--gres" in line:
                assert "never --gres" in line, (script, line)


def test_readme_states_the_mounts_a_container_needs() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("### The container", 1)[1].split("### The sbatch scripts", 1)[0]
    mounts = section.split("Mounts a container needs:", 1)[1]
    for needed in ("**same path**", "`SRC:SRC`", "`DATA`", "`OUTPUT`", "`RUN`", "model checkpoint", "not the checkout",
                   "`WORKDIR`", "couldn't chdir", "`CONTAINER_WORKDIR`", "srun's exit code"):
        assert needed in mounts, needed
