"""Expand a study into cells and a content-addressed job graph (pure apart from hashing input files).

A cell is (held-out fold, fraction, model, method, seed). Its chain is mix (CPU) -> train (GPU) -> generate
(GPU) -> evaluate (CPU). Each stage is keyed by a hash of its inputs (its config, the content hashes of the
files it reads, and its upstream stages' keys), so cells that share inputs share the stage (one mix per
fold x fraction x seed serves every model and method) and a changed input gives a new stage folder while
finished ones stay untouched. Stage folders: ``STUDY_DIR/stages/<kind>-<key>/``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from clinie_nemo.core.errors import ConfigError
from clinie_nemo.study.config import STAGE_KINDS, StudyConfig

KEY_LENGTH = 16
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
    """Every cell and its four stages; raises ConfigError naming every missing input file."""

    root = Path(study_dir).resolve()
    hashes = _FileHashes()
    stages: dict[str, Stage] = {}
    users: dict[str, list[str]] = {}
    cells: list[Cell] = []
    cell_stages: dict[str, dict[str, str]] = {}

    def add(stage: Stage, cell: Cell) -> str:
        stages.setdefault(stage.key, stage)
        users.setdefault(stage.key, []).append(cell.name)
        return stage.key

    def sdir(kind: str, key: str) -> str:
        return str(root / "stages" / f"{kind}-{key}")

    for fold in cfg.folds:
        for fraction in cfg.fractions:
            for model in cfg.models:
                for method in cfg.methods:
                    for seed in cfg.seeds:
                        cell = Cell(fold, fraction, model, method, seed)
                        cells.append(cell)
                        mix = mixture_dict(cfg, fold, fraction, seed)
                        file_hashes = {p: hashes(p) for d in mix["datasets"] for k, p in d.items()
                                       if k in ("train", "test", "validation")}
                        mix_key = content_key({"kind": "mix", "mixture": mix, "files": file_hashes})
                        mix_dir = sdir("mix", mix_key)
                        if mix_key not in stages:
                            text = yaml.dump(mix, Dumper=_Dumper, sort_keys=False)
                            stages[mix_key] = Stage("mix", mix_key, ("clinie-nemo", "mix", f"{mix_dir}/mixture.yaml",
                                                                     "--output", f"{mix_dir}/data", "--quiet"),
                                                    "data", True, (), (("mixture.yaml", text),))
                        add(stages[mix_key], cell)

                        model_ref, model_hash = _ref(cfg, cfg.models[model], hashes)
                        recipe_ref, recipe_hash = _ref(cfg, cfg.recipes[method], hashes)
                        res = cfg.stage_resources("train")
                        overrides = [f"seed={seed}", *cfg.train_overrides, *cfg.method_overrides.get(method, ())]
                        if cfg.engine == "local":  # one device, whatever the recipe says (full_sft: TP 2)
                            parallel = ["parallel.nodes=1", "parallel.gpus_per_node=1", "parallel.tensor=1",
                                        "parallel.pipeline=1", "parallel.context=1"]
                        else:
                            parallel = [f"parallel.nodes={res.nodes}", f"parallel.gpus_per_node={res.gpus}"]
                        overrides = [*parallel, *overrides]
                        train_key = content_key({"kind": "train", "engine": cfg.engine, "model": model_ref,
                                                 "model_hash": model_hash, "recipe": recipe_ref,
                                                 "recipe_hash": recipe_hash, "overrides": overrides,
                                                 "upstream": [mix_key]})
                        train_dir = sdir("train", train_key)
                        add(Stage("train", train_key, ("clinie-nemo", "train", "--engine", cfg.engine, "--model",
                                                       model_ref, "--recipe", recipe_ref, "--data",
                                                       f"{mix_dir}/data", "--output", f"{train_dir}/run",
                                                       *overrides), "run", False, (mix_key,)), cell)

                        gen_ref, gen_hash = _ref(cfg, cfg.generate_config, hashes)
                        gen_key = content_key({"kind": "generate", "engine": cfg.engine, "config": gen_ref,
                                               "config_hash": gen_hash, "upstream": [train_key, mix_key]})
                        gen_dir = sdir("generate", gen_key)
                        add(Stage("generate", gen_key, ("clinie-nemo", "generate", "--engine", cfg.engine,
                                                        "--run", f"{train_dir}/run", "--records",
                                                        f"{mix_dir}/data/test.jsonl", "--output",
                                                        f"{gen_dir}/predictions.jsonl", "--config", gen_ref),
                                  "predictions.jsonl", True, (train_key, mix_key)), cell)

                        corpus = cfg.resolve(cfg.dataset(fold).test)
                        tags = {**cell.tags(), "engine": cfg.engine, "few_shot_k": str(cfg.few_shot_k)}
                        eval_key = content_key({"kind": "evaluate", "rules": cfg.rules, "tags": tags,
                                                "corpus": hashes(corpus), "upstream": [gen_key, mix_key]})
                        eval_dir = sdir("evaluate", eval_key)
                        argv = ["clinie-nemo", "evaluate", "--records", f"{mix_dir}/data/test.jsonl",
                                "--predictions", f"{gen_dir}/predictions.jsonl", "--corpus", corpus,
                                "--json", f"{eval_dir}/scores.json"]
                        if cfg.rules:
                            argv += ["--rules", cfg.rules]
                        for k, v in tags.items():
                            argv += ["--tag", f"{k}={v}"]
                        add(Stage("evaluate", eval_key, tuple(argv), "scores.json", True, (gen_key, mix_key)), cell)
                        cell_stages[cell.name] = {"mix": mix_key, "train": train_key, "generate": gen_key,
                                                  "evaluate": eval_key}
    if hashes.missing:
        raise ConfigError("study inputs not found:\n  " + "\n  ".join(sorted(set(hashes.missing))))
    ordered = {k: _with_cells(s, users[k]) for kind in STAGE_KINDS for k, s in stages.items() if s.kind == kind}
    return StudyPlan(cfg, root, tuple(cells), ordered, cell_stages)


def _with_cells(stage: Stage, cells: list[str]) -> Stage:
    from dataclasses import replace

    return replace(stage, cells=tuple(cells))


def plan_json(plan: StudyPlan) -> dict[str, Any]:
    """The plan as written to STUDY_DIR/plan.json (read by `clinie-nemo status` and report)."""
    return {"study": plan.config.name, "engine": plan.config.engine,
            "cells": [{"name": c.name, **c.tags(), "stages": plan.cell_stages[c.name]} for c in plan.cells],
            "stages": {k: {"kind": s.kind, "dir": f"stages/{s.dirname}", "argv": list(s.argv),
                           "output": s.output, "upstream": list(s.upstream), "cells": list(s.cells)}
                       for k, s in plan.stages.items()}}
