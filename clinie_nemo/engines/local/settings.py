"""The knobs the local engine uses, as one frozen dataclass read from a :class:`RunSpec`.

The local engine (transformers + peft, CPU or one GPU per rank) reads only what it can honour: no model
parallelism; data-parallel ranks come from its launcher (:func:`from_run_spec` says so in
:attr:`LocalSettings.notes`).
The learning rate is a pure function of the step (:func:`lr_at`: linear warmup, then cosine/linear/constant
decay), so a checkpoint's step restores the schedule. Nothing here imports torch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from clinie_nemo.core.errors import ConfigError

# Megatron-core LoRA target names -> HF/peft module names on Llama (same table as engines.spec.LORA_TARGETS)
HF_LORA_TARGETS: dict[str, tuple[str, ...]] = {
    "linear_qkv": ("q_proj", "k_proj", "v_proj"),
    "linear_proj": ("o_proj",),
    "linear_fc1": ("gate_proj", "up_proj"),
    "linear_fc2": ("down_proj",),
}
HF_MODULE_NAMES = frozenset(n for names in HF_LORA_TARGETS.values() for n in names)


@dataclass(frozen=True)
class LocalSettings:
    """Everything the local trainer needs. ``model_path`` is an HF folder (config + weights + tokenizer)."""

    model_path: str
    tokenizer_path: str = ""  # "" = the model folder's tokenizer
    method: str = "lora"  # lora | full
    lora_r: int = 256
    lora_alpha: int = 256
    lora_dropout: float = 0.2
    lora_targets: tuple[str, ...] = ("linear_qkv",)
    lr: float = 1e-4
    min_lr: float = 0.0
    schedule: str = "cosine"  # cosine | linear | constant (after linear warmup)
    warmup_steps: int = 0
    weight_decay: float = 0.01
    adam_beta1: float = 0.9
    adam_beta2: float = 0.98
    clip_grad: float = 1.0
    global_batch: int = 64
    micro_batch: int = 1
    max_steps: int | None = 300
    max_epochs: int | None = None
    seq_length: int = 4096
    packing: bool = False
    precision: str = "bf16-mixed"  # bf16-mixed | fp16-mixed | 32 (CPU always runs fp32)
    save_interval: int = 100
    keep_last: int = 2
    export: str = "adapter"  # LoRA: adapter | merged (adapter/ and the merged weights in model/) | none
    prompt_template: str = "{input} {output}"  # the prompt is the text before {output}
    answer_only_loss: bool = True
    add_eos: bool = True
    add_bos: bool = False  # prepend the tokenizer's BOS (at training and at generation alike)
    validation_interval: int = 0
    seed: int = 1234
    log_interval: int = 10
    notes: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        problems = []
        if self.method not in ("lora", "full"):
            problems.append(f"method must be lora or full, not {self.method!r}")
        if self.method == "lora" and self.lora_r < 1:
            problems.append("LoRA needs a rank (lora dim) >= 1")
        if self.micro_batch < 1 or self.global_batch % self.micro_batch:
            problems.append(f"global batch {self.global_batch} is not a multiple of micro batch {self.micro_batch}")
        if (self.max_steps is None) == (self.max_epochs is None):
            problems.append("set exactly one of max_steps / max_epochs")
        if self.schedule not in ("cosine", "linear", "constant"):
            problems.append(f"schedule must be cosine, linear or constant, not {self.schedule!r}")
        if self.save_interval < 1 or self.keep_last < 1:
            problems.append("save_interval and keep_last must be >= 1")
        bad = [t for t in self.lora_targets if t not in HF_LORA_TARGETS and t not in HF_MODULE_NAMES]
        if bad:
            problems.append(f"unknown LoRA target(s) {bad}; valid: {sorted(HF_LORA_TARGETS)} "
                            f"or HF names {sorted(HF_MODULE_NAMES)}")
        if self.export not in ("adapter", "merged", "none"):
            problems.append(f"export must be adapter, merged or none, not {self.export!r}")
        if "{input}" not in self.prompt_template or not self.prompt_template.endswith("{output}"):
            problems.append("prompt_template must contain {input} and end with {output}")
        if problems:
            raise ConfigError("local engine: " + "; ".join(problems))

    @property
    def accumulation_steps(self) -> int:
        return self.global_batch // self.micro_batch

    def hf_target_modules(self) -> list[str]:
        """LoRA targets as peft module names (Megatron names expanded, HF names kept)."""
        out: list[str] = []
        for t in self.lora_targets:
            for name in HF_LORA_TARGETS.get(t, (t,)):
                if name not in out:
                    out.append(name)
        return out

    def prompt_of(self, input_text: str) -> str:
        """The prompt text a record's input becomes (the template up to {output})."""
        return self.prompt_template[: -len("{output}")].replace("{input}", input_text)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lora_targets"] = list(self.lora_targets)
        d["notes"] = list(self.notes)
        return d


