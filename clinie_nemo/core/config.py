"""Configuration files: YAML -> frozen dataclass, the one builder every config loader uses.

- :func:`read_yaml`: a file's top-level mapping; a missing file, invalid YAML or a top level that is not a
  mapping becomes a :class:`ConfigError` naming the file.
- :func:`resolve`: OmegaConf ``${...}`` interpolation (``${seed}``, ``${model.name}``, ``${oc.env:HOME}``;
  ``\\${`` keeps a literal ``${``); a bad interpolation is a ConfigError naming the file and the key.
- :func:`load_yaml`: both.
- :func:`build`: the mapping -> dataclass ``cls``, every field type-checked, unknown keys rejected with the
  valid keys listed, every problem collected (not only the first) as ``key.path: what is wrong``.
- :func:`checked`: the built object, or one ConfigError (exit 2) listing every problem.

Each loader (mixture, study, run spec, schema, templates) reads, builds, then runs its own domain checks
(ranges, names, cross-field rules) on the built object and raises everything together.

Supported field types: str, int, float, bool, ``Literal[...]`` of strings, ``Any``, ``X | None``, unions
(``bool | str``: the member the value already is), ``tuple[X, ...]``, ``dict[str, X]`` / ``Mapping[str, X]``
and nested dataclasses. Fields with ``metadata={"yaml": False}`` are not read from YAML. With
``coerce=True`` (the run spec, whose values also arrive as ``key=value`` text) a float may be given as text
(``1e-4``: YAML 1.1 reads it as a string), ``null``/``none``/``~`` text means None, ``a,b`` text is a list,
and ``dict[str, str]`` values are their scalar text.

Imports: :mod:`.errors`, PyYAML, omegaconf (only for a file that has an interpolation). Imported by: every
config loader.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from clinie_nemo.core.errors import ConfigError

T = TypeVar("T")
_MISSING = object()
_NULL_TEXT = ("null", "none", "~")


# ------------------------------------------------------------------------------------------ reading files


def read_yaml(path: str | Path, what: str = "config") -> dict[str, Any]:
    """The top-level mapping of a YAML file (an empty file is an empty mapping), as written: no interpolation."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: {what} file not found")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: invalid YAML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read {what}: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level of the {what}")
    return data


def _has_interpolation(value: Any) -> bool:
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, Mapping):
        return any(_has_interpolation(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_interpolation(v) for v in value)
    return False


def resolve(data: dict[str, Any], source: str) -> dict[str, Any]:
    """``data`` with its OmegaConf interpolations resolved (keys relative to ``data``'s top level).

    Data without ``${`` is returned as is: OmegaConf would give back the same values, and it cannot hold some
    that YAML reads (dates), which the builder reports with its own message."""
    if not _has_interpolation(data):
        return data
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        resolved = OmegaConf.to_container(OmegaConf.create(data), resolve=True)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "top level"
        what = str(getattr(exc, "msg", None) or exc).strip().splitlines()[0]
        raise ConfigError(f"{source}: {key}: bad interpolation: {what}") from None
    return typing.cast(dict[str, Any], resolved)


def load_yaml(path: str | Path, what: str = "config") -> dict[str, Any]:
    """:func:`read_yaml`, interpolations resolved."""
    return resolve(read_yaml(path, what), str(path))


def checked(obj: T | None, heading: str, problems: list[str]) -> T:
    """``obj`` when nothing is wrong; else one ConfigError listing every problem (indented under ``heading``)."""
    if problems or obj is None:
        raise ConfigError(heading + "\n  " + "\n  ".join(problems))
    return obj


# ------------------------------------------------------------------------------------------------ building


def yaml_fields(cls: type) -> dict[str, dataclasses.Field]:
    """The fields of dataclass ``cls`` that YAML sets, by name, in declaration order."""
    return {f.name: f for f in dataclasses.fields(cls) if f.metadata.get("yaml", True)}


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _at(where: str, text: str) -> str:
    return f"{where}: {text}" if where else text


_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _words(tp: Any) -> str:
    if tp in _WORDS:
        return _WORDS[tp]
    origin = typing.get_origin(tp)
    if origin is tuple:
        return "a list"
    if origin in (dict, Mapping) or dataclasses.is_dataclass(tp):
        return "a mapping"
    if origin is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(tp)))
    return getattr(tp, "__name__", str(tp))


