"""Engine-independent checks of a run spec and a generation config: what every loader runs.

:func:`check_run_spec` (the cross-field rules every engine shares) and :func:`check_generate_config`; each
collects every problem and raises one ConfigError. :mod:`clinie_nemo.engines.spec_loader` runs them on
every spec and generation config it loads; :mod:`clinie_nemo.engines.validate` adds what one engine cannot
do (it needs the engines' own settings, so it sits above the loader and the engines).

Imports: core.errors, engines.spec. Imported by: engines.spec_loader, engines.validate.
"""

from __future__ import annotations

from clinie_nemo.core.errors import ConfigError
from clinie_nemo.engines.spec import LORA_TARGETS, GenerateConfig, RunSpec


def raise_problems(problems: list[str], header: str) -> None:
    """One ConfigError: ``header`` and every problem on its own line (nothing when there is none)."""
    if problems:
        raise ConfigError(header + "\n  " + "\n  ".join(problems))


def run_spec_problems(spec: RunSpec) -> list[str]:
    m, t = spec.model, spec.train
    par, bat = t.parallel, t.batch
    p: list[str] = []
    for name in ("num_layers", "hidden_size", "ffn_hidden_size", "num_attention_heads", "num_kv_heads",
                 "vocab_size", "max_seq_length"):
        if getattr(m, name) < 1:
            p.append(f"model.{name} must be >= 1 (got {getattr(m, name)})")
    if m.num_kv_heads >= 1 and m.num_attention_heads % m.num_kv_heads:
        p.append(f"model.num_attention_heads={m.num_attention_heads} is not a multiple of "
                 f"model.num_kv_heads={m.num_kv_heads}")
    if m.num_attention_heads >= 1 and m.hidden_size % m.num_attention_heads:
        p.append(f"model.hidden_size={m.hidden_size} is not a multiple of "
                 f"model.num_attention_heads={m.num_attention_heads}")
    # method and LoRA
    if t.method == "full" and t.lora is not None:
        p.append("train.lora is set but train.method=full; remove the lora section (lora=null) "
                 "or use method=lora")
    if t.method == "lora":
        if t.lora is None:
            p.append("train.method=lora needs a train.lora section (dim, alpha, dropout, target_modules)")
        else:
            if t.lora.dim < 1:
                p.append(f"train.lora.dim must be >= 1 (got {t.lora.dim})")
            if t.lora.alpha < 1:
                p.append(f"train.lora.alpha must be >= 1 (got {t.lora.alpha})")
            if not 0.0 <= t.lora.dropout < 1.0:
                p.append(f"train.lora.dropout must be in [0, 1) (got {t.lora.dropout})")
            if not t.lora.target_modules:
                p.append("train.lora.target_modules is empty")
            for mod in t.lora.target_modules:
                if mod not in LORA_TARGETS:
                    p.append(f"train.lora.target_modules: unknown module {mod!r}; "
                             f"valid: {', '.join(LORA_TARGETS)}")
    if t.method == "full" and t.checkpoint.export == "adapter":
        p.append("train.checkpoint.export=adapter needs method=lora; full fine-tuning exports "
                 "merged (the full weights) or none")
    # length of training
    if (t.max_steps is None) == (t.max_epochs is None):
        p.append("set exactly one of train.max_steps and train.max_epochs (the other null)")
    for name in ("max_steps", "max_epochs"):
        v = getattr(t, name)
        if v is not None and v < 1:
            p.append(f"train.{name} must be >= 1 (got {v})")
    if t.seq_length < 16:
        p.append(f"train.seq_length must be >= 16 (got {t.seq_length})")
    if m.position_embedding == "learned_absolute" and t.seq_length > m.max_seq_length:
        p.append(f"train.seq_length={t.seq_length} exceeds what model {m.name} supports "
                 f"(model.max_seq_length={m.max_seq_length}); use seq_length={m.max_seq_length}")
    # optimiser
    o = t.optim
    if o.lr <= 0:
        p.append(f"train.optim.lr must be > 0 (got {o.lr})")
    if not 0 <= o.min_lr <= o.lr:
        p.append(f"train.optim.min_lr={o.min_lr} must be between 0 and lr={o.lr}")
    if o.warmup_steps < 0 or (t.max_steps is not None and o.warmup_steps >= t.max_steps):
        p.append(f"train.optim.warmup_steps={o.warmup_steps} must be >= 0 and < max_steps={t.max_steps}")
    if o.weight_decay < 0:
        p.append(f"train.optim.weight_decay must be >= 0 (got {o.weight_decay})")
    # parallelism
    for name in ("tensor", "pipeline", "context", "nodes", "gpus_per_node"):
        if getattr(par, name) < 1:
            p.append(f"train.parallel.{name} must be >= 1 (got {getattr(par, name)})")
    if any(getattr(par, n) < 1 for n in ("tensor", "pipeline", "context", "nodes", "gpus_per_node")):
        return p
    tp = par.tensor
    if m.num_attention_heads % tp:
        p.append(f"train.parallel.tensor={tp} does not divide model.num_attention_heads="
                 f"{m.num_attention_heads}")
    if m.num_kv_heads % tp:
        p.append(f"train.parallel.tensor={tp} does not divide model.num_kv_heads={m.num_kv_heads}")
    if tp > par.gpus_per_node or par.gpus_per_node % tp:
        p.append(f"train.parallel.tensor={tp} must divide train.parallel.gpus_per_node="
                 f"{par.gpus_per_node} (tensor parallelism stays inside one node)")
    if par.world_size % par.model_parallel_size:
        p.append(f"tensor*pipeline*context = {tp}*{par.pipeline}*{par.context} = {par.model_parallel_size} "
                 f"does not divide the world size nodes*gpus_per_node = {par.world_size}")
    if m.num_layers % par.pipeline:
        p.append(f"train.parallel.pipeline={par.pipeline} does not divide model.num_layers={m.num_layers}")
    if par.context > 1 and t.seq_length % (2 * par.context):
        p.append(f"train.seq_length={t.seq_length} must be a multiple of 2*context={2 * par.context}")
    if par.sequence_parallel and tp < 2:
        p.append("train.parallel.sequence_parallel=true needs tensor >= 2")
    # batch
    if bat.micro_batch_size < 1 or bat.global_batch_size < 1:
        p.append("train.batch sizes must be >= 1")
    elif par.world_size % par.model_parallel_size == 0:
        dp = par.data_parallel_size
        if bat.global_batch_size % (bat.micro_batch_size * dp):
            p.append(f"train.batch.global_batch_size={bat.global_batch_size} is not a multiple of "
                     f"micro_batch_size*data_parallel = {bat.micro_batch_size}*{dp} = "
                     f"{bat.micro_batch_size * dp}")
    if t.checkpoint.save_interval < 1:
        p.append(f"train.checkpoint.save_interval must be >= 1 (got {t.checkpoint.save_interval})")
    if t.checkpoint.keep_last < 1:
        p.append(f"train.checkpoint.keep_last must be >= 1 (got {t.checkpoint.keep_last})")
    d = t.data
    if not d.chat_template and ("{input}" not in d.prompt_template or "{output}" not in d.prompt_template):
        p.append(f"train.data.prompt_template={d.prompt_template!r} must contain {{input}} and {{output}}")
    if (not d.chat_template and "{input}" in d.prompt_template and "{output}" in d.prompt_template
            and d.prompt_template.index("{output}") < d.prompt_template.index("{input}")):
        p.append("train.data.prompt_template: {output} must come after {input}")
    if d.validation_interval < 0:
        p.append("train.data.validation_interval must be >= 0")
    return p


