"""A FAKE `megatron.bridge` (and megatron-core inference, vLLM) module tree for the bridge engine tests.

A stand-in, not the real library: Megatron-Bridge cannot be imported on a CPU machine (Python 3.12,
Transformer Engine, CUDA). The fakes reproduce only the names and the behaviours bridge.py depends on,
each taken from Megatron-Bridge v0.6.0 (file:line cited next to it):

- the llama31_8b recipes live in a module with a module-level ``AutoBridge`` and call
  ``AutoBridge.from_hf_pretrained("meta-llama/Meta-Llama-3.1-8B")`` (recipes/llama/h100/llama3.py:2474);
  like the real one offline, ``from_hf_pretrained`` fails for anything that is not a local folder;
- ``finetune`` saves ``iter_NNNNNNN`` plus ``latest_checkpointed_iteration.txt`` (training/checkpointing.py:
  1464) and, after a stop signal, raises ``SystemExit(0)`` (train.py:805);
- ``export_adapter_ckpt`` needs an iteration folder (auto_bridge.py:1591 dist_checkpointing.load);
- Bridge's ``build_sampling_params`` rejects ``top_k > 0 and top_p > 0.0`` (inference/text_generation.py:374);
- ``provider.initialize_model_parallel`` needs an initialised process group or launcher env
  (models/model_provider.py:319-321);
- megatron-core 0.19.0's legacy StaticInferenceEngine.generate(prompts, add_BOS=True) tokenizes WITHOUT the
  BOS (static_engine.py:281-292 drop add_BOS), and uses given InferenceRequests' prompt_tokens as they are
  (:294-297); TextGenerationController.tokenize_prompt and Bridge's HFTokenizerAdapter are copied.
Whether real Bridge accepts the values is covered by the contract test (real megatron.bridge, CPU) and on
a GPU cluster.
"""

from __future__ import annotations

import os
import signal
import sys
import types
from pathlib import Path
from types import SimpleNamespace
from typing import Any

HUB_ID = "meta-llama/Meta-Llama-3.1-8B"


class Recorder:
    """A constructor that keeps its kwargs as attributes (stands in for Bridge dataclasses)."""

    def __init__(self, **kwargs: Any) -> None:
        self.__dict__.update(kwargs)


RECIPE_SOURCE = '''
from types import SimpleNamespace as ns
import signal


def _common(peft_scheme=None):
    cfg = ns(
        model=None,
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
        ddp=ns(average_in_collective=True),
        rng=ns(seed=5678), mixed_precision="bf16_mixed", dataset=None, peft=None,
        recipe_kwargs={} if peft_scheme is None else {"peft_scheme": peft_scheme})
    # recipes/llama/h100/llama3.py:2474-2475: the gated Hub id, resolved through the module's AutoBridge
    hf_path = "meta-llama/Meta-Llama-3.1-8B"
    cfg.model = AutoBridge.from_hf_pretrained(hf_path).to_megatron_provider(load_weights=False)
    cfg.tokenizer.tokenizer_model = hf_path
    cfg.model.seq_length = 4096
    cfg.model.tensor_model_parallel_size = 1
    cfg.model.recompute_granularity = None  # recipes/llama/h100/llama3.py:101-103
    cfg.model.recompute_modules = None
    return cfg


def llama31_8b_peft_config(peft_scheme="lora"):
    return _common(peft_scheme)


def llama31_8b_sft_config():
    cfg = _common()
    cfg.model.tensor_model_parallel_size = 2
    return cfg
'''


