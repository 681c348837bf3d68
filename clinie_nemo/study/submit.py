"""Submit a study's job graph through submitit, skipping what is finished or already queued.

Every cell was checked when its plan was built (study/plan.py build_plan, study/validate.py: its train spec,
generate config, mixture, input paths and the resources of every stage kind): one invalid cell makes no plan,
so nothing is written or submitted. The submitit executor's settings come from study/executor.py.
A submit holds the study's lock (STUDY_DIR/SUBMIT.lock, study/lock.py) from its Slurm query to its last
sbatch, so two concurrent ``study --submit`` on one folder cannot both submit the same stages.

Per stage kind (mix -> train -> generate -> evaluate) the stages still to run share one shape (the kind's
resources), so they go out as submitit batches (Slurm job arrays, at most MaxArraySize tasks each, ``%N``
throttled by the kind's ``array_parallelism``). Each array's task ids are those of its parents' tasks, so
the dependency is ``aftercorr`` (train task i waits for mix task i only), also when the parent array is
partly finished (the children of its tasks 5-999 go out as one array with ids 5-999, study/arrays.py), not
one job per stage. Each stage folder gets stage.json (what the runner executes), its input files, and
job.json (every job id it was submitted as); STUDY_DIR/sbatch/<stage>.sbatch is a copy of the very script
submitit gave sbatch for it (its array's script). Nothing finished is deleted or rewritten: a stage with
DONE, a live RUNNING.lock, or a queued/running job is left alone. Slurm is asked once per submit/poll (one
squeue for every job), and a failed query stops the submit instead of reading as "lost" (which would
resubmit).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinie_nemo.core.errors import ClinieError
from clinie_nemo.core.fileio import atomic_write
from clinie_nemo.study import lock
from clinie_nemo.study.config import STAGE_KINDS, StageResources
from clinie_nemo.study.executor import executor_settings, tasks_per_node
from clinie_nemo.study.plan import Stage, StudyPlan, plan_json

ACTIVE = {"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "COMPLETING",
          "SUSPENDED", "RESIZING", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD"}
DEFAULT_MAX_ARRAY_SIZE = 1001  # Slurm's default MaxArraySize (slurm.conf(5))
SUBMIT_LOCK = "SUBMIT.lock"  # in STUDY_DIR, held for a whole submit


class SlurmQueryError(ClinieError):
    """squeue failed or timed out: the jobs' states are unknown, so nothing may be (re)submitted."""


class SubmitError(ClinieError):
    """sbatch refused a job: the stages submitted before it stay queued, a rerun submits the rest."""


class StudyBusyError(ClinieError):
    """Another submit holds the study's lock: this one submits nothing."""


@contextlib.contextmanager
def submit_lock(study_dir: Path):
    """Hold STUDY_DIR/SUBMIT.lock (heart-beating) for the whole submit; StudyBusyError when another live submit
    holds it. A killed submit's lock goes stale after lock.STALE_S without heartbeat and is taken over."""
    me = f"submit pid {os.getpid()} on {socket.gethostname()}"
    owner = lock.acquire(study_dir, me, name=SUBMIT_LOCK)
    if owner is not None:
        raise StudyBusyError(f"{study_dir}: another `clinie-nemo study --submit` ({owner}) is submitting this study "
                             f"now ({study_dir / SUBMIT_LOCK}); nothing was submitted. Run it again when that one "
                             "has finished: it skips what that one submitted (the lock of a killed submit is taken "
                             f"over {lock.STALE_S:.0f} s after its last heartbeat)")
    try:
        with lock.Heartbeat(study_dir, name=SUBMIT_LOCK):
            yield
    finally:
        lock.release(study_dir, me, name=SUBMIT_LOCK)


def _base_id(job_id: str) -> str:
    return job_id.split("_", 1)[0]


