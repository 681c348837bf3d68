"""bridge.py on CPU against a FAKE `megatron.bridge` module tree (and a fake `vllm`).

This is a mock because Megatron-Bridge cannot be imported on a CPU machine (it needs Python 3.12,
Transformer Engine and CUDA; see shared notes). The fakes reproduce only the names bridge.py touches —
recipe functions returning a ConfigContainer-like object whose sub-configs carry the attribute names
of Bridge v0.6.0 recipes, LoRA, GPTSFTDatasetConfig, PromptCompletionSFTPreprocessingConfig,
PackedSequenceSpecs, finetune, forward_step and AutoBridge — and record what bridge.py does with them.
The assertions check the attributes bridge.py sets, that the HF import is cached by content, and the
predictions file it writes. Whether real Bridge accepts these values is covered only on a GPU cluster.
"""

from __future__ import annotations

import json
import signal
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import pytest

from clinie_nemo.engines import bridge
from clinie_nemo.engines.run_dir import prepare
from clinie_nemo.engines.spec_loader import load_run_spec
from clinie_nemo.errors import ConfigError
from tests.engine_fixtures import write_records


class Recorder:
    """A constructor that keeps its kwargs as attributes (stands in for Bridge dataclasses)."""

    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)


def _recipe_container(**_kwargs):
    ns = SimpleNamespace
    return ns(
        model=ns(tensor_model_parallel_size=9, pipeline_model_parallel_size=9, context_parallel_size=9,
                 sequence_parallel=None, seq_length=0),
        train=ns(train_iters=1000, num_epochs=None, global_batch_size=8, micro_batch_size=1,
                 exit_signal_handler=False, exit_signal=signal.SIGTERM),
        validation=ns(eval_interval=30, eval_iters=32),
        optimizer=ns(lr=0, min_lr=0, weight_decay=0, adam_beta1=0, adam_beta2=0, clip_grad=0, bf16=None,
                     fp16=None),
        scheduler=ns(lr_decay_style="", lr_warmup_iters=50, lr_decay_iters=None, start_weight_decay=0,
                     end_weight_decay=0),
        checkpoint=ns(save="", load="", save_interval=50, most_recent_k=-1, pretrained_checkpoint=None),
        tokenizer=ns(tokenizer_type="", tokenizer_model=""),
        logger=ns(log_interval=1, tensorboard_dir=""),
        rng=ns(seed=5678), mixed_precision="bf16_mixed", dataset=None, peft=None, recipe_kwargs=_kwargs)