def install(monkeypatch: Any, tmp_path: Path, version: str = "0.6.2") -> dict[str, Any]:
    """Put the fake module tree into sys.modules; returns the dict the fakes record calls in."""
    calls: dict[str, Any] = {"from_hf": [], "finetune": [], "export_adapter": [], "export_ckpt": [],
                             "stop_at": None, "exit_code": 0, "mcore": {}, "hf_tokenizer": FakeTokenizer()}

    class AutoBridge:
        def __init__(self, path: str) -> None:
            self.path = path

        @classmethod
        def from_hf_pretrained(cls, path: Any, **kw: Any) -> AutoBridge:
            calls["from_hf"].append(str(path))
            if not Path(path).is_dir():  # offline, gated: the Hub id cannot be resolved
                raise OSError(f"We couldn't connect to 'https://huggingface.co' to load {path}")
            return cls(str(path))

        def to_megatron_provider(self, load_weights: bool = True) -> SimpleNamespace:
            return SimpleNamespace(hf_path=self.path, load_weights=load_weights, tensor_model_parallel_size=9,
                                   pipeline_model_parallel_size=9, context_parallel_size=9,
                                   sequence_parallel=None, seq_length=0, calculate_per_token_loss=False,
                                   # TransformerConfig fields (megatron-core transformer_config.py:518-546)
                                   recompute_granularity="x", recompute_method="x", recompute_num_layers=-1,
                                   recompute_modules="x")

        def export_adapter_ckpt(self, peft_checkpoint: str, output_path: str, **kw: Any) -> None:
            calls["export_adapter"].append((peft_checkpoint, output_path))
            if not (Path(peft_checkpoint) / "run_config.yaml").is_file():  # auto_bridge.py:1534-1548
                raise FileNotFoundError(f"no Megatron checkpoint metadata in {peft_checkpoint}")
            Path(output_path).mkdir(parents=True)

        def export_ckpt(self, megatron_path: str, hf_path: str, **kw: Any) -> None:
            calls["export_ckpt"].append((megatron_path, hf_path))

    def finetune(config: Any, forward_step_func: Any, callbacks: Any = None) -> None:
        calls["finetune"].append((config, forward_step_func, dict(os.environ)))
        stop = calls["stop_at"]
        last = stop if stop is not None else config.train.train_iters
        save = Path(config.checkpoint.save)
        (save / f"iter_{last:07d}").mkdir(parents=True, exist_ok=True)
        (save / f"iter_{last:07d}" / "run_config.yaml").write_text("peft: {}\n")
        (save / "latest_checkpointed_iteration.txt").write_text(str(last))
        if stop is not None or calls["exit_code"]:
            raise SystemExit(calls["exit_code"])  # train.py:805 sys.exit(exit_code) after the signal save

    def forward_step(state: Any, data_iterator: Any, model: Any, return_schedule_plan: bool = False) -> None:
        raise AssertionError("not called on CPU")

    recipes = types.ModuleType("megatron.bridge.recipes.llama.h100.llama3")
    recipes.AutoBridge = AutoBridge
    exec(compile(RECIPE_SOURCE, "<fake recipes/llama/h100/llama3.py>", "exec"), recipes.__dict__)

    # megatron-core generation stand-ins (text_generation.py, common_utils.py, mcore static engine)
    mcore = calls["mcore"]

    def maybe_initialize_distributed(timeout_minutes: int = 60) -> None:
        mcore["dist_env"] = {k: os.environ.get(k) for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
        missing = [k for k, v in mcore["dist_env"].items() if v is None]
        if missing:  # torch.distributed env:// needs them
            raise ValueError(f"environment variable {missing[0]} expected, but not set")
        mcore["initialized"] = True

    def load_bridge_model(**kw: Any) -> str:
        if not mcore.get("initialized"):  # model_provider.py:319-321 would init NCCL without a world
            raise RuntimeError("Default process group has not been initialized")
        mcore["load"] = kw
        return "model"

    def build_sampling_params(*, temperature: float, top_k: int | None, top_p: float, **kw: Any) -> Recorder:
        if top_k is None:
            top_k = 0 if top_p > 0.0 else 1
        if top_k > 0 and top_p > 0.0:  # text_generation.py:374
            raise ValueError("--top_k and --top_p cannot both be positive.")
        return Recorder(temperature=temperature, top_k=top_k, top_p=top_p, **kw)

    class HFTokenizerAdapter:
        """inference/_tokenizer.py:39-67 (Bridge 0.6.2): eod/bos from the HF tokenizer, tokenize() encodes
        WITHOUT special tokens."""

        def __init__(self, tokenizer: Any) -> None:
            self._tokenizer = tokenizer
            self.eod = tokenizer.eos_token_id
            self.bos = tokenizer.bos_token_id

        def tokenize(self, text: str) -> list[int]:
            return list(self._tokenizer.encode(text, add_special_tokens=False))

    def build_tokenizer(path: str, trust_remote_code: Any) -> HFTokenizerAdapter:
        mcore["tokenizer_path"] = path
        return HFTokenizerAdapter(calls["hf_tokenizer"])  # text_generation.py:117-123

    class TextGenerationController(Recorder):
        @staticmethod
        def tokenize_prompt(tokenizer: Any, prompt: str, add_BOS: bool = False) -> list[int]:  # noqa: N803
            # megatron-core 0.19.0 text_generation_controller.py:423-446, verbatim logic
            prompt_tokens = tokenizer.tokenize(prompt)
            if add_BOS:
                assert tokenizer.bos is not None
            while prompt_tokens and prompt_tokens[0] == tokenizer.bos:
                prompt_tokens.pop(0)
            if add_BOS:
                prompt_tokens = [tokenizer.bos] + prompt_tokens
            return prompt_tokens

    class StaticInferenceEngine:
        """The legacy static engine (legacy=True) of megatron-core 0.19.0 engines/static_engine.py."""

        def __init__(self, **kw: Any) -> None:
            mcore["engine"] = kw
            self.controller = kw["text_generation_controller"]
            self._ids = iter(range(10**9))

        def get_new_request_id(self) -> int:  # static_engine.py:135-137 -> scheduler.py:37-40
            return next(self._ids)

        def generate(self, prompts: list[str] | None = None, add_BOS: bool = False,  # noqa: N803
                     sampling_params: Any = None, inference_requests: list | None = None) -> list:
            mcore["add_BOS"], mcore["params"] = add_BOS, sampling_params
            if inference_requests is None:
                # generate_using_legacy_static_engine (static_engine.py:281-292): add_request(prompt=...,
                # encoder_prompt=..., sampling_params=...) WITHOUT add_BOS, so add_request's default False
                # reaches tokenize_prompt (static_engine.py:139-182)
                mcore["prompts"] = prompts
                tokens = [self.controller.tokenize_prompt(self.controller.tokenizer, p, False) for p in prompts]
            else:  # static_engine.py:294-297: the requests' own prompt_tokens
                mcore["prompts"] = [r.prompt for r in inference_requests]
                tokens = [list(r.prompt_tokens) for r in inference_requests]
                mcore["request_params"] = [r.sampling_params for r in inference_requests]
            mcore["prompt_tokens"] = tokens
            return [SimpleNamespace(generated_text=f" M{i}") for i in range(len(tokens))]

    modules = {
        "megatron": {}, "megatron.bridge": {"AutoBridge": AutoBridge, "__version__": version},
        "megatron.bridge.recipes": {}, "megatron.bridge.recipes.llama.h100": {},
        "megatron.bridge.recipes.llama": {"llama31_8b_peft_config": recipes.llama31_8b_peft_config,
                                          "llama31_8b_sft_config": recipes.llama31_8b_sft_config},
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
        "megatron.bridge.training.mixed_precision": {
            "MixedPrecisionConfig": type("MixedPrecisionConfig", (Recorder,), {})},
        "megatron.bridge.inference": {},
        "megatron.bridge.inference.text_generation": {
            "load_bridge_model": load_bridge_model, "build_tokenizer": build_tokenizer,
            "build_sampling_params": build_sampling_params},
        "megatron.bridge.utils": {},
        "megatron.bridge.utils.common_utils": {"maybe_initialize_distributed": maybe_initialize_distributed},
        "megatron.core": {}, "megatron.core.inference": {}, "megatron.core.inference.engines": {},
        "megatron.core.inference.engines.static_engine": {"StaticInferenceEngine": StaticInferenceEngine},
        "megatron.core.inference.contexts": {"StaticInferenceContext": Recorder},
        "megatron.core.inference.model_inference_wrappers": {},
        "megatron.core.inference.model_inference_wrappers.gpt": {},
        "megatron.core.inference.model_inference_wrappers.gpt.gpt_inference_wrapper": {
            "GPTInferenceWrapper": lambda model, inference_context=None: (model, inference_context)},
        "megatron.core.inference.text_generation_controllers": {},
        "megatron.core.inference.text_generation_controllers.text_generation_controller": {
            "TextGenerationController": TextGenerationController},
        "megatron.core.inference.inference_request": {"InferenceRequest": Recorder},
    }
    for name, attrs in modules.items():
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.setitem(sys.modules, "megatron.bridge.recipes.llama.h100.llama3", recipes)
    monkeypatch.setenv("CLINIE_NEMO_CACHE", str(tmp_path / "cache"))
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "HF_HUB_OFFLINE",
                "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    # keep the engine's signal wiring out of the test process
    monkeypatch.setattr(signal, "signal", _recording_signal(calls), raising=True)
    return calls


def _recording_signal(calls: dict[str, Any]) -> Any:
    real = signal.signal

    def record(signum: Any, handler: Any) -> Any:
        calls.setdefault("signal_handlers", {})[signum] = handler
        return real(signum, signal.getsignal(signum))  # installs nothing new

    return record


def run_export_in_process(monkeypatch: Any, module: Any, calls: dict[str, Any]) -> None:
    """The one-process export child (`python -m clinie_nemo.engines.bridge export RUN`), run in this
    process so it sees the fake modules; records the command and environment it was given."""

    def call(cmd: list[str], env: dict[str, str] | None = None, **kw: Any) -> int:
        calls.setdefault("subprocess", []).append((cmd, env))
        assert cmd[1:4] == ["-m", "clinie_nemo.engines.bridge", "export"], cmd
        return module.main(cmd[3:])

    monkeypatch.setattr(module.subprocess, "call", call)


class FakeTokenizer:
    """HF-like tokenizer: one id per whitespace-separated word; ``add_special_tokens=True`` (the HF
    default, what vLLM uses for a text prompt) prepends BOS like Llama 3's <|begin_of_text|>."""

    bos_token_id = 1
    eos_token_id = 2

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        ids = [100 + sum(map(ord, w)) % 1000 for w in text.split()]
        return ([self.bos_token_id] if add_special_tokens else []) + ids


def install_vllm(monkeypatch: Any, tokenizer: Any = None) -> dict[str, Any]:
    """A fake vLLM: LLM(...).generate() records what it is given; a text prompt is tokenized with the
    tokenizer's defaults (BOS added), a {"prompt_token_ids": ...} prompt is used as is. ``tokenizer``: what
    get_tokenizer() returns (the model folder's HF tokenizer in vLLM), by default a FakeTokenizer."""
    seen: dict[str, Any] = {}
    tok = tokenizer if tokenizer is not None else FakeTokenizer()

    class LLM:
        def __init__(self, **kw: Any) -> None:
            seen["llm"] = kw

        def get_tokenizer(self) -> Any:
            return tok

        def generate(self, prompts: list[Any], params: Any, lora_request: Any = None) -> list[Any]:
            seen["prompts"], seen["params"], seen["lora"] = prompts, params, lora_request
            seen["token_ids"] = [list(p["prompt_token_ids"]) if isinstance(p, dict) else tok.encode(p)
                                 for p in prompts]
            return [SimpleNamespace(outputs=[SimpleNamespace(text=f" P{i}")]) for i in range(len(prompts))]

    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = LLM, Recorder
    lora_mod = types.ModuleType("vllm.lora.request")
    lora_mod.LoRARequest = lambda name, idx, path: (name, idx, path)
    for name, mod in {"vllm": vllm, "vllm.lora": types.ModuleType("vllm.lora"), "vllm.lora.request": lora_mod}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    return seen
