"""Engine ``nemo``, the launch lines: a RunSpec -> the NeMo 1.x script command with its Hydra overrides.

:func:`train_command` (megatron_gpt_finetuning.py) and :func:`generate_command` (megatron_gpt_generate.py):
the launcher (``torchrun --standalone`` on one node, srun with one task per GPU on several, plain python
inside a launch), the script and config from ``nemo_configs/nemo/*.yaml`` and every override as Hydra
grammar. Nothing runs and nothing imports nemo here: :mod:`clinie_nemo.engines.nemo` checks the
container's NeMo, runs these lines and converts the output. Override keys checked against NVIDIA/NeMo
v2.4.0 (2381f42f6979449b5b99538f8f80135831009b51), examples/nlp/language_modeling/tuning/conf/
megatron_gpt_finetuning_config.yaml and megatron_gpt_generate_config.yaml.

Imports: core.errors, engines.allocation, engines.spec, engines.spec_loader. Imported by: engines.nemo,
engines.validate (megatron_amp_o2).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from clinie_nemo.core.errors import ConfigError
from clinie_nemo.engines.allocation import job_allocation
from clinie_nemo.engines.spec import LORA_TARGETS, GenerateConfig, NemoScriptConfig, RunSpec
from clinie_nemo.engines.spec_loader import load_nemo_script_config

PRECISION = {"bf16-mixed": "bf16-mixed", "fp16-mixed": "16-mixed", "32": "32"}  # trainer.precision (PTL 2)
PYTHON = "python"  # the container's interpreter: runs the NeMo scripts and the version preflight


def hydra_value(v: Any) -> str:
    """A Python value as Hydra override grammar (strings quoted when they hold grammar characters)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(hydra_value(x) for x in v) + "]"
    s = str(v)
    if s and all(c.isalnum() or c in "/._-+:" for c in s) and s.lower() not in ("null", "true", "false"):
        return s
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _launcher(nodes: int, gpus: int) -> list[str]:
    """torchrun / srun, or plain python when this process already is one rank of a launch (the Slurm
    scripts start one task per GPU with RANK/WORLD_SIZE set): never launch inside a launch.

    No fixed port: one node uses ``torchrun --standalone`` (its own rendezvous on a free port, so two jobs on
    one node never collide); several nodes use srun, and Lightning's SLURMEnvironment takes $MASTER_PORT from
    the environment (Lightning 2.4.0 src/lightning/fabric/plugins/environments/slurm.py:93; the sbatch
    wrapper derives it from the job id, and without it Lightning derives one from SLURM_JOB_ID, :80-85)."""
    world = os.environ.get("WORLD_SIZE", "")
    if world and not (world == "1" and nodes * gpus > 1):
        return [PYTHON]
    if world == "1" and nodes > 1:  # one task of a multi-node job: srun inside srun would nest steps
        raise ConfigError(f"engine nemo: this process is the only task (WORLD_SIZE=1) of a {nodes}-node run; start "
                          f"one task per GPU ({gpus} per node, as slurm/*.sh do) instead")
    # WORLD_SIZE=1 for a multi-GPU run on one node: the ONE task of a job (a rendered script's srun exports
    # WORLD_SIZE=$SLURM_NTASKS): launch the ranks here, as the bridge engine does, instead of training on 1 GPU
    if nodes > 1:  # PTL SLURMEnvironment: one task per GPU
        return ["srun", f"--nodes={nodes}", f"--ntasks-per-node={gpus}", f"--gpus-per-node={gpus}", PYTHON]
    return ["torchrun", "--standalone", "--nnodes=1", f"--nproc-per-node={gpus}"]  # torch 2.13 distributed/run.py:478: free port


def _command(script: NemoScriptConfig, nodes: int, gpus: int, overrides: dict[str, str]) -> list[str]:
    root = Path(script.nemo_root)
    merged = {**script.overrides, **overrides}
    return [*_launcher(nodes, gpus), str(root / script.script), f"--config-path={root / script.config_path}",
            f"--config-name={script.config_name}", *(f"{k}={v}" for k, v in merged.items())]


def nemo_file_name(script: NemoScriptConfig) -> str:
    return f"{script.overrides.get('name', 'megatron_gpt_peft_tuning')}.nemo"


def concat_sampling_probabilities(weights: Sequence[float]) -> list[float]:
    """Per-file sampling weights -> probabilities summing to 1 (NeMo's SFT model needs one per train file).

    NeMo v2.4.0 nemo/collections/nlp/models/language_modeling/megatron_gpt_sft_model.py:261-277: _build_dataset
    raises ValueError in setup() unless model.data.train_ds.concat_sampling_probabilities is a list as long as
    file_names (the config's default, megatron_gpt_finetuning_config.yaml:159, is null)."""
    if not weights or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ConfigError(f"sampling weights must be >= 0 with a positive sum (got {list(weights)})")
    total = float(sum(weights))
    return [w / total for w in weights]


