"""`clinie-nemo study`: expand a study YAML into cells and a mix -> train -> generate -> evaluate job graph,
print it (--dry-run) or submit it to Slurm through submitit (--submit), skipping finished stages."""

from __future__ import annotations

import argparse

NAME = "study"
HELP = "Plan (--dry-run) or submit (--submit) a leave-one-dataset-out study as Slurm jobs; reruns skip finished work."
EXAMPLES = """
  clinie-nemo study study.yaml --output studies/mini --dry-run
  clinie-nemo study study.yaml --output studies/mini --submit
  clinie-nemo status studies/mini
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="study YAML (datasets, folds, fractions, models, methods, seeds, resources)")
    p.add_argument("--output", required=True, help="the study folder (stages, sbatch scripts, logs, plan.json)")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--dry-run", action="store_true", help="print the graph and the jobs; submit nothing")
    mode.add_argument("--submit", action="store_true", help="submit unfinished stages to Slurm")


def describe(plan, submission, dry_run: bool) -> str:
    from clinie_nemo.study.config import STAGE_KINDS
    from clinie_nemo.study.executor import index_spec, tasks_per_node

    lines = [f"study {plan.config.name}: {len(plan.cells)} cells "
             f"({len(plan.config.folds)} held-out x {len(plan.config.fractions)} fractions x "
             f"{len(plan.config.models)} models x {len(plan.config.methods)} methods x {len(plan.config.seeds)} seeds), "
             + ", ".join(f"{len(plan.by_kind(k))} {k}" for k in STAGE_KINDS) + " stages",
             "graph: mix (CPU) -> train (GPU) -> generate (GPU) -> evaluate (CPU)"]
    for job in submission.jobs:
        r = job["resources"]
        ids = ",".join(job["job_ids"]) if job["job_ids"] else "(dry run)"
        lines.append(f"{'would submit' if dry_run else 'submitted'} {job['kind']}: {len(job['stages'])} stage(s) as "
                     f"one array [nodes={r.nodes} tasks/node={tasks_per_node(plan.config.engine, job['kind'], r)} "
                     f"gpus/node={r.gpus} cpus={r.cpus} time={r.time}"
                     f"{' at-once=' + str(r.array_parallelism) if r.array_parallelism else ''}"
                     f"{' partition=' + r.partition if r.partition else ''}"
                     f"{' container=' + r.container if r.container else ''}] "
                     f"dependency={job['dependency'] or 'none'}"
                     f"{' tasks=' + index_spec(job['task_ids']) if job.get('task_ids') is not None else ''} jobs={ids}")
        for key in job["stages"]:
            stage = plan.stages[key]
            lines.append(f"  {stage.dirname}  cells={len(stage.cells)}  {' '.join(stage.argv[:2])} ...")
    skipped = submission.skipped
    if skipped:
        states = sorted(set(skipped.values()))
        lines.append("skipped: " + ", ".join(f"{sum(v == s for v in skipped.values())} {s}" for s in states))
    lines.append(f"{'would submit' if dry_run else 'submitted'} {submission.submitted} stage(s) in "
                 f"{len(submission.jobs)} job(s)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from clinie_nemo.core.progress import say
    from clinie_nemo.study.config import load_study
    from clinie_nemo.study.plan import build_plan
    from clinie_nemo.study.submit import submit_plan

    plan = build_plan(load_study(args.config), args.output)
    submission = submit_plan(plan, dry_run=args.dry_run)
    print(describe(plan, submission, args.dry_run))
    if args.submit:
        say(f"study: follow it with `clinie-nemo status {args.output}`")
    return 0
