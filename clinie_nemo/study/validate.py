"""Every cell of a study checked before its first sbatch: an invalid cell must not leave a partial study on
the cluster (the mix array submitted, the train array refused).

What is checked, per stage, with the commands' own loaders (what the job would run into later):
train: the run spec (model + recipe + overrides, ``load_run_spec``), what its engine can run
(``check_for_engine``) and, without a container, that an absolute checkpoint path exists; generate: the generation config; mix: the mixture config (``mixture_config_from_dict``)
and its tokenizer folder; evaluate: the scoring rules name; every stage kind: its Slurm resources as they
are submitted (``submit.executor_settings``: container image, ...). Input files were hashed by build_plan
(missing ones already refused there). Stages whose command is not a clinie-nemo one are not looked into.
Every problem is collected and reported with the cells it belongs to, in one ConfigError (exit 2).
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import yaml

from clinie_nemo.core.errors import ClinieError, ConfigError
from clinie_nemo.study.config import STAGE_KINDS
from clinie_nemo.study.plan import Stage, StudyPlan

MAX_CELLS_NAMED = 3
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built in: a study has hundreds of mixes


@functools.lru_cache(maxsize=16)
def _parser(command: str) -> argparse.ArgumentParser:
    """The subcommand's own argument parser (clinie_nemo/commands/<command>.py add_arguments)."""
    import importlib

    module = importlib.import_module(f"clinie_nemo.commands.{command}")
    parser = argparse.ArgumentParser(prog=f"clinie-nemo {command}", add_help=False, exit_on_error=False)
    module.add_arguments(parser)
    return parser


def _args(stage: Stage) -> argparse.Namespace:
    try:
        return _parser(stage.argv[1]).parse_args(list(stage.argv[2:]))
    except (argparse.ArgumentError, SystemExit) as exc:
        raise ConfigError(f"command {' '.join(stage.argv[:2])}: {exc}") from None


@functools.lru_cache(maxsize=4096)
def _train_problem(engine: str, model: str, recipe: str, overrides: tuple[str, ...], host_paths: bool) -> str | None:
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
def _generate_problem(config: str, overrides: tuple[str, ...]) -> str | None:
    from clinie_nemo.engines.spec_loader import load_generate_config

    try:
        load_generate_config(config, list(overrides))
    except ClinieError as exc:
        return str(exc)
    return None


def _stage_problem(plan: StudyPlan, stage: Stage) -> str | None:
    """What would make this stage's command fail at once (None: nothing found)."""
    if len(stage.argv) < 2 or stage.argv[0] != "clinie-nemo" or stage.argv[1] != stage.kind:
        return None  # a custom command (tests): nothing to check
    try:
        if stage.kind == "mix":
            from clinie_nemo.mixture.config import mixture_config_from_dict

            text = dict(stage.files)["mixture.yaml"]
            config = mixture_config_from_dict(yaml.load(text, Loader=_Loader), f"{stage.dirname}/mixture.yaml",
                                              plan.config.base_dir)
            if config.tokenizer is not None and not Path(config.tokenizer).is_dir():
                return f"mixture.tokenizer: folder {config.tokenizer} not found"
            return None
        args = _args(stage)
        if stage.kind == "train":
            host_paths = plan.config.stage_resources("train").container is None
            return _train_problem(args.engine, args.model, args.recipe, tuple(args.overrides), host_paths)
        if stage.kind == "generate":
            return _generate_problem(args.config, tuple(args.overrides))
        if stage.kind == "evaluate":
            from clinie_nemo.evaluation.scoring.rules import check_rules_name

            check_rules_name(args.rules)
    except ClinieError as exc:
        return str(exc)
    return None


def plan_problems(plan: StudyPlan) -> list[tuple[tuple[str, ...], str]]:
    """(cells, problem) for everything that would fail after submission, in cell order."""
    from clinie_nemo.study.submit import executor_settings

    found: dict[str, list[str]] = {}  # problem -> its cells (the same problem in many stages is listed once)
    all_cells = tuple(c.name for c in plan.cells)
    for kind in STAGE_KINDS:
        try:
            executor_settings(plan, kind, plan.config.stage_resources(kind), None)
        except ClinieError as exc:
            found.setdefault(f"resources.{kind}: {exc}", []).extend(all_cells)
    for stage in plan.stages.values():
        problem = _stage_problem(plan, stage)
        if problem:
            found.setdefault(f"{stage.kind}: {problem}", []).extend(stage.cells)
    order = {name: i for i, name in enumerate(all_cells)}
    problems = [(tuple(sorted(set(cells), key=lambda c: order.get(c, 0))), text) for text, cells in found.items()]
    return sorted(problems, key=lambda p: order.get(p[0][0], 0) if p[0] else 0)


def _cells_text(cells: tuple[str, ...], total: int) -> str:
    if len(cells) == total and total > 1:
        return f"all {total} cells"
    named = ", ".join(cells[:MAX_CELLS_NAMED])
    more = len(cells) - MAX_CELLS_NAMED
    return f"cell{'s' if len(cells) > 1 else ''} {named}" + (f" and {more} more" if more > 0 else "")


def check_plan(plan: StudyPlan) -> None:
    """ConfigError listing every problem with its cells; nothing is written or submitted before this."""
    problems = plan_problems(plan)
    if not problems:
        return
    bad = {c for cells, _ in problems for c in cells}
    lines = [f"study {plan.config.name}: {len(bad)} of {len(plan.cells)} cells cannot run; nothing was submitted:"]
    for cells, problem in problems:
        text = problem.replace("\n", "\n      ")
        lines.append(f"  {_cells_text(cells, len(plan.cells))}:\n      {text}")
    raise ConfigError("\n".join(lines))
