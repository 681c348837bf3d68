"""The YAMLs the demo writes are valid inputs of the real commands, without training anything: mixtures
(`clinie-nemo mix` on real synthetic corpora: the held-out corpus is absent from fraction-0 training and is
the only test corpus), the model and recipe YAMLs (the run-spec loader and its validation), the generation
YAML, and the study YAML (`clinie-nemo study --dry-run`: the same 6-cell grid)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clinie_nemo.cli import main
from clinie_nemo.core.errors import ClinieError
from clinie_nemo.demo import QUICK, configs
from clinie_nemo.demo.pipeline import MARKER, prepare_output
from clinie_nemo.demo.settings import DATASETS


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpora")
    for i, name in enumerate(DATASETS):
        assert main(["synth", "--dataset", name, "--docs", "8", "--seed", str(i), "--output",
                     str(root / "native" / name)]) == 0
        assert main(["convert", "--dataset", name, "--input", str(root / "native" / name), "--output",
                     str(root / "docs" / name)]) == 0
    return root / "docs"


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open(encoding="utf-8")]


def test_mixtures_hold_out_the_fold_at_each_fraction(corpora, tmp_path):
    counts = {}
    for fraction in QUICK.fractions:
        cfg = configs.mixture_config(corpora, tmp_path / "config", QUICK, fraction)
        out = tmp_path / f"data-{fraction:g}"
        assert main(["mix", str(cfg), "--output", str(out), "--quiet"]) == 0
        training = records(out / "training.jsonl")
        test = records(out / "test.jsonl")
        assert {r["dataset"] for r in test} == {QUICK.held_out}
        assert {r["task"] for r in test} == set(QUICK.tasks) and {r["format"] for r in test} == {QUICK.format}
        counts[fraction] = sum(r["dataset"] == QUICK.held_out for r in training)
        for name in DATASETS:
            assert sum(r["dataset"] == name for r in training) <= QUICK.cap
    assert counts[0.0] == 0 < counts[0.2] <= counts[1.0]


def test_model_recipe_and_generation_yamls_load_as_a_valid_run_spec(tmp_path):
    from clinie_nemo.engines.spec_loader import load_generate_config, load_run_spec

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(json.dumps({
        "num_hidden_layers": 4, "hidden_size": 128, "intermediate_size": 352, "num_attention_heads": 4,
        "num_key_value_heads": 2, "vocab_size": 2048, "max_position_embeddings": 1024}))
    model_yaml = configs.model_config(model_dir, tmp_path, QUICK, "base")
    for method in ("base", "lora", "full"):
        spec = load_run_spec(model_yaml, configs.recipe_config(tmp_path, QUICK, method))
        assert spec.model.checkpoint == str(model_dir.resolve()) and spec.model.hidden_size == 128
        assert spec.train.max_steps == QUICK.training.steps_for(method)
        assert spec.train.optim.lr == QUICK.training.lr(method)
        assert spec.train.method == ("lora" if method == "lora" else "full")
    assert load_generate_config(configs.generate_config(tmp_path, QUICK)).max_new_tokens == QUICK.max_new_tokens


def test_study_yaml_plans_the_same_grid(corpora, tmp_path, capsys):
    cfg = tmp_path / "config"
    recipes = {m: configs.recipe_config(cfg, QUICK, m) for m in QUICK.methods}
    model_yaml = configs.model_config(_fake_model(tmp_path), cfg, QUICK, "base")
    study = configs.study_config(corpora, cfg, QUICK, model_yaml, recipes, configs.generate_config(cfg, QUICK),
                                 "n2c2_2018")
    assert main(["study", str(study), "--output", str(tmp_path / "study"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "6 cells (1 held-out x 3 fractions x 1 models x 2 methods x 1 seeds)" in out
    assert "gpus/node=0" in out and "submitted" not in out


def _fake_model(tmp_path: Path) -> Path:
    d = tmp_path / "fake_model"
    d.mkdir(exist_ok=True)
    (d / "config.json").write_text(json.dumps({
        "num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 176, "num_attention_heads": 4,
        "num_key_value_heads": 2, "vocab_size": 1024, "max_position_embeddings": 1024}))
    return d


def test_prepare_output_replaces_only_demo_folders(tmp_path):
    demo = tmp_path / "demo"
    prepare_output(demo, force=False)
    (demo / "old.txt").write_text("x")
    with pytest.raises(ClinieError, match="--force"):
        prepare_output(demo, force=False)
    prepare_output(demo, force=True)
    assert sorted(p.name for p in demo.iterdir()) == [MARKER]
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    with pytest.raises(ClinieError, match="not written by"):
        prepare_output(other, force=True)
    assert (other / "keep.txt").is_file()
