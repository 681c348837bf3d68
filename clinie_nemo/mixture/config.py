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

from clinie_nemo.core.errors import ConfigError
from clinie_nemo.core.yaml_config import read_yaml
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


def _yaml_fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.metadata.get("yaml", True)]


def _check_keys(cls: type, data: Mapping[str, Any], where: str, problems: list[str]) -> dict[str, Any]:
    fields = {f.name: f for f in _yaml_fields(cls)}
    for key in data:
        if key not in fields:
            problems.append(f"{where}: unknown key {key!r}; valid keys: {', '.join(sorted(fields))}")
    for name, f in fields.items():
        if name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            problems.append(f"{where}: missing required key {name!r}")
    return {k: v for k, v in data.items() if k in fields}


def _want(value: Any, kinds: tuple[type, ...], what: str, where: str, problems: list[str]) -> bool:
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if not ok:
        problems.append(f"{where}: expected {what}, got {type(value).__name__} {value!r}")
    return ok


def _task_list(value: Any, where: str, problems: list[str]) -> tuple[str, ...] | None:
    if not isinstance(value, list) or not value:
        problems.append(f"{where}: expected a non-empty list of task kinds ({', '.join(TASK_KINDS)})")
        return None
    for task in value:
        if task not in TASK_KINDS:
            problems.append(f"{where}: unknown task {task!r}; valid: {', '.join(TASK_KINDS)}")
    return tuple(str(t) for t in value)


def _dataset_entry(data: Any, where: str, problems: list[str]) -> DatasetEntry | None:
    if not isinstance(data, Mapping):
        problems.append(f"{where}: expected a mapping with keys name, train, test, ...")
        return None
    kv = _check_keys(DatasetEntry, data, where, problems)
    for key in ("name", "train", "test"):
        if key in kv:
            _want(kv[key], (str,), "a string", f"{where}.{key}", problems)
    for key in ("validation", "schema"):
        if kv.get(key) is not None:
            _want(kv[key], (str,), "a string", f"{where}.{key}", problems)
    if kv.get("weight") is not None and _want(kv["weight"], (int, float), "a number", f"{where}.weight", problems):
        if not (math.isfinite(kv["weight"]) and kv["weight"] >= 0):
            problems.append(f"{where}.weight: must be a finite number >= 0, got {kv['weight']}")
        kv["weight"] = float(kv["weight"])
    if kv.get("cap") is not None and _want(kv["cap"], (int,), "an integer", f"{where}.cap", problems) \
            and kv["cap"] < 0:
        problems.append(f"{where}.cap: must be >= 0, got {kv['cap']}")
    if kv.get("weight") is not None and kv.get("cap") is not None:
        problems.append(f"{where}: give either weight or cap, not both")
    if kv.get("tasks") is not None:
        kv["tasks"] = _task_list(kv["tasks"], f"{where}.tasks", problems)
    try:
        return DatasetEntry(**kv)
    except TypeError:
        return None


def mixture_config_from_dict(data: Any, source: str = "<config>", base_dir: str | Path = ".") -> MixtureConfig:
    """Validate a parsed YAML mapping and build the config; raises ConfigError listing every problem."""
    problems: list[str] = []
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    kv = _check_keys(MixtureConfig, data, source, problems)
    entries: list[DatasetEntry] = []
    if "datasets" in kv:
        if not isinstance(kv["datasets"], list) or not kv["datasets"]:
            problems.append(f"{source}.datasets: expected a non-empty list")
        else:
            for i, item in enumerate(kv["datasets"]):
                entry = _dataset_entry(item, f"{source}.datasets[{i}]", problems)
                if entry is not None:
                    entries.append(entry)
        names = [e.name for e in entries]
        for name in sorted({n for n in names if names.count(n) > 1}):
            problems.append(f"{source}.datasets: dataset {name!r} listed more than once")
        kv["datasets"] = tuple(entries)
    if "tasks" in kv:
        kv["tasks"] = _task_list(kv["tasks"], f"{source}.tasks", problems)
    if "template" in kv:
        t = kv["template"]
        if isinstance(t, str):  # shorthand: `template: rotate` or `template: <name>`
            t = {"policy": "rotate"} if t == "rotate" else {"policy": "fixed", "name": t}
        if _want(t, (Mapping,), "a mapping {policy, name}", f"{source}.template", problems):
            tk = _check_keys(TemplatePolicy, t, f"{source}.template", problems)
            if tk.get("policy", "rotate") not in TEMPLATE_POLICIES:
                problems.append(f"{source}.template.policy: unknown policy {tk['policy']!r}; "
                                f"valid: {', '.join(TEMPLATE_POLICIES)}")
            if tk.get("policy") == "fixed" and not tk.get("name"):
                problems.append(f"{source}.template: policy fixed needs a template name")
            kv["template"] = TemplatePolicy(**tk)
    if "format" in kv and kv["format"] not in FORMATS:
        problems.append(f"{source}.format: unknown format {kv['format']!r}; valid: {', '.join(FORMATS)}")
    for key in ("max_tokens", "seed", "few_shot_k"):
        if key in kv and _want(kv[key], (int,), "an integer", f"{source}.{key}", problems) and kv[key] < 0:
            problems.append(f"{source}.{key}: must be >= 0, got {kv[key]}")
    if isinstance(kv.get("max_tokens"), int) and kv["max_tokens"] < 16:
        problems.append(f"{source}.max_tokens: must be >= 16, got {kv['max_tokens']}")
    for key in ("name",):
        if key in kv:
            _want(kv[key], (str,), "a string", f"{source}.{key}", problems)
    for key in ("messages", "test_all_templates"):
        if key in kv:
            _want(kv[key], (bool,), "true or false", f"{source}.{key}", problems)
    if kv.get("tokenizer") is not None:
        _want(kv["tokenizer"], (str,), "a folder path or null", f"{source}.tokenizer", problems)
    for key in ("validation_fraction", "held_out_fraction"):
        if key in kv and _want(kv[key], (int, float), "a number", f"{source}.{key}", problems):
            kv[key] = float(kv[key])
            if not (0.0 <= kv[key] <= 1.0) or (key == "validation_fraction" and kv[key] >= 1.0):
                problems.append(f"{source}.{key}: out of range, got {kv[key]}")
    if kv.get("held_out") is not None and entries and kv["held_out"] not in {e.name for e in entries}:
        problems.append(f"{source}.held_out: unknown dataset {kv['held_out']!r}; "
                        f"valid: {', '.join(sorted(e.name for e in entries))}")
    if kv.get("held_out") is None and kv.get("held_out_fraction"):
        problems.append(f"{source}: held_out_fraction needs held_out (the fold's dataset)")
    if problems:
        raise ConfigError("invalid mixture config:\n  " + "\n  ".join(problems))
    return MixtureConfig(**kv, base_dir=str(base_dir))


def load_mixture_config(path: str | Path) -> MixtureConfig:
    p = Path(path)
    data = read_yaml(p, "mixture config")
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
    for f in _yaml_fields(MixtureConfig):
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
