"""Subprocess side of tests/engines/test_bridge_contract.py: the REAL megatron.bridge builds and validates our plans.

Run as ``python -m tests.bridge_contract_probe SITE CELLS_JSON RESULTS_JSONL`` from the repo root, in a fresh interpreter
(never the pytest process, whose sys.modules may hold test_engine_bridge_mock's fake megatron.bridge).
SITE is the folder tools/contract_env.sh bridge filled; tests/bridge_contract_sandbox.py makes it, the shims, the
standard library and the venv's torch the only things importable here (re-executing with ``python -S``). For
each cell (a RunSpec override list and a world size) it prints one JSON line to RESULTS_JSONL (not stdout:
Bridge's imports print there): the plan applied by clinie_nemo.engines.bridge.build_config to the recipe's
ConfigContainer, then runtime_config_update(cfg) (training/config.py:1853, called by pretrain.py:74: mixed
precision applied, data-parallel size, then ConfigContainer.validate() at config.py:1136; what pretrain() runs
before setup), then the values that matter read back from the validated config, or the error. The last line
lists where every imported module came from (the leak test's input).

The Llama 3.1 recipes call ``AutoBridge.from_hf_pretrained("meta-llama/Meta-Llama-3.1-8B")``
(recipes/llama/h100/llama3.py:1669): the Hub, unreachable here (HF_HUB_OFFLINE=1, an empty HF_HOME). The model
is a complete tiny local HF folder (config, weights, tokenizer) and the plan is the engine's own (its
pretrained checkpoint is that folder); only clinie_nemo.engines.bridge.run_recipe may redirect the recipe's Hub
id. AutoBridge.from_hf_pretrained is merely spied on: every path it receives is reported per cell.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

from tests import bridge_contract_sandbox as sandbox

TINY_LLAMA = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
    "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 4, "vocab_size": 320,
    "max_position_embeddings": 131072, "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": False,
    "bos_token_id": 0, "eos_token_id": 1,
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
}
TOKENIZER_TEXTS = ['{"label": "Drug", "text": "aspirin"}', "Patient was given 2 tablets PO daily for pain."]


def tiny_hf_folder(root: Path, texts: list[str] | None = None) -> Path:
    """A complete local HF Llama folder, as a user's model.checkpoint is: config.json, bf16 safetensors
    weights (seeded) and a byte-level BPE tokenizer (<s>=0, </s>=1) trained on ``texts``. Written with the
    site's transformers/tokenizers (call after :func:`bridge_contract_sandbox.enter`)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    root.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>", "</s>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts or TOKENIZER_TEXTS, trainer)
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>").save_pretrained(str(root))
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**TINY_LLAMA))
    model.to(torch.bfloat16).save_pretrained(str(root))  # config.json says bfloat16, like Llama 3.1's
    return root


def spy_auto_bridge(asked: list[str]) -> None:
    """Record every path AutoBridge.from_hf_pretrained is called with (auto_bridge.py:459), changing nothing:
    the recipe's Hub id must be redirected by clinie_nemo.engines.bridge.run_recipe, not by the test."""
    from megatron.bridge import AutoBridge

    original = AutoBridge.from_hf_pretrained.__func__

    def from_hf_pretrained(cls, path, **kwargs):
        asked.append(str(path))
        return original(cls, path, **kwargs)

    AutoBridge.from_hf_pretrained = classmethod(from_hf_pretrained)


def _facts(cfg) -> dict:
    m, ds = cfg.model, cfg.dataset
    return {
        "num_layers": m.num_layers, "hidden_size": m.hidden_size,
        "tp": m.tensor_model_parallel_size, "pp": m.pipeline_model_parallel_size,
        "cp": m.context_parallel_size, "sp": m.sequence_parallel, "seq_length": m.seq_length,
        "calculate_per_token_loss": getattr(m, "calculate_per_token_loss", None),
        "bf16": getattr(m, "bf16", None), "fp16": getattr(m, "fp16", None),
        "params_dtype": str(getattr(m, "params_dtype", None)),
        "optimizer_bf16": cfg.optimizer.bf16, "optimizer_fp16": cfg.optimizer.fp16,
        "mixed_precision": cfg.mixed_precision if isinstance(cfg.mixed_precision, str | None)
        else type(cfg.mixed_precision).__name__,
        "data_parallel_size": cfg.data_parallel_size,
        "train_iters": cfg.train.train_iters, "global_batch_size": cfg.train.global_batch_size,
        "micro_batch_size": cfg.train.micro_batch_size,
        "dataset": type(ds).__name__, "packing": getattr(ds, "enable_offline_packing", None),
        "do_validation": getattr(ds, "do_validation", None),
        "peft": type(cfg.peft).__name__ if cfg.peft is not None else None,
        "tokenizer_model": cfg.tokenizer.tokenizer_model,
        "pretrained_checkpoint": cfg.checkpoint.pretrained_checkpoint,
    }


def run_cell(cell: dict, data_dir: Path, run_dir: Path, hf_dir: Path, asked: list[str]) -> dict:
    from megatron.bridge.training.config import runtime_config_update

    from clinie_nemo.engines import bridge, bridge_plan
    from clinie_nemo.engines.spec_loader import load_run_spec
    from clinie_nemo.engines.validate import check_for_engine

    os.environ["WORLD_SIZE"] = str(cell["world_size"])
    out: dict = {"cell": cell}
    del asked[:]
    try:
        spec = load_run_spec(cell["model"], cell["recipe"], [f"model.checkpoint={hf_dir}", *cell["overrides"]])
        check_for_engine(spec, "bridge")
        plan = bridge_plan.plan_dict(spec, data_dir, run_dir)  # pretrained_checkpoint: the HF folder
        cfg = bridge.build_config(plan)
        runtime_config_update(cfg)  # resolves mixed_precision, sets DP size, then cfg.validate()
        out["facts"] = _facts(cfg)
        out["ok"] = True
    except Exception as exc:  # reported to the test, which fails on it
        out["ok"] = False
        out["error"] = f"{type(exc).__name__}: {exc}"
        out["traceback"] = traceback.format_exc()[-3000:]
    out["from_hf_pretrained"] = list(asked)
    return out


def main(argv: list[str]) -> int:
    site, cells, results = argv[0], json.loads(Path(argv[1]).read_text()), Path(argv[2])
    shared = sandbox.enter(site)  # re-executes with -S; then only the site, the stdlib and torch are seen
    import megatron.bridge

    work = results.parent / "probe"
    hf_dir = tiny_hf_folder(work / "hf")
    data_dir = work / "data"
    data_dir.mkdir()
    for name in ("training.jsonl", "validation.jsonl"):
        (data_dir / name).write_text(json.dumps({"input": "a", "output": "b"}) + "\n")
    asked: list[str] = []
    spy_auto_bridge(asked)
    with results.open("w") as fh:
        fh.write(json.dumps({"bridge_file": megatron.bridge.__file__}) + "\n")
        for cell in cells:
            fh.write(json.dumps(run_cell(cell, data_dir, work / "run", hf_dir, asked)) + "\n")
            fh.flush()
        fh.write(json.dumps({"modules": sandbox.module_origins(), "shared": shared}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
