"""Subprocess side of tests/engines/test_bridge_generation_contract.py: the REAL Megatron-Bridge 0.6.2 / megatron-core 0.19
build the training data and tokenize the generation prompts that clinie_nemo.engines.bridge plans.

Run as ``python -m tests.bridge_generation_probe SITE WORK RESULT_JSON`` from the repo root, in a fresh
interpreter (the pytest process may hold tests/bridge_fakes.py's fake megatron.bridge), in the import world of
tests/bridge_contract_sandbox.py (the pinned site, the shims, the stdlib and torch). On CPU, nothing mocked
but what cannot run here (Transformer Engine stand-ins): in WORK it writes a tiny HF folder
(tests/bridge_contract_probe.tiny_hf_folder: Llama weights + a real BPE tokenizer whose BOS is ``<s>``) and
a READ-ONLY data folder, then

- ``dataset``: our plan (packing on) -> bridge.build_config (links dataset_root first) -> Bridge's
  build_tokenizer(cfg.tokenizer) and GPTSFTDatasetBuilder(cfg.dataset, tokenizer).build(): every file the
  builder writes (packed parquet, metadata, JSONL .idx) is listed, with the data folder's listing after;
- ``parity``: for the first test record, the context ids (loss mask 0) of the training item Bridge's
  GPTSFTDataset builds (packing off, add_bos on and off), the ids our megatron-core path feeds
  (bridge_generation.mcore_prompt_tokens with megatron-core's TextGenerationController and Bridge's inference
  build_tokenizer), the ids our vLLM path feeds (bridge_generation.prompt_token_ids with the HF tokenizer), and what a
  REAL legacy StaticInferenceEngine queues for generate(prompts, add_BOS=True) versus for our requests;
- ``recompute``: activation_recompute none / selective / full through build_config and Bridge's own
  runtime_config_update (validation included).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from types import SimpleNamespace
from typing import Any


def _setup(work: Path) -> tuple[Path, Path]:
    from tests.bridge_contract_probe import tiny_hf_folder
    from tests.engine_fixtures import write_records

    hf = tiny_hf_folder(work / "hf", ["Extract from: item 0 1 2 3", "X0 X1 X2 X3"])  # BPE tokenizer, <s> = BOS
    data = write_records(work / "data")
    for f in data.iterdir():
        f.chmod(0o444)
    data.chmod(0o555)  # read-only, as DATA is mounted on many clusters
    return hf, data


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _build(spec_overrides: list[str], hf: Path, data: Path, run: Path) -> tuple[Any, Any, list]:
    from megatron.bridge.data.builders.gpt_sft import GPTSFTDatasetBuilder
    from megatron.bridge.training.tokenizers.tokenizer import build_tokenizer

    from clinie_nemo.engines import bridge, bridge_plan
    from clinie_nemo.engines.spec_loader import load_run_spec

    spec = load_run_spec("llama31_8b", "peft_lora", [f"model.checkpoint={hf}", "seq_length=64", *spec_overrides])
    run.mkdir(parents=True, exist_ok=True)
    plan = bridge_plan.plan_dict(spec, data, run)
    cfg = bridge.build_config(plan)  # also links the run's dataset_root to the data folder's splits
    tokenizer = build_tokenizer(cfg.tokenizer)  # training/tokenizers/tokenizer.py:123
    datasets = GPTSFTDatasetBuilder(cfg.dataset, tokenizer).build()  # data/builders/gpt_sft.py:723
    return spec, cfg, datasets


def dataset_case(hf: Path, data: Path, work: Path) -> dict[str, Any]:
    run = work / "run_packed"
    before = _listing(data)
    _, cfg, datasets = _build(["packing=true"], hf, data, run)
    return {"dataset_root": str(cfg.dataset.dataset_root), "run": str(run),
            "run_files": _listing(run), "data_before": before, "data_after": _listing(data),
            "built": [type(d).__name__ if d is not None else None for d in datasets]}


def _legacy_engine(tokenizer: Any) -> Any:
    """A REAL megatron-core legacy StaticInferenceEngine around a controller that only tokenizes (no model
    on CPU); run_engine marks the queued requests done so generate() returns them as queued."""
    from megatron.core.inference.contexts import StaticInferenceContext
    from megatron.core.inference.engines.static_engine import StaticInferenceEngine
    from megatron.core.inference.text_generation_controllers.text_generation_controller import (
        TextGenerationController,
    )

    wrapped = SimpleNamespace(config=None, model=SimpleNamespace(decoder=SimpleNamespace()),
                              inference_context=StaticInferenceContext(max_batch_size=4, max_sequence_length=64))
    controller = SimpleNamespace(inference_wrapped_model=wrapped, tokenizer=tokenizer,
                                 tokenize_prompt=TextGenerationController.tokenize_prompt)
    engine = StaticInferenceEngine(text_generation_controller=controller, max_batch_size=4, random_seed=1,
                                   legacy=True)
    engine.run_engine = lambda: engine.scheduler.completed_request_pool.update(engine.scheduler.requests)
    return engine


def parity_case(hf: Path, data: Path, work: Path) -> dict[str, Any]:
    from megatron.bridge.inference import text_generation as ti
    from megatron.core.inference.inference_request import InferenceRequest
    from megatron.core.inference.sampling_params import SamplingParams
    from megatron.core.inference.text_generation_controllers.text_generation_controller import (
        TextGenerationController,
    )
    from transformers import AutoTokenizer

    from clinie_nemo.engines import bridge_generation

    out: dict[str, Any] = {}
    for add_bos in (True, False):
        spec, _, (train_ds, _, _) = _build([f"data.add_bos={str(add_bos).lower()}"], hf, data,
                                           work / f"run_bos_{add_bos}")
        item = train_ds[0]  # the first training record, as training tokenizes it
        ids, mask = [int(x) for x in item["input_ids"]], list(item.get("loss_mask", item.get("mask")))
        first_answer = next(i for i, m in enumerate(mask) if m)
        training = ids[:first_answer]
        record = json.loads((data / "training.jsonl").read_text().splitlines()[0])
        prompt = bridge_plan_prompt(spec, record)
        mcore_tok = ti.build_tokenizer(str(hf), False)  # inference/text_generation.py:117
        mcore = bridge_generation.mcore_prompt_tokens(TextGenerationController, mcore_tok, [prompt], add_bos)[0]
        vllm = bridge_generation.prompt_token_ids(AutoTokenizer.from_pretrained(str(hf)), [prompt], add_bos)[0]
        engine = _legacy_engine(mcore_tok)
        legacy = engine.generate(prompts=[prompt], add_BOS=add_bos, sampling_params=SamplingParams())[0]
        ours = InferenceRequest(request_id=engine.get_new_request_id(), prompt=prompt, prompt_tokens=mcore,
                                sampling_params=SamplingParams())
        fed = engine.generate(inference_requests=[ours], sampling_params=SamplingParams())[0]
        out[str(add_bos).lower()] = {
            "bos_id": mcore_tok.bos, "training": training, "mcore": mcore, "vllm": vllm,
            "legacy_engine_prompts": [int(t) for t in legacy.prompt_tokens],
            "engine_with_our_requests": [int(t) for t in fed.prompt_tokens],
            "hf_default_encode": AutoTokenizer.from_pretrained(str(hf)).encode(prompt)}
    return out


def recompute_case(hf: Path, data: Path, work: Path) -> dict[str, Any]:
    """activation_recompute none/selective/full through build_config and Bridge's runtime_config_update
    (mixed precision, DP size, ConfigContainer.validate(): megatron-core's TransformerConfig checks of
    recompute_granularity/method/num_layers, transformer_config.py:1724-1752)."""
    from megatron.bridge.training.config import runtime_config_update

    from clinie_nemo.engines import bridge, bridge_plan
    from clinie_nemo.engines.spec_loader import load_run_spec

    os.environ["WORLD_SIZE"] = "1"
    out = {}
    for mode in ("none", "selective", "full"):
        spec = load_run_spec("llama31_8b", "peft_lora", [f"model.checkpoint={hf}", f"activation_recompute={mode}"])
        cfg = bridge.build_config(bridge_plan.plan_dict(spec, data, work / f"run_rc_{mode}"))
        runtime_config_update(cfg)
        m = cfg.model
        out[mode] = [m.recompute_granularity, m.recompute_method, m.recompute_num_layers, m.recompute_modules]
    return out


def bridge_plan_prompt(spec: Any, record: dict[str, Any]) -> str:
    """The generation prompt of a record, as bridge_generation.record_prompts builds it."""
    from clinie_nemo.engines import bridge_plan

    template, _ = bridge_plan.split_prompt_template(spec.train.data.prompt_template)
    return template.format(prompt=record["input"])


def main(argv: list[str]) -> int:
    from tests import bridge_contract_sandbox as sandbox

    site, work, result = argv[0], Path(argv[1]), Path(argv[2])
    sandbox.enter(site)  # re-executes with -S: only the pinned site, the stdlib and torch are importable
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import megatron.bridge

    hf, data = _setup(work)
    out: dict[str, Any] = {"bridge_file": megatron.bridge.__file__}
    for name, case in (("dataset", dataset_case), ("parity", parity_case), ("recompute", recompute_case)):
        try:
            out[name] = {"ok": True, **case(hf, data, work)}
        except Exception as exc:  # reported to the test, which fails on it
            out[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                         "traceback": traceback.format_exc()[-3000:]}
    result.write_text(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
