"""Engine ``bridge``: Megatron-Bridge fine-tuning and generation, inside the NeMo Framework container.

The ONLY module that imports ``megatron.bridge`` (lazily, inside functions): Bridge is being folded into
Megatron-LM, so every call lives here. What to set comes from the pure
:func:`clinie_nemo.engines.bridge_plan.plan_dict`; this module checks the installed Bridge version, builds
the recipe's ConfigContainer on the LOCAL HF folder, applies that dict, runs ``finetune(cfg,
forward_step)`` (the HF folder is the pretrained checkpoint: Bridge 0.6 converts it on load, no import
step), turns a signal stop into exit 124, exports the adapter (HF PEFT) or merged weights in a separate
one-process run, and generates with vLLM when importable (:mod:`clinie_nemo.engines.bridge_generation`:
the generation helpers that call no Bridge API), else megatron-core's static inference engine. The folders
Bridge reads and writes (HF folder, iter_NNNNNNN checkpoints, dataset links): engines/bridge_files.py.
Supported: megatron-bridge 0.6.x (NeMo Framework container 26.08). Checked against Megatron-Bridge v0.6.0
(51885cf132b2814188b6855c25a8588254274c2a); file:line citations are in bridge_plan and below.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from clinie_nemo.core.errors import ConfigError
from clinie_nemo.core.fileio import atomic_write
from clinie_nemo.core.progress import say
from clinie_nemo.engines import PREEMPTED_EXIT_CODE, bridge_generation, bridge_plan, launch
from clinie_nemo.engines.bridge_files import check_hf_folder, iteration_dir, latest_iteration, stage_dataset
from clinie_nemo.engines.predictions import ResumablePredictions, batch_seed, generation_key
from clinie_nemo.engines.spec import GenerateConfig, RunSpec
from clinie_nemo.engines.spec_loader import dump_yaml, load_spec_file

NAME = "bridge"
RANK_PER_GPU = True  # a multi-node train: one Slurm task per GPU, each a rank (one node: train() launches them)
# vLLM prompts per generate call when resuming matters: each call's results are saved before the next. A
# request with SamplingParams.seed samples from its own torch.Generator seeded with it (vLLM v1
# worker/gpu_model_runner.py, SamplingType.RANDOM_SEED), so chunking changes no sample.
VLLM_CHUNK = 256
# launcher variables a one-process export must not inherit (torch.distributed env:// would join the
# training's world, or bind the port the launcher's store holds)
LAUNCH_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK",
              "ROLE_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID", "TORCHELASTIC_RESTART_COUNT",
              "TORCHELASTIC_MAX_RESTARTS", "TORCHELASTIC_USE_AGENT_STORE", "TORCH_NCCL_ASYNC_ERROR_HANDLING")


def _world_size_env() -> int:
    """The launcher's world size (WORLD_SIZE; 1 when unset or not a number)."""
    value = os.environ.get("WORLD_SIZE", "")
    return int(value) if value.isdigit() and int(value) > 0 else 1


def _rank() -> int:
    return int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")) or 0)