@pytest.fixture
def fake_bridge(monkeypatch, tmp_path):
    calls: dict[str, list] = {"import_ckpt": [], "finetune": [], "export_adapter": [], "export_ckpt": []}

    class AutoBridge:
        @classmethod
        def import_ckpt(cls, hf_model_id, megatron_path, **kw):
            calls["import_ckpt"].append((hf_model_id, megatron_path))
            Path(megatron_path).mkdir(parents=True)
            (Path(megatron_path) / "latest_train_state.pt").write_text("fake")

        @classmethod
        def from_hf_pretrained(cls, path, **kw):
            return cls()

        def export_adapter_ckpt(self, peft_checkpoint, output_path, **kw):
            calls["export_adapter"].append((peft_checkpoint, output_path))
            Path(output_path).mkdir(parents=True)

        def export_ckpt(self, megatron_path, hf_path, **kw):
            calls["export_ckpt"].append((megatron_path, hf_path))

    def finetune(config, forward_step_func, callbacks=None):
        calls["finetune"].append((config, forward_step_func))
        stop = calls.get("stop_at")  # a signal arrived: Bridge saves iter_<stop> and returns normally
        last = stop if stop is not None else config.train.train_iters
        (Path(config.checkpoint.save) / f"iter_{last:07d}").mkdir(parents=True)

    def forward_step(state, data_iterator, model, return_schedule_plan=False):
        raise AssertionError("not called on CPU")

    modules = {
        "megatron": {}, "megatron.bridge": {"AutoBridge": AutoBridge}, "megatron.bridge.recipes": {},
        "megatron.bridge.recipes.llama": {"llama31_8b_peft_config": _recipe_container,
                                          "llama31_8b_sft_config": _recipe_container},
        "megatron.bridge.peft": {}, "megatron.bridge.peft.lora": {"LoRA": type("LoRA", (Recorder,), {})},
        "megatron.bridge.data": {},
        "megatron.bridge.data.builders": {
            "GPTSFTDatasetConfig": type("GPTSFTDatasetConfig", (Recorder,), {}),
            "PromptCompletionSFTPreprocessingConfig": type("PromptCompletionSFTPreprocessingConfig",
                                                           (Recorder,), {})},
        "megatron.bridge.data.packing": {},
        "megatron.bridge.data.packing.config": {"PackedSequenceSpecs": type("PackedSequenceSpecs", (Recorder,), {})},
        "megatron.bridge.training": {}, "megatron.bridge.training.finetune": {"finetune": finetune},
        "megatron.bridge.training.gpt_step": {"forward_step": forward_step},
    }
    for name, attrs in modules.items():
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.setenv("CLINIE_NEMO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
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
    (cfg, fwd), = fake_bridge["finetune"]
    assert fwd.__name__ == "forward_step"
    assert cfg.recipe_kwargs == {"peft_scheme": "lora"}
    assert (cfg.model.tensor_model_parallel_size, cfg.model.pipeline_model_parallel_size) == (1, 1)
    assert cfg.model.sequence_parallel is False and cfg.model.seq_length == 4096
    assert (cfg.train.train_iters, cfg.train.global_batch_size, cfg.train.micro_batch_size) == (40, 64, 1)
    assert cfg.train.exit_signal_handler is True and cfg.train.exit_signal is signal.SIGUSR1
    assert (cfg.optimizer.lr, cfg.scheduler.lr_warmup_iters, cfg.scheduler.lr_decay_style) == (2e-4, 5, "cosine")
    assert cfg.checkpoint.save == str(run / "checkpoints") == cfg.checkpoint.load
    assert cfg.checkpoint.pretrained_checkpoint + ".partial" == fake_bridge["import_ckpt"][0][1]
    assert cfg.tokenizer.tokenizer_model == str(tmp_path / "hf")
    assert cfg.rng.seed == 1234 and cfg.mixed_precision == "bf16_mixed"
    assert type(cfg.peft).__name__ == "LoRA"
    assert (cfg.peft.dim, cfg.peft.alpha, cfg.peft.dropout, cfg.peft.target_modules) == (64, 256, 0.2, ["linear_qkv"])
    ds = cfg.dataset
    assert type(ds).__name__ == "GPTSFTDatasetConfig" and ds.dataset_root == str(data)
    assert ds.enable_offline_packing is True and ds.offline_packing_specs.packed_sequence_size == 4096
    assert type(ds.preprocessing).__name__ == "PromptCompletionSFTPreprocessingConfig"
    assert (ds.preprocessing.prompt_column, ds.preprocessing.completion_column) == ("input", "output")
    assert (ds.preprocessing.separator, ds.preprocessing.loss_mode) == (" ", "completion")
    assert fake_bridge["export_adapter"] == [(str(run / "checkpoints"), str(run / "adapter"))]
    assert json.loads((run / "DONE").read_text())["engine"] == "bridge"


def test_import_is_cached_by_content(fake_bridge, tmp_path):
    _train(tmp_path, "run1", [])
    _train(tmp_path, "run2", [])
    assert len(fake_bridge["import_ckpt"]) == 1  # second run reuses the imported checkpoint
    (tmp_path / "hf" / "model.safetensors").write_bytes(b"\1" * 64)  # new weights -> new import
    _train(tmp_path, "run3", [])
    assert len(fake_bridge["import_ckpt"]) == 2
    assert fake_bridge["import_ckpt"][0][1] != fake_bridge["import_ckpt"][1][1]


def test_full_run_exports_weights(fake_bridge, tmp_path):
    _, _, run, _ = _train(tmp_path, "full", ["parallel.tensor=1", "parallel.gpus_per_node=1"], recipe="full_sft")
    (cfg, _), = fake_bridge["finetune"]
    assert cfg.peft is None and cfg.recipe_kwargs == {}
    assert fake_bridge["export_ckpt"] == [(str(run / "checkpoints"), str(run / "model"))]


def test_attribute_missing_from_recipe_is_a_clear_error(fake_bridge, tmp_path, monkeypatch):
    def old_recipe(**kw):
        cfg = _recipe_container(**kw)
        del cfg.checkpoint.most_recent_k
        return cfg

    monkeypatch.setattr(sys.modules["megatron.bridge.recipes.llama"], "llama31_8b_peft_config", old_recipe)
    with pytest.raises(ConfigError, match="no attribute 'checkpoint.most_recent_k'.*Bridge version"):
        _train(tmp_path, "run1", [])


def test_generate_with_fake_vllm(fake_bridge, tmp_path, monkeypatch):
    _, data, run, _ = _train(tmp_path, "run1", [])
    seen = {}

    class LLM:
        def __init__(self, **kw):
            seen["llm"] = kw

        def generate(self, prompts, params, lora_request=None):
            seen["prompts"], seen["params"], seen["lora"] = prompts, params, lora_request
            return [SimpleNamespace(outputs=[SimpleNamespace(text=f"P{i}")]) for i in range(len(prompts))]

    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = LLM, Recorder
    lora_mod = types.ModuleType("vllm.lora.request")
    lora_mod.LoRARequest = lambda name, idx, path: (name, idx, path)
    for name, mod in {"vllm": vllm, "vllm.lora": types.ModuleType("vllm.lora"), "vllm.lora.request": lora_mod}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    from clinie_nemo.engines.spec_loader import load_generate_config

    out = tmp_path / "preds.jsonl"
    n = bridge.generate(run, data / "test.jsonl", out, load_generate_config("study_sampling"))
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert n == 4 and [r["id"] for r in rows] == [f"toy/test/{i}" for i in range(4)]
    assert rows[0]["prediction"] == "P0" and rows[0]["engine"] == "bridge"
    assert seen["prompts"][0] == "Extract from: item 0 "  # "{input} {output}" -> prompt + separator
    p = seen["params"]
    assert (p.temperature, p.top_k, p.top_p, p.max_tokens) == (0.7, 50, 0.9, 128)
    assert seen["lora"] == ("run", 1, str(run / "adapter")) and seen["llm"]["max_lora_rank"] == 256


def test_signal_stop_exits_124_without_done_and_resume_finishes(fake_bridge, tmp_path):
    fake_bridge["stop_at"] = 100
    with pytest.raises(SystemExit) as stop:
        _train(tmp_path, "run1", [])
    assert stop.value.code == bridge.PREEMPTED_EXIT_CODE == 124
    run = tmp_path / "run1"
    assert not (run / "DONE").exists() and fake_bridge["export_adapter"] == []
    fake_bridge["stop_at"] = None
    spec, data, run, facts = _train(tmp_path, "run1", [])  # same spec -> resume, then finish
    assert (run / "DONE").is_file() and fake_bridge["finetune"][-1][0].checkpoint.load == str(run / "checkpoints")
