"""Strict YAML -> frozen dataclass building for the study config: every field type-checked, unknown keys
rejected with the valid keys listed, every problem collected (not only the first).

Supported field types: str, int, float, bool, ``X | None``, unions of these (``bool | str``: the member
the YAML value is), ``tuple[X, ...]``, ``dict[str, X]`` and nested dataclasses. Fields with
``metadata={"yaml": False}`` are not read from YAML.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")
_MISSING = object()


def _yaml_fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if f.metadata.get("yaml", True)}


def _convert(value: Any, tp: Any, where: str, problems: list[str]) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) > 1:  # e.g. bool | str: the member the YAML value already is (no coercion)
            for member in inner:
                scratch: list[str] = []
                converted = _convert(value, member, where, scratch)
                if not scratch:
                    return converted
            names = " or ".join(getattr(a, "__name__", str(a)) for a in inner)
            problems.append(f"{where}: expected {names}, got {type(value).__name__} {value!r}")
            return _MISSING
        return _convert(value, inner[0], where, problems)
    if dataclasses.is_dataclass(tp):
        built = build(tp, value, where, problems)
        return _MISSING if built is None else built
    if origin is tuple:
        if not isinstance(value, list | tuple):
            problems.append(f"{where}: expected a list, got {type(value).__name__} {value!r}")
            return _MISSING
        items = [_convert(v, args[0], f"{where}[{i}]", problems) for i, v in enumerate(value)]
        return tuple(items)
    if origin is dict:
        if not isinstance(value, Mapping):
            problems.append(f"{where}: expected a mapping, got {type(value).__name__} {value!r}")
            return _MISSING
        return {str(k): _convert(v, args[1], f"{where}.{k}", problems) for k, v in value.items()}
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is str:
        if isinstance(value, str):
            return value
        problems.append(f"{where}: expected a string, got {type(value).__name__} {value!r} (quote it in YAML)")
        return _MISSING
    else:  # pragma: no cover - a programming error in a dataclass, not user input
        raise TypeError(f"unsupported field type {tp!r}")
    problems.append(f"{where}: expected {getattr(tp, '__name__', tp)}, got {type(value).__name__} {value!r}")
    return _MISSING


def build(cls: type[T], data: Any, where: str, problems: list[str]) -> T | None:
    """Build ``cls`` from a parsed YAML mapping; appends problems and returns None when it cannot."""
    if not isinstance(data, Mapping):
        problems.append(f"{where}: expected a mapping with keys {', '.join(_yaml_fields(cls))}")
        return None
    fields = _yaml_fields(cls)
    hints = typing.get_type_hints(cls)
    ok = True
    for key in data:
        if key not in fields:
            problems.append(f"{where}: unknown key {key!r}; valid keys: {', '.join(sorted(fields))}")
            ok = False
    values: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                problems.append(f"{where}: missing required key {name!r}")
                ok = False
            continue
        value = _convert(data[name], hints[name], f"{where}.{name}", problems)
        if value is _MISSING or (isinstance(value, tuple | dict) and _has_missing(value)):
            ok = False
        values[name] = value
    return cls(**values) if ok else None


def _has_missing(value: Any) -> bool:
    items = value.values() if isinstance(value, dict) else value
    return any(v is _MISSING for v in items)
