"""Engine ``bridge``: Megatron-Bridge fine-tuning and generation, inside the NeMo Framework container.

The ONLY module that imports ``megatron.bridge`` (lazily, inside functions): Bridge is being folded into
Megatron-LM, so every call lives here. What to set comes from the pure
:func:`clinie_nemo.engines.bridge_plan.plan_dict`; this module builds the recipe's ConfigContainer,
applies that dict, imports the HF checkpoint once (cached by the folder's content hash), runs
``finetune(cfg, forward_step)``, exports the adapter (HF PEFT) or merged weights, and generates with vLLM
when importable, else megatron-core's static inference engine. Checked against Megatron-Bridge v0.6.0
(51885cf132b2814188b6855c25a8588254274c2a); file:line citations are in bridge_plan and below.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from clinie_nemo.engines import bridge_plan
from clinie_nemo.engines.spec import GenerateConfig, RunSpec
from clinie_nemo.engines.spec_loader import dump_yaml, load_spec_file
from clinie_nemo.errors import ConfigError
from clinie_nemo.fileio import atomic_write, iter_jsonl, sha256_file, write_jsonl
from clinie_nemo.progress import say

NAME = "bridge"
PREEMPTED_EXIT_CODE = 124  # same as the local engine: checkpoint saved, requeue me
CACHE_ENV = "CLINIE_NEMO_CACHE"  # where imported Megatron checkpoints are kept (default ~/.cache/clinie_nemo)


def _rank() -> int:
    return int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")) or 0)


def resolve(dotted: str) -> Any:
    """``package.module.Name`` -> the object (imports lazily)."""
    module, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def folder_hash(folder: str | Path) -> str:
    """sha256 over (relative path, file sha256) of every file of an HF folder: the import cache key."""
    root = Path(folder)
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file() and ".cache" not in p.parts):
        h.update(f"{f.relative_to(root).as_posix()}\0{sha256_file(f)}\n".encode())
    return h.hexdigest()


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "clinie_nemo")) / "megatron_imports"


def ensure_imported(spec: RunSpec, wait_s: float = 7200.0) -> Path:
    """Import the HF checkpoint to Megatron format once per content hash; other ranks wait for rank 0."""
    hf = Path(spec.model.checkpoint)
    if not hf.is_dir():
        raise ConfigError(f"engine bridge: model.checkpoint {hf} is not an HF folder on this machine")
    target = cache_root() / f"{spec.model.name}-{folder_hash(hf)[:16]}"
    done = target / "IMPORTED"
    if done.is_file():
        say(f"reusing imported checkpoint {target}")
        return target
    if _rank() == 0:
        say(f"importing {hf} to Megatron format in {target} (once per content hash)")
        # AutoBridge.import_ckpt(hf_model_id, megatron_path) (models/conversion/auto_bridge.py:1345)
        auto_bridge = resolve("megatron.bridge.AutoBridge")
        tmp = target.with_name(target.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)  # left by an interrupted import
        auto_bridge.import_ckpt(str(hf), str(tmp))
        tmp.replace(target)
        done.write_text(json.dumps({"hf": str(hf)}))
        return target
    deadline = time.monotonic() + wait_s
    while not done.is_file():
        if time.monotonic() > deadline:
            raise ConfigError(f"timed out waiting for rank 0 to import {hf} into {target}")
        time.sleep(5)
    return target


def latest_iteration(checkpoints: Path) -> int:
    """Highest ``iter_NNNNNNN`` folder Bridge saved (checkpoint layout: CheckpointConfig docstring,
    training/config.py:499); 0 when none."""
    iters = [int(p.name[5:]) for p in checkpoints.glob("iter_*") if p.name[5:].isdigit()]
    return max(iters, default=0)


def _set_path(root: Any, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    obj = root
    for name in parents:
        obj = getattr(obj, name)
    if not hasattr(obj, last):
        raise ConfigError(f"engine bridge: the recipe's config has no attribute {dotted!r} "
                          f"(Bridge version differs from {bridge_plan.BRIDGE_VERSION}?)")
    setattr(obj, last, value)


def _construct(desc: dict[str, Any] | None) -> Any:
    """{"class": dotted, field: value | nested desc} -> an instance (nested descs built first)."""
    if desc is None:
        return None
    kwargs = {k: _construct(v) if isinstance(v, dict) and "class" in v else v
              for k, v in desc.items() if k != "class"}
    return resolve(desc["class"])(**kwargs)


def build_config(plan: dict[str, Any]) -> Any:
    """The recipe's ConfigContainer with every entry of the plan applied."""
    recipe = resolve(plan["recipe"])
    cfg = recipe(**plan["recipe_kwargs"])
    cfg.dataset = _construct(plan["dataset"])  # ConfigContainer.dataset (training/config.py:989)
    cfg.peft = _construct(plan["peft"])  # ConfigContainer.peft: Optional[PEFT] (config.py:1005)
    for dotted, value in plan["set"].items():
        if dotted == "train.exit_signal":
            value = getattr(signal, value)  # "SIGUSR1" -> signal.SIGUSR1 (a signal.Signals member)
        elif dotted.endswith("_dtype") and isinstance(value, str):
            import torch  # "float32" -> torch.float32 (TransformerConfig params_dtype / pipeline_dtype)

            value = getattr(torch, value)
        _set_path(cfg, dotted, value)
    return cfg


