"""bridge.py on CPU against a FAKE `megatron.bridge` module tree (and a fake `vllm`): tests/bridge_fakes.py.

A stand-in because Megatron-Bridge cannot be imported on a CPU machine (it needs Python 3.12,
Transformer Engine and CUDA; see shared notes). The fakes reproduce only the names and behaviours
bridge.py touches (recipe, LoRA, GPTSFTDatasetConfig, PromptCompletionSFTPreprocessingConfig,
PackedSequenceSpecs, finetune, forward_step, AutoBridge) and record what bridge.py does with them.
The assertions check the attributes bridge.py sets, the export and the predictions file it writes.
Whether real Bridge accepts these values: the contract test (real megatron.bridge on CPU) and a GPU cluster.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest

from clinie_nemo.core.errors import ConfigError
from clinie_nemo.engines import bridge
from clinie_nemo.engines.run_dir import prepare
from clinie_nemo.engines.spec_loader import load_run_spec
from tests import bridge_fakes
from tests.engine_fixtures import write_records


@pytest.fixture
def fake_bridge(monkeypatch, tmp_path):
    calls = bridge_fakes.install(monkeypatch, tmp_path)
    bridge_fakes.run_export_in_process(monkeypatch, bridge, calls)
    return calls


def _hf_folder(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (root / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{x}}"}))
    (root / "model.safetensors").write_bytes(b"\0" * 64)
    return root


def _train(tmp_path, name, overrides, recipe="peft_lora"):
    hf = tmp_path / "hf" if (tmp_path / "hf").exists() else _hf_folder(tmp_path / "hf")
    spec = load_run_spec("llama31_8b", recipe, [f"model.checkpoint={hf}", *overrides])
    data, run = write_records(tmp_path / "data"), tmp_path / name
    prepare(spec, "bridge", data, run)
    return spec, data, run, bridge.train(spec, data, run)


def test_lora_run_sets_every_attribute_and_exports_adapter(fake_bridge, tmp_path):
    spec, data, run, facts = _train(tmp_path, "run1", ["packing=true", "lora.dim=64", "optim.lr=2e-4",
                                                        "max_steps=40", "optim.warmup_steps=5"])
    (cfg, fwd, _), = fake_bridge["finetune"]
    assert fwd.__name__ == "forward_step"
    assert cfg.recipe_kwargs == {"peft_scheme": "lora"}
    assert (cfg.model.tensor_model_parallel_size, cfg.model.pipeline_model_parallel_size) == (1, 1)
    assert cfg.model.sequence_parallel is False and cfg.model.seq_length == 4096
    assert (cfg.train.train_iters, cfg.train.global_batch_size, cfg.train.micro_batch_size) == (40, 64, 1)
    assert cfg.train.exit_signal_handler is True and cfg.train.exit_signal is signal.SIGTERM
    assert (cfg.optimizer.lr, cfg.scheduler.lr_warmup_iters, cfg.scheduler.lr_decay_style) == (2e-4, 5, "cosine")
    assert cfg.checkpoint.save == str(run / "checkpoints") == cfg.checkpoint.load
    assert cfg.checkpoint.pretrained_checkpoint == str(tmp_path / "hf")  # the HF folder itself
    assert cfg.tokenizer.tokenizer_model == str(tmp_path / "hf")
    assert cfg.rng.seed == 1234 and cfg.mixed_precision == "bf16_mixed"
    assert type(cfg.peft).__name__ == "LoRA"
    assert (cfg.peft.dim, cfg.peft.alpha, cfg.peft.dropout, cfg.peft.target_modules) == (64, 256, 0.2, ["linear_qkv"])
    ds = cfg.dataset
    assert type(ds).__name__ == "GPTSFTDatasetConfig" and ds.dataset_root == str(run / "dataset")
    assert (run / "dataset" / "training.jsonl").resolve() == (data / "training.jsonl").resolve()
    assert ds.enable_offline_packing is True and ds.offline_packing_specs.packed_sequence_size == 4096
    assert ds.do_validation is True
    assert type(ds.preprocessing).__name__ == "PromptCompletionSFTPreprocessingConfig"
    assert (ds.preprocessing.prompt_column, ds.preprocessing.completion_column) == ("input", "output")
    assert (ds.preprocessing.separator, ds.preprocessing.loss_mode) == (" ", "completion")
    assert fake_bridge["export_adapter"] == [(str(run / "checkpoints" / "iter_0000040"), str(run / "adapter"))]
    assert json.loads((run / "DONE").read_text())["engine"] == "bridge"


def test_full_run_exports_weights(fake_bridge, tmp_path):
    _, _, run, _ = _train(tmp_path, "full", ["parallel.tensor=1", "parallel.gpus_per_node=1"], recipe="full_sft")
    (cfg, _, _), = fake_bridge["finetune"]
    assert cfg.peft is None and cfg.recipe_kwargs == {}
    assert fake_bridge["export_ckpt"] == [(str(run / "checkpoints" / "iter_0000300"), str(run / "model"))]


def test_attribute_missing_from_recipe_is_a_clear_error(fake_bridge, tmp_path, monkeypatch):
    recipes = sys.modules["megatron.bridge.recipes.llama.h100.llama3"]
    real = recipes._common

    def old_common(peft_scheme=None):
        cfg = real(peft_scheme)
        del cfg.checkpoint.most_recent_k
        return cfg

    monkeypatch.setattr(recipes, "_common", old_common)
    with pytest.raises(ConfigError, match="no attribute 'checkpoint.most_recent_k'.*Bridge version"):
        _train(tmp_path, "run1", [])


def test_generate_with_fake_vllm(fake_bridge, tmp_path, monkeypatch):
    _, data, run, _ = _train(tmp_path, "run1", [])
    seen = bridge_fakes.install_vllm(monkeypatch)
    from clinie_nemo.engines.spec_loader import load_generate_config

    out = tmp_path / "preds.jsonl"
    n = bridge.generate(run, data / "test.jsonl", out, load_generate_config("study_sampling"))
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert n == 4 and [r["id"] for r in rows] == [f"toy/test/{i}" for i in range(4)]
    # the model emits the separator first (" P0"); the prediction is the answer without it
    assert rows[0]["prediction"] == "P0" and rows[0]["engine"] == "bridge"
    tok = bridge_fakes.FakeTokenizer()
    assert seen["token_ids"][0] == tok.encode("Extract from: item 0", add_special_tokens=False)
    p = seen["params"]
    assert (p.temperature, p.top_k, p.top_p, p.max_tokens) == (0.7, 50, 0.9, 128)
    assert seen["lora"] == ("run", 1, str(run / "adapter")) and seen["llm"]["max_lora_rank"] == 256


def test_signal_stop_exits_124_without_done_and_resume_finishes(fake_bridge, tmp_path):
    fake_bridge["stop_at"] = 100  # Bridge saves iter_0000100, then sys.exit(0)
    with pytest.raises(SystemExit) as stop:
        _train(tmp_path, "run1", [])
    assert stop.value.code == bridge.PREEMPTED_EXIT_CODE == 124
    run = tmp_path / "run1"
    assert not (run / "DONE").exists() and fake_bridge["export_adapter"] == []
    fake_bridge["stop_at"] = None
    spec, data, run, facts = _train(tmp_path, "run1", [])  # same spec -> resume, then finish
    assert (run / "DONE").is_file() and fake_bridge["finetune"][-1][0].checkpoint.load == str(run / "checkpoints")
    assert facts["iteration"] == 300
