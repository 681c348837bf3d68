"""Engine ``bridge``, pure part: a RunSpec -> a plain dict of every Megatron-Bridge setting we apply.

:mod:`clinie_nemo.engines.bridge` (the only module importing megatron.bridge) builds the recipe's
``ConfigContainer``, constructs the objects named here and assigns every ``set`` entry (dotted attribute
path under the container -> value). Keeping this pure lets the whole mapping be golden-tested on CPU.

Checked against Megatron-Bridge v0.6.0 (tag v0.6.0, commit 51885cf132b2814188b6855c25a8588254274c2a):
- recipes ``llama31_8b_peft_config`` / ``llama31_8b_sft_config`` exported from
  ``megatron.bridge.recipes.llama`` (src/megatron/bridge/recipes/llama/__init__.py, llama3.py aliases of
  h100/llama3.py ``llama31_8b_peft_1gpu_h100_bf16_config(peft_scheme="lora")`` (TP=1) and
  ``llama31_8b_sft_2gpu_h100_bf16_config()`` (TP=2), both seq 4096).
- field names cited next to each entry below. Bridge's TrainingConfig, ValidationConfig, SchedulerConfig,
  CheckpointConfig, LoggerConfig and TokenizerConfig extend megatron.training.config (Megatron-LM
  megatron/training/config/training_config.py @ 008e9cdb53e75bbf9733d0089a5c9bf14553ca1c), where these
  names were checked: train_iters, global_batch_size, micro_batch_size, exit_signal_handler (SIGTERM),
  eval_iters, eval_interval, lr_decay_style (constant|linear|cosine|...), lr_warmup_iters, lr_decay_iters,
  start_weight_decay, end_weight_decay, log_interval, tensorboard_dir, save, load, save_interval,
  most_recent_k, pretrained_checkpoint, tokenizer_type, tokenizer_model.
"""

from __future__ import annotations

import itertools
import shlex
from pathlib import Path
from typing import Any

from clinie_nemo.core.errors import ConfigError
from clinie_nemo.engines.spec import RunSpec

BRIDGE_VERSION = "megatron-bridge v0.6.0 (51885cf132b2814188b6855c25a8588254274c2a)"
# The Megatron-Bridge releases this engine supports: 0.6.x. 0.6.0 is the first that loads an HF folder as
# checkpoint.pretrained_checkpoint (training/checkpointing.py:2598 _load_hf_pretrained_checkpoint, absent in
# v0.5.1); 0.4.0 (NeMo Framework 26.04) and 0.5.x (26.06) lack it. docs/versions1.json on r0.6.0 pairs
# "0.6.0 (latest) · 26.08", so the container tag is nvcr.io/nvidia/nemo:26.08.
SUPPORTED_BRIDGE = ((0, 6, 0), (0, 7, 0))  # [min, max)
CONTAINER_TAG = "26.08"

# spec precision -> ConfigContainer.mixed_precision (src/megatron/bridge/training/mixed_precision.py:
# @register bf16_mixed :184 / fp16_mixed :200). "32" is NOT None: with mixed_precision=None Bridge applies
# nothing (training/config.py:1868) and the model keeps the provider's dtype, which
# to_megatron_provider() takes from the HF config (bfloat16 for Llama 3.1), so it would train in bf16.
# An explicit fp32 MixedPrecisionConfig (mixed_precision.py:33) sets model/optimizer/ddp to float32.
FP32_MIXED_PRECISION = {
    "class": "megatron.bridge.training.mixed_precision.MixedPrecisionConfig",
    "fp32": True, "bf16": False, "fp16": False,
    "params_dtype": "torch.float32", "pipeline_dtype": "torch.float32", "autocast_enabled": False,
    "grad_reduce_in_fp32": True,
}
MIXED_PRECISION: dict[str, Any] = {"bf16-mixed": "bf16_mixed", "fp16-mixed": "fp16_mixed",
                                   "32": FP32_MIXED_PRECISION}


