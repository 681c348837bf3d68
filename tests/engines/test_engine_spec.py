"""Run spec: every YAML under nemo_configs/ loads into its dataclass; overrides are typed and checked;
impossible combinations are rejected with messages naming the keys."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from clinie_nemo.core.errors import ConfigError
from clinie_nemo.engines import spec_loader
from clinie_nemo.engines.spec import GenerateConfig, ModelSpec, NemoScriptConfig, RunSpec, TrainRecipe
from clinie_nemo.engines.spec_checks import check_generate_config
from clinie_nemo.engines.spec_loader import CONFIG_ROOT, load_run_spec
from clinie_nemo.engines.validate import check_for_engine

ALL_YAML = sorted(CONFIG_ROOT.rglob("*.yaml"))
FOLDER_CLASS = {"models": ModelSpec, "train": TrainRecipe, "generate": GenerateConfig, "nemo": NemoScriptConfig}


def test_every_yaml_is_in_a_known_folder():
    assert len(ALL_YAML) >= 11
    for path in ALL_YAML:
        assert path.parent.name in FOLDER_CLASS, f"{path}: no dataclass for folder {path.parent.name}"


@pytest.mark.parametrize("path", ALL_YAML, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_yaml_loads_and_round_trips(path: Path):
    cls = FOLDER_CLASS[path.parent.name]
    obj = spec_loader.load_yaml_as(cls, path)
    assert isinstance(obj, cls)
    # 1:1 mapping: the file names every field, and dumping gives back the same data
    raw = spec_loader.read_yaml(path)
    assert set(raw) == {f.name for f in dataclasses.fields(cls)}, f"{path} does not spell out every field"
    assert spec_loader.build(cls, spec_loader.to_dict(obj), "roundtrip") == obj
    if cls is GenerateConfig:
        check_generate_config(obj)


def test_presets_named_in_the_issue_exist():
    assert set(spec_loader.presets("models")) >= {"llama31_8b", "gatortronllama_8b", "gatortrongpt_5b",
                                                  "gatortrongpt_20b", "tiny_local"}
    assert set(spec_loader.presets("train")) >= {"peft_lora", "full_sft"}
    assert set(spec_loader.presets("generate")) >= {"greedy", "study_sampling"}


@pytest.mark.parametrize("model", sorted(spec_loader.presets("models")))
@pytest.mark.parametrize("recipe", ["peft_lora", "full_sft"])
def test_every_model_with_every_recipe_validates(model, recipe):
    seq = ["seq_length=2048"] if model.startswith("gatortrongpt") else []
    spec = load_run_spec(model, recipe, seq)
    assert spec.model.name == model


def test_study_settings_in_presets():
    lora = load_run_spec("llama31_8b", "peft_lora")
    t = lora.train
    assert (t.method, t.lora.dim, t.lora.dropout, t.optim.lr) == ("lora", 256, 0.2, 1e-4)
    assert (t.batch.global_batch_size, t.batch.micro_batch_size, t.max_steps, t.seq_length) == (64, 1, 300, 4096)
    assert (t.data.prompt_template, t.data.answer_only_loss, t.data.add_eos) == ("{input} {output}", True, True)
    full = load_run_spec("llama31_8b", "full_sft")
    assert full.train.method == "full" and full.train.lora is None
    gen = spec_loader.load_generate_config("study_sampling")
    assert (gen.strategy, gen.max_new_tokens, gen.temperature, gen.top_k, gen.top_p) == ("sample", 128, 0.7, 50, 0.9)


def test_overrides_are_typed_and_dotted():
    s = load_run_spec("llama31_8b", "peft_lora", [
        "lora.dim=64", "train.optim.lr=3e-5", "packing=true", "lora.target_modules=linear_qkv,linear_fc2",
        "model.checkpoint=/m/llama", "max_steps=null", "max_epochs=2", "parallel.gpus_per_node=2"])
    assert s.train.lora.dim == 64 and s.train.optim.lr == 3e-5 and s.train.packing is True
    assert s.train.lora.target_modules == ("linear_qkv", "linear_fc2")
    assert s.model.checkpoint == "/m/llama" and s.train.max_steps is None and s.train.max_epochs == 2


@pytest.mark.parametrize("override, expected", [
    ("lora.dmi=8", "unknown key 'dmi' under train.lora; valid keys: alpha, dim, dropout"),
    ("nonsense=1", "unknown key 'nonsense' under train; valid keys:"),
    ("model.heads=8", "unknown key 'heads' under model; valid keys:"),
    ("lora.dim=eight", "train.lora.dim: expected an integer, got str 'eight'"),
    ("packing=maybe", "train.packing: expected true or false"),
    ("method=qlora", "train.method: 'qlora' is not one of lora, full"),
    ("seq_length.x=1", "'seq_length' is a value, not a section"),
    ("lora.dim", "expected key=value"),
])
def test_bad_overrides_name_the_key(override, expected):
    with pytest.raises(ConfigError) as err:
        load_run_spec("llama31_8b", "peft_lora", [override])
    assert expected in str(err.value)


@pytest.mark.parametrize("overrides, expected", [
    (["parallel.tensor=3", "parallel.gpus_per_node=3"], "tensor=3 does not divide model.num_attention_heads=32"),
    (["parallel.tensor=16", "parallel.gpus_per_node=16"], "tensor=16 does not divide model.num_kv_heads=8"),
    (["parallel.tensor=4", "parallel.gpus_per_node=2"], "tensor=4 must divide train.parallel.gpus_per_node=2"),
    (["parallel.pipeline=3", "parallel.gpus_per_node=8"], "= 3 does not divide the world size"),
    (["parallel.gpus_per_node=3", "batch.global_batch_size=64"], "is not a multiple of micro_batch_size*data_parallel"),
    (["batch.micro_batch_size=3"], "global_batch_size=64 is not a multiple of micro_batch_size*data_parallel = 3*1"),
    (["parallel.sequence_parallel=true"], "sequence_parallel=true needs tensor >= 2"),
    (["method=full"], "train.lora is set but train.method=full"),
    (["lora=null"], "train.method=lora needs a train.lora section"),
    (["max_epochs=3"], "set exactly one of train.max_steps and train.max_epochs"),
    (["lora.dropout=1.5"], "train.lora.dropout must be in [0, 1)"),
    (["lora.target_modules=[q_proj]"], "unknown module 'q_proj'; valid: linear_qkv"),
    (["data.prompt_template={output} {input}"], "{output} must come after {input}"),
    (["optim.warmup_steps=300"], "warmup_steps=300 must be >= 0 and < max_steps=300"),
    (["parallel.context=2", "parallel.gpus_per_node=2", "seq_length=4095"], "multiple of 2*context=4"),
])
def test_impossible_combinations_are_rejected(overrides, expected):
    with pytest.raises(ConfigError) as err:
        load_run_spec("llama31_8b", "peft_lora", overrides)
    assert expected in str(err.value)


def test_all_problems_reported_together():
    with pytest.raises(ConfigError) as err:
        load_run_spec("llama31_8b", "full_sft", ["lora.dim=8", "parallel.tensor=3"])
    text = str(err.value)
    assert "train.lora is set" in text and "tensor=3 does not divide" in text


def test_learned_positions_limit_sequence_length():
    with pytest.raises(ConfigError, match="seq_length=4096 exceeds .* use seq_length=2048"):
        load_run_spec("gatortrongpt_20b", "peft_lora")


@pytest.mark.parametrize("engine, model, overrides, expected", [
    ("bridge", "gatortrongpt_5b", ["seq_length=2048"], "engine bridge imports HF checkpoints"),
    ("bridge", "tiny_local", [], "names no Megatron-Bridge recipe"),
    ("bridge", "llama31_8b", ["packing=true", "batch.micro_batch_size=2"], "packing needs micro_batch_size=1"),
    ("nemo", "llama31_8b", [], "engine nemo (NeMo 1.x scripts) restores .nemo checkpoints"),
    ("nemo", "gatortrongpt_5b", ["seq_length=2048", "packing=true"], "engine nemo: packing"),
    ("local", "llama31_8b", ["parallel.tensor=2", "parallel.gpus_per_node=2"], "engine local runs on one device"),
    ("local", "gatortrongpt_5b", ["seq_length=2048"], "engine local loads HF folders"),
])
def test_engine_specific_limits(engine, model, overrides, expected):
    spec = load_run_spec(model, "peft_lora", overrides)
    with pytest.raises(ConfigError) as err:
        check_for_engine(spec, engine)
    assert expected in str(err.value)


def test_generate_config_checks():
    with pytest.raises(ConfigError, match="greedy ignores temperature"):
        spec_loader.load_generate_config("greedy", ["temperature=0.5"])
    with pytest.raises(ConfigError, match="top_p must be in"):
        spec_loader.load_generate_config("study_sampling", ["top_p=0"])
    assert spec_loader.load_generate_config(None, ["max_new_tokens=8"]).max_new_tokens == 8


def test_unknown_preset_lists_valid_names(tmp_path):
    with pytest.raises(ConfigError, match="unknown models preset 'llama4'; valid: gatortrongpt_20b"):
        load_run_spec("llama4", "peft_lora")
    bad = tmp_path / "m.yaml"
    bad.write_text("name: x\n")
    with pytest.raises(ConfigError, match="model: missing required key 'checkpoint'"):
        load_run_spec(bad, "peft_lora")


def test_resolved_spec_yaml_round_trips(tmp_path):
    spec = load_run_spec("gatortronllama_8b", "peft_lora", ["lora.dim=32", "parallel.gpus_per_node=4"])
    f = tmp_path / "spec.yaml"
    f.write_text(spec_loader.dump_yaml(spec))
    assert spec_loader.load_spec_file(f) == spec
    assert isinstance(spec, RunSpec)
    assert spec_loader.load_run_spec_file(f, ["lora.dim=8"]).train.lora.dim == 8


def test_presets_may_be_given_as_paths(tmp_path, monkeypatch):
    model = tmp_path / "my_model.yml"
    model.write_text((CONFIG_ROOT / "models" / "llama31_8b.yaml").read_text().replace("name: llama31_8b",
                                                                                      "name: my_llama"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "peft_lora").mkdir()  # a folder named like a preset does not shadow the preset
    spec = load_run_spec(model, "peft_lora")
    assert spec.model.name == "my_llama" and spec.train.lora.dim == 256
    with pytest.raises(ConfigError, match="nope.yaml: file not found"):
        load_run_spec(tmp_path / "nope.yaml", "peft_lora")


def test_interpolation_in_a_recipe_follows_the_overrides(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text((spec_loader.presets("train")["peft_lora"]).read_text().replace("alpha: ", "alpha: ${lora.dim} #"))
    assert load_run_spec("llama31_8b", recipe).train.lora.alpha == load_run_spec("llama31_8b", recipe).train.lora.dim
    assert load_run_spec("llama31_8b", recipe, ["lora.dim=64"]).train.lora.alpha == 64
    bad = tmp_path / "bad.yaml"
    bad.write_text(recipe.read_text().replace("${lora.dim}", "${lora.dimm}"))
    with pytest.raises(ConfigError, match=r"bad\.yaml: lora\.alpha: bad interpolation"):
        load_run_spec("llama31_8b", bad)


def test_nemo_script_overrides_keep_hydra_interpolation(tmp_path):
    path = tmp_path / "n.yaml"
    path.write_text("script: s.py\nconfig_path: conf\nconfig_name: c\n"
                    "overrides: {model.data.max_seq_length: '${model.encoder_seq_length}'}\n")
    cfg = spec_loader.load_nemo_script_config(path)
    assert cfg.overrides == {"model.data.max_seq_length": "${model.encoder_seq_length}"}
