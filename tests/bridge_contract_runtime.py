"""Subprocess side of the runtime contract tests (tests/engines/test_bridge_contract.py, marker bridge_contract).

Run as ``python -m tests.bridge_contract_runtime SITE RECORDS_JSONL RESULTS_JSON`` from the repo root. In the
sandbox of tests/bridge_contract_sandbox.py (the pinned site, the stdlib and torch only), with the REAL
Megatron-Bridge 0.6.2 and megatron-core 0.19.0, on CPU, HF_HUB_OFFLINE=1 and an empty HF cache:

(A) a local HF folder (tiny Llama: config, bf16 weights, BPE tokenizer) written here; our RunSpec -> plan ->
    clinie_nemo.engines.bridge.build_config: the recipe's model provider comes from that folder through our
    run_recipe redirect (AutoBridge.from_hf_pretrained is only spied on: every path it is given is recorded);
(B) Bridge's own SFT dataset build (data/builders/gpt_sft.py:529 GPTSFTDatasetBuilder.build) from
    RECORDS_JSONL (what `clinie-nemo render` wrote) with Bridge's tokenizer built from cfg.tokenizer
    (training/tokenizers/tokenizer.py:123), collated by the dataset's collate_fn (datasets/gpt_sft.py:615);
(C) the megatron-core GPT model built by that provider (models/model_provider.py:186
    provide_distributed_model) in a one-process gloo world on CPU, the HF weights loaded by Bridge
    (conversion/auto_bridge.py:573 load_hf_weights), our plan's LoRA applied by Bridge (peft/lora.py, the
    same call as training/setup.py:660 _apply_peft_transformation), logits compared with the HF model's.

Transformer Engine is only an import stand-in here, so the provider gets Bridge's local (non-TE) layer spec
(models/gpt_provider.py:83 local_layer_spec; its default_layer_spec :120 always picks TE). Writes one JSON
object with what was measured; the test asserts on it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
import traceback
import types
from collections.abc import Iterator
from pathlib import Path

from tests import bridge_contract_sandbox as sandbox

# TransformerConfig flags the recipe turns on for GPUs (fused CUDA/apex/TE kernels) that the local spec's torch
# modules refuse on CPU (e.g. transformer/torch_norm.py:48 asserts not persist_layer_norm)
CUDA_FUSIONS = ("persist_layer_norm", "gradient_accumulation_fusion", "bias_activation_fusion", "bias_dropout_fusion",
                "masked_softmax_fusion", "apply_rope_fusion", "cross_entropy_loss_fusion")


def _without_te() -> None:
    """megatron-core as it is without Transformer Engine. The TE stand-in (needed because Bridge imports TE
    unconditionally, e.g. peft/lora_layers.py:20) made megatron-core's ``try: import transformer_engine``
    succeed, so its loaded modules hold HAVE_TE = True and names bound from megatron.core.extensions.
    transformer_engine (e.g. transformer/attention.py:118-129 SplitAlongDim, None without TE). Put back what
    the ImportError branches bind: HAVE_TE = False, those names None, and transformer/transformer_block.py:
    50-63's LayerNormImpl = WrappedTorchNorm (neither TE nor apex)."""
    from bridge_contract_shim import is_standin
    from megatron.core.transformer import transformer_block
    from megatron.core.transformer.torch_norm import WrappedTorchNorm

    te_modules = ("transformer_engine", "megatron.core.extensions.transformer_engine")
    for name, module in list(sys.modules.items()):
        if not name.startswith("megatron.core") or name.startswith(te_modules[1]) or module is None:
            continue
        for attr, value in list(vars(module).items()):
            if attr == "HAVE_TE" and value is True:
                setattr(module, attr, False)
            elif attr.startswith("__") or isinstance(value, types.ModuleType):
                continue
            elif is_standin(value) or str(getattr(value, "__module__", "")).startswith(te_modules):
                setattr(module, attr, None)
    transformer_block.LayerNormImpl = WrappedTorchNorm


