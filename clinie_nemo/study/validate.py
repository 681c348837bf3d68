"""The checks a study's plan runs on every cell while it is built (study/plan.py build_plan), so an invalid cell
is found by ``clinie-nemo study --dry-run`` and stops ``--submit`` before its first sbatch, instead of failing
inside a Slurm job (or leaving a partial study on the cluster: the mix array submitted, the train array refused).

What is checked, per stage, with the commands' own loaders (what the job would run into later):
train: the run spec (model + recipe + overrides, ``load_run_spec``), what its engine can run
(``check_for_engine``) and, without a container, that an absolute checkpoint path exists; generate: the
generation config; mix: the mixture config (``mixture_config_from_dict``) and its tokenizer folder; evaluate:
the scoring rules name; every stage kind: its Slurm resources as they are submitted
(``executor.executor_settings``: container image, ...). Input files are hashed by build_plan (missing ones are
refused there first). Every problem is collected and reported with the cells it belongs to, in one ConfigError
(exit 2).

Imports study/config.py, study/executor.py and the engines', mixture's and scoring rules' loaders; imported by
study/plan.py. It knows nothing of plans or stages: each check takes the values a stage's command gets.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import yaml

from clinie_nemo.core.errors import ClinieError, ConfigError
from clinie_nemo.study.config import STAGE_KINDS, StudyConfig
from clinie_nemo.study.executor import executor_settings

MAX_CELLS_NAMED = 3
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built in: a study has hundreds of mixes


@functools.lru_cache(maxsize=4096)
def train_problem(engine: str, model: str, recipe: str, overrides: tuple[str, ...], host_paths: bool) -> str | None:
    """The run spec's problems on ``engine``; with ``host_paths`` (no container: the job sees this machine's
    files) an absolute checkpoint path must exist (a relative one may be a Hub id, left to the engine)."""
    from clinie_nemo.engines.spec_loader import load_run_spec
    from clinie_nemo.engines.validate import check_for_engine

    try:
        spec = load_run_spec(model, recipe, list(overrides))
        check_for_engine(spec, engine)
    except ClinieError as exc:
        return str(exc)
    checkpoint = spec.model.checkpoint
    if host_paths and checkpoint.startswith("/") and not Path(checkpoint).exists():
        return (f"model {spec.model.name}: checkpoint {checkpoint} not found (the study's files must be on a file "
                "system shared with the compute nodes)")
    return None


@functools.lru_cache(maxsize=64)
def generate_problem(config: str, overrides: tuple[str, ...] = ()) -> str | None:
    """The generation config's problems (preset name or YAML path, with ``overrides``)."""
    from clinie_nemo.engines.spec_loader import load_generate_config

    try:
        load_generate_config(config, list(overrides))
    except ClinieError as exc:
        return str(exc)
    return None


def mixture_problem(text: str, where: str, base_dir: str) -> str | None:
    """The problems of a mixture config as the mix stage reads it (``text``: its mixture.yaml, named ``where``)."""
    from clinie_nemo.mixture.config import mixture_config_from_dict

    try:
        config = mixture_config_from_dict(yaml.load(text, Loader=_Loader), where, base_dir)
    except ClinieError as exc:
        return str(exc)
    if config.tokenizer is not None and not Path(config.tokenizer).is_dir():
        return f"mixture.tokenizer: folder {config.tokenizer} not found"
    return None


def rules_problem(rules: str | None) -> str | None:
    """An unknown scoring rules name (None: the evaluate command's default, ``auto``)."""
    from clinie_nemo.evaluation.scoring.rules import AUTO, check_rules_name

    try:
        check_rules_name(rules or AUTO)
    except ClinieError as exc:
        return str(exc)
    return None


def resource_problems(cfg: StudyConfig, study_dir: Path) -> list[str]:
    """``resources.<kind>: ...`` for each stage kind whose Slurm settings cannot be submitted."""
    problems = []
    for kind in STAGE_KINDS:
        try:
            executor_settings(cfg, study_dir, kind, cfg.stage_resources(kind), None)
        except ClinieError as exc:
            problems.append(f"resources.{kind}: {exc}")
    return problems


def _cells_text(cells: tuple[str, ...], total: int) -> str:
    if len(cells) == total and total > 1:
        return f"all {total} cells"
    named = ", ".join(cells[:MAX_CELLS_NAMED])
    more = len(cells) - MAX_CELLS_NAMED
    return f"cell{'s' if len(cells) > 1 else ''} {named}" + (f" and {more} more" if more > 0 else "")


def raise_problems(study: str, cells: Sequence[str], found: dict[str, list[str]]) -> None:
    """ConfigError listing every problem (``found``: problem -> the cells it belongs to, in the order found) with
    its cells, problems in the order of their first cell; nothing when ``found`` is empty."""
    if not found:
        return
    order = {name: i for i, name in enumerate(cells)}
    problems = [(tuple(sorted(set(owners), key=lambda c: order.get(c, 0))), text) for text, owners in found.items()]
    problems.sort(key=lambda p: order.get(p[0][0], 0) if p[0] else 0)
    bad = {c for owners, _ in problems for c in owners}
    lines = [f"study {study}: {len(bad)} of {len(cells)} cells cannot run; nothing was submitted:"]
    for owners, problem in problems:
        text = problem.replace("\n", "\n      ")
        lines.append(f"  {_cells_text(owners, len(cells))}:\n      {text}")
    raise ConfigError("\n".join(lines))