def resolve(dotted: str) -> Any:
    """``package.module.Name`` -> the object (imports lazily)."""
    module, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def installed_bridge_version() -> str:
    """megatron-bridge's version: its distribution metadata, else ``megatron.bridge.__version__``."""
    from importlib import metadata

    for dist in ("megatron-bridge", "megatron_bridge"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    try:
        return str(importlib.import_module("megatron.bridge").__version__)
    except (ImportError, AttributeError) as err:
        raise ConfigError("engine bridge: megatron.bridge is not installed here (run inside the NeMo "
                          f"Framework container nvcr.io/nvidia/nemo:{bridge_plan.CONTAINER_TAG})") from err


def _set_path(root: Any, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    obj = root
    for name in parents:
        obj = getattr(obj, name)
    if not hasattr(obj, last):
        raise ConfigError(f"engine bridge: the recipe's config has no attribute {dotted!r} "
                          f"(Bridge version differs from {bridge_plan.BRIDGE_VERSION}?)")
    setattr(obj, last, value)


def _value(value: Any) -> Any:
    """A plan value -> the object: nested {"class": ...} descs are constructed, ``"torch.float32"``
    strings become the dtype."""
    if isinstance(value, dict) and "class" in value:
        return _construct(value)
    if isinstance(value, str) and value.startswith("torch."):
        return resolve(value)
    return value


def _construct(desc: dict[str, Any] | None) -> Any:
    """{"class": dotted, field: value | nested desc} -> an instance (nested descs built first)."""
    if desc is None:
        return None
    kwargs = {k: _value(v) for k, v in desc.items() if k != "class"}
    return resolve(desc["class"])(**kwargs)


class _LocalAutoBridge:
    """Stands in for ``AutoBridge`` while a recipe runs: ``from_hf_pretrained(<any Hub id>)`` loads the
    run's local HF folder instead; everything else is the real class."""

    def __init__(self, real: Any, hf_path: str) -> None:
        self._real, self._hf_path = real, hf_path
        self.asked: list[str] = []

    def from_hf_pretrained(self, path: Any, *args: Any, **kwargs: Any) -> Any:
        self.asked.append(str(path))
        return self._real.from_hf_pretrained(self._hf_path, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def run_recipe(recipe: Any, kwargs: dict[str, Any], hf_path: str) -> Any:
    """Call a Bridge recipe so that its model provider comes from the local ``hf_path``.

    Bridge 0.6.x recipes hard-code the Hub id (recipes/llama/h100/llama3.py:1668-1669 and :2474-2475:
    ``AutoBridge.from_hf_pretrained("meta-llama/Meta-Llama-3.1-8B").to_megatron_provider(load_weights=False)``)
    and take no path argument. A recipe that accepts ``hf_path`` gets it; otherwise the module-level
    ``AutoBridge`` the recipe looks up is pointed at the local folder for the duration of the call, so the
    recipe's own settings (TP, seq length, TE, ...) are applied on top of the right provider."""
    if "hf_path" in inspect.signature(recipe).parameters:
        return recipe(**kwargs, hf_path=hf_path)
    namespace = getattr(recipe, "__globals__", {})
    real = namespace.get("AutoBridge")
    if real is None:
        raise ConfigError(f"engine bridge: recipe {recipe.__module__}.{recipe.__name__} neither takes hf_path "
                          f"nor uses AutoBridge (Bridge version differs from {bridge_plan.BRIDGE_VERSION}?)")
    local = _LocalAutoBridge(real, hf_path)
    namespace["AutoBridge"] = local
    try:
        cfg = recipe(**kwargs)
    finally:
        namespace["AutoBridge"] = real
    if local.asked:
        say(f"recipe model {', '.join(sorted(set(local.asked)))} -> local HF folder {hf_path}")
    return cfg


def build_config(plan: dict[str, Any]) -> Any:
    """The recipe's ConfigContainer (model provider from the local HF folder) with the plan applied; the
    dataset_root it names is filled first (:func:`stage_dataset`), so every caller gets a usable dataset."""
    if "dataset_files" in plan:
        stage_dataset(plan["dataset_files"])
    recipe = resolve(plan["recipe"])
    provider = plan["model_provider"]
    cfg = run_recipe(recipe, plan["recipe_kwargs"], provider["hf_path"])
    cfg.dataset = _construct(plan["dataset"])  # ConfigContainer.dataset (training/config.py:989)
    cfg.peft = _construct(plan["peft"])  # ConfigContainer.peft: Optional[PEFT] (config.py:1005)
    for dotted, value in plan["set"].items():
        if dotted == "train.exit_signal":
            value = getattr(signal, value)  # "SIGTERM" -> signal.SIGTERM (a signal.Signals member)
        _set_path(cfg, dotted, _value(value))
    return cfg


def plan(spec: RunSpec, data_dir: str | Path, run_dir: str | Path) -> str:
    p = bridge_plan.plan_dict(spec, data_dir, run_dir)
    cli = ["train", "--engine", "bridge", "--spec", str(Path(run_dir) / "spec.yaml"), "--data", str(data_dir),
           "--output", str(run_dir)]
    return ("# engine bridge: Megatron-Bridge inside the NeMo Framework container\n# launch:\n"
            + bridge_plan.shell_line(bridge_plan.launch_command(spec, cli)) + "\n# ConfigContainer settings:\n"
            + dump_yaml(p))


def forward_usr1_as_term() -> None:
    """A SIGUSR1 reaching a rank (the batch shell forwards Slurm's B:USR1 time signal to the step) is
    re-raised as SIGTERM, the signal Bridge's handler listens on (train.exit_signal): Python's default
    action for SIGUSR1 would kill the rank without a checkpoint."""
    signal.signal(signal.SIGUSR1, lambda *_: os.kill(os.getpid(), signal.SIGTERM))


def run_finetune(cfg: Any, finetune: Any, forward_step: Any) -> bool:
    """finetune(); True when it stopped early on a signal. Bridge saves a checkpoint on
    train.exit_signal and then calls sys.exit(0) (train.py:1397-1414, :805); any other exit code is a
    real failure and propagates."""
    try:
        finetune(cfg, forward_step)
    except SystemExit as stop:
        if stop.code not in (None, 0):
            raise
        return True
    return False


def train(spec: RunSpec, data_dir: str | Path, run_dir: str | Path) -> dict[str, Any]:
    run = Path(run_dir)
    bridge_plan.check_bridge_version(installed_bridge_version())
    if _world_size_env() == 1 and spec.train.parallel.world_size > 1:
        # one process for a multi-rank run: started by hand, or as the ONE task of a job (the study's one-node
        # stage: its script's srun exports WORLD_SIZE=1): launch the ranks, each re-reads RUN/spec.yaml
        cli = ["train", "--engine", NAME, "--spec", str(run / "spec.yaml"), "--data", str(data_dir),
               "--output", str(run)]
        cmd = bridge_plan.launch_command(spec, cli)
        nodes = spec.train.parallel.nodes
        missing = [v for v in ("MASTER_ADDR", "MASTER_PORT") if nodes > 1 and not os.environ.get(v)]
        if missing:  # the multi-node rendezvous endpoint is $MASTER_ADDR:$MASTER_PORT, never a fixed port
            raise ConfigError(f"engine bridge: a {nodes}-node launch needs {' and '.join(missing)} "
                              "(slurm/*.sh derive them from the job)")
        say("launching: " + bridge_plan.shell_line(cmd))
        # this process is the launcher: a stop signal reaching it goes to every rank (engines/launch.py);
        # before, SIGUSR1 killed it and orphaned the ranks without a checkpoint
        rc, stopped = launch.run(cmd)
        if (run / "DONE").is_file():  # finished (rank 0 wrote DONE), even if a stop came at the very end
            return json.loads((run / "DONE").read_text())
        if stopped:
            say(f"stopped by a signal (ranks exited, torchrun {rc}); last checkpoint iteration "
                f"{latest_iteration(run / 'checkpoints')}; exiting {PREEMPTED_EXIT_CODE} so the job can be requeued")
            raise SystemExit(PREEMPTED_EXIT_CODE)
        if rc != 0:
            raise SystemExit(rc)
        return {}
    check_hf_folder(spec)
    # nothing may reach the Hub: the model, tokenizer and provider all come from the local folder
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    p = bridge_plan.plan_dict(spec, data_dir, run)
    cfg = build_config(p)
    finetune = resolve(p["entry"]["function"])  # training/finetune.py:23 finetune(config, forward_step_func)
    forward_step = resolve(p["entry"]["forward_step"])  # training/gpt_step.py:468
    forward_usr1_as_term()
    stopped = run_finetune(cfg, finetune, forward_step)
    # train_iters is set after finalize() also when training by epochs (TrainingConfig.num_epochs)
    total = getattr(cfg.train, "train_iters", None) or spec.train.max_steps
    done_iter = latest_iteration(run / "checkpoints")
    if stopped and (total is None or done_iter < total):
        say(f"stopped by a signal at iteration {done_iter}/{total}; checkpoint saved, "
            f"exiting {PREEMPTED_EXIT_CODE} so the job can be requeued")
        raise SystemExit(PREEMPTED_EXIT_CODE)
    if _rank() != 0:
        return {}
    export = p["export"]
    if export["kind"] != "none":
        export_isolated(run)
    facts = {"engine": NAME, "steps": spec.train.max_steps, "epochs": spec.train.max_epochs,
             "iteration": done_iter, "export": export}
    with atomic_write(run / "DONE") as fh:
        json.dump(facts, fh)
    return facts


def export_isolated(run: Path) -> None:
    """Run :func:`export` in a fresh one-process Python without the launcher's variables: AutoBridge's
    exports open their own world_size=1 gloo group (training/model_load_save.py:117-141,
    temporary_distributed_context), which must not meet the training's process group or its store port."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_ENV}
    cmd = [sys.executable, "-m", "clinie_nemo.engines.bridge", "export", str(run)]
    say(f"exporting in a one-process run: {' '.join(cmd)}")
    rc = subprocess.call(cmd, env=env)
    if rc != 0:
        raise ConfigError(f"engine bridge: the export of {run} failed (exit {rc}); the checkpoints are kept, "
                          f"rerun: python -m clinie_nemo.engines.bridge export {run}")


def export(run: Path) -> None:
    """Export the run's last checkpoint: LoRA -> HF PEFT adapter (+ merged weights), full -> HF weights."""
    spec = load_spec_file(run / "spec.yaml")
    checkpoints = run / "checkpoints"
    last = iteration_dir(checkpoints, latest_iteration(checkpoints))
    if not last.is_dir():
        raise ConfigError(f"engine bridge: no checkpoint to export in {checkpoints}")
    kind = spec.train.checkpoint.export
    auto = resolve("megatron.bridge.AutoBridge").from_hf_pretrained(spec.model.checkpoint)  # auto_bridge.py:459
    if spec.train.method == "lora":
        # AutoBridge.export_adapter_ckpt(peft_checkpoint, output_path) (auto_bridge.py:1475) reads
        # run_config.yaml and calls dist_checkpointing.load(..., str(ckpt_path)) on the path it is given
        # (:1546-1548, :1591): that must be the iter_NNNNNNN folder, not checkpoints/
        auto.export_adapter_ckpt(str(last), str(run / "adapter"))
        if kind == "merged":
            merge_adapter(spec.model.checkpoint, run / "adapter", run / "model")
    else:  # full weights: AutoBridge.export_ckpt(megatron_path, hf_path) (auto_bridge.py:1410)
        auto.export_ckpt(str(last), str(run / "model"))


def merge_adapter(base: str | Path, adapter: Path, out: Path) -> None:
    """Merge an HF PEFT adapter into its base with peft and save the result to ``out``.

    The adapter is what Bridge's ``AutoBridge.export_adapter_ckpt`` wrote, and loading it with
    ``peft.PeftModel.from_pretrained(base, adapter)`` is how Bridge documents its use (Megatron-Bridge 0.6.2
    models/conversion/auto_bridge.py:1475-1510, export_adapter_ckpt's docstring); ``merge_and_unload`` then
    folds W + (alpha/dim) B A into the base weights. (Bridge's other merge, ``save_hf_pretrained(model,
    merge_adapter_weights=True)`` auto_bridge.py:924, needs the LoRA-wrapped Megatron model rebuilt from the
    checkpoint with private helpers of training/checkpointing.py.) Written to a sibling folder and renamed,
    so a crash never leaves a half-written ``out`` that generation would take for merged weights."""
    import peft
    import transformers

    partial = out.with_name(f"{out.name}.partial-{os.getpid()}")
    model = transformers.AutoModelForCausalLM.from_pretrained(str(base), torch_dtype="auto")
    merged = peft.PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    merged.save_pretrained(str(partial))
    transformers.AutoTokenizer.from_pretrained(str(base)).save_pretrained(str(partial))
    if out.is_dir():  # a re-export replaces the previous merge
        shutil.rmtree(out)
    os.replace(partial, out)


def _generate_mcore(spec: RunSpec, run: Path, chunks: list[tuple[int, list[str]]], gen: GenerateConfig,
                    save: Callable[[int, list[str]], None]) -> None:
    """megatron-core static engine, as scripts/inference/text_generation.py does (v0.6.0). A LoRA run
    exported as an HF adapter (the default, which only vLLM serves) is merged into <run>/model first, by
    rank 0 while the others wait at a barrier: the model generated from is always the trained one."""
    model_dir, adapter = bridge_generation.trained_weights(spec, run)
    sampling = bridge_generation.mcore_sampling(gen)
    ti = importlib.import_module("megatron.bridge.inference.text_generation")
    import torch

    bridge_generation.init_single_process_env()
    # utils/common_utils.py:137 maybe_initialize_distributed: the process group first, then the model
    resolve("megatron.bridge.utils.common_utils.maybe_initialize_distributed")()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    try:
        if model_dir is None:  # LoRA with an HF adapter only
            model_dir = run / "model"
            if _rank() == 0 and not model_dir.is_dir():
                say(f"merging the LoRA adapter {adapter} into {model_dir} for megatron-core generation")
                merge_adapter(spec.model.checkpoint, run / "adapter", model_dir)
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.barrier()  # the other ranks load the merged weights only once they exist
        model = ti.load_bridge_model(hf_model_path=str(model_dir), megatron_model_path=None,
                                     tp=world, pp=1, ep=1, etp=1, sequence_parallel=False, dtype=torch.bfloat16,
                                     seed=gen.seed, trust_remote_code=False)  # text_generation.py:210
        tokenizer = ti.build_tokenizer(str(model_dir), False)  # text_generation.py:117
        params = ti.build_sampling_params(**sampling, return_log_probs=False, skip_prompt_log_probs=True,
                                          num_tokens_to_generate=gen.max_new_tokens,
                                          termination_id=tokenizer.eod,  # stop at EOS (scripts/...:225)
                                          top_n_logprobs=0, stop_words=None)  # text_generation.py:359
        core = importlib.import_module("megatron.core.inference.engines.static_engine")
        ctx = importlib.import_module("megatron.core.inference.contexts").StaticInferenceContext(
            max_batch_size=gen.batch_size, max_sequence_length=spec.train.seq_length + gen.max_new_tokens)
        wrapper = resolve("megatron.core.inference.model_inference_wrappers.gpt.gpt_inference_wrapper"
                          ".GPTInferenceWrapper")(model, inference_context=ctx)
        controller_cls = resolve("megatron.core.inference.text_generation_controllers.text_generation_controller"
                                 ".TextGenerationController")
        controller = controller_cls(inference_wrapped_model=wrapper, tokenizer=tokenizer)
        engine = core.StaticInferenceEngine(text_generation_controller=controller, max_batch_size=gen.batch_size,
                                            random_seed=gen.seed, legacy=True)
        # the legacy path ignores generate(add_BOS=...) (see bridge_generation.mcore_prompt_tokens): the requests
        # carry the prompt ids tokenized with add_BOS, which generate_using_legacy_static_engine uses as given
        # (static_engine.py:294-297 -> scheduler.add_request(inference_request=...), scheduler.py:105-111)
        request_cls = resolve("megatron.core.inference.inference_request.InferenceRequest")
        for k, prompts in chunks:  # one engine batch per chunk, saved before the next (resume)
            # the legacy static engine seeds torch with engine.random_seed at each generate call
            # (megatron-core 0.19.0 static_engine.py:280-281): a seed per chunk makes a resumed chunk draw
            # what it drew in an uninterrupted run
            engine.random_seed = batch_seed(gen.seed, k)
            tokens = bridge_generation.mcore_prompt_tokens(controller_cls, tokenizer, prompts,
                                                           spec.train.data.add_bos)
            requests = [request_cls(request_id=engine.get_new_request_id(), prompt=p, prompt_tokens=t,
                                    sampling_params=params) for p, t in zip(prompts, tokens)]
            outputs = engine.generate(inference_requests=requests, sampling_params=params)
            save(k, [o.generated_text for o in outputs])
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()  # scripts/inference/text_generation.py:235-236


def chunk_size(gen: GenerateConfig, vllm: bool) -> int:
    """Prompts per generate call, each saved before the next: megatron-core's engine batch (its
    max_batch_size is gen.batch_size), or :data:`VLLM_CHUNK` for vLLM, which batches continuously."""
    return max(gen.batch_size, VLLM_CHUNK) if vllm else gen.batch_size


def generate(run_dir: str | Path, records_path: str | Path, output_path: str | Path,
             gen_config: GenerateConfig | None = None) -> int:
    """Predictions for every record, saved chunk by chunk (a requeued job resumes after the last saved
    chunk, see clinie_nemo.engines.predictions). With megatron-core and tensor parallelism every rank generates and
    rank 0 writes; every rank reads the partial (before the model loads) to skip the same chunks."""
    run = Path(run_dir)
    spec = load_spec_file(run / "spec.yaml")
    gen = gen_config or GenerateConfig()
    ids, prompts = bridge_generation.record_prompts(spec, records_path)
    _, separator = bridge_plan.split_prompt_template(spec.train.data.prompt_template)
    try:
        importlib.import_module("vllm")
        backend, size = bridge_generation.generate_vllm, chunk_size(gen, vllm=True)
    except ImportError:
        backend, size = _generate_mcore, chunk_size(gen, vllm=False)
    # chunks of ALL records, fixed: a resumed run cuts the same ones and skips those saved
    spans = [list(range(start, min(start + size, len(ids)))) for start in range(0, len(ids), size)]
    key = generation_key(NAME, run, records_path, {**asdict(gen), "chunk": size})
    with ResumablePredictions(output_path, ids, key, writer=_rank() == 0) as out:
        todo = [(k, [prompts[i] for i in span]) for k, span in enumerate(spans) if any(ids[i] not in out for i in span)]

        def save(k: int, texts: list[str]) -> None:
            out.add({"id": ids[i], "prediction": bridge_generation.strip_separator(t, separator),
                     "engine": NAME, "model": spec.model.name} for i, t in zip(spans[k], texts))

        say(f"generating {sum(len(p) for _, p in todo)} of {len(prompts)} predictions with engine bridge")
        if todo:
            backend(spec, run, todo, gen, save)
        if _rank() != 0:
            return 0  # megatron-core with tensor parallel: every rank generates, rank 0 writes
        n = out.publish()
    say(f"wrote {n} predictions to {output_path}")
    return n


def main(argv: list[str] | None = None) -> int:
    """``python -m clinie_nemo.engines.bridge export RUN``: the one-process export step of train();
    ``... check-version``: exit 2 unless the installed megatron-bridge is a supported one (Dockerfile)."""
    args = sys.argv[1:] if argv is None else argv
    try:
        if args == ["check-version"]:
            version = installed_bridge_version()
            bridge_plan.check_bridge_version(version)
            print(f"megatron-bridge {version}: supported (engine bridge)")
            return 0
        if len(args) == 2 and args[0] == "export":
            export(Path(args[1]))
            return 0
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("usage: python -m clinie_nemo.engines.bridge {check-version | export RUN_DIR}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