def slurm_states(job_ids: Iterable[str]) -> dict[str, str]:
    """JobState of the given jobs (submitit ids: "123" or "123_4") from ONE ``squeue`` call (every task of
    every array, finished jobs included while Slurm keeps them, MinJobAge); ids squeue no longer knows get
    one more ``sacct`` call when accounting is on. An id absent from the answer is unknown to Slurm.
    Raises SlurmQueryError when squeue itself fails: an unanswered query must not read as "lost"."""
    wanted = sorted(set(job_ids))
    if not wanted:
        return {}
    bases = sorted({_base_id(j) for j in wanted})
    cmd = ["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T", f"--jobs={','.join(bases)}"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SlurmQueryError(f"could not query Slurm ({' '.join(cmd[:4])} ...): {exc}; submitting nothing") from None
    if proc.returncode != 0 and "Invalid job id" not in proc.stderr:
        raise SlurmQueryError(f"squeue failed (exit {proc.returncode}): {proc.stderr.strip()[:300]}; "
                              "submitting nothing")
    states = _parse_pairs(proc.stdout)
    missing = [j for j in wanted if j not in states]
    if missing and shutil.which("sacct"):  # purged from the controller: ask accounting, once
        try:
            acct = subprocess.run(["sacct", "--noheader", "--parsable2", "--allocations", "--format=JobID,State",
                                   f"--jobs={','.join(missing)}"], capture_output=True, text=True, timeout=60)
            if acct.returncode == 0:
                for job, state in _parse_pairs(acct.stdout).items():
                    states.setdefault(job, state.split()[0])  # "CANCELLED by 0" -> CANCELLED
        except (OSError, subprocess.TimeoutExpired):
            pass
    return {j: states[j] for j in wanted if j in states}


def _parse_pairs(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        job, sep, state = line.strip().partition("|")
        if sep and job and state:
            out[job] = state.strip()
    return out


def job_history(stage_dir: Path) -> list[str]:
    path = stage_dir / "job.json"
    if not path.exists():
        return []
    return [str(j["job_id"]) for j in json.loads(path.read_text(encoding="utf-8")).get("jobs", [])]


def last_job(stage_dir: Path) -> str | None:
    history = job_history(stage_dir)
    return history[-1] if history else None


def stage_state(stage_dir: Path, states: dict[str, str] | None = None) -> tuple[str, str | None]:
    """(state, job id): done | queued | running | failed | lost (Slurm forgot it) | new. ``states`` is the
    answer of one :func:`slurm_states` call for every job (queried here only when not given). A stage is
    running while any of its jobs runs, or while a runner holds its live lock (a job whose sbatch answer
    was lost is never recorded in job.json, but its runner's lock is)."""
    history = job_history(stage_dir)
    if (stage_dir / "DONE").exists():
        return "done", history[-1] if history else None
    holder = lock.lock_holder(stage_dir)
    if holder is not None:  # an array task's own id ("123_4"): its children line up with it (aftercorr)
        return "running", str(holder.get("display_id") or holder.get("job_id") or "?")
    if not history:
        return "new", None
    if states is None:
        states = slurm_states(history)
    for wanted, name in (({"RUNNING"}, "running"), (ACTIVE, "queued")):
        for job in reversed(history):
            if states.get(job) in wanted:
                return name, job
    return ("lost" if history[-1] not in states else "failed"), history[-1]


def plan_states(stage_dirs: Iterable[Path]) -> dict[str, str]:
    """One Slurm query for the recorded jobs of every unfinished stage folder."""
    jobs = [j for d in stage_dirs if not (d / "DONE").exists() for j in job_history(d)]
    return slurm_states(jobs)


@functools.lru_cache(maxsize=1)
def max_array_size() -> int:
    """How many tasks one array may have: MaxArraySize from ``scontrol show config``, read once per process
    (slurm.conf(5): task indexes go up to MaxArraySize - 1; 0 disables arrays, so every stage is one job)."""
    try:
        out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return DEFAULT_MAX_ARRAY_SIZE
    m = re.search(r"^MaxArraySize\s*=\s*(\d+)", out, re.M)
    return max(1, int(m.group(1))) if m else DEFAULT_MAX_ARRAY_SIZE


def prepare_stage(plan: StudyPlan, stage: Stage) -> Path:
    """stage.json and input files (never touching outputs)."""
    d = plan.stage_dir(stage.key)
    d.mkdir(parents=True, exist_ok=True)
    res = plan.config.stage_resources(stage.kind)
    spec: dict[str, Any] = {"kind": stage.kind, "key": stage.key, "argv": list(stage.argv), "output": stage.output,
                            "atomic_output": stage.atomic_output, "gpus": res.gpus * res.nodes,
                            "world_size": tasks_per_node(plan.config.engine, stage.kind, res) * res.nodes,
                            "max_requeues": res.max_requeues,
                            "upstream": [str(plan.stage_dir(u)) for u in stage.upstream]}
    if stage.kind == "evaluate":
        cell = next(c for c in plan.cells if c.name == stage.cells[0])
        kinds = plan.cell_stages[cell.name]
        spec["cell_stages"] = {k: str(plan.stage_dir(kinds[k])) for k in ("mix", "train", "generate")}
        spec["tags"] = {**cell.tags(), "engine": plan.config.engine}
    with atomic_write(d / "stage.json") as fh:
        json.dump(spec, fh, indent=2)
    for name, text in stage.files:
        with atomic_write(d / name) as fh:
            fh.write(text)
    return d


def _record_job(stage_dir: Path, job_id: str) -> None:
    path = stage_dir / "job.json"
    history = json.loads(path.read_text(encoding="utf-8"))["jobs"] if path.exists() else []
    history.append({"job_id": job_id})
    with atomic_write(path) as fh:
        json.dump({"jobs": history}, fh, indent=2)


Group = tuple[list[Stage], str | None]


def parent_task(stage: Stage, job_of: dict[str, str]) -> int | None:
    """The array task id of the stage's direct parent job ("123_4" -> 4), None for a plain job or none."""
    parent = job_of.get(stage.upstream[0]) if stage.upstream else None
    if parent and "_" in parent and parent.rsplit("_", 1)[1].isdigit():
        return int(parent.rsplit("_", 1)[1])
    return None


def job_groups(todo: list[Stage], job_of: dict[str, str], max_size: int | None = None) -> list[Group]:
    """Split one kind's stages into arrays of at most ``max_size`` tasks, each with its --dependency, so that
    every stage waits for its own parent only (its direct parent, upstream[0]; the chain makes the others
    transitive). Stages whose parent is task j of array A go out as rounds (the k-th child of every task of
    A): round k is ONE array whose task ids are A's task ids (see :func:`group_task_ids`), ``aftercorr:A``
    (a failed cell stops only itself), whichever of A's tasks already finished. A round of one stage goes out
    as a plain job waiting ``afterok:A_j``; children of a plain job ``afterok:J``; stages whose parent
    finished have no dependency (one array)."""
    limit = max(1, max_size if max_size is not None else max_array_size())
    free: list[Stage] = []
    plain: dict[str, list[Stage]] = {}
    arrays: dict[str, dict[int, list[Stage]]] = {}
    for stage in todo:
        parent = job_of.get(stage.upstream[0]) if stage.upstream else None
        task = parent_task(stage, job_of)
        if not parent:
            free.append(stage)
        elif task is not None:
            arrays.setdefault(parent.rsplit("_", 1)[0], {}).setdefault(task, []).append(stage)
        else:
            plain.setdefault(parent, []).append(stage)
    groups: list[Group] = [(free[i:i + limit], None) for i in range(0, len(free), limit)]
    for parent, stages in plain.items():
        groups += [(stages[i:i + limit], f"afterok:{parent}") for i in range(0, len(stages), limit)]
    for array, children in arrays.items():
        for k in range(max(len(c) for c in children.values())):
            tasks = sorted(t for t, c in children.items() if len(c) > k)
            if len(tasks) == 1:  # one stage goes out as a plain job, not an array: name its parent task
                groups.append(([children[tasks[0]][k]], f"afterok:{array}_{tasks[0]}"))
                continue
            for i in range(0, len(tasks), limit):
                groups.append(([children[t][k] for t in tasks[i:i + limit]], f"aftercorr:{array}"))
    return groups


def group_task_ids(stages: list[Stage], dependency: str | None, job_of: dict[str, str]) -> list[int] | None:
    """The array task ids a group goes out with: its parents' task ids for ``aftercorr`` (task i waits for
    the parent array's task i), else None (submitit's 0..n-1, or a plain job for one stage)."""
    if not dependency or not dependency.startswith("aftercorr:"):
        return None
    ids = [parent_task(s, job_of) for s in stages]
    assert all(i is not None for i in ids), "aftercorr group with a stage whose parent is no array task"
    return [int(i) for i in ids]  # type: ignore[arg-type]


def dependency_for(todo: list[Stage], job_of: dict[str, str]) -> str | None:
    """The single --dependency of ``todo`` when it goes out as one array (see :func:`job_groups`)."""
    groups = job_groups(todo, job_of, max_size=len(todo) or 1)
    if len(groups) == 1:
        return groups[0][1]
    parents = sorted({job_of[s.upstream[0]] for s in todo if s.upstream and job_of.get(s.upstream[0])})
    return "afterok:" + ":".join(parents) if parents else None


@dataclass
class Submission:
    """What a submit (or dry run) did: stages per state and the jobs it sent, in order."""

    skipped: dict[str, str] = field(default_factory=dict)  # key -> state (done / queued / running)
    jobs: list[dict[str, Any]] = field(default_factory=list)  # {"kind", "stages", "job_ids", "dependency"}

    @property
    def submitted(self) -> int:
        return sum(len(j["stages"]) for j in self.jobs)


def submit_plan(plan: StudyPlan, dry_run: bool = False, executor_factory: Any = None) -> Submission:
    """Submit every unfinished, unqueued stage; returns what was (or, dry, would be) submitted. Every cell was
    checked when the plan was built (study/plan.py build_plan: ConfigError naming the cells, before anything is
    written or submitted); a real submit holds the study's lock (StudyBusyError while another submit runs)."""
    if dry_run:
        return _submit(plan, True, executor_factory)
    plan.study_dir.mkdir(parents=True, exist_ok=True)
    with submit_lock(plan.study_dir):
        return _submit(plan, False, executor_factory)


def _submit(plan: StudyPlan, dry_run: bool, executor_factory: Any) -> Submission:
    """Kind by kind (mix -> train -> generate -> evaluate): skip what is finished or queued, group the rest into
    arrays with their dependencies, and submit each group (dry: name its jobs ``<kind#N>_i`` instead)."""
    result = Submission()
    job_of: dict[str, str] = {}  # stage key -> the job it was (or, dry, would be) submitted as
    states = plan_states(plan.stage_dir(k) for k in plan.stages)  # one Slurm query for the whole plan
    if not dry_run:
        with atomic_write(plan.study_dir / "plan.json") as fh:
            json.dump(plan_json(plan), fh, indent=2)
    for kind in STAGE_KINDS:
        todo = _stages_to_submit(plan, kind, states, result, job_of)
        res = plan.config.stage_resources(kind)
        for stages, dependency in job_groups(todo, job_of):
            task_ids = group_task_ids(stages, dependency, job_of)
            entry: dict[str, Any] = {"kind": kind, "stages": [s.key for s in stages], "dependency": dependency,
                                     "job_ids": [], "resources": res, "task_ids": task_ids}
            result.jobs.append(entry)
            if dry_run:
                _name_dry_run_jobs(kind, len(result.jobs), stages, task_ids, job_of)
            else:
                entry["job_ids"] = _submit_group(plan, kind, stages, dependency, task_ids, executor_factory, job_of)
    return result


def _stages_to_submit(plan: StudyPlan, kind: str, states: dict[str, str], result: Submission,
                      job_of: dict[str, str]) -> list[Stage]:
    """The kind's stages that are neither done nor queued nor running; the others go to ``result.skipped``
    (a queued or running one's job to ``job_of``, so that its children wait for it)."""
    todo: list[Stage] = []
    for stage in plan.by_kind(kind):
        state, job = stage_state(plan.stage_dir(stage.key), states)
        if state in ("done", "queued", "running"):
            result.skipped[stage.key] = state
            if state != "done" and job:
                job_of[stage.key] = job
        else:
            todo.append(stage)
    return todo


def _name_dry_run_jobs(kind: str, number: int, stages: list[Stage], task_ids: list[int] | None,
                       job_of: dict[str, str]) -> None:
    """A dry run's stand-in job ids: ``<train#3>_i`` for the tasks of the dry run's 3rd array, ``<train#3>`` alone."""
    ids = task_ids if task_ids is not None else list(range(len(stages)))
    for s, i in zip(stages, ids):
        job_of[s.key] = f"<{kind}#{number}>_{i}" if len(stages) > 1 else f"<{kind}#{number}>"


def _submit_group(plan: StudyPlan, kind: str, stages: list[Stage], dependency: str | None,
                  task_ids: list[int] | None, executor_factory: Any, job_of: dict[str, str]) -> list[str]:
    """Prepare the stages' folders, submit them as one batch, record each job (job.json, ``job_of``) and the
    audit copy of the script sbatch got; returns the job ids."""
    from clinie_nemo.study.arrays import submission_file  # submitit is imported only to submit

    dirs = [prepare_stage(plan, s) for s in stages]
    ids = _submit_batch(plan, kind, plan.config.stage_resources(kind), dirs, dependency, executor_factory, task_ids)
    script = submission_file(plan.study_dir / "submitit" / "%j", ids[0]).read_bytes()
    for stage, d, job_id in zip(stages, dirs, ids):
        _record_job(d, job_id)
        job_of[stage.key] = job_id
        # the audit copy IS what sbatch got: submitit's own submission file for this job / array
        with atomic_write(plan.study_dir / "sbatch" / f"{stage.dirname}.sbatch", "wb") as fh:
            fh.write(script)
    return ids


def _submit_batch(plan: StudyPlan, kind: str, res: StageResources, dirs: list[Path], dependency: str | None,
                  executor_factory: Any, task_ids: list[int] | None = None) -> list[str]:
    from submitit.core.utils import FailedJobError, FailedSubmissionError

    from clinie_nemo.study.arrays import IndexedArrayExecutor
    from clinie_nemo.study.runner import StageJob

    folder = plan.study_dir / "submitit" / "%j"
    python, params = executor_settings(plan.config, plan.study_dir, kind, res, dependency)
    executor = executor_factory(folder) if executor_factory else IndexedArrayExecutor(folder, python=python)
    executor.task_ids = task_ids
    executor.update_parameters(**params)
    try:
        with executor.batch():
            jobs = [executor.submit(StageJob(str(d))) for d in dirs]
    except (FailedJobError, FailedSubmissionError) as exc:  # sbatch refused it (QOS limits, ...)
        raise SubmitError(f"sbatch refused the {kind} job ({len(dirs)} stage(s)): {str(exc).strip()[:500]}; what "
                          "was submitted before it stays queued: run the submit again to send the rest") from None
    return [str(j.job_id) for j in jobs]
