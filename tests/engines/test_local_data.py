"""Local engine data path and tiny model: completion-only labels, packing, settings, `tiny-model` CLI.

Real tokenizers/transformers/torch on CPU (tiny sizes); nothing mocked.
"""

from __future__ import annotations

import json

import pytest

from clinie_nemo.core.errors import ConfigError
from clinie_nemo.engines.local import data
from clinie_nemo.engines.local.settings import lr_at
from tests.cli_plugin import cli
from tests.local_engine_fixtures import records_dir, small_settings, synthetic_records, tiny_model_dir  # noqa: F401
from tests.local_extra import needs_local


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):  # noqa: F811
    from clinie_nemo.engines.local.runtime import load_tokenizer

    return load_tokenizer(tiny_model_dir)


def test_completion_only_labels_mask_every_prompt_token(tokenizer, tiny_model_dir):  # noqa: F811
    settings = small_settings(tiny_model_dir)
    record = synthetic_records(1)[0]
    ex = data.encode_example(tokenizer, settings, record)
    prompt = tokenizer.encode(record["input"] + " ", add_special_tokens=False)
    completion = tokenizer.encode(record["output"], add_special_tokens=False) + [tokenizer.eos_token_id]
    assert list(ex.input_ids) == prompt + completion
    assert list(ex.labels[: len(prompt)]) == [data.IGNORE] * len(prompt)
    assert list(ex.labels[len(prompt):]) == completion
    assert tokenizer.decode(ex.input_ids[len(prompt):-1]) == record["output"]
    full = data.encode_example(tokenizer, small_settings(tiny_model_dir, answer_only_loss=False), record)
    assert full.labels == full.input_ids


def test_add_bos_and_truncation_keep_the_completion(tokenizer, tiny_model_dir):  # noqa: F811
    record = synthetic_records(1)[0]
    ex = data.encode_example(tokenizer, small_settings(tiny_model_dir, add_bos=True, seq_length=12), record)
    assert ex.truncated and len(ex.input_ids) == 12
    assert ex.input_ids[0] == tokenizer.bos_token_id
    assert ex.input_ids[-1] == tokenizer.eos_token_id  # the prompt was cut, not the answer


def test_packing_keeps_real_tokens_and_restarts_positions(tokenizer, tiny_model_dir):  # noqa: F811
    settings = small_settings(tiny_model_dir)
    examples = [data.encode_example(tokenizer, settings, r) for r in synthetic_records(16)]
    rows = data.pack(examples, seq_length=96)
    assert len(rows) < len(examples)
    assert sum(len(r.input_ids) for r in rows) == sum(len(e.input_ids) for e in examples)
    assert sum(r.examples for r in rows) == len(examples)
    assert all(len(r.input_ids) <= 96 for r in rows)
    assert [t for r in rows for t in r.labels] == [t for e in examples for t in e.labels]
    starts = sum(p == 0 for r in rows for p in r.position_ids)
    assert starts == len(examples)
    batch = data.collate(rows[:3], tokenizer.pad_token_id)
    assert batch["tokens"] == sum(len(r.input_ids) for r in rows[:3])
    assert int((batch["input_ids"] != tokenizer.pad_token_id).sum()) == batch["tokens"]


def test_packed_examples_do_not_attend_to_each_other(tokenizer, tiny_model_dir):  # noqa: F811
    """Logits of a packed row equal the logits of its examples run one by one."""
    import torch

    from clinie_nemo.engines.local.runtime import load_causal_lm

    settings = small_settings(tiny_model_dir)
    examples = [data.encode_example(tokenizer, settings, r) for r in synthetic_records(3)]
    model = load_causal_lm(tiny_model_dir).eval()
    row = data.pack(examples, seq_length=1000)[0]
    assert row.examples == 3
    batch = data.collate([row], tokenizer.pad_token_id)
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        alone = torch.cat([model(input_ids=torch.tensor([e.input_ids]), use_cache=False).logits[0]
                           for e in examples])
    assert torch.allclose(packed, alone, atol=1e-4)


