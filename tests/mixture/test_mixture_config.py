"""Mixture YAML -> frozen dataclass: strict validation (unknown keys listed with the valid ones), round trip."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from clinie_nemo.core.errors import ConfigError
from clinie_nemo.mixture.config import (
    dump_mixture_config,
    load_mixture_config,
    mixture_config_from_dict,
)
from tests.cli_plugin import cli
from tests.mixture_fixtures import make_corpora, mixture_yaml


def _base() -> dict:
    return {"datasets": [{"name": "a", "train": "a/train.jsonl", "test": "a/test.jsonl"},
                         {"name": "b", "train": "b/train.jsonl", "test": "b/test.jsonl", "weight": 2}]}


def test_defaults_and_types():
    config = mixture_config_from_dict(_base())
    assert config.tasks == ("ce",) and config.format == "json" and config.held_out is None
    assert config.datasets[1].weight == 2.0 and isinstance(config.datasets[1].weight, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 1  # type: ignore[misc]


def test_unknown_top_level_key_lists_valid_keys():
    with pytest.raises(ConfigError) as err:
        mixture_config_from_dict({**_base(), "held_out_fracton": 0.1})
    message = str(err.value)
    assert "unknown key 'held_out_fracton'" in message
    assert "valid keys:" in message and "held_out_fraction" in message and "few_shot_k" in message


def test_every_problem_reported_together():
    data = _base()
    data["datasets"][0]["wieght"] = 1
    data["datasets"][1]["cap"] = 5  # with weight 2: both given
    data.update(format="yaml", tasks=["ce", "ner"], held_out="c", held_out_fraction=1.5, template="rotate")
    with pytest.raises(ConfigError) as err:
        mixture_config_from_dict(data)
    message = str(err.value)
    for expected in ("datasets[0]: unknown key 'wieght'", "either weight or cap", "unknown format 'yaml'",
                     "unknown task 'ner'", "held_out: unknown dataset 'c'; valid: a, b",
                     "held_out_fraction: out of range"):
        assert expected in message


def test_fraction_needs_held_out_and_duplicates_rejected():
    with pytest.raises(ConfigError, match="needs held_out"):
        mixture_config_from_dict({**_base(), "held_out_fraction": 0.2})
    data = _base()
    data["datasets"][1]["name"] = "a"
    with pytest.raises(ConfigError, match="listed more than once"):
        mixture_config_from_dict(data)


def test_template_shorthand_and_fixed_needs_name():
    assert mixture_config_from_dict({**_base(), "template": "ce_terse"}).template.name == "ce_terse"
    with pytest.raises(ConfigError, match="needs a template name"):
        mixture_config_from_dict({**_base(), "template": {"policy": "fixed"}})


def test_dump_and_load_round_trip(tmp_path):
    corpora = make_corpora(tmp_path / "corpora", {"a": (3, 1), "b": (3, 1)})
    path = mixture_yaml(tmp_path, corpora, held_out="b", held_out_fraction=0.5, few_shot_k=1,
                        datasets_extra={"a": {"cap": 4}})
    config = load_mixture_config(path)
    elsewhere = tmp_path / "deeper" / "copy.yaml"
    elsewhere.parent.mkdir()
    elsewhere.write_text(dump_mixture_config(config, elsewhere))
    again = load_mixture_config(elsewhere)
    for one, two in zip(config.datasets, again.datasets):  # relative paths differ, the files are the same
        assert config.resolve(one.train).resolve() == again.resolve(two.train).resolve()
        assert (one.name, one.weight, one.cap) == (two.name, two.weight, two.cap)
    assert (again.held_out, again.held_out_fraction, again.few_shot_k) == ("b", 0.5, 1)


def test_cli_unknown_key_exits_2_listing_valid_keys(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**_base(), "sed": 3}))
    result = cli("mix", path, "--output", tmp_path / "out")
    assert result.returncode == 2
    assert "unknown key 'sed'" in result.stderr and "valid keys:" in result.stderr and "seed" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_interpolation_in_a_mixture_yaml(tmp_path):
    corpora = make_corpora(tmp_path / "corpora", {"a": (3, 1), "b": (3, 1)})
    path = mixture_yaml(tmp_path, corpora, held_out="${datasets.1.name}", few_shot_k="${seed}")
    config = load_mixture_config(path)
    assert (config.held_out, config.few_shot_k, config.seed) == ("b", 7, 7)


def test_bad_interpolation_is_a_config_error_naming_file_and_key(tmp_path, capsys):
    from clinie_nemo.cli import main

    corpora = make_corpora(tmp_path / "corpora", {"a": (3, 1), "b": (3, 1)})
    path = mixture_yaml(tmp_path, corpora, held_out="${datasets.5.name}")
    with pytest.raises(ConfigError, match=r"mixture\.yaml: held_out: bad interpolation"):
        load_mixture_config(path)
    assert main(["mix", str(path), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "mixture.yaml: held_out: bad interpolation" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
