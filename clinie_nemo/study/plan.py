"""Expand a study into cells and a content-addressed job graph (pure apart from hashing input files).

A cell is (held-out fold, fraction, model, method, seed). Its chain is mix (CPU) -> train (GPU) -> generate
(GPU) -> evaluate (CPU). Each stage is keyed by a hash of its inputs (its config, the content hashes of the
files it reads, and its upstream stages' keys), so cells that share inputs share the stage (one mix per
fold x fraction x seed serves every model and method) and a changed input gives a new stage folder while
finished ones stay untouched. Stage folders: ``STUDY_DIR/stages/<kind>-<key>/``.

:func:`build_plan` runs in named steps: :func:`expand_cells` (the grid), one builder step per stage kind
(each hashes its inputs and makes the stage once, with its check), then :func:`check_cells`: every cell's
train spec on its engine, generate config, mixture config, scoring rules and the resources of every stage kind
(study/validate.py), all problems collected with the cells they belong to in one ConfigError. So a dry run
finds every invalid cell, and a submit never starts with one; nothing is written either way.

Imports study/config.py and study/validate.py; imported by study/submit.py and commands/study.py.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from clinie_nemo.core.errors import ConfigError
from clinie_nemo.study import validate
from clinie_nemo.study.config import STAGE_KINDS, StudyConfig

KEY_LENGTH = 16
StageCheck = Callable[[], "str | None"]  # a stage's check: its problem, None when there is none
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@dataclass(frozen=True)
class Cell:
    fold: str
    fraction: float
    model: str
    method: str
    seed: int

    @property
    def name(self) -> str:
        return f"heldout-{self.fold}_frac-{self.fraction:.6g}_{self.model}_{self.method}_seed-{self.seed}"

    def tags(self) -> dict[str, str]:
        return {"model": self.model, "method": self.method, "fold": self.fold,
                "fraction": f"{self.fraction:.6g}", "seed": str(self.seed)}


@dataclass(frozen=True)
class Stage:
    kind: str
    key: str
    argv: tuple[str, ...]  # "clinie-nemo ..." (the runner runs it with this interpreter)
    output: str  # the stage's result, relative to its folder
    atomic_output: bool  # written all at once: present = finished
    upstream: tuple[str, ...]  # keys of the stages it reads
    files: tuple[tuple[str, str], ...] = ()  # (name, text) written into the stage folder before it runs
    cells: tuple[str, ...] = ()  # names of the cells that use it

    @property
    def dirname(self) -> str:
        return f"{self.kind}-{self.key}"


@dataclass(frozen=True)
class StudyPlan:
    config: StudyConfig
    study_dir: Path
    cells: tuple[Cell, ...]
    stages: dict[str, Stage]  # key -> stage, in submission order (kinds in STAGE_KINDS order)
    cell_stages: dict[str, dict[str, str]]  # cell name -> kind -> stage key

    def stage_dir(self, key: str) -> Path:
        return self.study_dir / "stages" / self.stages[key].dirname

    def by_kind(self, kind: str) -> list[Stage]:
        return [s for s in self.stages.values() if s.kind == kind]


def content_key(inputs: dict[str, Any]) -> str:
    blob = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:KEY_LENGTH]


class _FileHashes:
    """sha256 of each input file, computed once per plan; a missing file is collected as a problem."""

    def __init__(self) -> None:
        self.cache: dict[str, str] = {}
        self.missing: list[str] = []

    def __call__(self, path: str) -> str:
        if path not in self.cache:
            h = hashlib.sha256()
            try:
                with open(path, "rb") as fh:
                    while block := fh.read(1 << 20):
                        h.update(block)
            except OSError:
                self.missing.append(path)
                self.cache[path] = "missing"
                return "missing"
            self.cache[path] = h.hexdigest()
        return self.cache[path]


def _ref(cfg: StudyConfig, value: str, hashes: _FileHashes) -> tuple[str, str]:
    """A preset name stays a name; an existing YAML path becomes absolute, with its content hash."""
    if value.endswith((".yaml", ".yml")) or "/" in value:
        path = cfg.resolve(value)
        return path, hashes(path)
    return value, "preset"


def mixture_dict(cfg: StudyConfig, fold: str, fraction: float, seed: int) -> dict[str, Any]:
    """The mixture config (clinie-nemo mix) of one fold x fraction x seed, with absolute corpus paths."""
    datasets = []
    for d in cfg.datasets:
        entry: dict[str, Any] = {"name": d.name, "train": cfg.resolve(d.train), "test": cfg.resolve(d.test)}
        for key in ("validation",):
            if getattr(d, key):
                entry[key] = cfg.resolve(getattr(d, key))
        for key in ("weight", "cap"):
            if getattr(d, key) is not None:
                entry[key] = getattr(d, key)
        if d.tasks is not None:
            entry["tasks"] = list(d.tasks)
        datasets.append(entry)
    m = cfg.mixture
    # named by its content only (not the study's name): two studies over the same data get the same mixture
    # text, so the same content key, and share the mix (and every stage downstream of it)
    return {"name": f"heldout-{fold}_frac-{fraction:.6g}_seed-{seed}", "seed": seed,
            "datasets": datasets, "tasks": list(m.tasks), "template": m.template, "format": m.format,
            "max_tokens": m.max_tokens, "tokenizer": cfg.resolve(m.tokenizer) if m.tokenizer else None,
            "validation_fraction": m.validation_fraction, "held_out": fold, "held_out_fraction": fraction,
            "few_shot_k": cfg.few_shot_k}


def build_plan(cfg: StudyConfig, study_dir: str | Path) -> StudyPlan:
    """Every cell and its four stages, every cell checked: ConfigError naming every missing input file, else
    every problem of every cell with the cells it belongs to (study/validate.py). Writes nothing."""
    plan, checks = expand_plan(cfg, study_dir)
    check_cells(plan, checks)
    return plan


def expand_plan(cfg: StudyConfig, study_dir: str | Path) -> tuple[StudyPlan, dict[str, StageCheck]]:
    """The cells and their stages, not yet checked, with each stage's check (stage key -> it); ConfigError
    naming every missing input file."""
    builder = _PlanBuilder(cfg, Path(study_dir).resolve())
    for cell in expand_cells(cfg):
        builder.add_cell(cell)
    return builder.finish()


def expand_cells(cfg: StudyConfig) -> list[Cell]:
    """Every (fold, fraction, model, method, seed) of the study, in that nesting order."""
    return [Cell(fold, fraction, model, method, seed) for fold in cfg.folds for fraction in cfg.fractions
            for model in cfg.models for method in cfg.methods for seed in cfg.seeds]


def train_overrides(cfg: StudyConfig, cell: Cell) -> list[str]:
    """The cell's train overrides: its parallel layout (the local engine: one device, whatever the recipe
    says, e.g. full_sft's TP 2; else the train resources' nodes x GPUs), then its seed, the study's train
    overrides and its method's."""
    if cfg.engine == "local":
        parallel = ["parallel.nodes=1", "parallel.gpus_per_node=1", "parallel.tensor=1", "parallel.pipeline=1",
                    "parallel.context=1"]
    else:
        res = cfg.stage_resources("train")
        parallel = [f"parallel.nodes={res.nodes}", f"parallel.gpus_per_node={res.gpus}"]
    return [*parallel, f"seed={cell.seed}", *cfg.train_overrides, *cfg.method_overrides.get(cell.method, ())]


