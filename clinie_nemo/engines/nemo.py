"""Engine ``nemo``: the study's NeMo 1.x path (megatron_gpt_finetuning.py / megatron_gpt_generate.py).

Renders the exact launch line (torchrun on one node, srun one task per GPU on several, which PyTorch
Lightning's SLURMEnvironment picks up) with Hydra overrides from the RunSpec, runs it inside a NeMo
container (nemo_toolkit 2.2.1-2.5.0; NGC nvcr.io/nvidia/nemo up to ~25.04), and converts NeMo's
``<prefix>_test_<name>_inputs_preds_labels.jsonl`` into predictions JSONL. It never imports nemo: the
scripts run as subprocesses. Override keys checked against NVIDIA/NeMo v2.4.0
(2381f42f6979449b5b99538f8f80135831009b51), examples/nlp/language_modeling/tuning/conf/
megatron_gpt_finetuning_config.yaml and megatron_gpt_generate_config.yaml; output format from
nemo/collections/nlp/models/language_modeling/megatron_gpt_sft_model.py write_predictions_to_file
({"input", "pred", "label"} + the record's other keys as metadata, so our "id" comes back).
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path
from typing import Any

from clinie_nemo.engines.spec import LORA_TARGETS, GenerateConfig, NemoScriptConfig, RunSpec
from clinie_nemo.engines.spec_loader import load_nemo_script_config, load_spec_file
from clinie_nemo.errors import ConfigError, InputError, Problem
from clinie_nemo.fileio import atomic_write, iter_jsonl, write_jsonl
from clinie_nemo.progress import say

NAME = "nemo"
PRECISION = {"bf16-mixed": "bf16-mixed", "fp16-mixed": "16-mixed", "32": "32"}  # trainer.precision (PTL 2)
TEST_NAME = "test"  # model.data.test_ds.names=[test] -> <prefix>_test_test_inputs_preds_labels.jsonl


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
    scripts start one task per GPU with RANK/WORLD_SIZE set): never launch inside a launch."""
    if "WORLD_SIZE" in os.environ:
        return ["python"]
    if nodes > 1:  # PTL SLURMEnvironment: one task per GPU
        return ["srun", f"--nodes={nodes}", f"--ntasks-per-node={gpus}", f"--gpus-per-node={gpus}", "python"]
    return ["torchrun", "--standalone", "--nnodes=1", f"--nproc-per-node={gpus}"]  # torch 2.13 distributed/run.py:478: free port


def _command(script: NemoScriptConfig, nodes: int, gpus: int, overrides: dict[str, str]) -> list[str]:
    root = Path(script.nemo_root)
    merged = {**script.overrides, **overrides}
    return [*_launcher(nodes, gpus), str(root / script.script), f"--config-path={root / script.config_path}",
            f"--config-name={script.config_name}", *(f"{k}={v}" for k, v in merged.items())]


def nemo_file_name(script: NemoScriptConfig) -> str:
    return f"{script.overrides.get('name', 'megatron_gpt_peft_tuning')}.nemo"


