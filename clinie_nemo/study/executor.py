"""What submitit's SlurmExecutor is given for one stage kind: tasks per node, the executor's parameters and
interpreter, and an array's ``--array`` task-id list. Pure: no Slurm call, no submitit import, so the plan's
check (study/validate.py) can ask for every kind's settings before anything is written or submitted.

Imports engines (the registry: RANK_PER_GPU), study/config.py and study/sbatch.py; imported by
study/validate.py, study/submit.py, study/arrays.py and commands/study.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clinie_nemo import engines
from clinie_nemo.study.config import StageResources, StudyConfig
from clinie_nemo.study.sbatch import pyxis_image, time_minutes


def tasks_per_node(engine: str, kind: str, res: StageResources) -> int:
    """Slurm tasks per node for a stage: a multi-node train on bridge/nemo runs one task per GPU, each task
    one rank (RANK/LOCAL_RANK/WORLD_SIZE from Slurm, the engines then launch nothing themselves: no nested
    srun inside submitit's step, the way slurm/common.sh cn_launch does it); every other stage one task that
    launches its own workers (torchrun on its one node). A multi-node local train: one task per node, each
    one data-parallel rank (clinie_nemo/engines/local/distributed.py reads the same RANK/WORLD_SIZE)."""
    rank_per_gpu = engine in engines.ENGINES and engines.get(engine).RANK_PER_GPU  # bridge, nemo
    if kind == "train" and res.nodes > 1 and rank_per_gpu and res.gpus > 0:
        return res.gpus
    return 1


def index_spec(ids: Sequence[int]) -> str:
    """Sorted task ids as an sbatch ``--array`` index list: [0, 1, 2, 5, 7, 8] -> "0-2,5,7-8"."""
    parts: list[str] = []
    start = prev = None
    for i in ids:
        if prev is not None and i == prev + 1:
            prev = i
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = i
    if start is not None:
        parts.append(str(start) if start == prev else f"{start}-{prev}")
    return ",".join(parts)


def executor_settings(cfg: StudyConfig, study_dir: Path, kind: str, res: StageResources,
                      dependency: str | None) -> tuple[str | None, dict[str, Any]]:
    """(python, parameters) for ``submitit.SlurmExecutor(folder, python=python).update_parameters(**p)``.

    With a container, submitit's command must be the container's interpreter: SlurmExecutor's default is
    the host's ``shlex.quote(sys.executable)`` (submitit 1.5.4 submitit/slurm/slurm.py:255), and its job
    line is ``srun --unbuffered --output ... *srun_args <python> -u -m submitit.core._submit FOLDER``
    (slurm.py:354 _submitit_command_str, slurm.py:523 srun_cmd), so pyxis' --container-image in srun_args
    runs ``python`` from the image, in --container-workdir (pyxis v0.24.0 pyxis_slurmstepd.c:1653-1664: without
    it the task chdirs to the container's own cwd, not to the folder the job was submitted from).
    Arrays keep it: the array copy of the executor submits the original's command string (slurm.py:339-344).
    ``array_parallelism`` becomes ``--array=0-N%K`` (slurm.py:497).

    Always ``--requeue``: the runner requeues its own job (``scontrol requeue``), which a cluster with
    JobRequeue=0 refuses for a job submitted without it ("batch jobs will not be requeued unless explicitly
    enabled by the user. Use the sbatch --no-requeue or --requeue option", slurm.conf(5) JobRequeue, Slurm
    22.05). ``wckey=None``: submitit writes ``--wckey=submitit`` by default (its parameter ``wckey: str =
    "submitit"``, slurm.py:427) and drops parameters that are None (slurm.py:480); a wckey only where the
    stage asks for one. ``--cpus-per-task`` on submitit's srun too: srun no longer reads SLURM_CPUS_PER_TASK
    (Slurm 22.05 RELEASE_NOTES), so without it the step gets one CPU per task. qos, constraint and
    exclusive are submitit parameters (slurm.py:409, 417, 425); reservation has none (additional_parameters)."""
    extra: dict[str, Any] = {"kill-on-invalid-dep": "yes", "open-mode": "append", "requeue": True}
    if dependency:
        extra["dependency"] = dependency
    params: dict[str, Any] = {"job_name": f"{cfg.name}-{kind}", "time": time_minutes(res.time),
                              "nodes": res.nodes, "ntasks_per_node": tasks_per_node(cfg.engine, kind, res),
                              "cpus_per_task": res.cpus, "signal_delay_s": res.signal_seconds,
                              "wckey": res.wckey, "additional_parameters": extra}
    if res.gpus:
        params["gpus_per_node"] = res.gpus
    if res.array_parallelism:
        params["array_parallelism"] = res.array_parallelism
    for key in ("partition", "account", "mem", "qos", "constraint"):
        if getattr(res, key):
            params[key] = getattr(res, key)
    if res.reservation:
        extra["reservation"] = res.reservation
    if res.exclusive:
        params["exclusive"] = res.exclusive  # True -> --exclusive, "user" -> --exclusive=user
    if res.nodes > 1:  # whole nodes, as render_sbatch asks for them (clinie_nemo/study/sbatch.py)
        params.setdefault("mem", "0")
        params.setdefault("exclusive", True)
    srun_args = [f"--cpus-per-task={res.cpus}"]
    python = None
    if res.container:
        workdir = res.container_workdir or str(study_dir)
        srun_args += [f"--container-image={pyxis_image(res.container)}", f"--container-workdir={workdir}"] + (
            [f"--container-mounts={res.container_mounts}"] if res.container_mounts else [])
        python = res.container_python
    params["srun_args"] = srun_args
    return python, params
