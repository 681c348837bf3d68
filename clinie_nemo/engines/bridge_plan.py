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

import shlex
from pathlib import Path
from typing import Any

from clinie_nemo.engines.spec import RunSpec
from clinie_nemo.errors import ConfigError

BRIDGE_VERSION = "megatron-bridge v0.6.0 (51885cf132b2814188b6855c25a8588254274c2a)"

# spec precision -> ConfigContainer.mixed_precision (src/megatron/bridge/training/mixed_precision.py:
# @register bf16_mixed / fp16_mixed; None = fp32)
MIXED_PRECISION = {"bf16-mixed": "bf16_mixed", "fp16-mixed": "fp16_mixed", "32": None}


def split_prompt_template(template: str) -> tuple[str, str]:
    """``"{input} {output}"`` -> (Bridge prompt_template ``"{prompt}"``, separator ``" "``).

    Bridge's PromptCompletionSFTPreprocessingConfig (src/megatron/bridge/data/sft_processing.py) renders
    ``prompt_template.format(prompt=input) + separator + completion``; nothing may follow {output}."""
    if not template.endswith("{output}") or "{input}" not in template:
        raise ConfigError(f"engine bridge: prompt_template {template!r} must contain {{input}} and end with "
                          "{output} (Bridge appends the completion after the prompt)")
    head = template[: -len("{output}")]
    before, _, between = head.partition("{input}")
    prompt = (before + "{prompt}").replace("{{", "{").replace("}}", "}")
    return prompt, between


def recipe_function(spec: RunSpec) -> str:
    """``megatron.bridge.recipes.llama.llama31_8b_peft_config`` or ``..._sft_config``."""
    kind = "peft" if spec.train.method == "lora" else "sft"
    return f"megatron.bridge.recipes.llama.{spec.model.bridge_recipe}_{kind}_config"


def plan_dict(spec: RunSpec, data_dir: str | Path, run_dir: str | Path,
              pretrained_checkpoint: str | None = None) -> dict[str, Any]:
    """Every Bridge setting for this run. ``pretrained_checkpoint`` is the imported Megatron checkpoint
    (content-hash cache folder, known only at run time); the plan shows a placeholder otherwise."""
    t, m = spec.train, spec.model
    par, run = t.parallel, Path(run_dir)
    prompt_template, separator = split_prompt_template(t.data.prompt_template)
    hf_path = m.checkpoint
    pretrained = pretrained_checkpoint or f"<import cache>/{m.name}-<sha256 of {hf_path}>"
    s: dict[str, Any] = {}
    # --- parallelism: on cfg.model (GPTModelProvider / TransformerConfig); the recipes set these names
    s["model.tensor_model_parallel_size"] = par.tensor
    s["model.pipeline_model_parallel_size"] = par.pipeline
    s["model.context_parallel_size"] = par.context
    s["model.sequence_parallel"] = par.sequence_parallel
    s["model.seq_length"] = t.seq_length  # recipe: cfg.model.seq_length = seq_length
    if par.context > 1:
        # ConfigContainer.validate (training/config.py:1452): "When finetuning with CP>1,
        # calculate_per_token_loss must be True" (and ddp.average_in_collective False, the recipes' default)
        s["model.calculate_per_token_loss"] = True
    # --- training loop: TrainingConfig (src/megatron/bridge/training/config.py; train_iters /
    # global_batch_size / micro_batch_size from megatron.training.config.TrainingConfig; num_epochs here)
    s["train.train_iters"] = t.max_steps  # None when training by epochs (finalize: exactly one mode)
    s["train.num_epochs"] = t.max_epochs
    s["train.global_batch_size"] = t.batch.global_batch_size
    s["train.micro_batch_size"] = t.batch.micro_batch_size
    # train.py:1397 saves a checkpoint and stops when train.exit_signal arrives (Megatron-LM TrainingConfig
    # exit_signal: signal.Signals, default SIGTERM); the Slurm scripts forward SIGUSR1 to every rank.
    # bridge.py turns the name into signal.SIGUSR1.
    s["train.exit_signal_handler"] = True
    s["train.exit_signal"] = "SIGUSR1"
    # --- validation: ValidationConfig (recipes set cfg.validation.eval_interval / eval_iters)
    s["validation.eval_interval"] = t.data.validation_interval or None
    s["validation.eval_iters"] = 32 if t.data.validation_interval else 0
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
    s["mixed_precision"] = MIXED_PRECISION[t.precision]
    if t.precision == "32":
        # mixed_precision=None leaves the provider's dtypes as built from the HF config (bf16=True,
        # params_dtype=bfloat16 for Llama 3.1): runtime_config_update (training/config.py:1872) only applies a
        # MixedPrecisionConfig when one is set. Found by tests/test_bridge_contract.py. bridge.py: str -> torch.dtype
        s.update({"model.bf16": False, "model.fp16": False, "model.params_dtype": "float32",
                  "model.pipeline_dtype": "float32"})
    s["rng.seed"] = t.seed  # RNGConfig.seed
    dataset = {
        # megatron.bridge.data.builders.GPTSFTDatasetConfig (data/builders/gpt_sft.py:105); reads
        # dataset_root/training.jsonl, validation.jsonl, test.jsonl (gpt_sft.py:799/890/895)
        "class": "megatron.bridge.data.builders.GPTSFTDatasetConfig",
        "seq_length": t.seq_length,
        "dataset_root": str(Path(data_dir)),
        "seed": t.seed,
        "do_validation": bool(t.data.validation_interval),
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
        "recipe": recipe_function(spec),
        "recipe_kwargs": {"peft_scheme": "lora"} if t.method == "lora" else {},
        "hf_checkpoint": hf_path,
        # AutoBridge.import_ckpt(hf_model_id, megatron_path) (models/conversion/auto_bridge.py:1345)
        "import_ckpt": {"hf_model_id": hf_path, "megatron_path": pretrained},
        "set": s,
        "dataset": dataset,
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
        return ["srun", f"--nodes={par.nodes}", "--ntasks-per-node=1", *base, f"--nnodes={par.nodes}",
                "--rdzv-id=$SLURM_JOB_ID", "--rdzv-backend=c10d", "--rdzv-endpoint=$MASTER_ADDR:29500",
                "-m", "clinie_nemo", *cli_args]
    return [*base, "--nnodes=1", "-m", "clinie_nemo", *cli_args]


def shell_line(cmd: list[str]) -> str:
    """A command as one shell line; tokens with $VARS are double-quoted so the shell expands them."""
    return " ".join(f'"{c}"' if "$" in c else shlex.quote(c) for c in cmd)