def train_overrides(spec: RunSpec, data_dir: str | Path, run_dir: str | Path) -> dict[str, str]:
    t, par, data, run = spec.train, spec.train.parallel, Path(data_dir), Path(run_dir)
    val = data / "validation.jsonl"
    o: dict[str, Any] = {
        "trainer.devices": par.gpus_per_node,
        "trainer.num_nodes": par.nodes,
        "trainer.precision": PRECISION[t.precision],
        "trainer.max_steps": t.max_steps if t.max_steps is not None else -1,
        "trainer.max_epochs": t.max_epochs if t.max_epochs is not None else 9999,
        "trainer.val_check_interval": t.checkpoint.save_interval,  # NeMo checkpoints at validation
        "trainer.gradient_clip_val": t.optim.clip_grad,
        "exp_manager.explicit_log_dir": str(run),  # -> <run>/checkpoints/
        "exp_manager.checkpoint_callback_params.save_top_k": t.checkpoint.keep_last,
        "model.seed": t.seed,
        "model.tensor_model_parallel_size": par.tensor,
        "model.pipeline_model_parallel_size": par.pipeline,
        "model.sequence_parallel": par.sequence_parallel,
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
    for split, path in (("train_ds", data / "training.jsonl"),
                        ("validation_ds", val if val.is_file() else data / "training.jsonl")):
        o[f"model.data.{split}.file_names"] = [str(path)]
        o[f"model.data.{split}.max_seq_length"] = t.seq_length
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


def generate_command(spec: RunSpec, run_dir: str | Path, records_path: str | Path, out_prefix: str | Path,
                     gen: GenerateConfig) -> list[str]:
    t, par, run = spec.train, spec.train.parallel, Path(run_dir)
    script = load_nemo_script_config("generate")
    trained = nemo_file_name(load_nemo_script_config("finetune"))
    lora = t.method == "lora"
    o: dict[str, Any] = {
        "trainer.devices": par.gpus_per_node,
        "trainer.num_nodes": par.nodes,
        "trainer.precision": PRECISION[t.precision],
        "model.tensor_model_parallel_size": par.tensor,
        "model.pipeline_model_parallel_size": par.pipeline,
        "model.restore_from_path": spec.model.checkpoint if lora else str(run / "model" / trained),
        "model.peft.restore_from_path": str(run / "adapter" / trained) if lora else None,
        "model.data.test_ds.file_names": [str(records_path)],
        "model.data.test_ds.global_batch_size": gen.batch_size * par.data_parallel_size,
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
    return _command(script, par.nodes, par.gpus_per_node, {k: hydra_value(v) for k, v in o.items()})


def output_file(out_prefix: str | Path) -> Path:
    """Where NeMo writes: f"{prefix}_{mode}_{name}" + "_inputs_preds_labels.jsonl" (sft model, v2.4.0)."""
    return Path(f"{out_prefix}_test_{TEST_NAME}_inputs_preds_labels.jsonl")


def convert_predictions(nemo_jsonl: str | Path, records_path: str | Path, output_path: str | Path,
                        model_name: str = "") -> int:
    """NeMo's inputs_preds_labels JSONL -> predictions JSONL in the records' order, one line per record."""
    preds: dict[str, str] = {}
    problems: list[Problem] = []
    for lineno, row in iter_jsonl(nemo_jsonl):
        rid, pred = row.get("id"), row.get("pred")
        if not isinstance(rid, str) or not isinstance(pred, str):
            problems.append(Problem(str(nemo_jsonl), lineno, "expected string fields 'id' and 'pred'"))
            continue
        preds.setdefault(rid, pred)  # NeMo may repeat samples to fill the last batch
    ids = [rec.get("id") for _, rec in iter_jsonl(records_path)]
    missing = [i for i in ids if i not in preds]
    if missing:
        problems.append(Problem(str(nemo_jsonl), None, f"{len(missing)} record(s) have no prediction, "
                                                        f"e.g. {missing[0]!r}"))
    if problems:
        raise InputError(problems, "cannot convert NeMo generation output")
    return write_jsonl(output_path, ({"id": i, "prediction": preds[i], "engine": NAME, "model": model_name}
                                     for i in ids))


def plan(spec: RunSpec, data_dir: str | Path, run_dir: str | Path) -> str:
    return ("# engine nemo: NeMo 1.x megatron_gpt_finetuning.py inside a NeMo container\n"
            + shlex.join(train_command(spec, data_dir, run_dir)) + "\n")


def _run(cmd: list[str], log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    say(f"running NeMo ({cmd[0]}), log: {log}")
    with log.open("a", encoding="utf-8") as fh:
        rc = subprocess.call(cmd, stdout=fh, stderr=subprocess.STDOUT)
    if rc != 0:
        raise ConfigError(f"NeMo exited with code {rc}; see {log}")


def train(spec: RunSpec, data_dir: str | Path, run_dir: str | Path) -> dict[str, Any]:
    run = Path(run_dir)
    rank = os.environ.get("RANK", "0")
    _run(train_command(spec, data_dir, run), run / "logs" / f"nemo_train.rank{rank}.log")
    if rank != "0":
        return {}
    name = nemo_file_name(load_nemo_script_config("finetune"))
    produced = run / "checkpoints" / name
    if not produced.exists():
        raise ConfigError(f"NeMo finished but {produced} is missing; see {run / 'logs'}/nemo_train.rank0.log")
    dest = run / ("adapter" if spec.train.method == "lora" else "model")
    dest.mkdir(exist_ok=True)
    produced.replace(dest / name)
    facts = {"engine": NAME, "steps": spec.train.max_steps, "output": str(dest / name)}
    with atomic_write(run / "DONE") as fh:
        fh.write(f"{facts}\n")
    return facts


def generate(run_dir: str | Path, records_path: str | Path, output_path: str | Path,
             gen_config: GenerateConfig | None = None) -> int:
    run = Path(run_dir)
    spec = load_spec_file(run / "spec.yaml")
    gen = gen_config or GenerateConfig()
    prefix = run / "generate" / Path(output_path).stem
    prefix.parent.mkdir(exist_ok=True)
    rank = os.environ.get("RANK", "0")
    _run(generate_command(spec, run, records_path, prefix, gen), run / "logs" / f"nemo_generate.rank{rank}.log")
    if rank != "0":
        return 0
    n = convert_predictions(output_file(prefix), records_path, output_path, spec.model.name)
    say(f"wrote {n} predictions to {output_path}")
    return n
