"""Collecting runs for a report: every ``scores.json`` under the given folders, with its ``meta`` tags
(model, method, fold, fraction, seed, few_shot_k) and the optional ``cost.json`` beside it; and the
markdown table of them (strict F1 with 95% CIs, the template spread when a run was scored under several
templates, GPU-hours)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinie_nemo.core.errors import InputError, Problem

META_COLUMNS = ("model", "method", "fold", "fraction", "seed", "few_shot_k")


@dataclass(frozen=True)
class Run:
    path: str  # the scores.json
    meta: dict[str, str]
    ce_f1: float | None
    ce_ci: tuple[float, float] | None
    re_f1: float | None
    re_ci: tuple[float, float] | None
    gpu_hours: float | None
    # evaluate's by_template / template_spread: kind ("entities", "relations") -> template -> strict F1
    template_f1: dict[str, dict[str, float]] = field(default_factory=dict)
    spread: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """A short name for plots: the meta tags that are set, else the run folder's name."""
        tags = [self.tag(k) for k in ("model", "method", "fold", "fraction", "seed") if self.tag(k)]
        return "/".join(tags) if tags else Path(self.path).parent.name

    def tag(self, key: str, default: str = "") -> str:
        return str(self.meta.get(key, default))

    @property
    def fraction(self) -> float | None:
        try:
            return float(self.meta["fraction"])
        except (KeyError, ValueError):
            return None

    @property
    def few_shot_k(self) -> int:
        try:
            return int(self.meta.get("few_shot_k", 0))
        except ValueError:
            return 0


def _figure(block: Any) -> tuple[float | None, tuple[float, float] | None]:
    if not isinstance(block, dict) or "strict" not in block:
        return None, None
    strict = block["strict"]
    total = strict.get("tp", 0) + strict.get("fp", 0) + strict.get("fn", 0)
    if not total:
        return None, None
    ci = strict.get("ci95", {}).get("f1")
    return float(strict["f1"]), (tuple(ci) if ci else None)


def load_run(path: Path) -> Run:
    try:
        scores = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(Problem(str(path), None, f"not a readable scores.json ({exc})")) from None
    if not isinstance(scores, dict) or "entities" not in scores:
        raise InputError(Problem(str(path), None, "not a scores.json from `clinie-nemo evaluate`"))
    gpu_hours = None
    cost = path.with_name("cost.json")
    if cost.is_file():
        try:
            gpu_hours = float(json.loads(cost.read_text(encoding="utf-8"))["gpu_hours"])
        except (OSError, ValueError, KeyError, TypeError):
            raise InputError(Problem(str(cost), None, 'expected {"gpu_hours": number, ...}')) from None
    meta = {str(k): str(v) for k, v in (scores.get("meta") or {}).items()}
    ce_f1, ce_ci = _figure(scores.get("entities"))
    re_f1, re_ci = _figure(scores.get("relations"))
    return Run(str(path), meta, ce_f1, ce_ci, re_f1, re_ci, gpu_hours, *template_figures(scores))


def template_figures(scores: dict[str, Any]) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, Any]]]:
    """(kind -> template -> strict F1, kind -> spread) from a scores.json; empty for older files."""
    per_template: dict[str, dict[str, float]] = {}
    for template, block in (scores.get("by_template") or {}).items():
        for kind in ("entities", "relations"):
            f1 = _figure(block.get(kind) if isinstance(block, dict) else None)[0]
            if f1 is not None:
                per_template.setdefault(kind, {})[str(template)] = f1
    spread = {k: v for k, v in (scores.get("template_spread") or {}).items()
              if isinstance(v, dict) and v.get("templates", 0) >= 2}
    return per_template, spread


def collect_runs(folders: list[str]) -> list[Run]:
    paths: list[Path] = []
    for folder in folders:
        root = Path(folder)
        if root.is_file() and root.name == "scores.json":
            paths.append(root)
        elif root.is_dir():
            paths.extend(sorted(root.rglob("scores.json")))
        else:
            raise InputError(Problem(folder, None, "not a folder (or scores.json)"))
    if not paths:
        raise InputError(Problem(", ".join(folders), None, "no scores.json found"))
    runs = [load_run(p) for p in sorted(set(paths))]
    return sorted(runs, key=lambda r: tuple(r.tag(k) for k in META_COLUMNS) + (r.path,))


def _f1(f1: float | None, ci: tuple[float, float] | None) -> str:
    if f1 is None:
        return "-"
    return f"{f1:.4f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def spread_cell(run: Run) -> str:
    """``CE sd 0.031 [0.012, 0.054] (4 tpl); RE sd 0.020 (4 tpl)``: sample sd of per-template strict F1, with
    its bootstrap 95% interval when evaluate ran with --bootstrap."""
    parts = []
    for kind, name in (("entities", "CE"), ("relations", "RE")):
        s = run.spread.get(kind)
        if s:
            ci = s.get("sd_ci95")
            parts.append(f"{name} sd {s['sd']:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
                         + f" ({s['templates']} tpl)")
    return "; ".join(parts) or "-"


def runs_table(runs: list[Run]) -> str:
    with_spread = any(r.spread for r in runs)
    header = ["run", *META_COLUMNS, "CE strict F1 [95% CI]", "RE strict F1 [95% CI]",
              *(["template spread"] if with_spread else []), "GPU-h"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for run in runs:
        cells = [run.path, *(run.tag(k, "-") or "-" for k in META_COLUMNS), _f1(run.ce_f1, run.ce_ci),
                 _f1(run.re_f1, run.re_ci), *([spread_cell(run)] if with_spread else []),
                 f"{run.gpu_hours:.2f}" if run.gpu_hours is not None else "-"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