def train_files(data_dir: str | Path) -> tuple[list[Path], list[float]]:
    """The training file(s) and their sampling probabilities.

    A records folder (``clinie-nemo mix`` or ``render``) has one training.jsonl -> ([training.jsonl], [1.0]).
    The mixture's per-dataset weights are already applied inside that file as record copies
    (mixture_select.weighted_copies; manifest.json keeps them under config.datasets[].weight), so applying
    them again as sampling probabilities would count them twice."""
    files = [Path(data_dir) / "training.jsonl"]
    return files, concat_sampling_probabilities([1.0] * len(files))


def val_check_interval(spec: RunSpec) -> int:
    """Training steps between validations (NeMo also checkpoints there), never more than max_steps.

    data.validation_interval, or checkpoint.save_interval when validation is off (NeMo needs one to save).
    Lightning 2.4.0 src/lightning/pytorch/loops/fit_loop.py:276-283 raises ValueError when an int
    val_check_interval exceeds the batches of the epoch *and* check_val_every_n_epoch is not None; after a
    resume NeMo's epoch holds only the batches left, so we clamp to max_steps and also pass
    ++trainer.check_val_every_n_epoch=null (validate by total training batches)."""
    t = spec.train
    if t.max_steps is None:
        raise ConfigError("engine nemo needs train.max_steps (NeMo's SFT model sizes its dataset from "
                          "trainer.max_steps); set max_steps and max_epochs=null")
    every = t.data.validation_interval or t.checkpoint.save_interval
    return max(1, min(every, t.max_steps))


def megatron_amp_o2(spec: RunSpec, script: NemoScriptConfig) -> bool:
    """bf16/fp16 weights (model.megatron_amp_O2, set in nemo_configs/nemo/*.yaml) unless precision is 32."""
    return spec.train.precision != "32" and script.overrides.get("model.megatron_amp_O2", "false") == "true"


def train_overrides(spec: RunSpec, data_dir: str | Path, run_dir: str | Path) -> dict[str, str]:
    t, par, data, run = spec.train, spec.train.parallel, Path(data_dir), Path(run_dir)
    val = data / "validation.jsonl"
    files, probabilities = train_files(data)
    o: dict[str, Any] = {
        "trainer.devices": par.gpus_per_node,
        "trainer.num_nodes": par.nodes,
        "trainer.precision": PRECISION[t.precision],
        "trainer.max_steps": t.max_steps if t.max_steps is not None else -1,
        # -1 ("no epoch limit", Lightning 2.4.0 src/lightning/pytorch/loops/fit_loop.py:83-89), never the YAML's
        # 9999: with check_val_every_n_epoch=null below, NeMo v2.4.0 nemo/utils/exp_manager.py:1365-1370 (v2.2.1
        # :1211-1216) evaluates `max_epochs < check_val_every_n_epoch` -> TypeError (int < None) unless
        # max_epochs is None or -1 (validation needs max_steps, so the spec's max_epochs is null here)
        "trainer.max_epochs": t.max_epochs if t.max_epochs is not None else -1,
        "trainer.val_check_interval": val_check_interval(spec),
        # not in megatron_gpt_finetuning_config.yaml's trainer section: "++" adds it (Hydra's struct config
        # refuses a plain override of a missing key)
        "++trainer.check_val_every_n_epoch": None,
        "trainer.gradient_clip_val": t.optim.clip_grad,
        "exp_manager.explicit_log_dir": str(run),  # -> <run>/checkpoints/
        "exp_manager.checkpoint_callback_params.save_top_k": t.checkpoint.keep_last,
        "model.seed": t.seed,
        "model.megatron_amp_O2": megatron_amp_o2(spec, load_nemo_script_config("finetune")),
        "model.tensor_model_parallel_size": par.tensor,
        "model.pipeline_model_parallel_size": par.pipeline,
        "model.sequence_parallel": par.sequence_parallel,
        # activation recomputation (megatron_gpt_finetuning_config.yaml "Activation Checkpoint" keys;
        # the method and layer count are for full only). validate.py counts the activations kept.
        "model.activations_checkpoint_granularity": None if t.activation_recompute == "none" else t.activation_recompute,
        "model.activations_checkpoint_method": "uniform" if t.activation_recompute == "full" else None,
        "model.activations_checkpoint_num_layers": 1 if t.activation_recompute == "full" else None,
        "model.global_batch_size": t.batch.global_batch_size,
        "model.micro_batch_size": t.batch.micro_batch_size,
        "model.restore_from_path": spec.model.checkpoint,
        "model.answer_only_loss": t.data.answer_only_loss,
        "model.peft.peft_scheme": "lora" if t.method == "lora" else "none",
    }
    if t.method == "lora" and t.lora is not None:
        o["model.peft.lora_tuning.target_modules"] = [LORA_TARGETS[m][0] for m in t.lora.target_modules]
        o["model.peft.lora_tuning.adapter_dim"] = t.lora.dim
        o["model.peft.lora_tuning.alpha"] = t.lora.alpha
        o["model.peft.lora_tuning.adapter_dropout"] = t.lora.dropout
    # NeMo requires a validation set; without validation.jsonl the training file stands in
    for split, paths in (("train_ds", files), ("validation_ds", [val if val.is_file() else files[0]])):
        o[f"model.data.{split}.file_names"] = [str(p) for p in paths]
        o[f"model.data.{split}.max_seq_length"] = t.seq_length
    o["model.data.train_ds.concat_sampling_probabilities"] = probabilities
    o["model.data.train_ds.prompt_template"] = t.data.prompt_template
    o["model.data.train_ds.label_key"] = "output"
    o["model.data.train_ds.add_eos"] = t.data.add_eos
    o["model.data.train_ds.add_bos"] = t.data.add_bos
    o["model.data.train_ds.truncation_field"] = t.data.truncation_field
    o["model.optim.lr"] = t.optim.lr
    o["model.optim.weight_decay"] = t.optim.weight_decay
    o["model.optim.betas"] = [t.optim.adam_beta1, t.optim.adam_beta2]
    o["model.optim.sched.warmup_steps"] = t.optim.warmup_steps
    o["model.optim.sched.min_lr"] = t.optim.min_lr
    return {k: hydra_value(v) for k, v in o.items()}