def lr_at(step: int, total_steps: int, lr: float, min_lr: float = 0.0, warmup_steps: int = 0,
          schedule: str = "cosine") -> float:
    """The learning rate for optimiser step ``step`` (0-based) of ``total_steps``."""
    if warmup_steps > 0 and step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return lr
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    if schedule == "linear":
        return min_lr + (lr - min_lr) * (1.0 - progress)
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def from_run_spec(spec: Any) -> LocalSettings:
    """Map a RunSpec (``spec.model``, ``spec.train``) to :class:`LocalSettings`; a LocalSettings passes through."""
    if isinstance(spec, LocalSettings):
        return spec
    model, train = spec.model, spec.train
    if getattr(model, "format", "hf") != "hf":
        raise ConfigError(f"the local engine loads HF folders; model {model.name!r} is format {model.format!r} "
                          "(use --engine nemo for .nemo checkpoints)")
    if getattr(train.data, "chat_template", False):
        raise ConfigError("the local engine does not apply chat templates (data.chat_template=true); "
                          "use the prompt_template")
    notes = []
    par = train.parallel
    if par.world_size > 1 or par.model_parallel_size > 1:
        notes.append(f"parallelism (TP {par.tensor}, PP {par.pipeline}, CP {par.context}, "
                     f"{par.nodes}x{par.gpus_per_node} GPUs): the local engine uses one device per rank and "
                     "data-parallel ranks from its launcher (WORLD_SIZE / the Slurm tasks)")
    lora = train.lora
    return LocalSettings(
        model_path=model.checkpoint, tokenizer_path=model.tokenizer or "", method=train.method,
        lora_r=lora.dim if lora else 0, lora_alpha=lora.alpha if lora else 0,
        lora_dropout=lora.dropout if lora else 0.0,
        lora_targets=tuple(lora.target_modules) if lora else ("linear_qkv",),
        lr=train.optim.lr, min_lr=train.optim.min_lr, schedule=train.optim.schedule,
        warmup_steps=train.optim.warmup_steps, weight_decay=train.optim.weight_decay,
        adam_beta1=train.optim.adam_beta1, adam_beta2=train.optim.adam_beta2, clip_grad=train.optim.clip_grad,
        global_batch=train.batch.global_batch_size, micro_batch=train.batch.micro_batch_size,
        max_steps=train.max_steps, max_epochs=train.max_epochs, seq_length=train.seq_length,
        packing=train.packing, precision=train.precision, save_interval=train.checkpoint.save_interval,
        keep_last=train.checkpoint.keep_last, export=train.checkpoint.export, prompt_template=train.data.prompt_template,
        add_bos=train.data.add_bos, answer_only_loss=train.data.answer_only_loss,
        add_eos=train.data.add_eos, validation_interval=train.data.validation_interval, seed=train.seed,
        notes=tuple(notes),
    )
