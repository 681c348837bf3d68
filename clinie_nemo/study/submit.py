"""Submit a study's job graph through submitit, skipping what is finished or already queued.

Per stage kind (mix -> train -> generate -> evaluate) the stages still to run share one shape (the kind's
resources), so they go out as one submitit batch (a Slurm job array), depending ``afterok`` on the upstream
jobs still queued or running (finished upstream stages need no dependency). Each stage folder gets
stage.json (what the runner executes), its input files, and job.json (every job id it was submitted as);
STUDY_DIR/sbatch/<stage>.sbatch keeps an equivalent standalone sbatch script for audit. Nothing finished is
deleted or rewritten: a stage with DONE (or a queued/running job) is left alone.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinie_nemo.fileio import atomic_write
from clinie_nemo.slurm.sbatch import SbatchJob, render_sbatch, time_minutes
from clinie_nemo.study.config import STAGE_KINDS, StageResources
from clinie_nemo.study.plan import Stage, StudyPlan, plan_json

ACTIVE = {"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "COMPLETING",
          "SUSPENDED", "RESIZING", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD"}


def slurm_job_state(job_id: str) -> str | None:
    """JobState from `scontrol show job -o` (None when Slurm no longer knows the job)."""
    try:
        out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for token in out.split():
        if token.startswith("JobState="):
            return token.split("=", 1)[1]
    return None


def last_job(stage_dir: Path) -> str | None:
    path = stage_dir / "job.json"
    if not path.exists():
        return None
    history = json.loads(path.read_text(encoding="utf-8")).get("jobs", [])
    return history[-1]["job_id"] if history else None


def stage_state(stage_dir: Path) -> tuple[str, str | None]:
    """(state, job id): done | queued | running | failed | lost (Slurm forgot it) | new."""
    job = last_job(stage_dir)
    if (stage_dir / "DONE").exists():
        return "done", job
    if job is None:
        return "new", None
    state = slurm_job_state(job)
    if state is None:
        return "lost", job
    if state == "RUNNING":
        return "running", job
    if state in ACTIVE:
        return "queued", job
    return "failed", job


def sbatch_job(plan: StudyPlan, stage: Stage, res: StageResources, dependency: str | None) -> SbatchJob:
    stage_dir = plan.stage_dir(stage.key)
    return SbatchJob(name=f"{plan.config.name}-{stage.kind}", command=("clinie-nemo", "run-stage", str(stage_dir)),
                     nodes=res.nodes, gpus_per_node=res.gpus, cpus_per_task=res.cpus, mem=res.mem, time=res.time,
                     partition=res.partition, account=res.account, output=f"{stage_dir}/slurm-%j.out",
                     signal_seconds=res.signal_seconds, dependency=dependency,
                     container_image=res.container, container_mounts=res.container_mounts, tasks_per_gpu=False)


def prepare_stage(plan: StudyPlan, stage: Stage) -> Path:
    """stage.json and input files (never touching outputs)."""
    d = plan.stage_dir(stage.key)
    d.mkdir(parents=True, exist_ok=True)
    res = plan.config.stage_resources(stage.kind)
    spec: dict[str, Any] = {"kind": stage.kind, "key": stage.key, "argv": list(stage.argv), "output": stage.output,
                            "atomic_output": stage.atomic_output, "gpus": res.gpus * res.nodes,
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


def dependency_for(todo: list[Stage], job_of: dict[str, str]) -> str | None:
    """The --dependency of one array of stages. Only the direct parent (upstream[0]) counts: the chain makes
    the others transitive. When task i of the parent array feeds task i of this one, ``aftercorr`` lets
    each cell go on as soon as its own parent finishes (and a failed cell stops only itself); otherwise
    ``afterok`` on every parent job still queued or running."""
    parents = [job_of.get(s.upstream[0]) if s.upstream else None for s in todo]
    arrays = {p.split("_")[0] for p in parents if p}
    if (len(arrays) == 1 and all(p and "_" in p for p in parents)
            and [p.split("_")[1] for p in parents] == [str(i) for i in range(len(todo))]):  # type: ignore[union-attr]
        return f"aftercorr:{arrays.pop()}"
    active = sorted({p for p in parents if p})
    return "afterok:" + ":".join(active) if active else None


@dataclass
class Submission:
    """What a submit (or dry run) did: stages per state and the jobs it sent, in order."""

    skipped: dict[str, str] = field(default_factory=dict)  # key -> state (done / queued / running)
    jobs: list[dict[str, Any]] = field(default_factory=list)  # {"kind", "stages", "job_ids", "dependency"}

    @property
    def submitted(self) -> int:
        return sum(len(j["stages"]) for j in self.jobs)


def submit_plan(plan: StudyPlan, dry_run: bool = False, executor_factory: Any = None) -> Submission:
    """Submit every unfinished, unqueued stage; returns what was (or, dry, would be) submitted."""
    result = Submission()
    job_of: dict[str, str] = {}
    if not dry_run:
        plan.study_dir.mkdir(parents=True, exist_ok=True)
        with atomic_write(plan.study_dir / "plan.json") as fh:
            json.dump(plan_json(plan), fh, indent=2)
    for kind in STAGE_KINDS:
        todo: list[Stage] = []
        for stage in plan.by_kind(kind):
            state, job = stage_state(plan.stage_dir(stage.key))
            if state in ("done", "queued", "running"):
                result.skipped[stage.key] = state
                if state != "done" and job:
                    job_of[stage.key] = job
            else:
                todo.append(stage)
        if not todo:
            continue
        dependency = dependency_for(todo, job_of)
        res = plan.config.stage_resources(kind)
        entry: dict[str, Any] = {"kind": kind, "stages": [s.key for s in todo], "dependency": dependency,
                                 "job_ids": [], "resources": res}
        if dry_run:
            for s in todo:
                job_of[s.key] = f"<{kind}:{s.key[:6]}>"
            result.jobs.append(entry)
            continue
        dirs = [prepare_stage(plan, s) for s in todo]
        ids = _submit_batch(plan, kind, res, dirs, dependency, executor_factory)
        (plan.study_dir / "sbatch").mkdir(exist_ok=True)
        for stage, d, job_id in zip(todo, dirs, ids):
            _record_job(d, job_id)
            job_of[stage.key] = job_id
            with atomic_write(plan.study_dir / "sbatch" / f"{stage.dirname}.sbatch") as fh:
                fh.write(render_sbatch(sbatch_job(plan, stage, res, dependency)))
        entry["job_ids"] = ids
        result.jobs.append(entry)
    return result


def _submit_batch(plan: StudyPlan, kind: str, res: StageResources, dirs: list[Path], dependency: str | None,
                  executor_factory: Any) -> list[str]:
    import submitit

    from clinie_nemo.study.runner import StageJob

    folder = plan.study_dir / "submitit" / "%j"
    executor = executor_factory(folder) if executor_factory else submitit.SlurmExecutor(folder=folder)
    extra: dict[str, Any] = {"kill-on-invalid-dep": "yes", "open-mode": "append"}
    if dependency:
        extra["dependency"] = dependency
    params: dict[str, Any] = {"job_name": f"{plan.config.name}-{kind}", "time": time_minutes(res.time),
                              "nodes": res.nodes, "ntasks_per_node": 1, "cpus_per_task": res.cpus,
                              "signal_delay_s": res.signal_seconds, "additional_parameters": extra}
    if res.gpus:
        params["gpus_per_node"] = res.gpus
    for key in ("partition", "account", "mem"):
        if getattr(res, key):
            params[key] = getattr(res, key)
    if res.container:
        params["srun_args"] = [f"--container-image={res.container}"] + (
            [f"--container-mounts={res.container_mounts}"] if res.container_mounts else [])
    executor.update_parameters(**params)
    with executor.batch():
        jobs = [executor.submit(StageJob(str(d))) for d in dirs]
    return [str(j.job_id) for j in jobs]