def _wrong(value: Any, what: str, where: str, problems: list[str], hint: str = "") -> Any:
    problems.append(_at(where, f"expected {what}, got {type(value).__name__} {value!r}{hint}"))
    return _MISSING


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


def _convert_union(value: Any, args: tuple[Any, ...], where: str, problems: list[str], coerce: bool) -> Any:
    optional = type(None) in args
    if value is None or (optional and coerce and isinstance(value, str) and value.lower() in _NULL_TEXT):
        return None if optional else _wrong(value, " or ".join(_words(a) for a in args), where, problems)
    inner = [a for a in args if a is not type(None)]
    if len(inner) == 1:
        return _convert(value, inner[0], where, problems, coerce)
    for member in inner:  # e.g. bool | str: the member the YAML value already is (no coercion)
        scratch: list[str] = []
        converted = _convert(value, member, where, scratch, False)
        if not scratch:
            return converted
    return _wrong(value, " or ".join(_words(a) for a in inner), where, problems)


def _convert(value: Any, tp: Any, where: str, problems: list[str], coerce: bool) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return _convert_union(value, args, where, problems, coerce)
    if tp is Any:
        return value
    if value is None:
        return _wrong(value, _words(tp), where, problems)
    if dataclasses.is_dataclass(tp):
        built = build(tp, value, where, problems, coerce=coerce)  # type: ignore[arg-type]
        return _MISSING if built is None else built
    if origin is Literal:
        text = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
        if text in args:
            return text
        problems.append(_at(where, f"{value!r} is not one of {', '.join(map(str, args))}"))
        return _MISSING
    if origin is tuple:
        if coerce and isinstance(value, str):
            value = [v.strip() for v in value.strip("[]").split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            return _wrong(value, "a list", where, problems)
        items = tuple(_convert(v, args[0], f"{where}[{i}]", problems, coerce) for i, v in enumerate(value))
        return _MISSING if any(v is _MISSING for v in items) else items
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            return _wrong(value, "a mapping", where, problems)
        if coerce and args[1] is str:
            return {str(k): _scalar_text(v) for k, v in value.items()}
        out = {str(k): _convert(v, args[1], _join(where, str(k)), problems, coerce) for k, v in value.items()}
        return _MISSING if any(v is _MISSING for v in out.values()) else out
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if coerce and isinstance(value, str):
            try:
                return float(value)  # YAML 1.1 reads 1e-4 as a string
            except ValueError:
                pass
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is str:
        if isinstance(value, str):
            return value
        return _wrong(value, "a string", where, problems, " (quote it in YAML)")
    else:  # pragma: no cover - a programming error in a dataclass, not user input
        raise TypeError(f"unsupported field type {tp!r} at {where}")
    return _wrong(value, _words(tp), where, problems)


def build(cls: type[T], data: Any, where: str, problems: list[str], *, coerce: bool = False) -> T | None:
    """Build dataclass ``cls`` from a parsed YAML mapping; appends every problem (``where`` is the key path,
    "" at the top) and returns None when a value is missing or of the wrong type. Unknown keys are reported
    but do not stop the build, so the loader's own checks still run on the rest."""
    fields = yaml_fields(cls)
    if not isinstance(data, Mapping):
        problems.append(_at(where, f"expected a mapping with keys {', '.join(fields)}"))
        return None
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            problems.append(_at(where, f"unknown key {key!r}; valid keys: {', '.join(sorted(fields))}"))
    values: dict[str, Any] = {}
    ok = True
    for name, f in fields.items():
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                problems.append(_at(where, f"missing required key {name!r}"))
                ok = False
            continue
        value = _convert(data[name], hints[name], _join(where, name), problems, coerce)
        ok = ok and value is not _MISSING
        values[name] = value
    return cls(**values) if ok else None