def parse_version(text: str) -> tuple[int, ...]:
    """``"0.6.2"`` / ``"0.6.0rc1"`` / ``"0.6.1+git"`` -> (0, 6, 2) / (0, 6, 0) / (0, 6, 1)."""
    parts = []
    for piece in text.split("+")[0].split(".")[:3]:
        digits = "".join(itertools.takewhile(str.isdigit, piece))
        if not digits:
            break
        parts.append(int(digits))
    if not parts:
        raise ConfigError(f"engine bridge: cannot read a version from {text!r}")
    return tuple(parts + [0] * (3 - len(parts)))


def supported_bridge_range() -> str:
    """``">=0.6.0,<0.7.0"``."""
    low, high = SUPPORTED_BRIDGE
    return f">={'.'.join(map(str, low))},<{'.'.join(map(str, high))}"


def check_bridge_version(version: str) -> None:
    """ConfigError unless ``version`` (megatron-bridge's) is inside :data:`SUPPORTED_BRIDGE`."""
    low, high = SUPPORTED_BRIDGE
    if not low <= parse_version(version) < high:
        raise ConfigError(f"engine bridge needs megatron-bridge {supported_bridge_range()} (NeMo Framework "
                          f"container nvcr.io/nvidia/nemo:{CONTAINER_TAG}); this environment has {version}")


def split_prompt_template(template: str) -> tuple[str, str]:
    """``"{input} {output}"`` -> (Bridge prompt_template ``"{prompt}"``, separator ``" "``).

    Bridge's PromptCompletionSFTPreprocessingConfig renders ``prompt_template.format(prompt=input)``
    (data/sft_processing.py:381) and tokenizes ``separator + completion`` as the completion (:388);
    nothing may follow {output}. Our templates are literal text with two placeholders (the local and nemo
    engines substitute ``{input}``/``{output}`` by string replacement), so every other brace is escaped
    for str.format here: ``{"a": 1} {input}`` -> ``{{"a": 1}} {prompt}``. The separator is not formatted."""
    if not template.endswith("{output}") or "{input}" not in template:
        raise ConfigError(f"engine bridge: prompt_template {template!r} must contain {{input}} and end with "
                          "{output} (Bridge appends the completion after the prompt)")
    head = template[: -len("{output}")]
    before, _, between = head.partition("{input}")
    prompt = before.replace("{", "{{").replace("}", "}}") + "{prompt}"
    return prompt, between


def recipe_function(spec: RunSpec) -> str:
    """``megatron.bridge.recipes.llama.llama31_8b_peft_config`` or ``..._sft_config``."""
    kind = "peft" if spec.train.method == "lora" else "sft"
    return f"megatron.bridge.recipes.llama.{spec.model.bridge_recipe}_{kind}_config"


DATA_FILES = ("training.jsonl", "validation.jsonl", "test.jsonl")  # the splits Bridge reads (gpt_sft.py:799-895)


def dataset_root(run_dir: str | Path) -> Path:
    """``<run>/dataset``: Bridge's dataset_root, where its packed files and JSONL indexes go."""
    return Path(run_dir) / "dataset"


def has_validation_split(spec: RunSpec, data_dir: str | Path) -> bool:
    """Validate during training? Only with validation_interval > 0 and a validation.jsonl: Bridge reads
    dataset_root/validation.jsonl (data/builders/gpt_sft.py:890) and, with packing, packs it too
    (:628); without the file both fail. A data folder not on this machine (a plan made elsewhere) is
    assumed to have one."""
    folder = Path(data_dir)
    if not spec.train.data.validation_interval:
        return False
    return (folder / "validation.jsonl").is_file() or not folder.is_dir()