def check_cells(plan: StudyPlan, checks: dict[str, StageCheck]) -> None:
    """Run every stage's check and the resources of every stage kind; ConfigError listing every problem with
    the cells it belongs to (the same problem in many stages is listed once)."""
    cells = [c.name for c in plan.cells]
    found: dict[str, list[str]] = {}  # problem -> its cells
    for problem in validate.resource_problems(plan.config, plan.study_dir):
        found.setdefault(problem, []).extend(cells)
    for key, stage in plan.stages.items():
        problem = checks[key]()
        if problem:
            found.setdefault(f"{stage.kind}: {problem}", []).extend(stage.cells)
    validate.raise_problems(plan.config.name, cells, found)


class _PlanBuilder:
    """Adds cells one by one; a stage whose content key is already there is shared, not built again."""

    def __init__(self, cfg: StudyConfig, root: Path) -> None:
        self.cfg = cfg
        self.root = root
        self.hashes = _FileHashes()
        self.stages: dict[str, Stage] = {}
        self.checks: dict[str, StageCheck] = {}
        self.users: dict[str, list[str]] = {}  # stage key -> the cells using it
        self.cells: list[Cell] = []
        self.cell_stages: dict[str, dict[str, str]] = {}

    def add_cell(self, cell: Cell) -> None:
        self.cells.append(cell)
        mix = self._mix(cell)
        train = self._train(cell, mix)
        generate = self._generate(cell, train, mix)
        evaluate = self._evaluate(cell, generate, mix)
        self.cell_stages[cell.name] = {"mix": mix, "train": train, "generate": generate, "evaluate": evaluate}

    def finish(self) -> tuple[StudyPlan, dict[str, StageCheck]]:
        if self.hashes.missing:
            raise ConfigError("study inputs not found:\n  " + "\n  ".join(sorted(set(self.hashes.missing))))
        ordered = {k: replace(s, cells=tuple(self.users[k]))
                   for kind in STAGE_KINDS for k, s in self.stages.items() if s.kind == kind}
        return StudyPlan(self.cfg, self.root, tuple(self.cells), ordered, self.cell_stages), self.checks

    def _use(self, cell: Cell, key: str, make: Callable[[], tuple[Stage, StageCheck]]) -> str:
        """The stage ``key`` for ``cell``: made (with its check) by ``make`` only when no cell made it before."""
        if key not in self.stages:
            self.stages[key], self.checks[key] = make()
        self.users.setdefault(key, []).append(cell.name)
        return key

    def _dir(self, kind: str, key: str) -> str:
        return str(self.root / "stages" / f"{kind}-{key}")

    def _mix(self, cell: Cell) -> str:
        cfg = self.cfg
        mix = mixture_dict(cfg, cell.fold, cell.fraction, cell.seed)
        files = {p: self.hashes(p) for d in mix["datasets"] for k, p in d.items() if k in ("train", "test", "validation")}
        key = content_key({"kind": "mix", "mixture": mix, "files": files})

        def make() -> tuple[Stage, StageCheck]:
            mix_dir = self._dir("mix", key)
            text = yaml.dump(mix, Dumper=_Dumper, sort_keys=False)  # once per shared mixture: the costly part
            stage = Stage("mix", key, ("clinie-nemo", "mix", f"{mix_dir}/mixture.yaml", "--output", f"{mix_dir}/data",
                                       "--quiet"), "data", True, (), (("mixture.yaml", text),))
            return stage, partial(validate.mixture_problem, text, f"{stage.dirname}/mixture.yaml", cfg.base_dir)

        return self._use(cell, key, make)

    def _train(self, cell: Cell, mix_key: str) -> str:
        cfg = self.cfg
        model_ref, model_hash = _ref(cfg, cfg.models[cell.model], self.hashes)
        recipe_ref, recipe_hash = _ref(cfg, cfg.recipes[cell.method], self.hashes)
        overrides = train_overrides(cfg, cell)
        key = content_key({"kind": "train", "engine": cfg.engine, "model": model_ref, "model_hash": model_hash,
                           "recipe": recipe_ref, "recipe_hash": recipe_hash, "overrides": overrides,
                           "upstream": [mix_key]})

        def make() -> tuple[Stage, StageCheck]:
            argv = ("clinie-nemo", "train", "--engine", cfg.engine, "--model", model_ref, "--recipe", recipe_ref,
                    "--data", f"{self._dir('mix', mix_key)}/data", "--output", f"{self._dir('train', key)}/run",
                    *overrides)
            host_paths = cfg.stage_resources("train").container is None
            return (Stage("train", key, argv, "run", False, (mix_key,)),
                    partial(validate.train_problem, cfg.engine, model_ref, recipe_ref, tuple(overrides), host_paths))

        return self._use(cell, key, make)

    def _generate(self, cell: Cell, train_key: str, mix_key: str) -> str:
        cfg = self.cfg
        gen_ref, gen_hash = _ref(cfg, cfg.generate_config, self.hashes)
        key = content_key({"kind": "generate", "engine": cfg.engine, "config": gen_ref, "config_hash": gen_hash,
                           "upstream": [train_key, mix_key]})

        def make() -> tuple[Stage, StageCheck]:
            argv = ("clinie-nemo", "generate", "--engine", cfg.engine, "--run", f"{self._dir('train', train_key)}/run",
                    "--records", f"{self._dir('mix', mix_key)}/data/test.jsonl", "--output",
                    f"{self._dir('generate', key)}/predictions.jsonl", "--config", gen_ref)
            return (Stage("generate", key, argv, "predictions.jsonl", True, (train_key, mix_key)),
                    partial(validate.generate_problem, gen_ref, ()))

        return self._use(cell, key, make)

    def _evaluate(self, cell: Cell, gen_key: str, mix_key: str) -> str:
        cfg = self.cfg
        corpus = cfg.resolve(cfg.dataset(cell.fold).test)
        tags = {**cell.tags(), "engine": cfg.engine, "few_shot_k": str(cfg.few_shot_k)}
        key = content_key({"kind": "evaluate", "rules": cfg.rules, "tags": tags, "corpus": self.hashes(corpus),
                           "upstream": [gen_key, mix_key]})

        def make() -> tuple[Stage, StageCheck]:
            argv = ["clinie-nemo", "evaluate", "--records", f"{self._dir('mix', mix_key)}/data/test.jsonl",
                    "--predictions", f"{self._dir('generate', gen_key)}/predictions.jsonl", "--corpus", corpus,
                    "--json", f"{self._dir('evaluate', key)}/scores.json"]
            if cfg.rules:
                argv += ["--rules", cfg.rules]
            for k, v in tags.items():
                argv += ["--tag", f"{k}={v}"]
            return (Stage("evaluate", key, tuple(argv), "scores.json", True, (gen_key, mix_key)),
                    partial(validate.rules_problem, cfg.rules))

        return self._use(cell, key, make)


def plan_json(plan: StudyPlan) -> dict[str, Any]:
    """The plan as written to STUDY_DIR/plan.json (read by `clinie-nemo status` and report)."""
    return {"study": plan.config.name, "engine": plan.config.engine,
            "cells": [{"name": c.name, **c.tags(), "stages": plan.cell_stages[c.name]} for c in plan.cells],
            "stages": {k: {"kind": s.kind, "dir": f"stages/{s.dirname}", "argv": list(s.argv),
                           "output": s.output, "upstream": list(s.upstream), "cells": list(s.cells)}
                       for k, s in plan.stages.items()}}
