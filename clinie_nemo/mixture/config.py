"""Mixture configuration: a YAML file that maps 1:1 onto the frozen :class:`MixtureConfig` dataclass.

Loading is strict: every problem of the file is collected (unknown keys, with the valid keys listed; wrong
types; out-of-range numbers) and raised together as one :class:`ConfigError`. Corpus paths in the YAML are
relative to the YAML file's folder; :func:`load_mixture_config` resolves them, :func:`dump_mixture_config`
writes them relative to the folder of the file being written, so a config tree can move as a whole.

Example (see README, "Mixtures")::

    name: loo-demo
    seed: 13
    datasets:
      - {name: i2b2_2010, train: i2b2/train.jsonl, test: i2b2/test.jsonl, weight: 2}
      - {name: radgraph,  train: rg/train.jsonl,   test: rg/test.jsonl,   cap: 500}
    tasks: [ce, re_pair]
    template: {policy: rotate}
    format: json
    messages: false              # true: chat form {"messages": [...]} instead of {"input", "output"}
    max_tokens: 2048
    tokenizer: null              # a local HF tokenizer folder, or null for the fallback counter
    validation_fraction: 0.1
    held_out: radgraph           # leave-one-dataset-out fold (null: every dataset trains and tests)
    held_out_fraction: 0.05      # 0 = zero-shot on the held-out dataset
    few_shot_k: 0
    test_all_templates: false    # true: the test split renders every chunk once per template (template
                                 # variance on identical chunks; record ids get "@<template>")
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from clinie_nemo.core.config import build, checked, load_yaml, yaml_fields
from clinie_nemo.core.errors import ConfigError
from clinie_nemo.instruct.tasks import TASKS

TASK_KINDS = tuple(TASKS)  # the task registry's names, in its order
FORMATS = ("lines", "json", "inline")
TEMPLATE_POLICIES = ("fixed", "rotate")
SPLIT_KEYS = ("train", "validation", "test")


@dataclass(frozen=True)
class DatasetEntry:
    """One corpus of the mixture: documents JSONL per split, and how often its records appear."""

    name: str
    train: str
    test: str
    validation: str | None = None  # an explicit dev split; when absent, validation is carved from train
    weight: float | None = None  # every training record appears floor(w) times, plus once more for
    #                              round(frac(w) * n) of them chosen by seeded hash; default 1
    cap: int | None = None  # instead of a weight: at most this many training records, chosen by seeded hash
    tasks: tuple[str, ...] | None = None  # overrides the mixture's task list for this dataset
    schema: str | None = None  # a user's brat schema YAML (relative to the config): its labels and definitions


@dataclass(frozen=True)
class TemplatePolicy:
    policy: str = "rotate"  # fixed | rotate
    name: str | None = None  # the template name (per task kind, see render) when policy is fixed


@dataclass(frozen=True)
class MixtureConfig:
    datasets: tuple[DatasetEntry, ...]
    name: str = "mixture"
    tasks: tuple[str, ...] = ("ce",)
    template: TemplatePolicy = field(default_factory=TemplatePolicy)
    format: str = "json"
    messages: bool = False  # chat form {"messages": [{"role": "user"...}, {"role": "assistant"...}]}
    max_tokens: int = 2048
    tokenizer: str | None = None
    seed: int = 13
    validation_fraction: float = 0.1
    held_out: str | None = None
    held_out_fraction: float = 0.0
    few_shot_k: int = 0
    test_all_templates: bool = False  # test split: every chunk once per template (ids "@<template>")
    base_dir: str = field(default=".", metadata={"yaml": False})  # folder the relative paths resolve from

    def dataset(self, name: str) -> DatasetEntry:
        for entry in self.datasets:
            if entry.name == name:
                return entry
        raise ConfigError(f"unknown dataset {name!r}; valid: {', '.join(d.name for d in self.datasets)}")

    def resolve(self, path: str) -> Path:
        return Path(path) if os.path.isabs(path) else Path(self.base_dir) / path

    def tasks_for(self, entry: DatasetEntry) -> tuple[str, ...]:
        return entry.tasks if entry.tasks is not None else self.tasks


# ------------------------------------------------------------------------------------------ strict loading


def _task_problems(tasks: tuple[str, ...], where: str) -> list[str]:
    if not tasks:
        return [f"{where}: expected a non-empty list of task kinds ({', '.join(TASK_KINDS)})"]
    return [f"{where}: unknown task {t!r}; valid: {', '.join(TASK_KINDS)}" for t in tasks if t not in TASK_KINDS]


def _entry_problems(entry: DatasetEntry, where: str) -> list[str]:
    problems: list[str] = []
    if entry.weight is not None and not (math.isfinite(entry.weight) and entry.weight >= 0):
        problems.append(f"{where}.weight: must be a finite number >= 0, got {entry.weight}")
    if entry.cap is not None and entry.cap < 0:
        problems.append(f"{where}.cap: must be >= 0, got {entry.cap}")
    if entry.weight is not None and entry.cap is not None:
        problems.append(f"{where}: give either weight or cap, not both")
    if entry.tasks is not None:
        problems += _task_problems(entry.tasks, f"{where}.tasks")
    return problems


def _check(config: MixtureConfig) -> list[str]:
    """The domain rules on a built config (names, ranges, cross-field), as ``key: problem`` lines."""
    problems: list[str] = []
    if not config.datasets:
        problems.append("datasets: expected a non-empty list")
    for i, entry in enumerate(config.datasets):
        problems += _entry_problems(entry, f"datasets[{i}]")
    names = [e.name for e in config.datasets]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"datasets: dataset {name!r} listed more than once")
    problems += _task_problems(config.tasks, "tasks")
    if config.template.policy not in TEMPLATE_POLICIES:
        problems.append(f"template.policy: unknown policy {config.template.policy!r}; "
                        f"valid: {', '.join(TEMPLATE_POLICIES)}")
    if config.template.policy == "fixed" and not config.template.name:
        problems.append("template: policy fixed needs a template name")
    if config.format not in FORMATS:
        problems.append(f"format: unknown format {config.format!r}; valid: {', '.join(FORMATS)}")
    for key in ("max_tokens", "seed", "few_shot_k"):
        if getattr(config, key) < 0:
            problems.append(f"{key}: must be >= 0, got {getattr(config, key)}")
    if config.max_tokens < 16:
        problems.append(f"max_tokens: must be >= 16, got {config.max_tokens}")
    for key in ("validation_fraction", "held_out_fraction"):
        value = getattr(config, key)
        if not (0.0 <= value <= 1.0) or (key == "validation_fraction" and value >= 1.0):
            problems.append(f"{key}: out of range, got {value}")
    if config.held_out is not None and names and config.held_out not in names:
        problems.append(f"held_out: unknown dataset {config.held_out!r}; valid: {', '.join(sorted(names))}")
    if config.held_out is None and config.held_out_fraction:
        problems.append("held_out_fraction needs held_out (the fold's dataset)")
    return problems


def mixture_config_from_dict(data: Any, source: str = "<config>", base_dir: str | Path = ".") -> MixtureConfig:
    """Validate a parsed YAML mapping and build the config; raises ConfigError listing every problem."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    template = data.get("template")
    if isinstance(template, str):  # shorthand: `template: rotate` or `template: <name>`
        template = {"policy": "rotate"} if template == "rotate" else {"policy": "fixed", "name": template}
        data = {**data, "template": template}
    problems: list[str] = []
    config = build(MixtureConfig, data, "", problems)
    if config is not None:
        config = dataclasses.replace(config, base_dir=str(base_dir))
        problems += _check(config)
    return checked(config, "invalid mixture config:", [f"{source}: {p}" for p in problems])