def plan_dict(spec: RunSpec, data_dir: str | Path, run_dir: str | Path,
              pretrained_checkpoint: str | None = None) -> dict[str, Any]:
    """Every Bridge setting for this run. ``pretrained_checkpoint`` defaults to the model's local HF
    folder, which Bridge 0.6 loads directly (setup.py:169-171 / checkpointing.py:2291-2306 accept an HF
    directory, ``_load_hf_pretrained_checkpoint`` :2598 converts on the fly on every rank inside the
    training process group): no separate ``import_ckpt`` step, no cache, nothing to hash."""
    t, m = spec.train, spec.model
    par, run = t.parallel, Path(run_dir)
    prompt_template, separator = split_prompt_template(t.data.prompt_template)
    hf_path = m.checkpoint
    pretrained = pretrained_checkpoint or hf_path
    validate = has_validation_split(spec, data_dir)
    s: dict[str, Any] = {}
    # --- parallelism: on cfg.model (GPTModelProvider / TransformerConfig); the recipes set these names
    s["model.tensor_model_parallel_size"] = par.tensor
    s["model.pipeline_model_parallel_size"] = par.pipeline
    s["model.context_parallel_size"] = par.context
    s["model.sequence_parallel"] = par.sequence_parallel
    s["model.seq_length"] = t.seq_length  # recipe: cfg.model.seq_length = seq_length
    # activation recomputation: megatron-core TransformerConfig.recompute_granularity / recompute_method /
    # recompute_num_layers / recompute_modules (megatron-core 0.19.0 transformer/transformer_config.py:518-560,
    # checks :1724-1752: full needs a method and a layer count, selective neither; the 0.6.x recipes set
    # granularity and modules to None, recipes/llama/h100/llama3.py:101-103). validate.py counts what is kept.
    recompute = t.activation_recompute
    s["model.recompute_granularity"] = None if recompute == "none" else recompute
    s["model.recompute_method"] = "uniform" if recompute == "full" else None
    s["model.recompute_num_layers"] = 1 if recompute == "full" else None
    s["model.recompute_modules"] = ["core_attn"] if recompute == "selective" else None
    if par.context > 1:
        # training/config.py:1443-1451: SFT with CP > 1 asserts calculate_per_token_loss=True and
        # ddp.average_in_collective=False (ranks whose tokens are all masked would give NaN losses)
        s["model.calculate_per_token_loss"] = True
        s["ddp.average_in_collective"] = False
    # --- training loop: TrainingConfig (src/megatron/bridge/training/config.py; train_iters /
    # global_batch_size / micro_batch_size from megatron.training.config.TrainingConfig; num_epochs here)
    s["train.train_iters"] = t.max_steps  # None when training by epochs (finalize: exactly one mode)
    s["train.num_epochs"] = t.max_epochs
    s["train.global_batch_size"] = t.batch.global_batch_size
    s["train.micro_batch_size"] = t.batch.micro_batch_size
    # train.py:1397-1414 saves a checkpoint and stops when train.exit_signal arrives, then sys.exit(0)
    # (train.py:805). The field is Megatron-LM TrainingConfig.exit_signal (megatron/training/config/
    # training_config.py, signal.Signals, default SIGTERM); Bridge installs DistributedSignalHandler(
    # cfg.train.exit_signal) (training/state.py:467-468). Slurm sends SIGTERM to every task at preemption
    # (the B:USR1 time signal reaches only the batch shell, which forwards it); bridge.py also turns a
    # SIGUSR1 that reaches a rank into SIGTERM, and turns the name into signal.SIGTERM.
    s["train.exit_signal_handler"] = True
    s["train.exit_signal"] = "SIGTERM"
    # --- validation: ValidationConfig (recipes set cfg.validation.eval_interval / eval_iters); off when
    # the data folder has no validation.jsonl
    s["validation.eval_interval"] = t.data.validation_interval if validate else None
    s["validation.eval_iters"] = 32 if validate else 0
    # --- optimiser: OptimizerConfig (megatron.core.optimizer; fields used by
    # recipes/utils/optimizer_utils.py distributed_fused_adam_with_cosine_annealing)
    s["optimizer.lr"] = t.optim.lr
    s["optimizer.min_lr"] = t.optim.min_lr
    s["optimizer.weight_decay"] = t.optim.weight_decay
    s["optimizer.adam_beta1"] = t.optim.adam_beta1
    s["optimizer.adam_beta2"] = t.optim.adam_beta2
    s["optimizer.clip_grad"] = t.optim.clip_grad
    s["optimizer.bf16"] = t.precision == "bf16-mixed"
    s["optimizer.fp16"] = t.precision == "fp16-mixed"
    # --- scheduler: SchedulerConfig (same helper: lr_decay_style, lr_warmup_iters, lr_decay_iters,
    # start_weight_decay / end_weight_decay)
    s["scheduler.lr_decay_style"] = t.optim.schedule
    s["scheduler.lr_warmup_iters"] = t.optim.warmup_steps
    s["scheduler.lr_decay_iters"] = None  # None = train_iters
    s["scheduler.start_weight_decay"] = t.optim.weight_decay
    s["scheduler.end_weight_decay"] = t.optim.weight_decay
    # --- checkpointing: CheckpointConfig (save / load / save_interval / pretrained_checkpoint in
    # recipes/common.py _peft_common; most_recent_k used in training/checkpointing.py:1586)
    s["checkpoint.save"] = str(run / "checkpoints")
    s["checkpoint.load"] = str(run / "checkpoints")  # resume from the latest iter_* on restart
    s["checkpoint.save_interval"] = t.checkpoint.save_interval
    s["checkpoint.most_recent_k"] = t.checkpoint.keep_last
    s["checkpoint.pretrained_checkpoint"] = pretrained
    # --- tokenizer: TokenizerConfig (recipe sets tokenizer_model = hf_path)
    s["tokenizer.tokenizer_type"] = "HuggingFaceTokenizer"
    s["tokenizer.tokenizer_model"] = m.tokenizer or hf_path
    # --- logging, precision, seed
    s["logger.log_interval"] = 10
    s["logger.tensorboard_dir"] = str(run / "logs" / "tensorboard")
    precision = MIXED_PRECISION[t.precision]
    s["mixed_precision"] = dict(precision) if isinstance(precision, dict) else precision
    s["rng.seed"] = t.seed  # RNGConfig.seed
    dataset = {
        # megatron.bridge.data.builders.GPTSFTDatasetConfig (data/builders/gpt_sft.py:105); reads
        # dataset_root/training.jsonl, validation.jsonl, test.jsonl (gpt_sft.py:799/890/895)
        "class": "megatron.bridge.data.builders.GPTSFTDatasetConfig",
        "seq_length": t.seq_length,
        # NOT the data folder: GPTSFTDatasetBuilder writes its artefacts next to dataset_root (packed
        # parquet + metadata under dataset_root/packed/<tokenizer>_..._<fingerprint>/, gpt_sft.py:801-822,
        # on rank 0 :733-734) and _JSONLMemMapDataset writes <file>.idx.npy/.idx.info next to each JSONL
        # it reads (data/datasets/utils.py:1288-1328 _index_fn with index_mapping_dir=None). A shared DATA
        # folder would be raced by concurrent jobs and is often mounted read-only. So dataset_root is a
        # folder of the run holding symlinks to the split files (bridge.stage_dataset, see "dataset_files").
        "dataset_root": str(dataset_root(run)),
        "seed": t.seed,
        "do_validation": validate,
        "do_test": False,
        "enable_offline_packing": t.packing,
        "offline_packing_specs": None if not t.packing else {
            # megatron.bridge.data.packing.config.PackedSequenceSpecs (data/packing/config.py:27)
            "class": "megatron.bridge.data.packing.config.PackedSequenceSpecs",
            "packed_sequence_size": t.seq_length,
            "pad_seq_to_mult": 2 * par.context if par.context > 1 else 1,
        },
        "preprocessing": {
            # megatron.bridge.data.builders.PromptCompletionSFTPreprocessingConfig (data/sft_processing.py:64)
            "class": "megatron.bridge.data.builders.PromptCompletionSFTPreprocessingConfig",
            "prompt_column": "input",
            "completion_column": "output",
            "prompt_template": prompt_template,
            "separator": separator,
            "loss_mode": "completion" if t.data.answer_only_loss else "full",
            "strip_whitespace": False,  # keep the record text byte-exact (parity with other engines)
            "add_bos": t.data.add_bos,
            "add_eos": t.data.add_eos,
            "truncation_method": "right",
        },
    }
    peft = None
    if t.method == "lora" and t.lora is not None:
        peft = {
            # megatron.bridge.peft.lora.LoRA (peft/lora.py:50; fields target_modules, dim, alpha,
            # dropout, dropout_position at lines 101-107)
            "class": "megatron.bridge.peft.lora.LoRA",
            "target_modules": list(t.lora.target_modules),
            "dim": t.lora.dim,
            "alpha": t.lora.alpha,
            "dropout": t.lora.dropout,
            "dropout_position": t.lora.dropout_position,
        }
    export = t.checkpoint.export
    return {
        "bridge_version": BRIDGE_VERSION,
        "supported_bridge": supported_bridge_range(),
        "recipe": recipe_function(spec),
        "recipe_kwargs": {"peft_scheme": "lora"} if t.method == "lora" else {},
        "hf_checkpoint": hf_path,
        # The 0.6.x recipes take no model path: recipes/llama/h100/llama3.py:1668-1669 (sft) and :2474-2475
        # (peft) call AutoBridge.from_hf_pretrained("meta-llama/Meta-Llama-3.1-8B") (the gated Hub id, on
        # every rank). bridge.py runs the recipe with that call pointed at this local folder, so the
        # provider (architecture, rope scaling, vocab) is the model's own (GatorTronLlama included).
        "model_provider": {"hf_path": hf_path, "load_weights": False},
        "set": s,
        "dataset": dataset,
        # the split files dataset_root links to (made on every rank before the config is built)
        "dataset_files": {"source": str(Path(data_dir)), "root": str(dataset_root(run)),
                          "files": list(DATA_FILES)},
        "peft": peft,
        # training.finetune.finetune(config, forward_step_func) with training.gpt_step.forward_step
        "entry": {"function": "megatron.bridge.training.finetune.finetune",
                  "forward_step": "megatron.bridge.training.gpt_step.forward_step"},
        # LoRA: AutoBridge.export_adapter_ckpt(peft_checkpoint, output_path) -> HF PEFT (auto_bridge.py:1475);
        # merged / full: AutoBridge.export_ckpt(megatron_path, hf_path) (auto_bridge.py:1410)
        "export": {"kind": export,
                   "output": str(run / ("adapter" if export == "adapter" else "model")) if export != "none" else None},
        "world": {"nodes": par.nodes, "gpus_per_node": par.gpus_per_node,
                  "data_parallel": par.data_parallel_size,
                  "grad_accumulation": t.batch.global_batch_size
                  // (t.batch.micro_batch_size * par.data_parallel_size)},
    }


def launch_command(spec: RunSpec, cli_args: list[str]) -> list[str]:
    """How to start the Bridge run: torchrun on one node, one torchrun per node under srun on several.
    ``cli_args`` are the `clinie-nemo train ...` arguments every rank runs."""
    par = spec.train.parallel
    base = ["torchrun", f"--nproc-per-node={par.gpus_per_node}"]
    if par.nodes > 1:
        # the rendezvous port comes from the job (the sbatch wrapper derives MASTER_PORT from the job id),
        # never a fixed 29500 that two jobs on one node would both bind
        return ["srun", f"--nodes={par.nodes}", "--ntasks-per-node=1", *base, f"--nnodes={par.nodes}",
                "--rdzv-id=$SLURM_JOB_ID", "--rdzv-backend=c10d", "--rdzv-endpoint=$MASTER_ADDR:$MASTER_PORT",
                "-m", "clinie_nemo", *cli_args]
    # one node: --standalone picks a free port for its local rendezvous (torch.distributed.run)
    return [*base, "--standalone", "--nnodes=1", "-m", "clinie_nemo", *cli_args]


def shell_line(cmd: list[str]) -> str:
    """A command as one shell line; tokens with $VARS are double-quoted so the shell expands them."""
    return " ".join(f'"{c}"' if "$" in c else shlex.quote(c) for c in cmd)
