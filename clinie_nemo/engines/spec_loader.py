"""Load the run spec from YAML presets with ``key=value`` overrides, type-checked field by field.

- :func:`load_run_spec` (model preset or path, recipe preset or path, overrides) -> validated RunSpec
- :func:`load_generate_config`, :func:`load_nemo_script_config`, :func:`load_yaml_as` for one file
- :func:`to_dict` / :func:`dump_yaml` turn any spec back into the plain YAML it was loaded from.

Every problem in a file is collected (unknown keys list the valid ones) before a ConfigError is raised.
Overrides use dotted keys: ``model.checkpoint=/ckpt``, ``train.lora.dim=64``; keys without a
``model.``/``train.`` prefix mean ``train.`` (``lora.dim=64``, ``parallel.tensor=2``).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from clinie_nemo.core.errors import ConfigError, unknown_name
from clinie_nemo.core.yaml_config import read_yaml
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

def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_optional(tp: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) < len(typing.get_args(tp)):
            return True, args[0] if len(args) == 1 else Union[tuple(args)]  # noqa: UP007
    return False, tp


def _convert(value: Any, tp: Any, where: str, problems: list[str]) -> Any:
    optional, tp = _is_optional(tp)
    if value is None or (optional and isinstance(value, str) and value.lower() in ("null", "none", "~")):
        if optional:
            return None
        problems.append(f"{where}: must not be null")
        return None
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            problems.append(f"{where}: expected a mapping of {', '.join(f.name for f in dataclasses.fields(tp))}")
            return None
        return _build(tp, value, where, problems)
    if origin is Literal:
        choices = typing.get_args(tp)
        text = str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
        if text not in choices:
            problems.append(f"{where}: {value!r} is not one of {', '.join(map(str, choices))}")
        return text
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.strip("[]").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            problems.append(f"{where}: expected a list")
            return ()
        item_tp = typing.get_args(tp)[0]
        return tuple(_convert(v, item_tp, f"{where}[{i}]", problems) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            problems.append(f"{where}: expected a mapping")
            return {}
        return {str(k): _scalar_text(v) for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        problems.append(f"{where}: expected true or false, got {value!r}")
        return False
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        problems.append(f"{where}: expected an integer, got {value!r}")
        return 0
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML 1.1 reads 1e-4 as a string
            except ValueError:
                pass
        problems.append(f"{where}: expected a number, got {value!r}")
        return 0.0
    if tp is str:
        if isinstance(value, str):
            return value
        problems.append(f"{where}: expected a string, got {value!r}")
        return ""
    raise TypeError(f"unsupported spec field type {tp!r} at {where}")  # a bug in spec.py, not user input


def _scalar_text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return "null" if v is None else str(v)


def _build(cls: type[T], data: dict[str, Any], where: str, problems: list[str]) -> T:
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = _hints(cls)
    prefix = f"{where}." if where else ""
    for key in data:
        if key not in fields:
            problems.append(f"{prefix}{key}: unknown key; valid keys: {', '.join(fields)}")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], f"{prefix}{name}", problems)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            problems.append(f"{prefix}{name}: required key missing")
    if problems:
        return None  # type: ignore[return-value]
    return cls(**kwargs)


def build(cls: type[T], data: dict[str, Any], source: str) -> T:
    """Construct dataclass ``cls`` from plain data, raising one ConfigError listing every problem."""
    problems: list[str] = []
    obj = _build(cls, data, "", problems)
    if problems:
        raise ConfigError(f"{source}:\n  " + "\n  ".join(problems))
    return obj


def load_yaml_as(cls: type[T], path: str | Path) -> T:
    return build(cls, read_yaml(path), str(path))


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
            _, sub_cls = _is_optional(_hints(node_cls)[part])
            if not dataclasses.is_dataclass(sub_cls):
                raise ConfigError(f"override {text!r}: {part!r} is a value, not a section")
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node, node_cls = node[part], sub_cls
    return out


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
    spec = build(RunSpec, data, f"{model_path} + {recipe_path}")
    if validate:
        from clinie_nemo.engines.spec_checks import check_run_spec

        check_run_spec(spec)
    return spec


def load_spec_file(path: str | Path) -> RunSpec:
    """A resolved spec.yaml (as written into a run directory)."""
    return build(RunSpec, read_yaml(path), str(path))


def load_generate_config(name_or_path: str | Path | None = None, overrides: list[str] | None = None
                         ) -> GenerateConfig:
    path = resolve_preset("generate", name_or_path or "greedy")
    data = apply_overrides(read_yaml(path), list(overrides or []), GenerateConfig)
    cfg = build(GenerateConfig, data, str(path))
    from clinie_nemo.engines.spec_checks import check_generate_config

    check_generate_config(cfg, str(path))
    return cfg


def load_nemo_script_config(name_or_path: str | Path) -> NemoScriptConfig:
    return load_yaml_as(NemoScriptConfig, resolve_preset("nemo", name_or_path))


def load_run_spec_file(path: str | Path, overrides: list[str] | None = None, validate: bool = True) -> RunSpec:
    """A resolved spec.yaml plus overrides (how every rank of a multi-GPU run reads its spec)."""
    data = apply_overrides(read_yaml(path), list(overrides or []), RunSpec, default_section="train")
    spec = build(RunSpec, data, str(path))
    if validate:
        from clinie_nemo.engines.spec_checks import check_run_spec

        check_run_spec(spec)
    return spec
