"""What one engine cannot do: a run spec's impossible combinations for an engine fail before any job is queued.

:func:`check_for_engine` = the engine-independent rules (:mod:`clinie_nemo.engines.spec_checks`, which
every loader runs) + the engine's own (:func:`engine_problems`: formats, mapped settings, and weights plus
activations per GPU against the GPU's memory; one function per engine in :data:`ENGINE_PROBLEMS`, keyed
like :data:`clinie_nemo.engines.ENGINES`). Collects every problem and raises one ConfigError.

Imports: core, engines.spec, engines.spec_checks, and lazily engines.nemo_plan and engines.spec_loader (the
NeMo finetune script's megatron_amp_O2). Imported by: commands.train, study.validate.
"""

from __future__ import annotations

from collections.abc import Callable

from clinie_nemo.engines.spec import ModelSpec, RunSpec
from clinie_nemo.engines.spec_checks import raise_problems, run_spec_problems

# Weights alone must leave room for activations, CUDA/NCCL buffers and optimizer state on the GPUs the presets
# are sized for (80 GB A100/H100): at most 75% of 80 GB = 60 GB of weights per GPU. GatorTronGPT 20B:
# 44 layers x (4 x 6144^2 attention + 2 x 6144 x 24576 MLP) + 50257 x 6144 embedding + 2048 x 6144 positions
# = 20.25e9 parameters; in fp32 (4 B) on tensor=pipeline=1 that is 81.0 GB per GPU (does not even fit);
# bf16 weights (megatron_amp_O2, 2 B) give 40.5 GB, and tensor=2 halves the fp32 figure to 40.5 GB.
GPU_MEMORY_GB = 80
WEIGHT_SHARE = 0.75


def parameter_count(m: ModelSpec) -> int:
    """Weights of a GPT/Llama decoder from its architecture facts (biases and norms, <0.1%, left out)."""
    head_dim = m.hidden_size // max(1, m.num_attention_heads)
    attention = m.hidden_size * (2 * m.hidden_size + 2 * m.num_kv_heads * head_dim)  # q, o + k, v
    mlp = (3 if m.architecture == "llama" else 2) * m.hidden_size * m.ffn_hidden_size  # gated SwiGLU: 3
    embeddings = m.vocab_size * m.hidden_size * (2 if m.architecture == "llama" else 1)  # untied output
    if m.position_embedding == "learned_absolute":
        embeddings += m.max_seq_length * m.hidden_size
    return m.num_layers * (attention + mlp) + embeddings


def nemo_weight_problem(spec: RunSpec, bf16_weights: bool) -> str | None:
    """Weights per GPU over the budget above (NeMo 1.x keeps fp32 weights unless megatron_amp_O2)."""
    par = spec.train.parallel
    n = parameter_count(spec.model)
    per_byte = 2 if bf16_weights else 4
    gb = n * per_byte / (par.tensor * par.pipeline) / 1e9
    if gb <= GPU_MEMORY_GB * WEIGHT_SHARE:
        return None
    kind = "bf16" if bf16_weights else "fp32"
    return (f"engine nemo: model {spec.model.name} has {n / 1e9:.1f}B parameters in {kind}: {n / 1e9:.1f}B x "
            f"{per_byte} B / (tensor {par.tensor} x pipeline {par.pipeline}) = {gb:.1f} GB of weights per GPU, "
            f"more than {WEIGHT_SHARE:.0%} of an {GPU_MEMORY_GB} GB GPU before activations and optimizer "
            "state; raise parallel.tensor (or pipeline)"
            + ("" if bf16_weights else ", or use precision=bf16-mixed (the nemo engine then sets "
               "model.megatron_amp_O2=true: bf16 weights)"))


# Activations (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models",
# arXiv:2205.05198, Section 4 and Table 2): bytes one transformer layer keeps for the backward pass, with
# 16-bit activations, s tokens, micro batch b, hidden h, a heads, tensor parallel t:
#   no recompute, no sequence parallel   s*b*h*(10 + 24/t + 5*a*s/(h*t))      (eq. 2)
#   no recompute, sequence parallel      s*b*h*(34 + 5*a*s/h) / t             (eq. 3)
#   selective (attention core recomputed) the same without the 5*a*s/h term    (eq. 4, Table 2)
#   full (each layer's input only)       2*s*b*h, / t with sequence parallel  (Table 2)
# i.e. 34*s*b*h + 5*a*s^2*b per layer without parallelism. The 5*a*s^2*b term is the s x s attention scores,
# softmax and dropout mask; fused attention keeps none of it: Megatron-Bridge builds megatron-core models
# whose TransformerConfig.attention_backend defaults to AttnBackend.auto (megatron-core 0.19.0
# transformer/transformer_config.py:144, transformer/enums.py:51-58: Transformer Engine flash / cuDNN fused
# attention) and its recipes keep it; the NeMo 1.x scripts take attention from the restored .nemo
# (megatron_gpt_finetuning_config.yaml sets neither flash attention nor recompute), so the nemo engine counts
# the term unless activation_recompute drops it. Context parallelism splits s over its ranks
# (s/cp per GPU). Pipeline parallelism does not reduce it: with 1F1B the first stage holds p micro-batches
# of L/p layers, L layers' worth (Section 4.2.3). Weights + activations must fit ACTIVATION_SHARE of the GPU
# (the rest: CUDA context, NCCL buffers, allocator fragmentation); optimizer state is not counted here.
ACTIVATION_SHARE = 0.9