def load_mixture_config(path: str | Path) -> MixtureConfig:
    p = Path(path)
    data = load_yaml(p, "mixture config")
    return mixture_config_from_dict(data, source=str(p), base_dir=p.resolve().parent)


# ------------------------------------------------------------------------------------------------ dumping


def mixture_config_to_dict(config: MixtureConfig, relative_to: str | Path | None = None) -> dict[str, Any]:
    """The YAML form. Paths become absolute, or relative to ``relative_to`` when given."""

    def path_out(path: str | None) -> str | None:
        if path is None:
            return None
        absolute = config.resolve(path).resolve()
        return os.path.relpath(absolute, Path(relative_to).resolve()) if relative_to is not None else str(absolute)

    out: dict[str, Any] = {}
    for f in yaml_fields(MixtureConfig).values():
        value = getattr(config, f.name)
        if f.name == "datasets":
            value = [{k: (path_out(v) if k in (*SPLIT_KEYS, "schema") else list(v) if isinstance(v, tuple) else v)
                      for k, v in dataclasses.asdict(e).items() if v is not None} for e in value]
        elif f.name == "template":
            value = {k: v for k, v in dataclasses.asdict(value).items() if v is not None}
        elif f.name == "tokenizer" and value is not None:
            value = path_out(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def dump_mixture_config(config: MixtureConfig, path: str | Path | None = None) -> str:
    """YAML text of ``config``; paths relative to ``path``'s folder when a target path is given."""
    relative_to = Path(path).parent if path is not None else None
    return yaml.safe_dump(mixture_config_to_dict(config, relative_to), sort_keys=False, allow_unicode=True)
