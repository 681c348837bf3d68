"""Load the run spec from YAML presets with ``key=value`` overrides, type-checked field by field.

- :func:`load_run_spec` (model preset or path, recipe preset or path, overrides) -> validated RunSpec
- :func:`load_generate_config`, :func:`load_nemo_script_config`, :func:`load_yaml_as` for one file
- :func:`to_dict` / :func:`dump_yaml` turn any spec back into the plain YAML it was loaded from.

Every problem in a file is collected (unknown keys list the valid ones) before a ConfigError is raised
(the builder: :mod:`clinie_nemo.core.config`). Presets may use OmegaConf ``${...}`` interpolation within
their own file (``alpha: ${lora.dim}`` in a recipe), resolved after the overrides.
Overrides use dotted keys: ``model.checkpoint=/ckpt``, ``train.lora.dim=64``; keys without a
``model.``/``train.`` prefix mean ``train.`` (``lora.dim=64``, ``parallel.tensor=2``).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from clinie_nemo.core import config
from clinie_nemo.core.config import read_yaml
from clinie_nemo.core.errors import ConfigError, unknown_name
from clinie_nemo.engines.spec import GenerateConfig, ModelSpec, NemoScriptConfig, RunSpec, TrainRecipe


def _config_root() -> Path:
    """nemo_configs/: $CLINIE_NEMO_CONFIGS, else the checkout's (also an editable install), else the installed
    package's clinie_nemo/presets/ (a wheel or `pip install .`: setup.py ships nemo_configs/ as package data)."""
    candidates = [os.environ.get("CLINIE_NEMO_CONFIGS", ""), Path(__file__).resolve().parents[2] / "nemo_configs",
                  Path(__file__).resolve().parents[1] / "presets", Path(sys.prefix) / "share" / "clinie_nemo" / "nemo_configs"]
    for c in candidates:
        if c and (Path(c) / "models").is_dir():
            return Path(c)
    return Path(candidates[1])


CONFIG_ROOT = _config_root()
KINDS: dict[str, tuple[str, type]] = {  # preset folder -> dataclass
    "models": ("models", ModelSpec),
    "train": ("train", TrainRecipe),
    "generate": ("generate", GenerateConfig),
    "nemo": ("nemo", NemoScriptConfig),
}
T = TypeVar("T")


def presets(kind: str) -> dict[str, Path]:
    """Preset name -> file, for one folder of nemo_configs/ (models, train, generate, nemo)."""
    if kind not in KINDS:
        raise unknown_name("preset kind", kind, KINDS)
    return {p.stem: p for p in sorted((CONFIG_ROOT / KINDS[kind][0]).glob("*.yaml"))}