def activation_memory(spec: RunSpec, fused_attention: bool) -> tuple[float, str]:
    """(bytes of activations per GPU, the arithmetic as text) for the spec's first pipeline stage."""
    m, t = spec.model, spec.train
    par, b = t.parallel, t.batch.micro_batch_size
    s, h, a, layers, tp = t.seq_length // max(1, par.context), m.hidden_size, m.num_attention_heads, m.num_layers, \
        max(1, par.tensor)
    sp, mode = par.sequence_parallel and tp > 1, t.activation_recompute
    attention = 5 * a * s / h if mode == "none" and not fused_attention else 0.0
    if mode == "full":
        per_token, shape = (2 / tp if sp else 2.0), ("2/tensor" if sp else "2")
    elif sp:
        per_token, shape = (34 + attention) / tp, ("(34 + 5*a*s/h)/tensor" if attention else "34/tensor")
    else:
        per_token = 10 + 24 / tp + attention / tp
        shape = "10 + 24/tensor" + (" + 5*a*s/(h*tensor)" if attention else "")
    total = layers * b * s * h * per_token
    seq = f"seq {t.seq_length}" + (f"/context {par.context}" if par.context > 1 else "")
    text = (f"{layers} layers x micro_batch {b} x {seq} x hidden {h} x ({shape} = {per_token:.1f}) B "
            f"[recompute {mode}, tensor {tp}{', sequence parallel' if sp else ''}, "
            f"{'fused' if fused_attention else 'unfused'} attention, a={a}] = {total / 1e9:.1f} GB")
    return total, text


def memory_problem(spec: RunSpec, engine: str, bf16_weights: bool, fused_attention: bool) -> str | None:
    """Weights + activations per GPU over ACTIVATION_SHARE of the GPU, with the arithmetic."""
    par = spec.train.parallel
    n = parameter_count(spec.model)
    per_byte = 2 if bf16_weights else 4
    weights = n * per_byte / (par.tensor * par.pipeline)
    acts, text = activation_memory(spec, fused_attention)
    budget = GPU_MEMORY_GB * ACTIVATION_SHARE
    if (weights + acts) / 1e9 <= budget:
        return None
    hint = ("use activation_recompute=selective (or full)" if spec.train.activation_recompute == "none"
            else "use activation_recompute=full" if spec.train.activation_recompute == "selective" else "")
    hints = ", ".join(x for x in (hint, "raise parallel.tensor (with sequence_parallel=true) or context",
                                  "or lower batch.micro_batch_size / seq_length") if x)
    return (f"engine {engine}: model {spec.model.name} needs {(weights + acts) / 1e9:.1f} GB per GPU: weights "
            f"{n / 1e9:.1f}B x {per_byte} B / (tensor {par.tensor} x pipeline {par.pipeline}) = {weights / 1e9:.1f} "
            f"GB + activations {text} (Korthikanti et al. 2022, Table 2), more than {ACTIVATION_SHARE:.0%} of an "
            f"{GPU_MEMORY_GB} GB GPU = {budget:.0f} GB; {hints}")