def check_run_spec(spec: RunSpec) -> None:
    raise_problems(run_spec_problems(spec), f"invalid run spec (model {spec.model.name}, method {spec.train.method}):")



def check_generate_config(cfg: GenerateConfig, source: str = "generate config") -> None:
    p: list[str] = []
    if cfg.max_new_tokens < 1:
        p.append(f"max_new_tokens must be >= 1 (got {cfg.max_new_tokens})")
    if cfg.batch_size < 1:
        p.append(f"batch_size must be >= 1 (got {cfg.batch_size})")
    if cfg.top_k < 0:
        p.append(f"top_k must be >= 0 (got {cfg.top_k})")
    if not 0.0 < cfg.top_p <= 1.0:
        p.append(f"top_p must be in (0, 1] (got {cfg.top_p})")
    if cfg.temperature <= 0:
        p.append(f"temperature must be > 0 (got {cfg.temperature}); use strategy=greedy for argmax decoding")
    if cfg.strategy == "greedy" and (cfg.temperature != 1.0 or cfg.top_k != 0 or cfg.top_p != 1.0):
        p.append("strategy=greedy ignores temperature/top_k/top_p; leave them at 1.0/0/1.0 or use "
                 "strategy=sample")
    raise_problems(p, f"{source}: invalid generation config:")
