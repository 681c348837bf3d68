"""Engine ``local``: transformers + peft on CPU or one GPU (LoRA or full fine-tuning, batched generation).

Implements :class:`clinie_nemo.engines.Engine`:

- :func:`train` ``(spec, data_dir, run_dir)`` trains or resumes; on SIGUSR1/SIGTERM it checkpoints and
  exits with code 124 (:data:`PREEMPTED_EXIT_CODE`, via :class:`trainer.Preempted`, a SystemExit).
- :func:`generate` ``(run_dir, records_path, output_path, gen_config)`` writes predictions JSONL.
- :func:`plan` ``(spec, data_dir, run_dir) -> str`` describes what :func:`train` would do (dry run).
- ``RANK_PER_GPU = False``: one device per rank, one rank per node of a multi-node job (data parallel).

torch/transformers/peft are imported only when training or generating, never on import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clinie_nemo.engines import PREEMPTED_EXIT_CODE
from clinie_nemo.engines.local.settings import LocalSettings, from_run_spec

NAME = "local"
RANK_PER_GPU = False  # a multi-node job: one task per node, each one data-parallel rank on one device

__all__ = ["NAME", "PREEMPTED_EXIT_CODE", "RANK_PER_GPU", "LocalSettings", "from_run_spec", "generate", "plan",
           "train"]


def train(spec: Any, data_dir: str | Path, run_dir: str | Path) -> dict[str, Any]:
    """Train (or resume) the run; returns the DONE facts. Exits 124 after a checkpoint on SIGUSR1/SIGTERM."""
    from clinie_nemo.engines.local.trainer import run_training

    return run_training(from_run_spec(spec), data_dir, run_dir)


def generate(run_dir: str | Path, records_path: str | Path, output_path: str | Path,
             gen_config: Any = None) -> int:
    """One prediction per record into ``output_path``; returns how many were written."""
    from clinie_nemo.engines.local.generation import run_generation

    return run_generation(run_dir, records_path, output_path, gen_config)


def plan(spec: Any, data_dir: str | Path, run_dir: str | Path) -> str:
    """The dry-run text: the resolved local settings and the call :func:`train` makes."""
    s = from_run_spec(spec)
    steps = f"{s.max_steps} steps" if s.max_steps else f"{s.max_epochs} epochs"
    method = (f"LoRA r={s.lora_r} alpha={s.lora_alpha} dropout={s.lora_dropout} "
              f"targets={','.join(s.hf_target_modules())}" if s.method == "lora" else "full fine-tuning")
    lines = [
        "engine local (transformers + peft; cuda if available, else cpu)",
        f"  model:      {s.model_path}" + (f" (tokenizer {s.tokenizer_path})" if s.tokenizer_path else ""),
        f"  method:     {method}",
        f"  data:       {Path(data_dir) / 'training.jsonl'}; prompt = template before {{output}} of "
        f"{s.prompt_template!r}; completion-only loss {s.answer_only_loss}; add EOS {s.add_eos}; "
        f"add BOS {s.add_bos}; packing {s.packing}",
        f"  batch:      global {s.global_batch} = micro {s.micro_batch} x {s.accumulation_steps} accumulation "
        f"steps; seq length {s.seq_length}; {steps}",
        f"  optimiser:  AdamW lr {s.lr} (min {s.min_lr}), {s.schedule} after {s.warmup_steps} warmup steps, "
        f"weight decay {s.weight_decay}, betas ({s.adam_beta1}, {s.adam_beta2}), clip {s.clip_grad}",
        f"  precision:  {s.precision} on GPU, fp32 on CPU; seed {s.seed}",
        f"  checkpoints: {Path(run_dir) / 'checkpoints'}/step-<n> every {s.save_interval} steps, keep {s.keep_last}; "
        "SIGUSR1/SIGTERM -> checkpoint, exit 124",
        f"  call:       clinie_nemo.engines.local.train(spec, {str(data_dir)!r}, {str(run_dir)!r})",
    ]
    lines += [f"  note:       {n}" for n in s.notes]
    return "\n".join(lines) + "\n"