def _bridge_problems(spec: RunSpec) -> list[str]:
    """Megatron-Bridge: HF checkpoints with a recipe, the mapped data settings, memory per GPU, an export."""
    m, t, par = spec.model, spec.train, spec.train.parallel
    p: list[str] = []
    if m.format != "hf":
        p.append(f"engine bridge imports HF checkpoints; model {m.name} has format {m.format} "
                 "(use --engine nemo for .nemo checkpoints)")
    if not m.bridge_recipe:
        p.append(f"engine bridge: model {m.name} names no Megatron-Bridge recipe (model.bridge_recipe)")
    if t.packing and t.batch.micro_batch_size != 1:
        p.append(f"engine bridge: packing needs micro_batch_size=1 (got {t.batch.micro_batch_size}); "
                 "packed sequences already fill a micro batch")
    if t.data.chat_template:
        p.append("engine bridge: chat_template=true needs conversation records; our records are "
                 "input/output pairs (use prompt_template)")
    if not t.data.prompt_template.endswith("{output}"):
        p.append(f"engine bridge: prompt_template {t.data.prompt_template!r} must end with {{output}}")
    if par.tensor >= 1 and par.pipeline >= 1 and par.context >= 1:
        # Bridge keeps bf16/fp16 parameters under bf16_mixed/fp16_mixed (fp32 main copies live in the
        # optimizer, not counted), fp32 under precision=32 (bridge_plan.FP32_MIXED_PRECISION)
        problem = memory_problem(spec, "bridge", t.precision != "32", fused_attention=True)
        if problem:
            p.append(problem)
    if t.method == "lora" and t.checkpoint.export == "none":
        # generation serves the HF adapter (vLLM) or merged weights (megatron-core); with neither it
        # would run the BASE model and report its output as the trained run's
        p.append("engine bridge: train.checkpoint.export=none with method=lora leaves nothing to generate "
                 "from but the base model; use checkpoint.export=adapter (vLLM serves it, megatron-core "
                 "merges it) or checkpoint.export=merged")
    return p


def _nemo_problems(spec: RunSpec) -> list[str]:
    """NeMo 1.x scripts: .nemo checkpoints, the settings the scripts map, weights and memory per GPU."""
    m, t, par = spec.model, spec.train, spec.train.parallel
    p: list[str] = []
    if m.format != "nemo":
        p.append(f"engine nemo (NeMo 1.x scripts) restores .nemo checkpoints; model {m.name} has "
                 f"format {m.format} (use --engine bridge or local for HF checkpoints)")
    if t.optim.schedule != "cosine":
        p.append(f"engine nemo: schedule {t.optim.schedule} is not mapped; the NeMo 1.x config uses "
                 "CosineAnnealing (schedule=cosine)")
    if par.context > 1:
        p.append("engine nemo: context parallelism is not mapped for NeMo 1.x SFT; use context=1")
    if t.packing:
        p.append("engine nemo: packing needs NeMo's offline packed .npy files; use packing=false "
                 "(or --engine bridge)")
    if t.data.chat_template:
        p.append("engine nemo: chat_template=true is not mapped; use prompt_template")
    if t.max_steps is None:
        # NeMo v2.4.0 megatron_gpt_sft_model.py:285-288: setup() raises unless trainer.max_steps > 0
        # (the training set is sized max_steps x global batch); max_epochs alone cannot run
        p.append("engine nemo needs train.max_steps (NeMo's SFT model sizes its dataset from "
                 "trainer.max_steps); set max_steps and max_epochs=null")
    if par.tensor >= 1 and par.pipeline >= 1:
        from clinie_nemo.engines.nemo_plan import megatron_amp_o2
        from clinie_nemo.engines.spec_loader import load_nemo_script_config

        bf16_weights = megatron_amp_o2(spec, load_nemo_script_config("finetune"))
        problem = nemo_weight_problem(spec, bf16_weights)
        if problem:
            p.append(problem)
        elif par.context >= 1:
            problem = memory_problem(spec, "nemo", bf16_weights, fused_attention=False)
            if problem:
                p.append(problem)
    return p


def _local_problems(spec: RunSpec) -> list[str]:
    """transformers + peft: data parallel only, one device per rank, HF folders."""
    m, par = spec.model, spec.train.parallel
    p: list[str] = []
    if par.model_parallel_size != 1:  # nodes x gpus_per_node: data-parallel ranks (engines/local/distributed.py)
        p.append("engine local runs on one device per rank (data parallel only): needs "
                 f"tensor=pipeline=context=1 (got tensor={par.tensor}, pipeline={par.pipeline}, "
                 f"context={par.context})")
    if par.sequence_parallel:
        p.append("engine local: sequence_parallel is not supported")
    if m.format != "hf":
        p.append(f"engine local loads HF folders; model {m.name} has format {m.format}")
    return p


# engine name -> what that engine cannot run; tests/engines/test_engine_registry.py checks every registered
# engine (clinie_nemo.engines.ENGINES) has an entry
ENGINE_PROBLEMS: dict[str, Callable[[RunSpec], list[str]]] = {
    "local": _local_problems,
    "bridge": _bridge_problems,
    "nemo": _nemo_problems,
}


def engine_problems(spec: RunSpec, engine: str) -> list[str]:
    """What ``engine`` cannot run in ``spec`` (nothing for a name without checks)."""
    check = ENGINE_PROBLEMS.get(engine)
    return check(spec) if check else []


def check_for_engine(spec: RunSpec, engine: str) -> None:
    raise_problems(run_spec_problems(spec) + engine_problems(spec, engine),
           f"run spec cannot run on engine {engine} (model {spec.model.name}, method {spec.train.method}):")

