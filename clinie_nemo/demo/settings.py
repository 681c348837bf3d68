"""The demo's knobs as one frozen dataclass, with two presets: ``DEFAULT`` (the full demo, a few minutes on
2 CPU cores) and ``QUICK`` (the same steps on less data and fewer training steps, for tests).

Every number here is chosen so that a tiny random-init model learns the ``lines`` output format within a
short CPU run; none of it is a recommendation for real models (see nemo_configs/ for the study's settings).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

DATASETS = ("i2b2_2010", "n2c2_2018", "n2c2_2022_sdoh", "radgraph", "ufhealth")
METHODS = ("lora", "full")
RECIPES = {"lora": "peft_lora", "full": "full_sft", "base": "full_sft"}  # presets the demo's recipes start from


@dataclass(frozen=True)
class TinyModel:
    """`clinie-nemo tiny-model` arguments (its defaults, but a shorter context)."""

    hidden: int = 128
    layers: int = 4
    heads: int = 4
    kv_heads: int = 2
    vocab_size: int = 2048
    max_positions: int = 1024
    seed: int = 0


@dataclass(frozen=True)
class Training:
    """Overrides on top of the full_sft / peft_lora presets (the study's 8B settings do not fit a 1M-parameter
    model trained for a minute). ``base_steps`` of full fine-tuning on the non-held-out corpora turn the
    random-init model into a base that follows the instruction format (standing in for a pretrained LLM;
    no held-out data); every cell then fine-tunes that base for ``steps``."""

    base_steps: int = 150
    base_lr: float = 5e-3
    base_batch: int = 8
    steps: int = 30
    batch: int = 8  # global = micro: no gradient accumulation on one CPU
    seq_length: int = 640
    warmup_steps: int = 3
    lr_full: float = 3e-3
    lr_lora: float = 3e-2
    lora_dim: int = 16
    lora_targets: tuple[str, ...] = ("linear_qkv", "linear_proj", "linear_fc1", "linear_fc2")

    def lr(self, method: str) -> float:
        return {"full": self.lr_full, "lora": self.lr_lora, "base": self.base_lr}[method]

    def steps_for(self, method: str) -> int:
        return self.base_steps if method == "base" else self.steps

    def batch_for(self, method: str) -> int:
        return self.base_batch if method == "base" else self.batch


@dataclass(frozen=True)
class DemoSettings:
    docs_per_dataset: int = 24  # synthetic documents per corpus (about 80% train, 20% test)
    held_out: str = "n2c2_2018"  # the leave-one-dataset-out fold
    fractions: tuple[float, ...] = (0.0, 0.2, 1.0)  # of the held-out corpus's training documents
    methods: tuple[str, ...] = METHODS
    tasks: tuple[str, ...] = ("ce", "re_e2e")
    format: str = "lines"
    max_tokens: int = 560  # per record, prompt included (the fallback counter)
    cap: int = 40  # training records per corpus (the held-out one included)
    seed: int = 1
    max_new_tokens: int = 128  # the study's tokens_to_generate
    bootstrap: int = 200  # document bootstrap replicates for the 95% CIs
    model: TinyModel = TinyModel()
    training: Training = Training()

    def fraction_name(self, fraction: float) -> str:
        return f"frac-{fraction:g}"


DEFAULT = DemoSettings()
QUICK = replace(DEFAULT, docs_per_dataset=12, cap=24, max_new_tokens=96, bootstrap=50,
                training=replace(Training(), base_steps=100, steps=20))
PRESETS = {"default": DEFAULT, "quick": QUICK}
