"""The study YAML: a leave-one-dataset-out grid (held-out folds x fractions x models x methods x seeds) with
the Slurm resources of each stage. It maps 1:1 onto the frozen :class:`StudyConfig`; loading collects every
problem (unknown keys listed with the valid ones, wrong types, unknown names) into one ConfigError.

Example::

    name: mini
    engine: local                      # local | bridge | nemo
    datasets:                          # documents JSONL per split (clinie-nemo convert / synth output)
      - {name: i2b2_2010, train: corpora/i2b2/train.jsonl, test: corpora/i2b2/test.jsonl}
      - {name: radgraph,  train: corpora/rg/train.jsonl,   test: corpora/rg/test.jsonl}
    held_out: [i2b2_2010, radgraph]    # the folds; default: every dataset
    fractions: [0.0, 0.2, 1.0]
    seeds: [1]
    models: {tiny: tiny.yaml}          # name -> model preset (nemo_configs/models) or YAML path
    methods: [lora, full]
    train_overrides: [max_steps=8]
    method_overrides: {lora: [lora.dim=8]}
    mixture: {tasks: [ce], format: json, max_tokens: 256, template: rotate}
    resources:
      train: {partition: gpu, gpus: 1, cpus: 8, time: "04:00:00", container: nvcr.io/nvidia/nemo:26.04,
              container_python: python, array_parallelism: 16, max_requeues: 10,
              qos: normal, constraint: "a100|h100", reservation: null, exclusive: false}

Resources per stage kind: ``nodes > 1`` only for train on the bridge/nemo engines (Slurm then starts one
task per GPU, each task one rank: no nested srun); ``container_python`` is the interpreter inside the
container (submitit's job command runs it, not the host's), ``container_workdir`` its working folder
(default: the study folder); ``array_parallelism`` throttles how many array tasks of the stage kind run at
once (``--array=0-N%K``); ``max_requeues`` caps how often a stopped stage requeues itself. ``qos``,
``constraint`` (node features), ``reservation``, ``exclusive`` (true, or ``user``/``mcs``) and ``wckey`` are
sbatch's options of the same names (a multi-node train is always exclusive; no ``wckey`` = none sent). Every
study job is submitted with ``--requeue`` (its runner requeues itself), whatever the cluster's JobRequeue.
Resource strings with a control character (a newline would start a new ``#SBATCH`` line) are refused.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinie_nemo import engines
from clinie_nemo.core.config import build, checked, load_yaml
from clinie_nemo.core.errors import ConfigError
from clinie_nemo.engines import ENGINES
from clinie_nemo.study.sbatch import time_minutes

METHODS = ("lora", "full")
STAGE_KINDS = ("mix", "train", "generate", "evaluate")
DEFAULT_RECIPES = {"lora": "peft_lora", "full": "full_sft"}


@dataclass(frozen=True)
class StudyDataset:
    """One corpus: documents JSONL per split (same keys as a mixture's dataset entries)."""

    name: str
    train: str
    test: str
    validation: str | None = None
    weight: float | None = None
    cap: int | None = None
    tasks: tuple[str, ...] | None = None


@dataclass(frozen=True)
class MixSettings:
    """Passed to every cell's mixture config (clinie-nemo mix)."""

    tasks: tuple[str, ...] = ("ce",)
    format: str = "json"
    max_tokens: int = 2048
    template: str = "rotate"  # rotate, or one template name (fixed)
    tokenizer: str | None = None
    validation_fraction: float = 0.1


@dataclass(frozen=True)
class StageResources:
    partition: str | None = None
    account: str | None = None
    time: str = "01:00:00"
    nodes: int = 1
    gpus: int = 0  # per node
    cpus: int = 1  # per task
    mem: str | None = None  # e.g. "16G"
    container: str | None = None  # pyxis --container-image
    container_mounts: str | None = None
    signal_seconds: int = 120  # preemption / time-limit warning before the end
    container_python: str = "python"  # the interpreter inside the container (not the host's sys.executable)
    container_workdir: str | None = None  # pyxis --container-workdir; None = the study folder
    array_parallelism: int | None = None  # at most this many array tasks at once (%N); None = submitit's 256
    max_requeues: int = 10  # a stage stopped more often (SLURM_RESTART_COUNT) fails instead of requeueing
    qos: str | None = None  # sbatch --qos
    constraint: str | None = None  # sbatch --constraint: node features, e.g. "a100|h100"
    reservation: str | None = None  # sbatch --reservation (one name or a comma-separated list)
    exclusive: bool | str = False  # sbatch --exclusive[={user|mcs}]: true, false, "user" or "mcs"
    wckey: str | None = None  # sbatch --wckey; None sends none (submitit's own default would be "submitit")


def _default_resources() -> dict[str, StageResources]:
    return {"mix": StageResources(cpus=1, time="00:30:00"),
            "train": StageResources(gpus=1, cpus=2, time="04:00:00", signal_seconds=300),
            "generate": StageResources(gpus=1, cpus=2, time="02:00:00"),
            "evaluate": StageResources(cpus=1, time="00:30:00")}


@dataclass(frozen=True)
class StudyConfig:
    datasets: tuple[StudyDataset, ...]
    models: dict[str, str]
    name: str = "study"
    engine: str = "local"
    held_out: tuple[str, ...] | None = None  # None = every dataset
    fractions: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.5, 1.0)
    seeds: tuple[int, ...] = (1,)
    methods: tuple[str, ...] = ("lora",)
    recipes: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_RECIPES))
    train_overrides: tuple[str, ...] = ()
    method_overrides: dict[str, tuple[str, ...]] = field(default_factory=dict)  # e.g. {lora: [lora.dim=8]}
    generate_config: str = "greedy"
    few_shot_k: int = 0
    rules: str | None = None
    mixture: MixSettings = field(default_factory=MixSettings)
    resources: dict[str, StageResources] = field(default_factory=_default_resources)
    base_dir: str = field(default=".", metadata={"yaml": False})

    @property
    def folds(self) -> tuple[str, ...]:
        return self.held_out if self.held_out is not None else tuple(d.name for d in self.datasets)

    def dataset(self, name: str) -> StudyDataset:
        return next(d for d in self.datasets if d.name == name)

    def resolve(self, path: str) -> str:
        """A path from the YAML, absolute (relative paths are relative to the YAML's folder)."""
        return _resolve(self.base_dir, path)

    def stage_resources(self, kind: str) -> StageResources:
        return self.resources.get(kind, _default_resources()[kind])


