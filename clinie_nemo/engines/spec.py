"""The run spec: frozen dataclasses that map 1:1 to the YAML files under nemo_configs/.

A run is ``RunSpec(model=ModelSpec, train=TrainRecipe)``:

- ``nemo_configs/models/<name>.yaml``  -> :class:`ModelSpec` (checkpoint, tokenizer, architecture facts)
- ``nemo_configs/train/<name>.yaml``   -> :class:`TrainRecipe` (method, LoRA, optimiser, batch, steps,
  parallelism, checkpointing, data options)
- ``nemo_configs/generate/<name>.yaml`` -> :class:`GenerateConfig`
- ``nemo_configs/nemo/<name>.yaml``    -> :class:`NemoScriptConfig` (which NeMo 1.x script + fixed overrides)

Loading, ``key=value`` overrides and type checks live in :mod:`clinie_nemo.engines.spec_loader`;
the cross-field checks (TP divides heads, batch divisibility, ...) in :mod:`clinie_nemo.engines.spec_checks`,
what one engine cannot do in :mod:`clinie_nemo.engines.validate`.
Nothing here imports a GPU stack.

LoRA target modules use Megatron-core names (``linear_qkv``, ``linear_proj``, ``linear_fc1``,
``linear_fc2``); each engine maps them to its own (:data:`LORA_TARGETS`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Method = Literal["lora", "full"]
CheckpointFormat = Literal["hf", "nemo"]
Architecture = Literal["llama", "gpt"]
PositionEmbedding = Literal["rope", "learned_absolute"]
Precision = Literal["bf16-mixed", "fp16-mixed", "32"]
Schedule = Literal["cosine", "linear", "constant"]
Strategy = Literal["greedy", "sample"]
Recompute = Literal["none", "selective", "full"]

# Megatron-core LoRA target name -> (NeMo 1.x lora_tuning name, HF/peft module names on Llama)
LORA_TARGETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "linear_qkv": ("attention_qkv", ("q_proj", "k_proj", "v_proj")),
    "linear_proj": ("attention_dense", ("o_proj",)),
    "linear_fc1": ("mlp_fc1", ("gate_proj", "up_proj")),
    "linear_fc2": ("mlp_fc2", ("down_proj",)),
}


@dataclass(frozen=True)
class ModelSpec:
    """A base model: where its weights are and the architecture facts validation needs."""

    name: str
    checkpoint: str  # HF folder (format hf) or .nemo file/folder (format nemo)
    format: CheckpointFormat
    architecture: Architecture
    num_layers: int
    hidden_size: int
    ffn_hidden_size: int
    num_attention_heads: int
    num_kv_heads: int  # = num_attention_heads without grouped-query attention
    vocab_size: int
    max_seq_length: int  # longest sequence the position table holds (a hard limit for learned_absolute)
    position_embedding: PositionEmbedding = "rope"
    tokenizer: str = ""  # tokenizer folder or name; "" = the checkpoint's own
    bridge_recipe: str = ""  # Megatron-Bridge recipe family, e.g. "llama31_8b"; "" = no Bridge recipe
    description: str = ""


@dataclass(frozen=True)
class LoraSpec:
    dim: int = 256
    alpha: int = 256  # NeMo 1.x default alpha = adapter_dim (scale 1.0)
    dropout: float = 0.2
    dropout_position: Literal["pre", "post"] = "pre"
    target_modules: tuple[str, ...] = ("linear_qkv",)


@dataclass(frozen=True)
class OptimSpec:
    lr: float = 1e-4
    min_lr: float = 0.0
    schedule: Schedule = "cosine"
    warmup_steps: int = 0
    weight_decay: float = 0.01
    adam_beta1: float = 0.9
    adam_beta2: float = 0.98
    clip_grad: float = 1.0


@dataclass(frozen=True)
class BatchSpec:
    global_batch_size: int = 64
    micro_batch_size: int = 1


@dataclass(frozen=True)
class ParallelSpec:
    tensor: int = 1
    pipeline: int = 1
    context: int = 1
    sequence_parallel: bool = False
    nodes: int = 1
    gpus_per_node: int = 1

    @property
    def world_size(self) -> int:
        return self.nodes * self.gpus_per_node

    @property
    def model_parallel_size(self) -> int:
        return self.tensor * self.pipeline * self.context

    @property
    def data_parallel_size(self) -> int:
        return max(1, self.world_size // self.model_parallel_size)


@dataclass(frozen=True)
class CheckpointSpec:
    save_interval: int = 100  # steps between checkpoints
    keep_last: int = 2
    export: Literal["adapter", "merged", "none"] = "adapter"  # what a LoRA run exports at the end


@dataclass(frozen=True)
class DataSpec:
    prompt_template: str = "{input} {output}"
    answer_only_loss: bool = True  # loss on the completion tokens only
    add_eos: bool = True
    add_bos: bool = False
    chat_template: bool = False  # wrap input/output with the tokenizer's chat template instead
    truncation_field: Literal["input", "output"] = "input"
    validation_interval: int = 50  # steps between validation passes; 0 = never


@dataclass(frozen=True)
class TrainRecipe:
    """How to fine-tune: the study's settings are the defaults (LoRA 256/0.2, lr 1e-4, GBS 64, MBS 1)."""

    method: Method = "lora"
    lora: LoraSpec | None = field(default_factory=LoraSpec)  # must be null for method full
    optim: OptimSpec = field(default_factory=OptimSpec)
    batch: BatchSpec = field(default_factory=BatchSpec)
    max_steps: int | None = 300  # exactly one of max_steps / max_epochs is set
    max_epochs: int | None = None
    seq_length: int = 4096
    packing: bool = False
    # activation recomputation (Korthikanti et al. 2022): selective recomputes the attention core (its
    # s x s scores are not kept), full keeps only each layer's input. Mapped by the bridge engine
    # (model.recompute_granularity) and the nemo engine (model.activations_checkpoint_granularity); the
    # local engine ignores it. Validation counts the activation memory it leaves (validate.py).
    activation_recompute: Recompute = "selective"
    precision: Precision = "bf16-mixed"
    parallel: ParallelSpec = field(default_factory=ParallelSpec)
    checkpoint: CheckpointSpec = field(default_factory=CheckpointSpec)
    data: DataSpec = field(default_factory=DataSpec)
    seed: int = 1234


@dataclass(frozen=True)
class RunSpec:
    """Everything a training run needs; written resolved to <run>/spec.yaml."""

    model: ModelSpec
    train: TrainRecipe


@dataclass(frozen=True)
class GenerateConfig:
    """Decoding settings. The study sampled: 128 tokens, temperature 0.7, top_k 50, top_p 0.9."""

    strategy: Strategy = "greedy"
    max_new_tokens: int = 128
    temperature: float = 1.0
    top_k: int = 0  # 0 = no top-k filter
    top_p: float = 1.0
    batch_size: int = 16
    seed: int = 1234


@dataclass(frozen=True)
class NemoScriptConfig:
    """One NeMo 1.x example script, its Hydra config and the fixed overrides we always pass."""

    script: str  # path inside the NeMo repo / container, e.g. examples/nlp/.../megatron_gpt_finetuning.py
    config_path: str  # Hydra --config-path (folder inside the NeMo checkout)
    config_name: str  # Hydra --config-name
    nemo_root: str = "/opt/NeMo"  # where NeMo is checked out in the container
    overrides: dict[str, str] = field(default_factory=dict)  # fixed Hydra overrides, key -> value text
