"""`plan-folds` / plan_folds: the leave-one-dataset-out x fraction grid the Slurm launcher schedules."""

from __future__ import annotations

import dataclasses
import json

import pytest
import yaml

from clinie_nemo.core.errors import ConfigError
from clinie_nemo.mixture.build import build_mixture
from clinie_nemo.mixture.config import load_mixture_config
from clinie_nemo.mixture.folds import STUDY_FRACTIONS, cell_name, plan_folds
from tests.cli_plugin import cli
from tests.mixture_fixtures import FIVE_DATASETS, make_corpora, mixture_yaml


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("folds")
    corpora = make_corpora(root / "corpora", {name: (10, 3) for name in FIVE_DATASETS})
    return root, mixture_yaml(root, corpora, few_shot_k=2, **{"validation_fraction": 0.1})


def test_plan_folds_grid(base):
    _, path = base
    config = load_mixture_config(path)
    cells = plan_folds(config, STUDY_FRACTIONS)
    assert len(cells) == len(FIVE_DATASETS) * len(STUDY_FRACTIONS)
    assert cells[0][0] == "heldout-i2b2_2010_frac-0" and cells[2][0] == "heldout-i2b2_2010_frac-0.1"
    assert cells[5][0] == "heldout-i2b2_2010_frac-1"
    assert len({name for name, _ in cells}) == len(cells)
    for name, cell in cells:
        assert name == f"heldout-{cell.held_out}_frac-{cell.held_out_fraction:g}"
        same = dataclasses.replace(cell, held_out=None, held_out_fraction=0.0, name=config.name)
        assert same == config  # only the protocol knobs (and the name) differ
    subset = plan_folds(config, [0.2], ["radgraph"])
    assert [n for n, _ in subset] == ["heldout-radgraph_frac-0.2"]
    with pytest.raises(ConfigError, match="unknown dataset 'mimic'; valid: "):
        plan_folds(config, [0.2], ["mimic"])
    with pytest.raises(ConfigError, match="out of range"):
        plan_folds(config, [1.5])


def test_cli_writes_loadable_configs_and_index(base, tmp_path):
    _, path = base
    out = tmp_path / "grid"
    result = cli("plan-folds", path, "--output", out, "--fractions", "0,0.2,1.0", "--datasets", "radgraph,ufhealth")
    assert result.returncode == 0, result.stderr
    index = json.loads((out / "folds.json").read_text())
    assert index["fractions"] == [0.0, 0.2, 1.0] and index["datasets"] == ["radgraph", "ufhealth"]
    assert [c["name"] for c in index["cells"]] == [
        "heldout-radgraph_frac-0", "heldout-radgraph_frac-0.2", "heldout-radgraph_frac-1",
        "heldout-ufhealth_frac-0", "heldout-ufhealth_frac-0.2", "heldout-ufhealth_frac-1"]
    original = load_mixture_config(path)
    for cell in index["cells"]:
        loaded = load_mixture_config(out / cell["config"])
        assert (loaded.held_out, loaded.held_out_fraction, loaded.few_shot_k) == (
            cell["held_out"], cell["held_out_fraction"], 2)
        for one, two in zip(original.datasets, loaded.datasets):  # relative paths still reach the corpora
            assert original.resolve(one.train).resolve() == loaded.resolve(two.train).resolve()
    cell_config = load_mixture_config(out / "heldout-radgraph_frac-0.2.yaml")
    mixed = build_mixture(cell_config, show_progress=False)
    assert {r["dataset"] for r in mixed.test} == {"radgraph"}
    assert len({r["doc_id"] for r in mixed.training if r["dataset"] == "radgraph"}) == 2
    again = cli("plan-folds", path, "--output", out)
    assert again.returncode == 2 and "--force" in again.stderr


def test_cli_bad_dataset_exits_2(base, tmp_path):
    _, path = base
    result = cli("plan-folds", path, "--output", tmp_path / "g", "--datasets", "nope")
    assert result.returncode == 2 and "unknown dataset 'nope'" in result.stderr and "radgraph" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "g").exists()


def test_study_plan_mix_stages_load_as_mixture_configs(tmp_path):
    """The Slurm study planner (clinie_nemo.study.plan) writes one mixture.yaml per mix stage; each must
    pass this loader unchanged and agree with plan_folds on the protocol knobs."""
    from clinie_nemo.mixture.config import mixture_config_from_dict
    from clinie_nemo.study.config import load_study
    from clinie_nemo.study.plan import build_plan
    from tests.study.test_study_plan import write_study

    plan = build_plan(load_study(write_study(tmp_path, few_shot_k=2)), tmp_path / "out")
    cells = set()
    for stage in plan.by_kind("mix"):
        data = yaml.safe_load(dict(stage.files)["mixture.yaml"])
        config = mixture_config_from_dict(data, source="mixture.yaml", base_dir=tmp_path)
        assert config.few_shot_k == 2 and config.held_out in ("a", "b")
        assert all(config.resolve(d.train).is_file() for d in config.datasets)
        cells.add(cell_name(config.held_out, config.held_out_fraction))
    base = load_mixture_config(mixture_yaml_for(tmp_path))
    assert cells == {name for name, _ in plan_folds(base, [0.0, 0.5], ["a", "b"])}


def mixture_yaml_for(tmp_path):
    path = tmp_path / "base-mixture.yaml"
    path.write_text(yaml.safe_dump({"datasets": [{"name": n, "train": f"{n}-train.jsonl", "test": f"{n}-test.jsonl"}
                                                 for n in "abc"]}))
    return path