@functools.lru_cache(maxsize=4096)
def _resolve(base_dir: str, path: str) -> str:
    p = Path(path)
    return str(p if p.is_absolute() else (Path(base_dir) / p).resolve())


# Valid values of the sbatch options a stage passes on (sbatch(1), Slurm 22.05): names without spaces,
# a constraint as a feature expression, a memory size with an optional unit, --exclusive's modes.
_NAME = re.compile(r"[A-Za-z0-9_.+@:,-]+")
_CONSTRAINT = re.compile(r"[A-Za-z0-9_.&|\[\]*()!:,+@-]+")
_MEM = re.compile(r"\d+[KMGTkmgt]?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
EXCLUSIVE_MODES = ("user", "mcs")
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _resource_problems(kind: str, r: StageResources, where: str) -> list[str]:
    """Control characters in any string, and the sbatch options' value formats (each listing what is valid)."""
    problems: list[str] = []
    for key, value in r.__dict__.items():
        if isinstance(value, str) and _CONTROL.search(value):
            problems.append(f"{where}.{key}: {value!r} contains a control character (newline, tab, ...): refused, "
                            "it would end the #SBATCH line and inject what follows")
    bad = {k for k, v in r.__dict__.items() if isinstance(v, str) and _CONTROL.search(v)}
    checks = (("partition", _NAME, "a partition name or comma-separated names, no spaces"),
              ("account", _NAME, "an account name, no spaces"),
              ("qos", _NAME, "a QOS name, no spaces"),
              ("reservation", _NAME, "a reservation name or comma-separated names, no spaces"),
              ("wckey", _NAME, "a workload characterization key, no spaces"),
              ("constraint", _CONSTRAINT, "node features joined by & | [ ] * ( ), no spaces, e.g. a100|h100"),
              ("mem", _MEM, "megabytes, or a number with a unit K, M, G or T (e.g. 16G); 0 = all of the node's"))
    for key, pattern, valid in checks:
        value = getattr(r, key)
        if value is not None and key not in bad and not pattern.fullmatch(value):
            problems.append(f"{where}.{key}: invalid value {value!r}; valid: {valid}")
    if isinstance(r.exclusive, str) and r.exclusive not in EXCLUSIVE_MODES:
        problems.append(f"{where}.exclusive: invalid value {r.exclusive!r}; valid: true, false, "
                        f"{', '.join(EXCLUSIVE_MODES)}")
    if r.container_workdir is not None and not r.container_workdir.startswith("/"):
        problems.append(f"{where}.container_workdir: {r.container_workdir!r} must be an absolute path inside the "
                        "container")
    return problems


def _check(cfg: StudyConfig, source: str) -> list[str]:
    problems: list[str] = []
    if not STUDY_NAME.fullmatch(cfg.name):
        problems.append(f"{source}: name: invalid study name {cfg.name!r}; valid: letters, digits, '_', '.', '-' "
                        "(it names the Slurm jobs)")
    names = [d.name for d in cfg.datasets]
    if len(names) < 2:
        problems.append(f"{source}: datasets: leave-one-dataset-out needs at least two datasets")
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"{source}: datasets: {dup!r} listed more than once")
    for fold in cfg.folds:
        if fold not in names:
            problems.append(f"{source}: held_out: unknown dataset {fold!r}; valid: {', '.join(names)}")
    if cfg.engine not in ENGINES:
        problems.append(f"{source}: engine: unknown engine {cfg.engine!r}; valid: {', '.join(ENGINES)}")
    for m in cfg.methods:
        if m not in METHODS:
            problems.append(f"{source}: methods: unknown method {m!r}; valid: {', '.join(METHODS)}")
        elif m not in cfg.recipes:
            problems.append(f"{source}: recipes: no recipe for method {m!r}")
    for m in cfg.method_overrides:
        if m not in METHODS:
            problems.append(f"{source}: method_overrides: unknown method {m!r}; valid: {', '.join(METHODS)}")
    for f in cfg.fractions:
        if not 0.0 <= f <= 1.0:
            problems.append(f"{source}: fractions: {f} is outside [0, 1]")
    for key, values in (("fractions", cfg.fractions), ("seeds", cfg.seeds), ("methods", cfg.methods)):
        if not values:
            problems.append(f"{source}: {key}: must not be empty")
        if len(set(values)) != len(values):
            problems.append(f"{source}: {key}: values repeat: {list(values)}")
    if not cfg.models:
        problems.append(f"{source}: models: name at least one model (name: preset or YAML path)")
    for kind in cfg.resources:
        if kind not in STAGE_KINDS:
            problems.append(f"{source}: resources: unknown stage {kind!r}; valid: {', '.join(STAGE_KINDS)}")
    for kind, r in cfg.resources.items():
        if r.nodes < 1 or r.gpus < 0 or r.cpus < 1:
            problems.append(f"{source}: resources.{kind}: nodes >= 1, gpus >= 0, cpus >= 1 required")
        rank_per_gpu = cfg.engine not in ENGINES or engines.get(cfg.engine).RANK_PER_GPU  # unknown: reported above
        if r.nodes > 1 and (kind != "train" or (rank_per_gpu and r.gpus < 1)):
            problems.append(f"{source}: resources.{kind}: nodes {r.nodes}: only train stages run on several nodes "
                            f"(bridge/nemo: one rank per GPU, gpus >= 1; local: one data-parallel rank per node); "
                            f"use nodes: 1")
        if r.array_parallelism is not None and r.array_parallelism < 1:
            problems.append(f"{source}: resources.{kind}.array_parallelism: must be >= 1")
        if r.max_requeues < 0:
            problems.append(f"{source}: resources.{kind}.max_requeues: must be >= 0")
        if not r.container_python.strip():
            problems.append(f"{source}: resources.{kind}.container_python: must not be empty")
        problems += _resource_problems(kind, r, f"{source}: resources.{kind}")
        try:
            minutes = time_minutes(r.time)
        except ConfigError as exc:
            problems.append(f"{source}: resources.{kind}.time: {exc}")
            continue
        if r.signal_seconds >= minutes * 60:
            problems.append(f"{source}: resources.{kind}: signal_seconds {r.signal_seconds} must be shorter than "
                            f"time {r.time}")
    if cfg.few_shot_k < 0:
        problems.append(f"{source}: few_shot_k: must be >= 0")
    return problems


def study_from_dict(data: Any, source: str = "<study>", base_dir: str | Path = ".") -> StudyConfig:
    problems: list[str] = []
    cfg = build(StudyConfig, data, "", problems)
    problems = [f"{source}: {p}" for p in problems]
    if cfg is not None:
        resources = {**_default_resources(), **cfg.resources}
        cfg = StudyConfig(**{**cfg.__dict__, "resources": resources, "base_dir": str(Path(base_dir).resolve())})
        problems += _check(cfg, source)
    return checked(cfg, "invalid study config:", problems)


def load_study(path: str | Path) -> StudyConfig:
    p = Path(path)
    data = load_yaml(p, "study config")
    return study_from_dict(data, str(p), p.parent)
