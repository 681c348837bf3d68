"""Benchmark: expanding and rendering a 150-cell study, and jobs submitted per second to the local cluster.

1. Plan: a 5 folds x 5 fractions x 2 methods x 3 seeds study (150 cells, 1 model): load the YAML, expand
   cells, content-hash every stage (input files included), render one sbatch script per stage, and the
   dry-run submission graph. Repeated; the median is reported.
2. Submission against the running local Slurm cluster (tools/local_slurm.sh start): N trivial jobs
   (a) one `sbatch` call per job (the baseline), (b) one submitit batch (a Slurm job array), (c) the study's
   own submit path (4 arrays with afterok dependencies) for a 150-cell study whose stages are `true`.
   Every job is held (--hold / scontrol hold) and cancelled by id afterwards, so nothing runs.

usage: python benchmarks/study_plan.py [--jobs 150] [--repeat 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml  # noqa: E402

from clinie_nemo.study.config import load_study  # noqa: E402
from clinie_nemo.study.plan import build_plan, check_cells, expand_plan  # noqa: E402
from clinie_nemo.study.submit import submit_plan  # noqa: E402


def write_study(root: Path) -> Path:
    names = [f"ds{i}" for i in range(5)]
    for n in names:
        for split in ("train", "test"):
            (root / f"{n}-{split}.jsonl").write_text('{"id": "x"}\n' * 1000)
    study = {"name": "bench", "datasets": [{"name": n, "train": f"{n}-train.jsonl", "test": f"{n}-test.jsonl"}
                                           for n in names],
             "fractions": [0.05, 0.1, 0.2, 0.5, 1.0], "seeds": [1, 2, 3], "models": {"llama": "llama31_8b"},
             "methods": ["lora", "full"], "engine": "bridge",
             "resources": {"train": {"gpus": 8, "nodes": 1, "cpus": 8, "time": "04:00:00",
                                     "container": "nvcr.io/nvidia/nemo:26.04"}}}
    path = root / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def time_plan(study_yaml: Path, out: Path, repeat: int) -> dict[str, float]:
    """Plan (build_plan: expansion + the check of every cell, as a dry run and a real submit do) + the dry-run
    submission graph; the check alone (check_cells on the expanded plan) is timed separately."""
    timings, checks = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        plan = build_plan(load_study(study_yaml), out)
        submission = submit_plan(plan, dry_run=True)
        timings.append(time.perf_counter() - t0)
        expanded, stage_checks = expand_plan(load_study(study_yaml), out)
        t1 = time.perf_counter()
        check_cells(expanded, stage_checks)
        checks.append(time.perf_counter() - t1)
    assert len(plan.cells) == 150 and submission.submitted == len(plan.stages)
    return {"cells": len(plan.cells), "stages": len(plan.stages), "median_s": statistics.median(timings),
            "check_median_s": statistics.median(checks)}


def cancel(ids: list[str]) -> None:
    for i in range(0, len(ids), 200):
        subprocess.run(["scancel", *ids[i:i + 200]], check=False)


def bench_sbatch_loop(n: int, script: Path) -> float:
    ids = []
    t0 = time.perf_counter()
    for _ in range(n):
        out = subprocess.run(["sbatch", "--parsable", "--hold", "--job-name=bench-sbatch", "-o", "/dev/null",
                              str(script)], capture_output=True, text=True, check=True).stdout
        ids.append(out.strip().split(";")[0])
    elapsed = time.perf_counter() - t0
    cancel(ids)
    return n / elapsed


def bench_submitit_array(n: int, folder: Path) -> float:
    import submitit

    executor = submitit.SlurmExecutor(folder=folder / "%j")
    executor.update_parameters(job_name="bench-submitit", time=5, additional_parameters={"hold": True})
    t0 = time.perf_counter()
    with executor.batch():
        jobs = [executor.submit(print, i) for i in range(n)]
    elapsed = time.perf_counter() - t0
    cancel(sorted({j.job_id.split("_")[0] for j in jobs}))
    return n / elapsed


def bench_study_submit(study_yaml: Path, out: Path) -> tuple[float, int]:
    plan = build_plan(load_study(study_yaml), out)
    stages = {k: dataclasses.replace(s, argv=("true",)) for k, s in plan.stages.items()}
    plan = dataclasses.replace(plan, stages=stages)

    def held(folder):
        import submitit

        ex = submitit.SlurmExecutor(folder=folder)
        ex.update_parameters = _with_hold(ex.update_parameters)
        return ex

    t0 = time.perf_counter()
    submission = submit_plan(plan, executor_factory=held)
    elapsed = time.perf_counter() - t0
    cancel(sorted({i.split("_")[0] for j in submission.jobs for i in j["job_ids"]}))
    return submission.submitted / elapsed, submission.submitted


def _with_hold(update):
    def wrapped(**params):
        params.setdefault("additional_parameters", {})["hold"] = True
        params.pop("gpus_per_node", None)  # the local cluster has one fake GPU; held jobs never run anyway
        params["cpus_per_task"] = 1
        return update(**params)
    return wrapped


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in subprocess.run(
        ["lscpu"], capture_output=True, text=True).stdout.splitlines() if line.startswith("Model name")), "?")
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=150)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        study_yaml = write_study(root)
        plan = time_plan(study_yaml, root / "plan_out", args.repeat)
        print(f"machine: {machine()}; date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
        print(f"plan: {plan['cells']} cells, {plan['stages']} stages expanded + hashed + every cell checked + "
              f"graph in {plan['median_s'] * 1000:.1f} ms (median of {args.repeat}); "
              f"{plan['median_s'] / plan['cells'] * 1000:.3f} ms per cell; the pre-submit check alone "
              f"{plan['check_median_s'] * 1000:.1f} ms ({plan['check_median_s'] / plan['median_s']:.0%})")
        script = root / "trivial.sh"
        script.write_text("#!/bin/bash\ntrue\n")
        loop = bench_sbatch_loop(args.jobs, script)
        array = bench_submitit_array(args.jobs, root / "submitit")
        study_rate, n = bench_study_submit(study_yaml, root / "study_out")
        print(f"submit: one sbatch per job (baseline) {loop:.1f} jobs/s; submitit array {array:.1f} jobs/s "
              f"({array / loop:.1f}x); study --submit path {study_rate:.1f} stages/s for {n} stages "
              f"({study_rate / loop:.1f}x)")
        print(f"planning the whole study takes {plan['median_s'] * loop:.2f}x the time of one sbatch call")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
