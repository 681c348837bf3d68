"""The one YAML -> dataclass builder (clinie_nemo.core.config): typed fields, unknown keys listed with the
valid ones, every problem collected with its key path; OmegaConf ``${...}`` interpolation with bad ones a
ConfigError naming the file and the key."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from clinie_nemo.core.config import build, checked, load_yaml, read_yaml, resolve
from clinie_nemo.core.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    dim: int
    mode: Literal["pre", "post"] = "pre"


@dataclass(frozen=True)
class Outer:
    name: str
    inner: Inner
    rate: float = 0.1
    tags: tuple[str, ...] = ()
    limits: dict[str, int] = field(default_factory=dict)
    exclusive: bool | str = False
    checkpoint: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    base_dir: str = field(default=".", metadata={"yaml": False})


def _build(data: object, coerce: bool = False) -> tuple[Outer | None, list[str]]:
    problems: list[str] = []
    return build(Outer, data, "", problems, coerce=coerce), problems


def test_builds_typed_frozen_values() -> None:
    obj, problems = _build({"name": "x", "inner": {"dim": 8, "mode": "post"}, "rate": 1, "tags": ["a", "b"],
                            "limits": {"a": 1}, "exclusive": "user"})
    assert problems == []
    assert obj == Outer("x", Inner(8, "post"), 1.0, ("a", "b"), {"a": 1}, "user")
    assert isinstance(obj.rate, float)


def test_every_problem_is_collected_with_its_key_path() -> None:
    obj, problems = _build({"name": 5, "inner": {"dim": "eight", "mode": "mid", "dmi": 1}, "rate": True,
                            "tags": "a", "limits": {"a": 1.5}, "exclusive": 1, "base_dir": "/x", "colour": 1})
    assert obj is None
    assert problems == [
        "unknown key 'base_dir'; valid keys: checkpoint, env, exclusive, inner, limits, name, rate, tags",
        "unknown key 'colour'; valid keys: checkpoint, env, exclusive, inner, limits, name, rate, tags",
        "name: expected a string, got int 5 (quote it in YAML)",
        "inner: unknown key 'dmi'; valid keys: dim, mode",
        "inner.dim: expected an integer, got str 'eight'",
        "inner.mode: 'mid' is not one of pre, post",
        "rate: expected a number, got bool True",
        "tags: expected a list, got str 'a'",
        "limits.a: expected an integer, got float 1.5",
        "exclusive: expected true or false or a string, got int 1",
    ]


def test_missing_required_keys_and_non_mappings() -> None:
    assert _build({"inner": {}})[1] == ["missing required key 'name'", "inner: missing required key 'dim'"]
    assert _build([1])[1] == ["expected a mapping with keys name, inner, rate, tags, limits, exclusive, "
                              "checkpoint, env"]


def test_unknown_keys_alone_still_build_so_domain_checks_run() -> None:
    obj, problems = _build({"name": "x", "inner": {"dim": 1}, "colour": "red"})
    assert obj == Outer("x", Inner(1)) and problems[0].startswith("unknown key 'colour'")


def test_coerce_reads_command_line_text() -> None:
    data = {"name": "x", "inner": {"dim": 1, "mode": "pre"}, "rate": "1e-4", "tags": "a,b", "checkpoint": "None",
            "env": {"N": 1, "B": True, "Z": None}}
    assert _build(data)[0] is None  # strict without coerce: text is not a number, nor a list
    obj, problems = _build(data, coerce=True)
    assert problems == []
    assert (obj.rate, obj.tags, obj.checkpoint, obj.env) == (1e-4, ("a", "b"), None, {"N": "1", "B": "true",
                                                                                      "Z": "null"})


def test_checked_lists_every_problem_under_a_heading() -> None:
    assert checked(1, "nothing:", []) == 1
    with pytest.raises(ConfigError, match="invalid x:\n  a\n  b$"):
        checked(1, "invalid x:", ["a", "b"])


@pytest.mark.parametrize(("text", "message"), [
    ("a: [1\n", "invalid YAML"),
    ("- 1\n", "expected a mapping at the top level of the config"),
])
def test_read_yaml_names_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"c.yaml: {message}"):
        read_yaml(path)
    with pytest.raises(ConfigError, match="nope.yaml: config file not found"):
        read_yaml(tmp_path / "nope.yaml")


def test_interpolation_is_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLINIE_TEST_ROOT", "/data")
    path = tmp_path / "c.yaml"
    path.write_text("seed: 7\nrun: {seed: '${seed}', name: 'run-${seed}', root: '${oc.env:CLINIE_TEST_ROOT}'}\n"
                    "items: ['${run.name}', 'cost \\${literal}']\n")
    assert load_yaml(path) == {"seed": 7, "run": {"seed": 7, "name": "run-7", "root": "/data"},
                               "items": ["run-7", "cost ${literal}"]}
    assert read_yaml(path)["run"]["seed"] == "${seed}"  # read_yaml gives the file as written


def test_without_interpolation_the_data_is_untouched() -> None:
    import datetime

    data = {"when": datetime.date(2024, 1, 1), "x": [1, {"y": None}]}  # OmegaConf cannot hold a date
    assert resolve(data, "c.yaml") is data


@pytest.mark.parametrize(("value", "message"), [
    ("'${nope}'", r"c\.yaml: run\.seed: bad interpolation: Interpolation key 'nope' not found"),
    ("'${seed'", r"c\.yaml: run\.seed: bad interpolation: .*"),
    ("'${oc.env:CLINIE_TEST_UNSET_VARIABLE}'", r"c\.yaml: run\.seed: bad interpolation: .*CLINIE_TEST_UNSET"),
])
def test_bad_interpolation_names_the_file_and_the_key(tmp_path: Path, value: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"seed: 7\nrun: {{seed: {value}}}\n")
    with pytest.raises(ConfigError, match=message):
        load_yaml(path)
