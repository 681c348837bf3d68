"""Engine ``bridge``, generation helpers that call no Megatron-Bridge API: what the model is prompted with and
how its output is cut, the sampling arguments of vLLM and of megatron-core, which trained weights to serve,
vLLM's tensor size on the generate job's node, and the vLLM backend (vLLM is not a Bridge API).

:func:`clinie_nemo.engines.bridge.generate` drives generation: it picks vLLM (:func:`generate_vllm`, here)
when importable, else its own megatron-core backend, which calls into Megatron-Bridge and so stays in
:mod:`clinie_nemo.engines.bridge`, the only module importing ``megatron.bridge``. vLLM, socket and the
tokenizers are imported or called inside functions. File:line citations: Megatron-Bridge v0.6.0 as in
:mod:`clinie_nemo.engines.bridge_plan`.

Imports: core, engines.allocation, engines.bridge_plan, engines.spec. Imported by: engines.bridge.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clinie_nemo.core.errors import ConfigError
from clinie_nemo.core.fileio import iter_jsonl
from clinie_nemo.engines import bridge_plan
from clinie_nemo.engines.allocation import job_allocation
from clinie_nemo.engines.spec import GenerateConfig, RunSpec


def record_prompts(spec: RunSpec, records_path: str | Path) -> tuple[list[str], list[str]]:
    """(ids, prompt texts). A prompt is what training tokenized as the context: the formatted
    prompt_template WITHOUT the separator. Bridge tokenizes ``separator + completion`` as the completion
    (data/sft_processing.py:381-391), so the model learned to emit the separator (" X" is one token with
    Llama's tokenizer); a prompt ending in the separator would end in a token training never had there."""
    prompt_template, _ = bridge_plan.split_prompt_template(spec.train.data.prompt_template)
    ids, prompts = [], []
    for _, rec in iter_jsonl(records_path):
        ids.append(str(rec["id"]))
        prompts.append(prompt_template.format(prompt=rec["input"]))
    return ids, prompts


def strip_separator(text: str, separator: str) -> str:
    """The generated text minus the template's separator the model emits first (Bridge drops one leading
    space of it for tokenizers that are not space sensitive, sft_processing.py:383-387)."""
    for sep in (separator, separator[1:] if separator.startswith(" ") else None):
        if sep and text.startswith(sep):
            return text[len(sep):]
    return text


def prompt_token_ids(tokenizer: Any, prompts: list[str], add_bos: bool) -> list[list[int]]:
    """Token ids exactly as training built the context: ``[BOS] if add_bos`` + the prompt encoded WITHOUT
    special tokens (sft_processing.py:295-301 ``encode(text, add_special_tokens=False)``, :393-394 and
    :440 BOS only when preprocessing.add_bos). vLLM tokenizes a text prompt with the tokenizer's defaults,
    which for Llama 3 prepend <|begin_of_text|>: so vLLM gets these ids instead of text."""
    bos = tokenizer.bos_token_id if add_bos else None
    if add_bos and bos is None:
        raise ConfigError("engine bridge: train.data.add_bos=true but the tokenizer has no BOS token")
    head = [int(bos)] if bos is not None else []
    return [head + list(tokenizer.encode(p, add_special_tokens=False)) for p in prompts]


def vllm_sampling(gen: GenerateConfig) -> dict[str, Any]:
    """SamplingParams kwargs for vLLM: temperature 0 is greedy; top_k -1 / top_p 1.0 switch a filter off
    (vLLM accepts top_k with top_p=1.0)."""
    greedy = gen.strategy == "greedy"
    return {"max_tokens": gen.max_new_tokens, "seed": gen.seed, "temperature": 0.0 if greedy else gen.temperature,
            "top_k": gen.top_k if gen.top_k > 0 and not greedy else -1, "top_p": 1.0 if greedy else gen.top_p}


def mcore_sampling(gen: GenerateConfig) -> dict[str, Any]:
    """Arguments for Bridge's build_sampling_params (inference/text_generation.py:359-380): it rejects
    ``top_k > 0 and top_p > 0.0`` (:374), and top_p=0.0 is megatron-core's "no nucleus filter", so the
    study's top_k=50 with top_p=1.0 passes top_p=0.0. Only a real nucleus (0 < top_p < 1) with top_k is
    refused."""
    if gen.strategy == "greedy":
        return {"temperature": 1.0, "top_k": 1, "top_p": 0.0}
    top_p = gen.top_p if gen.top_p < 1.0 else 0.0
    if gen.top_k > 0 and top_p > 0.0:
        raise ConfigError("megatron-core inference cannot use top_k and top_p < 1 together (the study's "
                          "sampling); install vLLM in the container or set top_k=0 or top_p=1.0")
    return {"temperature": gen.temperature, "top_k": gen.top_k, "top_p": top_p}


def trained_weights(spec: RunSpec, run: Path) -> tuple[Path | None, Path | None]:
    """(merged/full HF weights folder, HF PEFT adapter folder) to generate from; at least one is set.

    Never the base model alone: a LoRA run without adapter/ or model/ (train.checkpoint.export=none, or a
    deleted export) and a full run without model/ would silently generate from the base weights, so both
    are a clear error naming the export step (export() reads the last Megatron checkpoint)."""
    model, adapter = run / "model", run / "adapter"
    if model.is_dir():
        return model, None
    if spec.train.method == "lora" and adapter.is_dir():
        return None, adapter
    wanted = "an HF adapter in adapter/ or merged weights in model/" if spec.train.method == "lora" else \
        "HF weights in model/"
    raise ConfigError(f"engine bridge generate: {run} has no exported weights ({wanted}; "
                      f"train.checkpoint.export={spec.train.checkpoint.export}): generating would use the base "
                      f"model {spec.model.checkpoint}, not the trained one. Export the last checkpoint first: "
                      f"python -m clinie_nemo.engines.bridge export {run}")


def vllm_tensor_parallel(spec: RunSpec, env: Any = None) -> int:
    """vLLM's tensor_parallel_size: the GPUs of the GENERATE job's node, not the training layout.

    One vLLM process per node drives every GPU of its node (slurm/common.sh cn_tasks_per_node
    bridge:generate = 1), so the tasks of its launch are not GPUs: the node's GPUs count
    (:func:`clinie_nemo.engines.allocation.job_allocation`, the rule the nemo engine's generation uses, with
    ``one_process_per_gpu=False``); outside any job or launch, the training run's tensor size. The trained
    tensor size must divide them (the model was sized to fit that many GPUs), and vLLM needs the attention
    and KV heads divisible by its tensor_parallel_size (vLLM ModelConfig.verify_with_parallel_config:
    "Total number of attention heads (...) must be divisible by tensor parallel size")."""
    tp, m = spec.train.parallel.tensor, spec.model
    found = job_allocation(env, one_process_per_gpu=False)
    gpus, source = (found.gpus_per_node, found.source) if found else \
        (tp, "the training run's tensor size: no Slurm job and no CUDA_VISIBLE_DEVICES")
    if gpus % tp:
        raise ConfigError(f"engine bridge generate: the job has {gpus} GPU(s) per node ({source}); the trained "
                          f"model's tensor parallel size {tp} does not divide it: request a multiple of {tp} "
                          "GPUs per node (sbatch --gpus-per-node=N)")
    if m.num_attention_heads % gpus or m.num_kv_heads % gpus:
        raise ConfigError(f"engine bridge generate: vLLM would use all {gpus} GPU(s) of the node ({source}) as "
                          f"tensor_parallel_size, which does not divide model {m.name}'s "
                          f"{m.num_attention_heads} attention / {m.num_kv_heads} KV heads: request "
                          f"{tp} GPU(s) per node or another divisor of {m.num_kv_heads}")
    return gpus


def generate_vllm(spec: RunSpec, run: Path, chunks: list[tuple[int, list[str]]], gen: GenerateConfig,
                   save: Callable[[int, list[str]], None]) -> None:
    model_dir, adapter = trained_weights(spec, run)
    tp = vllm_tensor_parallel(spec)
    import vllm  # in the NeMo Framework container; not a Bridge API
    from vllm.lora.request import LoRARequest

    lora = adapter is not None
    model = str(model_dir) if model_dir is not None else spec.model.checkpoint  # base + the adapter below
    llm = vllm.LLM(model=model, tensor_parallel_size=tp, seed=gen.seed,
                   enable_lora=lora, max_lora_rank=spec.train.lora.dim if lora and spec.train.lora else 16)
    params = vllm.SamplingParams(**vllm_sampling(gen))
    request = LoRARequest("run", 1, str(adapter)) if lora else None
    for k, prompts in chunks:  # one generate call per chunk, saved before the next (resume)
        ids = prompt_token_ids(llm.get_tokenizer(), prompts, spec.train.data.add_bos)
        # a TokensPrompt ({"prompt_token_ids": [...]}, vllm.inputs) is used as given: no BOS added
        outputs = llm.generate([{"prompt_token_ids": t} for t in ids], params, lora_request=request)
        save(k, [o.outputs[0].text for o in outputs])


def mcore_prompt_tokens(controller: Any, tokenizer: Any, prompts: list[str], add_bos: bool) -> list[list[int]]:
    """The context ids the megatron-core engine gets: its own tokenize_prompt WITH add_BOS.

    megatron-core 0.19.0 StaticInferenceEngine.generate(prompts, add_BOS=...) with legacy=True calls
    generate_using_legacy_static_engine, whose add_request(prompt=..., encoder_prompt=..., sampling_params=...)
    (engines/static_engine.py:290-292) drops add_BOS: every prompt lost its BOS. The engine's own
    tokenisation (static_engine.py:180-182) is TextGenerationController.tokenize_prompt(tokenizer, prompt,
    add_BOS) (text_generation_controller.py:423-446: HFTokenizerAdapter.tokenize encodes without special
    tokens, inference/_tokenizer.py:65-67; leading BOS stripped, one prepended with add_BOS): the training's
    ``[BOS if add_bos] + encode(prompt, add_special_tokens=False)`` (sft_processing.py:295-301, :393)."""
    return [list(controller.tokenize_prompt(tokenizer, p, add_bos)) for p in prompts]


def init_single_process_env() -> None:
    """A plain `clinie-nemo generate` has no launcher: give torch.distributed's env:// a one-process world
    on a free local port (Bridge's scripts/inference/text_generation.py:194 calls
    maybe_initialize_distributed() before loading; provider.initialize_model_parallel() would otherwise
    call init_process_group("nccl") with no RANK/WORLD_SIZE, models/model_provider.py:319-321)."""
    if "WORLD_SIZE" in os.environ:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