def resolve_preset(kind: str, name_or_path: str | Path) -> Path:
    """A preset name (``llama31_8b``) or a path to a YAML file."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.is_file():
        if not p.is_file():
            raise ConfigError(f"{p}: file not found")
        return p
    found = presets(kind)
    if str(name_or_path) not in found:
        raise unknown_name(f"{kind} preset", str(name_or_path), found)
    return found[str(name_or_path)]



# ---------------------------------------------------------------- typed construction

def build(cls: type[T], data: dict[str, Any], source: str) -> T:
    """Construct dataclass ``cls`` from plain data, raising one ConfigError listing every problem. Values
    may be ``key=value`` text (``coerce``: numbers, null, comma lists), see :mod:`clinie_nemo.core.config`."""
    problems: list[str] = []
    obj = config.build(cls, data, "", problems, coerce=True)
    return config.checked(obj, f"{source}:", problems)


def load_yaml_as(cls: type[T], path: str | Path, interpolate: bool = True) -> T:
    return build(cls, config.load_yaml(path) if interpolate else read_yaml(path), str(path))


# ---------------------------------------------------------------- overrides

def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key=value (for example lora.dim=64)")
    key, _, raw = text.partition("=")
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r}: bad key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str], cls: type, default_section: str = "") -> dict:
    """Set dotted keys in a nested dict, checking each key path against dataclass ``cls``."""
    out = _deep_copy(data)
    for text in overrides:
        path, value = parse_override(text)
        if default_section and path[0] not in {f.name for f in dataclasses.fields(cls)}:
            path = [default_section, *path]
        node, node_cls = out, cls
        for depth, part in enumerate(path):
            fields = {f.name for f in dataclasses.fields(node_cls)}
            if part not in fields:
                shown = ".".join(path[:depth]) or "top level"
                raise ConfigError(f"override {text!r}: unknown key {part!r} under {shown}; "
                                  f"valid keys: {', '.join(sorted(fields))}")
            if depth == len(path) - 1:
                node[part] = value
                break
            sub_cls = _section_class(typing.get_type_hints(node_cls)[part])
            if not dataclasses.is_dataclass(sub_cls):
                raise ConfigError(f"override {text!r}: {part!r} is a value, not a section")
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node, node_cls = node[part], sub_cls
    return out


def _section_class(tp: Any) -> Any:
    """The dataclass of a section field (``LoraSpec | None`` -> LoraSpec), else the field's type."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if len(args) == 1 and dataclasses.is_dataclass(args[0]) else tp


def _deep_copy(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in d.items()}


# ---------------------------------------------------------------- public loaders

def to_dict(obj: Any) -> Any:
    """A spec dataclass -> plain YAML-able data (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def dump_yaml(obj: Any) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=False, allow_unicode=True)


def load_run_spec(model: str | Path, recipe: str | Path, overrides: list[str] | None = None,
                  validate: bool = True) -> RunSpec:
    """Model preset/path + recipe preset/path + overrides -> a RunSpec, validated unless told not to."""
    model_path = resolve_preset("models", model)
    recipe_path = resolve_preset("train", recipe)
    data = {"model": read_yaml(model_path), "train": read_yaml(recipe_path)}
    data = apply_overrides(data, list(overrides or []), RunSpec, default_section="train")
    data = {"model": config.resolve(data["model"], str(model_path)),  # ${...} within each file, after overrides
            "train": config.resolve(data["train"], str(recipe_path))}
    spec = build(RunSpec, data, f"{model_path} + {recipe_path}")
    if validate:
        from clinie_nemo.engines.spec_checks import check_run_spec

        check_run_spec(spec)
    return spec


def load_spec_file(path: str | Path) -> RunSpec:
    """A resolved spec.yaml (as written into a run directory: no interpolation left to resolve)."""
    return build(RunSpec, read_yaml(path), str(path))


def load_generate_config(name_or_path: str | Path | None = None, overrides: list[str] | None = None
                         ) -> GenerateConfig:
    path = resolve_preset("generate", name_or_path or "greedy")
    data = apply_overrides(read_yaml(path), list(overrides or []), GenerateConfig)
    cfg = build(GenerateConfig, config.resolve(data, str(path)), str(path))
    from clinie_nemo.engines.spec_checks import check_generate_config

    check_generate_config(cfg, str(path))
    return cfg


def load_nemo_script_config(name_or_path: str | Path) -> NemoScriptConfig:
    """No interpolation here: the overrides are Hydra's text, and a ``${...}`` in them is NeMo's to resolve."""
    return load_yaml_as(NemoScriptConfig, resolve_preset("nemo", name_or_path), interpolate=False)


def load_run_spec_file(path: str | Path, overrides: list[str] | None = None, validate: bool = True) -> RunSpec:
    """A resolved spec.yaml plus overrides (how every rank of a multi-GPU run reads its spec)."""
    data = apply_overrides(read_yaml(path), list(overrides or []), RunSpec, default_section="train")
    spec = build(RunSpec, data, str(path))
    if validate:
        from clinie_nemo.engines.spec_checks import check_run_spec

        check_run_spec(spec)
    return spec