@contextlib.contextmanager
def _cpu_forward() -> Iterator[None]:
    """The two CUDA-only calls of megatron-core's forward, given their CPU meaning (no GPU here): RoPE moves
    inv_freq to torch.cuda.current_device() on the first forward (models/common/embeddings/
    rotary_pos_embedding.py:160-162) -> the CPU; attention dropout runs inside the CUDA RNG tracker's fork()
    (transformer/dot_product_attention.py:216-218, tensor_parallel/random.py fork needs a CUDA RNG state) ->
    no fork (eval: dropout is the identity)."""
    import torch
    from megatron.core import tensor_parallel

    class _NoCudaRng:
        def fork(self, *_args: object, **_kwargs: object) -> contextlib.AbstractContextManager:
            return contextlib.nullcontext()

    real = torch.cuda.current_device, tensor_parallel.get_cuda_rng_tracker
    torch.cuda.current_device = lambda: "cpu"
    tensor_parallel.get_cuda_rng_tracker = lambda *_a, **_k: _NoCudaRng()
    try:
        yield
    finally:
        torch.cuda.current_device, tensor_parallel.get_cuda_rng_tracker = real


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_provider(hf_dir: Path, data_dir: Path, run_dir: Path, asked: list[str]) -> tuple[dict, object]:
    """(A): the ConfigContainer our engine builds for a LoRA run on the local folder."""
    from megatron.bridge.training.config import runtime_config_update
    from megatron.bridge.training.utils.checkpoint_utils import is_hf_checkpoint_dir

    from clinie_nemo.engines import bridge, bridge_plan
    from clinie_nemo.engines.spec_loader import load_run_spec
    from clinie_nemo.engines.validate import check_for_engine

    spec = load_run_spec("llama31_8b", "peft_lora", [f"model.checkpoint={hf_dir}", "parallel.gpus_per_node=1",
                                                     "precision=32", "seq_length=2048", "data.add_bos=true"])
    check_for_engine(spec, "bridge")
    bridge.check_hf_folder(spec)
    plan = bridge_plan.plan_dict(spec, data_dir, run_dir)
    cfg = bridge.build_config(plan)
    runtime_config_update(cfg)
    m = cfg.model
    facts = {
        "from_hf_pretrained": list(asked),
        "provider": type(m).__name__,
        "num_layers": m.num_layers, "hidden_size": m.hidden_size, "ffn_hidden_size": m.ffn_hidden_size,
        "num_attention_heads": m.num_attention_heads, "num_query_groups": m.num_query_groups,
        "vocab_size": m.vocab_size, "params_dtype": str(m.params_dtype),
        "pretrained_checkpoint": cfg.checkpoint.pretrained_checkpoint,
        "pretrained_is_hf_dir": bool(is_hf_checkpoint_dir(cfg.checkpoint.pretrained_checkpoint)),
        "tokenizer_model": cfg.tokenizer.tokenizer_model,
        "peft": type(cfg.peft).__name__, "lora_target_modules": list(cfg.peft.target_modules),
    }
    return facts, cfg


def check_dataset(cfg, hf_dir: Path) -> dict:
    """(B): Bridge builds the training split from our JSONL; which label positions carry loss."""
    from megatron.bridge.data.builders.gpt_sft import GPTSFTDatasetBuilder
    from megatron.bridge.training.tokenizers.tokenizer import build_tokenizer
    from transformers import AutoTokenizer

    tokenizer = build_tokenizer(cfg.tokenizer)
    train, _valid, _test = GPTSFTDatasetBuilder(config=cfg.dataset, tokenizer=tokenizer).build()
    records = [json.loads(line) for line in (Path(cfg.dataset.dataset_root) / "training.jsonl").open()]
    batch = train.collate_fn([train[i] for i in range(len(train))])
    pre = cfg.dataset.preprocessing
    # the expected split, from the HF tokenizer directly (not Bridge's code): context = [BOS] + prompt,
    # answer = separator + completion, then EOS (data/sft_processing.py:381-394, :440)
    hf_tok = AutoTokenizer.from_pretrained(str(hf_dir))
    out = {"n_records": len(records), "n_dataset": len(train), "rows": []}
    for i, rec in enumerate(records):
        context = hf_tok.encode(pre.prompt_template.format(prompt=rec["input"]), add_special_tokens=False)
        context = [hf_tok.bos_token_id] * bool(pre.add_bos) + context
        answer = hf_tok.encode(pre.separator + rec["output"], add_special_tokens=False) + [hf_tok.eos_token_id]
        mask = batch["loss_mask"][i].tolist()
        labels = batch["labels"][i].tolist()
        tokens = batch["tokens"][i].tolist()
        on = [j for j, v in enumerate(mask) if v]
        out["rows"].append({
            "masked_labels_are_answer": [labels[j] for j in on] == answer,
            "mask_is_one_span_from_answer_start": on == list(range(len(context) - 1, len(context) - 1 + len(answer))),
            "input_is_context_then_answer": tokens[:len(context) + len(answer) - 1] == (context + answer)[:-1],
            "n_answer_tokens": len(answer), "n_mask_on": len(on), "n_context_tokens": len(context),
        })
    return out


