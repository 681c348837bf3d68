"""`clinie-nemo status STUDY_DIR`: a table of cells x stages (state, job id, elapsed, GPU-hours), read from
STUDY_DIR/plan.json, each stage folder's DONE/RUNNING.lock/job.json/timing.jsonl, and Slurm for live jobs:
ONE squeue call per poll for every job of the study (submit.plan_states), not one query per stage."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from clinie_nemo.core.errors import ConfigError
from clinie_nemo.study.config import STAGE_KINDS
from clinie_nemo.study.cost import accounting_available, read_segments, sacct_usage, stage_cost
from clinie_nemo.study.submit import plan_states, stage_state


def load_plan_json(study_dir: str | Path) -> dict[str, Any]:
    path = Path(study_dir) / "plan.json"
    if not path.exists():
        raise ConfigError(f"{study_dir} is not a study folder (no plan.json); run `clinie-nemo study ... --submit`")
    return json.loads(path.read_text(encoding="utf-8"))


def stage_rows(study_dir: str | Path) -> dict[str, dict[str, Any]]:
    """stage key -> {"kind", "state", "job", "elapsed_s", "gpu_hours"}."""
    root = Path(study_dir)
    plan = load_plan_json(root)
    rows = {}
    dirs = [root / stage["dir"] for stage in plan["stages"].values()]
    states = plan_states(dirs)
    timed = sorted({s["job_id"] for d in dirs for s in read_segments(d) if s.get("job_id")})
    usage = sacct_usage(timed) if timed and accounting_available() else {}  # one sacct for every stage
    for key, stage in plan["stages"].items():
        d = root / stage["dir"]
        state, job = stage_state(d, states)
        cost = stage_cost(d, usage)
        rows[key] = {"kind": stage["kind"], "state": state, "job": job, "elapsed_s": cost["elapsed_s"],
                     "gpu_hours": cost["gpu_hours"]}
    return rows


def _fmt_elapsed(seconds: float) -> str:
    if seconds <= 0:
        return "-"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def status_table(study_dir: str | Path) -> tuple[str, Counter[str]]:
    """The text table (one row per cell) and the count of stage states (each shared stage once)."""
    plan = load_plan_json(study_dir)
    rows = stage_rows(study_dir)
    header = ["cell", *STAGE_KINDS, "GPU-h"]
    table = [header]
    for cell in plan["cells"]:
        cols = [cell["name"]]
        gpu_hours = 0.0
        for kind in STAGE_KINDS:
            r = rows[cell["stages"][kind]]
            cols.append(f"{r['state']} {r['job'] or '-'} {_fmt_elapsed(r['elapsed_s'])}")
            gpu_hours += r["gpu_hours"]
        cols.append(f"{gpu_hours:.4f}")
        table.append(cols)
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    counts = Counter(r["state"] for r in rows.values())
    return "\n".join(lines) + "\n", counts
