"""GPU cost of study stages and cells: elapsed time x GPUs, from `sacct` when Slurm accounting exists, else
from the job's own timing (timing.jsonl, one segment per attempt, written by the stage runner from inside
the job, so a requeued job counts every attempt).

The evaluate stage writes ``cost.json`` beside ``scores.json``:
``{"gpu_hours": float, "stages": {kind: {...}}, "model", "method", "fold", "fraction", "seed", "steps"}``.
:func:`cost_table` compares LoRA with full fine-tuning like for like (same model, data and steps).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from clinie_nemo.core.fileio import atomic_write


def accounting_available() -> bool:
    """Whether `sacct` answers (Slurm accounting on), asked once per cluster config."""
    return _accounting_available(os.environ.get("SLURM_CONF", ""))


@functools.lru_cache(maxsize=8)
def _accounting_available(_slurm_conf: str) -> bool:
    try:
        proc = subprocess.run(["sacct", "-n", "-X", "-o", "JobID", "-S", "now"], capture_output=True, text=True,
                              timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and "disabled" not in (proc.stderr + proc.stdout).lower()


def sacct_usage(job_ids: list[str]) -> dict[str, tuple[float, int]]:
    """job id -> (elapsed seconds summed over requeued attempts, GPUs) from sacct."""
    proc = subprocess.run(["sacct", "-n", "-X", "-D", "-P", "-j", ",".join(job_ids), "-o",
                           "JobIDRaw,ElapsedRaw,AllocTRES,State"], capture_output=True, text=True, timeout=60)
    usage: dict[str, tuple[float, int]] = {}
    for line in proc.stdout.splitlines():
        parts = line.split("|")
        # a pending record has an elapsed time but no allocation: it used nothing
        if len(parts) < 4 or not parts[1].isdigit() or not parts[2] or parts[3].startswith("PENDING"):
            continue
        gpus = 0
        for tres in parts[2].split(","):
            if tres.startswith("gres/gpu="):
                gpus = int(tres.split("=")[1])
        elapsed, _ = usage.get(parts[0], (0.0, gpus))
        usage[parts[0]] = (elapsed + float(parts[1]), gpus)
    return usage


def read_segments(stage_dir: Path) -> list[dict[str, Any]]:
    path = stage_dir / "timing.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def stage_cost(stage_dir: str | Path, usage: dict[str, tuple[float, int]] | None = None) -> dict[str, Any]:
    """{"elapsed_s", "gpus", "gpu_hours", "job_ids", "attempts", "source"} for one stage folder. ``usage``: one
    :func:`sacct_usage` answer for many stages (status asks once per poll); None = ask sacct here."""
    d = Path(stage_dir)
    segments = read_segments(d)
    job_ids = sorted({s["job_id"] for s in segments if s.get("job_id")})
    elapsed = sum(s.get("elapsed_s", 0.0) for s in segments)
    gpu_seconds = sum(s.get("elapsed_s", 0.0) * s.get("gpus", 0) for s in segments)
    source = "job timing"
    if job_ids and (usage is not None or accounting_available()):
        usage = sacct_usage(job_ids) if usage is None else {j: usage[j] for j in job_ids if j in usage}
        if usage:
            elapsed = sum(e for e, _ in usage.values())
            gpu_seconds = sum(e * g for e, g in usage.values())
            source = "sacct"
    gpus = max((s.get("gpus", 0) for s in segments), default=0)
    return {"elapsed_s": round(elapsed, 3), "gpus": gpus, "gpu_hours": round(gpu_seconds / 3600.0, 6),
            "job_ids": job_ids, "attempts": len(segments), "source": source}


def trained_steps(run_dir: Path) -> int | None:
    """The last step in a run's metrics.jsonl (the like-for-like key of the LoRA-vs-full comparison)."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return None
    steps = [json.loads(line).get("step") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    steps = [s for s in steps if isinstance(s, int)]
    return max(steps) if steps else None


def write_cell_cost(eval_dir: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """cost.json beside scores.json: the cell's stages (mix, train, generate, this evaluate) summed."""
    stages = {kind: stage_cost(Path(path)) for kind, path in spec.get("cell_stages", {}).items()}
    stages["evaluate"] = stage_cost(eval_dir)
    train_dir = spec.get("cell_stages", {}).get("train")
    cost = {"gpu_hours": round(sum(s["gpu_hours"] for s in stages.values()), 6), "stages": stages,
            **spec.get("tags", {}), "steps": trained_steps(Path(train_dir) / "run") if train_dir else None}
    with atomic_write(eval_dir / "cost.json") as fh:
        json.dump(cost, fh, indent=2)
    return cost


def cost_rows(study_dir: str | Path) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(Path(study_dir).glob("stages/evaluate-*/cost.json")):
        rows.append(json.loads(path.read_text(encoding="utf-8")))
    return rows


def cost_table(study_dir: str | Path) -> str:
    """Markdown: GPU-hours per cell, then LoRA vs full like for like (same model, fold, fraction, seed and
    trained steps) with the full/LoRA ratio."""
    rows = cost_rows(study_dir)
    lines = ["| model | method | fold | fraction | seed | steps | GPU-hours |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.get('model')} | {r.get('method')} | {r.get('fold')} | {r.get('fraction')} | "
                     f"{r.get('seed')} | {r.get('steps')} | {r['gpu_hours']:.4f} |")
    pairs: dict[tuple, dict[str, float]] = {}
    for r in rows:
        key = (r.get("model"), r.get("fold"), r.get("fraction"), r.get("seed"), r.get("steps"))
        pairs.setdefault(key, {})[str(r.get("method"))] = r["stages"].get("train", {}).get("gpu_hours", 0.0)
    lines += ["", "LoRA vs full fine-tuning, like for like (training GPU-hours; same model, data and steps):", "",
              "| model | fold | fraction | seed | steps | LoRA | full | full / LoRA |", "|---|---|---|---|---|---|---|---|"]
    for key, by_method in sorted(pairs.items(), key=lambda kv: tuple(map(str, kv[0]))):
        if "lora" in by_method and "full" in by_method:
            lora, full = by_method["lora"], by_method["full"]
            ratio = f"{full / lora:.2f}x" if lora > 0 else "n/a"
            lines.append("| " + " | ".join(map(str, key)) + f" | {lora:.4f} | {full:.4f} | {ratio} |")
    return "\n".join(lines) + "\n"
