"""Golden tests of the pure sbatch renderer (clinie_nemo.study.sbatch). Regenerate a golden file on purpose
with CLINIE_UPDATE_GOLDEN=1; every rendered script must also pass shellcheck. Also: Slurm time strings,
pyxis/enroot image syntax, per-job MASTER_PORT, TERM/124 requeue with a cap, whole nodes for multi-node jobs
(the behaviour on a real cluster: tests/study/test_slurm_requeue_cluster.py), directive values quoted the way
sbatch reads them (checked with the real sbatch on the local cluster) and control characters refused."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from clinie_nemo.core.errors import ConfigError
from clinie_nemo.study.sbatch import SbatchJob, directives, pyxis_image, render_sbatch, time_minutes
from tests.slurm_fixtures import slurm_cluster, wait_job  # noqa: F401

GOLDEN = Path(__file__).resolve().parents[1] / "golden"

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
    assert "--container-image='nvcr.io#nvidia/nemo:26.04'" in text  # enroot 3.x REGISTRY#IMAGE
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


@pytest.mark.parametrize("text, minutes", [
    ("30", 30), ("90", 90),  # MM
    ("10:30", 11), ("10:00", 10),  # MM:SS (seconds round up)
    ("04:00:00", 240), ("04:00:01", 241), ("100:00:00", 6000),  # HH:MM:SS
    ("2-0", 2880), ("1-12", 2160),  # D-HH
    ("1-12:30", 2190), ("0-00:20", 20),  # D-HH:MM
    ("1-02:00:00", 1560), ("1-00:00:30", 1441),  # D-HH:MM:SS
])
def test_time_minutes_reads_every_slurm_form(text: str, minutes: int) -> None:
    """sbatch(1) --time: "MM", "MM:SS", "HH:MM:SS", "D-HH", "D-HH:MM", "D-HH:MM:SS"."""
    assert time_minutes(text) == minutes


@pytest.mark.parametrize("text", ["", "5h", "1-", "-12:30", "1:2:3:4", "1-1:2:3:4", "a:b", "1.5", "12:"])
def test_time_minutes_rejects_malformed(text: str) -> None:
    with pytest.raises(ConfigError, match="invalid Slurm time"):
        time_minutes(text)


def test_a_day_and_a_half_limit_allows_a_25_hour_signal_lead() -> None:
    """1-12:30 is 2190 min, so a 25 h (1500 min) signal lead fits; read as 1 day 12 min 30 s it was rejected."""
    job = SbatchJob(name="x", command=("true",), time="1-12:30", signal_seconds=1500 * 60)
    assert "#SBATCH --time=1-12:30" in render_sbatch(job)


@pytest.mark.parametrize("image, expected", [
    ("nvcr.io/nvidia/nemo:26.04", "nvcr.io#nvidia/nemo:26.04"),
    ("nvcr.io#nvidia/nemo:26.04", "nvcr.io#nvidia/nemo:26.04"),
    ("$oauthtoken@nvcr.io/nvidia/nemo:25.04", "$oauthtoken@nvcr.io#nvidia/nemo:25.04"),
    ("localhost:5000/team/nemo:1", "localhost:5000#team/nemo:1"),
    ("registry.example.org/a/b", "registry.example.org#a/b"),
    ("ubuntu:22.04", "ubuntu:22.04"),  # Docker Hub: enroot's default registry
    ("nvidia/cuda:12.4.0-base-ubuntu22.04", "nvidia/cuda:12.4.0-base-ubuntu22.04"),
    ("/shared/images/clinie-nemo.sqsh", "/shared/images/clinie-nemo.sqsh"),  # a squashfs file
    ("./clinie-nemo+26.04.sqsh", "./clinie-nemo+26.04.sqsh"),
])
def test_pyxis_image_uses_enroot_registry_syntax(image: str, expected: str) -> None:
    assert pyxis_image(image) == expected


@pytest.mark.parametrize("image", ["docker://nvcr.io/nvidia/nemo:26.04", "nvcr.io/nvidia/nemo 26.04"])
def test_pyxis_image_rejects_what_pyxis_cannot_take(image: str) -> None:
    with pytest.raises(ConfigError, match="container image"):
        SbatchJob(name="x", command=("true",), container_image=image)


def test_master_port_comes_from_the_job_id_not_a_fixed_29500() -> None:
    text = render_sbatch(JOBS["local_1gpu_bare_metal"])
    assert 'MASTER_PORT="${MASTER_PORT:-$((15000 + SLURM_JOB_ID % 15000))}"' in text
    assert "MASTER_PORT:-29500" not in text


def test_requeueing_script_traps_term_and_requeues_exit_124_with_a_cap() -> None:
    text = render_sbatch(SbatchJob(name="x", command=("true",), max_requeues=5))
    assert "trap on_stop USR1 TERM" in text
    assert 'MAX_REQUEUES="${MAX_REQUEUES:-5}"' in text
    # the cap counts our own requeues (a file beside the log), not SLURM_RESTART_COUNT (which counts preemptions)
    assert '[ "$done" -ge "$MAX_REQUEUES" ]' in text and "not requeueing again" in text
    assert 'REQUEUE_COUNT_FILE="${REQUEUE_COUNT_FILE:-$REQUEUE_DIR/.clinie-requeues-$SLURM_JOB_ID}"' in text
    assert "REQUEUE_DIR=logs\n" in text  # output logs/%x-%j.out
    assert "SLURM_RESTART_COUNT:-0}\" -ge" not in text
    after_launch = text.split("step_pid=$!", 1)[1]
    assert 'if [ "$rc" -eq 124 ]; then requeue_or_fail "$rc"; fi' in after_launch
    plain = render_sbatch(JOBS["cpu_evaluate_array_dependency"])  # requeue=False: nothing of it
    assert "trap" not in plain and "scontrol requeue" not in plain


def test_requeue_count_lives_beside_the_log_or_in_the_submit_folder() -> None:
    beside = render_sbatch(SbatchJob(name="x", command=("true",), output="/runs/it's here/slurm-%j.out"))
    assert "REQUEUE_DIR='/runs/it'\"'\"'s here'\n" in beside
    patterned = render_sbatch(SbatchJob(name="x", command=("true",), output="/runs/%x/slurm-%j.out"))
    assert 'REQUEUE_DIR="${SLURM_SUBMIT_DIR:-.}"\n' in patterned


def test_step_runs_in_its_own_session_when_the_shell_forwards_stop_signals() -> None:
    """`scancel --full` killpg()s the batch shell's process group; srun in it would abort the step (SIGTERM =
    "forcing job termination") instead of letting the trap forward SIGUSR1 (cluster test: test_slurm_requeue_cluster)."""
    text = render_sbatch(SbatchJob(name="x", command=("true",)))
    launch = [line for line in text.splitlines() if line.startswith(("srun ", "setsid "))]
    assert len(launch) == 1 and launch[0].startswith("setsid -w srun ") and launch[0].endswith(" &"), launch
    assert text.index("trap on_stop USR1 TERM") < text.index("setsid -w srun")
    plain = render_sbatch(JOBS["cpu_evaluate_array_dependency"])  # no trap: a group signal ends srun, as it should
    assert "setsid" not in plain


def test_multi_node_jobs_take_whole_nodes_and_srun_gets_cpus_per_task() -> None:
    multi = SbatchJob(name="x", command=("true",), nodes=2, gpus_per_node=8, cpus_per_task=12, gpu_type="h100")
    keys = dict(directives(multi))
    assert "exclusive" in keys and keys["exclusive"] is None and keys["mem"] == "0"
    assert keys["gpus-per-node"] == "h100:8"
    text = render_sbatch(multi)
    assert '--cpus-per-task="${SLURM_CPUS_PER_TASK:-12}"' in text.split("srun --nodes=", 1)[1]
    single = dict(directives(JOBS["local_1gpu_bare_metal"]))
    assert "exclusive" not in single and "mem" not in single
    explicit = dict(directives(SbatchJob(name="x", command=("true",), nodes=2, mem="200G")))
    assert explicit["mem"] == "200G" and "exclusive" in explicit


@pytest.mark.parametrize("field", ["partition", "account", "mem", "output", "array", "dependency", "name",
                                   "container_mounts"])
@pytest.mark.parametrize("bad", ["gpu\n#SBATCH --qos=high", "gpu\rx", "a\tb", "a\x00b", "a\u2028b"])
def test_control_characters_in_a_directive_value_are_refused(field: str, bad: str) -> None:
    """A newline in a value would add a directive (or, after the #SBATCH block, a command): refused by name."""
    kwargs = {"name": "x", "command": ("true",), field: bad}
    if field == "container_mounts":
        kwargs["container_image"] = "/shared/x.sqsh"
    with pytest.raises(ConfigError, match=rf"{field} .* contains control characters"):
        SbatchJob(**kwargs)


def test_control_characters_in_extra_directives_and_env_names_are_refused() -> None:
    with pytest.raises(ConfigError, match="extra directive qos .* contains control characters"):
        SbatchJob(name="x", command=("true",), extra_directives=(("qos", "high\n#SBATCH --exclusive"),))
    with pytest.raises(ConfigError, match="is not an sbatch long option name"):
        SbatchJob(name="x", command=("true",), extra_directives=(("qos=high\n#SBATCH --x", "y"),))
    with pytest.raises(ConfigError, match="is not a shell variable name"):
        SbatchJob(name="x", command=("true",), env=(("A; rm -rf /tmp/x #", "1"),))


@pytest.mark.parametrize("value, rendered", [
    ("logs/%x-%j.out", "logs/%x-%j.out"),  # nothing to quote: bare, as before
    ("/runs/o'brien/%j.out", '"/runs/o\'brien/%j.out"'),  # a lone quote was fatal: "Unmatched `\'`"
    ("/runs/my run/%j.out", '"/runs/my run/%j.out"'),  # unquoted, the space ended the argument
    ("/runs/exp#1/%j.out", '"/runs/exp#1/%j.out"'),  # unquoted, # started a comment
    ('/runs/a "b"/%j.out', '"/runs/a \\"b\\"/%j.out"'),
])
def test_directive_values_are_quoted_the_way_sbatch_reads_them(value: str, rendered: str) -> None:
    text = render_sbatch(SbatchJob(name="x", command=("true",), output=value))
    assert f"#SBATCH --output={rendered}\n" in text


def test_a_backslash_in_the_output_path_is_refused() -> None:
    """sbatch(1) filename patterns: a backslash means "do not process the replacement symbols" and is dropped."""
    with pytest.raises(ConfigError, match="contains a backslash"):
        SbatchJob(name="x", command=("true",), output="/runs/a\\b/%j.out")


def test_container_step_does_not_chdir_into_the_host_submission_folder() -> None:
    """pyxis v0.24.0 pyxis_slurmstepd.c:1653-1657: --container-workdir is chdir()ed into inside the container;
    the host's $PWD is not mounted there in general ("couldn't chdir"), and where it is, a checkout in it
    shadows the package installed in the image. The image's own WORKDIR unless a workdir is named."""
    text = render_sbatch(JOBS["bridge_4x8_tp8_container"])
    assert "--container-workdir" not in text and "$PWD" not in text
    named = SbatchJob(name="x", command=("true",), container_image="/shared/x.sqsh", container_workdir="/runs/lora")
    assert "--container-workdir=/runs/lora " in render_sbatch(named)
    with pytest.raises(ConfigError, match="container_workdir 'runs' must be an absolute path"):
        SbatchJob(name="x", command=("true",), container_image="/shared/x.sqsh", container_workdir="runs")


@pytest.mark.slurm
def test_sbatch_writes_the_log_to_an_output_path_with_quotes_spaces_and_hash(tmp_path, slurm_cluster) -> None:  # noqa: F811
    """The real sbatch reads the rendered #SBATCH --output line back to the same path."""
    folder = tmp_path / "o'brien run #1 \"q\""
    folder.mkdir()
    job = SbatchJob(name="quoted", command=("echo", "hello from the step"), output=f"{folder}/%x-%j.out",
                    time="00:05:00", signal_seconds=None, requeue=False)
    script = tmp_path / "job.sh"
    script.write_text(render_sbatch(job), encoding="utf-8")
    proc = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True, cwd=tmp_path,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    job_id = proc.stdout.strip().split(";")[0]
    fields = wait_job(job_id, timeout=120)
    log = folder / f"quoted-{job_id}.out"
    assert fields["JobState"] == "COMPLETED" and log.is_file(), (fields, list(tmp_path.rglob("*")))
    assert "hello from the step" in log.read_text()


def test_readme_says_which_preemption_modes_are_handled() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("Preemption and the time limit.", 1)[1].split("\n\n", 1)[0]
    for mode in ("PreemptMode=CANCEL", "PreemptMode=REQUEUE", "KillWait", "MAX_REQUEUES", "setsid"):
        assert mode in section, mode
    assert "`SLURM_RESTART_COUNT`" in section and "do not use it up" in section