def plan(spec: RunSpec, data_dir: str | Path, run_dir: str | Path) -> str:
    p = bridge_plan.plan_dict(spec, data_dir, run_dir)
    cli = ["train", "--engine", "bridge", "--spec", str(Path(run_dir) / "spec.yaml"), "--data", str(data_dir),
           "--output", str(run_dir)]
    return ("# engine bridge: Megatron-Bridge inside the NeMo Framework container\n# launch:\n"
            + bridge_plan.shell_line(bridge_plan.launch_command(spec, cli)) + "\n# ConfigContainer settings:\n"
            + dump_yaml(p))


def train(spec: RunSpec, data_dir: str | Path, run_dir: str | Path) -> dict[str, Any]:
    run = Path(run_dir)
    if "WORLD_SIZE" not in os.environ and spec.train.parallel.world_size > 1:
        # started by hand on a (login or compute) node: launch the ranks, each re-reads RUN/spec.yaml
        cli = ["train", "--engine", NAME, "--spec", str(run / "spec.yaml"), "--data", str(data_dir),
               "--output", str(run)]
        cmd = bridge_plan.launch_command(spec, cli)
        say("launching: " + bridge_plan.shell_line(cmd))
        rc = subprocess.call(["bash", "-c", bridge_plan.shell_line(cmd)])
        if rc != 0:
            raise SystemExit(rc)
        return json.loads((run / "DONE").read_text()) if (run / "DONE").is_file() else {}
    pretrained = ensure_imported(spec)
    p = bridge_plan.plan_dict(spec, data_dir, run, pretrained_checkpoint=str(pretrained))
    cfg = build_config(p)
    finetune = resolve(p["entry"]["function"])  # training/finetune.py:23 finetune(config, forward_step_func)
    forward_step = resolve(p["entry"]["forward_step"])  # training/gpt_step.py:468
    finetune(cfg, forward_step)
    done_iter = latest_iteration(run / "checkpoints")
    if spec.train.max_steps is not None and done_iter < spec.train.max_steps:
        # train.py:1397: on train.exit_signal (SIGTERM) Bridge saves a checkpoint and returns normally
        say(f"stopped by a signal at iteration {done_iter}/{spec.train.max_steps}; checkpoint saved, "
            f"exiting {PREEMPTED_EXIT_CODE} so the job can be requeued")
        raise SystemExit(PREEMPTED_EXIT_CODE)
    if _rank() != 0:
        return {}
    export = p["export"]
    if export["kind"] != "none":
        auto = resolve("megatron.bridge.AutoBridge").from_hf_pretrained(spec.model.checkpoint)  # auto_bridge.py:459
        if spec.train.method == "lora":
            # LoRA -> HF PEFT adapter: AutoBridge.export_adapter_ckpt(peft_checkpoint, output_path) (:1475)
            auto.export_adapter_ckpt(str(run / "checkpoints"), str(run / "adapter"))
            if export["kind"] == "merged":
                merge_adapter(spec.model.checkpoint, run / "adapter", run / "model")
        else:  # full weights: AutoBridge.export_ckpt(megatron_path, hf_path) (auto_bridge.py:1410)
            auto.export_ckpt(str(run / "checkpoints"), export["output"])
    facts = {"engine": NAME, "steps": spec.train.max_steps, "epochs": spec.train.max_epochs,
             "export": export}
    with atomic_write(run / "DONE") as fh:
        json.dump(facts, fh)
    return facts


def merge_adapter(base: str | Path, adapter: Path, out: Path) -> None:
    """Merge an HF PEFT adapter into its base with peft (export_ckpt does not merge LoRA; Bridge's own
    merger is examples/peft/merge_lora.py, not an importable API)."""
    import peft
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(str(base), torch_dtype="auto")
    merged = peft.PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    merged.save_pretrained(str(out))
    transformers.AutoTokenizer.from_pretrained(str(base)).save_pretrained(str(out))


def _prompts(spec: RunSpec, records_path: str | Path) -> tuple[list[str], list[str]]:
    prompt_template, separator = bridge_plan.split_prompt_template(spec.train.data.prompt_template)
    ids, prompts = [], []
    for _, rec in iter_jsonl(records_path):
        ids.append(str(rec["id"]))
        prompts.append(prompt_template.format(prompt=rec["input"]) + separator)
    return ids, prompts