def train_command(spec: RunSpec, data_dir: str | Path, run_dir: str | Path) -> list[str]:
    par = spec.train.parallel
    return _command(load_nemo_script_config("finetune"), par.nodes, par.gpus_per_node,
                    train_overrides(spec, data_dir, run_dir))


def generation_allocation(tensor: int, pipeline: int, env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """(nodes, GPUs per node) of the job generation runs in, not of the training run.

    Lightning's SLURMEnvironment rejects trainer.devices / num_nodes that differ from the step's
    SLURM_NTASKS_PER_NODE / SLURM_NNODES (Lightning 2.4.0 src/lightning/fabric/plugins/environments/
    slurm.py:158-172), so the generation job's own allocation counts: inside a launch (one task per GPU,
    WORLD_SIZE set) SLURM_NTASKS_PER_NODE, else WORLD_SIZE over the step's nodes; in a Slurm job SLURM_GPUS_ON_NODE (works for --gres=gpu:N and typed gpu:h100:N) on
    SLURM_JOB_NUM_NODES; otherwise CUDA_VISIBLE_DEVICES; otherwise one node with tensor x pipeline GPUs
    (the fewest that hold the trained model). The model-parallel layout stays the training run's."""
    mp = tensor * pipeline
    found = job_allocation(env)  # the rule lives in engines/allocation.py (the bridge engine's vLLM uses it too)
    nodes, gpus, source = found or (1, mp, "tensor x pipeline of the training run (no Slurm job found)")
    if (nodes * gpus) % mp:
        raise ConfigError(f"engine nemo generate: the job has {nodes} node(s) x {gpus} GPU(s) ({source}), "
                          f"not a multiple of the trained model's tensor x pipeline = {tensor} x {pipeline}; "
                          f"request a multiple of {mp} GPUs")
    return nodes, gpus


def generate_command(spec: RunSpec, run_dir: str | Path, records_path: str | Path, out_prefix: str | Path,
                     gen: GenerateConfig, allocation: tuple[int, int] | None = None) -> list[str]:
    """The generation launch line; ``allocation`` = (nodes, GPUs per node), by default the job's own
    (:func:`generation_allocation`)."""
    t, par, run = spec.train, spec.train.parallel, Path(run_dir)
    script = load_nemo_script_config("generate")
    trained = nemo_file_name(load_nemo_script_config("finetune"))
    lora = t.method == "lora"
    nodes, gpus = allocation or generation_allocation(par.tensor, par.pipeline)
    data_parallel = max(1, nodes * gpus // (par.tensor * par.pipeline))
    o: dict[str, Any] = {
        "trainer.devices": gpus,
        "trainer.num_nodes": nodes,
        "trainer.precision": PRECISION[t.precision],
        "model.megatron_amp_O2": megatron_amp_o2(spec, script),
        "model.tensor_model_parallel_size": par.tensor,
        "model.pipeline_model_parallel_size": par.pipeline,
        "model.restore_from_path": spec.model.checkpoint if lora else str(run / "model" / trained),
        "model.peft.restore_from_path": str(run / "adapter" / trained) if lora else None,
        "model.data.test_ds.file_names": [str(records_path)],
        "model.data.test_ds.global_batch_size": gen.batch_size * data_parallel,
        "model.data.test_ds.micro_batch_size": gen.batch_size,
        "model.data.test_ds.tokens_to_generate": gen.max_new_tokens,
        "model.data.test_ds.max_seq_length": t.seq_length,
        "model.data.test_ds.prompt_template": t.data.prompt_template,
        "model.data.test_ds.add_eos": t.data.add_eos,
        "model.data.test_ds.add_bos": t.data.add_bos,
        "model.data.test_ds.add_sep": False,
        "model.data.test_ds.truncation_field": t.data.truncation_field,
        "model.data.test_ds.output_file_path_prefix": str(out_prefix),
        "inference.greedy": gen.strategy == "greedy",
        "inference.temperature": gen.temperature,
        "inference.top_k": gen.top_k,
        "inference.top_p": gen.top_p,
    }
    return _command(script, nodes, gpus, {k: hydra_value(v) for k, v in o.items()})