def test_row_stream_resumes_at_the_same_rows(tokenizer, tiny_model_dir):  # noqa: F811
    settings = small_settings(tiny_model_dir)
    examples = [data.encode_example(tokenizer, settings, r) for r in synthetic_records(5)]
    stream = data.row_stream(examples, seed=3, packing=False, seq_length=96)
    first = [next(stream) for _ in range(12)]
    resumed = data.row_stream(examples, seed=3, packing=False, seq_length=96, skip=7)
    assert [next(resumed) for _ in range(5)] == first[7:]
    assert {e for e, _ in first} == {0, 1, 2}  # epochs are reshuffled
    assert [r for e, r in first if e == 0] != [r for e, r in first if e == 1]


def test_settings_reject_impossible_values(tiny_model_dir):  # noqa: F811
    with pytest.raises(ConfigError, match="multiple of micro batch"):
        small_settings(tiny_model_dir, global_batch=6, micro_batch=4)
    with pytest.raises(ConfigError, match="valid"):
        small_settings(tiny_model_dir, lora_targets=("linear_qkvv",))
    with pytest.raises(ConfigError, match="exactly one"):
        small_settings(tiny_model_dir, max_steps=None)
    assert small_settings(tiny_model_dir, lora_targets=("linear_qkv", "o_proj")).hf_target_modules() == [
        "q_proj", "k_proj", "v_proj", "o_proj"]


def test_schedule_warms_up_then_decays_to_min():
    assert lr_at(0, 100, 1e-3, warmup_steps=10) == pytest.approx(1e-4)
    assert lr_at(9, 100, 1e-3, warmup_steps=10) == pytest.approx(1e-3)
    assert lr_at(100, 100, 1e-3, min_lr=1e-5, warmup_steps=10) == pytest.approx(1e-5)
    assert lr_at(55, 100, 1e-3, warmup_steps=10) == pytest.approx(5e-4)
    assert lr_at(50, 100, 1e-3, schedule="constant") == 1e-3


@needs_local
def test_tiny_model_cli_builds_an_offline_loadable_model(tmp_path, records_dir):  # noqa: F811
    out = tmp_path / "tiny"
    res = cli("tiny-model", "--corpus", records_dir, "--output", out, "--hidden", "32", "--layers", "1",
              "--heads", "2", "--kv-heads", "1", "--vocab-size", "300",
              env={"HF_HUB_OFFLINE": "1"})
    assert res.returncode == 0, res.stderr
    assert "pt given" not in res.stderr  # no record text in logs
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForCausalLM"] and cfg["hidden_size"] == 32
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(out, local_files_only=True)
    text = "Unseen: naïve café 😀 \t x\n"
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text  # byte fallback
    assert None not in (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)
    assert model.config.vocab_size == len(tok)
    again = cli("tiny-model", "--corpus", records_dir, "--output", out)
    assert again.returncode == 2 and "--force" in again.stderr and "Traceback" not in again.stderr
    missing = cli("tiny-model", "--corpus", tmp_path / "none", "--output", tmp_path / "x")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


def test_run_spec_presets_map_to_local_settings():
    from clinie_nemo.engines.local import from_run_spec, plan
    from clinie_nemo.engines.spec_loader import load_run_spec

    study = from_run_spec(load_run_spec("tiny_local", "peft_lora", ["data.validation_interval=0"]))
    assert (study.method, study.lora_r, study.lora_dropout, study.lr) == ("lora", 256, 0.2, 1e-4)
    assert (study.global_batch, study.micro_batch, study.max_steps, study.seq_length) == (64, 1, 300, 4096)
    assert study.hf_target_modules() == ["q_proj", "k_proj", "v_proj"] and study.prompt_of("x") == "x "
    demo = from_run_spec(load_run_spec("tiny_local", "local_tiny_lora", ["lora.dim=8", "packing=true"]))
    assert (demo.lora_r, demo.packing, demo.accumulation_steps) == (8, True, 1)
    full = from_run_spec(load_run_spec("tiny_local", "local_tiny_full"))
    assert full.method == "full" and full.lr == 3e-3
    assert "full fine-tuning" in plan(load_run_spec("tiny_local", "local_tiny_full"), "d", "r")
    with pytest.raises(ConfigError, match="chat template"):
        from_run_spec(load_run_spec("tiny_local", "local_tiny_lora", ["data.chat_template=true"]))