def _generate_vllm(spec: RunSpec, run: Path, prompts: list[str], gen: GenerateConfig) -> list[str]:
    import vllm  # in the NeMo Framework container (vLLM 0.17); not a Bridge API
    from vllm.lora.request import LoRARequest

    adapter = run / "adapter"
    model = str(run / "model") if (run / "model").is_dir() else spec.model.checkpoint
    lora = adapter.is_dir() and not (run / "model").is_dir()
    llm = vllm.LLM(model=model, tensor_parallel_size=spec.train.parallel.tensor, seed=gen.seed,
                   enable_lora=lora, max_lora_rank=spec.train.lora.dim if lora and spec.train.lora else 16)
    params = vllm.SamplingParams(max_tokens=gen.max_new_tokens, seed=gen.seed,
                                 temperature=0.0 if gen.strategy == "greedy" else gen.temperature,
                                 top_k=gen.top_k if gen.top_k > 0 else -1, top_p=gen.top_p)
    request = LoRARequest("run", 1, str(adapter)) if lora else None
    outputs = llm.generate(prompts, params, lora_request=request)
    return [o.outputs[0].text for o in outputs]


def _generate_mcore(spec: RunSpec, run: Path, prompts: list[str], gen: GenerateConfig) -> list[str]:
    """megatron-core static engine, as scripts/inference/text_generation.py does (v0.6.0)."""
    if not (run / "model").is_dir():
        raise ConfigError("engine bridge: without vLLM, generation needs merged weights in <run>/model "
                          "(train with checkpoint.export=merged)")
    if gen.strategy == "sample" and gen.top_k > 0 and gen.top_p < 1.0:
        # inference/text_generation.py build_sampling_params: "--top_k and --top_p cannot both be positive"
        raise ConfigError("megatron-core inference cannot use top_k and top_p together (the study's "
                          "sampling); install vLLM in the container or set top_k=0 or top_p=1.0")
    ti = importlib.import_module("megatron.bridge.inference.text_generation")
    import torch

    model = ti.load_bridge_model(hf_model_path=str(run / "model"), megatron_model_path=None,
                                 tp=spec.train.parallel.tensor, pp=spec.train.parallel.pipeline, ep=1, etp=1,
                                 sequence_parallel=False, dtype=torch.bfloat16, seed=gen.seed,
                                 trust_remote_code=False)  # text_generation.py:210
    tokenizer = ti.build_tokenizer(str(run / "model"), False)  # text_generation.py:117
    greedy = gen.strategy == "greedy"
    params = ti.build_sampling_params(temperature=1.0 if greedy else gen.temperature,
                                      top_k=1 if greedy else gen.top_k, top_p=0.0 if greedy else gen.top_p,
                                      return_log_probs=False, skip_prompt_log_probs=True,
                                      num_tokens_to_generate=gen.max_new_tokens, termination_id=None,
                                      top_n_logprobs=0, stop_words=None)  # text_generation.py:359
    core = importlib.import_module("megatron.core.inference.engines.static_engine")
    ctx = importlib.import_module("megatron.core.inference.contexts").StaticInferenceContext(
        max_batch_size=gen.batch_size, max_sequence_length=spec.train.seq_length + gen.max_new_tokens)
    wrapper = resolve("megatron.core.inference.model_inference_wrappers.gpt.gpt_inference_wrapper"
                      ".GPTInferenceWrapper")(model, inference_context=ctx)
    controller = resolve("megatron.core.inference.text_generation_controllers.text_generation_controller"
                         ".TextGenerationController")(inference_wrapped_model=wrapper, tokenizer=tokenizer)
    engine = core.StaticInferenceEngine(text_generation_controller=controller, max_batch_size=gen.batch_size,
                                        random_seed=gen.seed, legacy=True)
    return [o.generated_text for o in engine.generate(prompts=prompts, sampling_params=params)]


def generate(run_dir: str | Path, records_path: str | Path, output_path: str | Path,
             gen_config: GenerateConfig | None = None) -> int:
    run = Path(run_dir)
    spec = load_spec_file(run / "spec.yaml")
    gen = gen_config or GenerateConfig()
    ids, prompts = _prompts(spec, records_path)
    say(f"generating {len(prompts)} predictions with engine bridge")
    try:
        importlib.import_module("vllm")
        texts = _generate_vllm(spec, run, prompts, gen)
    except ImportError:
        texts = _generate_mcore(spec, run, prompts, gen)
    n = write_jsonl(output_path, ({"id": i, "prediction": t, "engine": NAME, "model": spec.model.name}
                                  for i, t in zip(ids, texts)))
    say(f"wrote {n} predictions to {output_path}")
    return n