def check_logits(cfg, hf_dir: Path) -> dict:
    """(C): megatron-core model from the provider, HF weights via Bridge, LoRA via Bridge: same logits as HF."""
    import torch
    from megatron.bridge import AutoBridge
    from megatron.bridge.models.gpt_provider import local_layer_spec
    from megatron.core import parallel_state
    from transformers import LlamaForCausalLM

    _without_te()
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(_free_port()))
    torch.distributed.init_process_group("gloo", rank=0, world_size=1)
    try:
        provider = cfg.model
        provider.transformer_layer_spec = local_layer_spec  # no TE on CPU (gpt_provider.py:83)
        provider.use_cpu_initialization = True  # model_provider.py:683-689: no .cuda() move
        for fused in CUDA_FUSIONS:  # the recipe's GPU kernels; the torch fallbacks compute the same
            if getattr(provider, fused, False):
                setattr(provider, fused, False)
        provider.finalize()
        parallel_state.initialize_model_parallel(tensor_model_parallel_size=1, pipeline_model_parallel_size=1)
        model = provider.provide_distributed_model(wrap_with_ddp=False, use_cpu_initialization=True,
                                                   mixed_precision_wrapper=None)
        AutoBridge.from_hf_pretrained(str(hf_dir)).load_hf_weights(model)
        model = cfg.peft(model, training=False)  # training/setup.py:660 _apply_peft_transformation
        lora_modules = sorted({type(mod).__name__ for mod in model[0].modules() if "LoRA" in type(mod).__name__
                               or "Adapter" in type(mod).__name__})
        ids = torch.tensor([[0, 17, 42, 99, 123, 200, 250, 7, 64, 5, 280, 31]])
        positions = torch.arange(ids.shape[1]).unsqueeze(0)
        # an explicit causal mask (True = masked), as the SFT collate builds it (datasets/gpt_sft.py:602-611):
        # with None megatron-core makes one on device="cuda" (transformer/utils.py:37-39)
        causal = torch.triu(torch.ones(ids.shape[1], ids.shape[1]), diagonal=1).bool()[None, None]
        model[0].eval()
        with _cpu_forward(), torch.no_grad():
            mlogits = model[0](input_ids=ids, position_ids=positions, attention_mask=causal).float()
        # the adapters are in the forward path: a non-zero LoRA B (linear_out, zero at init) moves the logits
        lora = [mod for mod in model[0].modules() if type(mod).__name__ == "LoRALinear"]
        with _cpu_forward(), torch.no_grad():
            saved = [mod.adapter.linear_out.weight.clone() for mod in lora]
            for mod in lora:
                mod.adapter.linear_out.weight.fill_(0.05)
            moved = (model[0](input_ids=ids, position_ids=positions, attention_mask=causal).float()
                     - mlogits).abs().max().item()
            for mod, weight in zip(lora, saved):
                mod.adapter.linear_out.weight.copy_(weight)
        with torch.no_grad():
            hf = LlamaForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32).eval()
            hlogits = hf(input_ids=ids).logits.float()
        vocab = hlogits.shape[-1]
        diff = (mlogits[..., :vocab] - hlogits).abs().max().item()
        return {"max_abs_diff": diff, "max_abs_logit": hlogits.abs().max().item(),
                "megatron_shape": list(mlogits.shape), "hf_shape": list(hlogits.shape),
                "model_dtype": str(next(model[0].parameters()).dtype), "lora_modules": lora_modules,
                "lora_linear_count": len(lora), "lora_targets": sorted({n.rsplit(".", 1)[-1] for n, mod in
                                                                         model[0].named_modules() if mod in lora}),
                "logits_moved_by_lora_b": moved,
                "model_class": type(model[0]).__name__}
    finally:
        if parallel_state.model_parallel_is_initialized():
            parallel_state.destroy_model_parallel()
        torch.distributed.destroy_process_group()


def main(argv: list[str]) -> int:
    site, records, results = argv[0], Path(argv[1]), Path(argv[2])
    shared = sandbox.enter(site)  # re-executes with -S
    from tests.bridge_contract_probe import spy_auto_bridge, tiny_hf_folder

    work = results.parent / "runtime"
    data_dir, run_dir = work / "data", work / "run"
    data_dir.mkdir(parents=True)
    text = records.read_text()
    for name in ("training.jsonl", "validation.jsonl"):
        (data_dir / name).write_text(text)
    rows = [json.loads(line) for line in text.splitlines()]
    out: dict = {"shared": shared}
    start = time.monotonic()
    try:
        hf_dir = tiny_hf_folder(work / "hf", [r["input"] + r["output"] for r in rows])
        asked: list[str] = []
        spy_auto_bridge(asked)
        for key, step in (("provider", None), ("dataset", check_dataset), ("logits", check_logits)):
            t0 = time.monotonic()
            if step is None:
                out[key], cfg = check_provider(hf_dir, data_dir, run_dir, asked)
            else:
                out[key] = step(cfg, hf_dir)
            out[key]["seconds"] = round(time.monotonic() - t0, 2)
        out["hf_dir"] = str(hf_dir)
    except Exception as exc:  # reported to the test, which fails on it
        out["error"] = f"{type(exc).__name__}: {exc}"
        out["traceback"] = traceback.format_exc()[-4000:]
    out["seconds"] = round(time.monotonic() - start, 2)
    out["modules"] = sandbox.module_origins()
    results.write_text(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
