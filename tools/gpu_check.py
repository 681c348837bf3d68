"""GPU check of the local engine: tokens/s and model FLOPs utilisation (MFU) of a ~0.85B Llama-architecture
model (random init, bf16 autocast, LoRA r=256, seq 4096), packed versus padded batches.

    python tools/gpu_check.py --out gpu_check.md [--steps 6] [--peak-tflops 989]

MFU = 6 * N * tokens/s / peak, with N the model's parameters without the input embedding and tokens/s the
real (non-padding) tokens trained per second. The 6N convention counts a full forward+backward; LoRA skips
the frozen weights' gradients (about a third of that) and attention's seq^2 term is not counted, so
this MFU is the customary, comparable figure, not a hardware counter. Peaks are dense bf16 without
sparsity: H100 SXM and H200 989 TFLOPS, H100 PCIe 756, A100 312 (NVIDIA datasheets).
Runs `tools/gpu_check.sh`; on a machine without CUDA it exits 3 after saying so.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import random
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NO_GPU_EXIT = 3
PEAK_BF16_TFLOPS = (("H200", 989.0), ("H100 PCIe", 756.0), ("H100", 989.0), ("A100", 312.0))


@dataclass(frozen=True)
class ModelShape:
    hidden: int = 2048
    layers: int = 16
    heads: int = 16
    kv_heads: int = 8
    ffn: int = 5632
    vocab: int = 32000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="gpu_check.md", help="markdown snippet for benchmarks/RESULTS.md")
    ap.add_argument("--json", default="", help="also write the figures as JSON")
    ap.add_argument("--work", default="", help="scratch folder (default: a temp folder)")
    ap.add_argument("--hidden", type=int, default=ModelShape.hidden)
    ap.add_argument("--layers", type=int, default=ModelShape.layers)
    ap.add_argument("--heads", type=int, default=ModelShape.heads)
    ap.add_argument("--kv-heads", type=int, default=ModelShape.kv_heads)
    ap.add_argument("--ffn", type=int, default=ModelShape.ffn)
    ap.add_argument("--vocab", type=int, default=ModelShape.vocab, help="tokenizer size asked for")
    ap.add_argument("--seq", type=int, default=4096, help="sequence length (packed row length)")
    ap.add_argument("--lora-r", type=int, default=256)
    ap.add_argument("--micro-batch", type=int, default=2)
    ap.add_argument("--global-batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=6, help="steps per configuration (the first is not timed)")
    ap.add_argument("--records", type=int, default=256)
    ap.add_argument("--peak-tflops", type=float, default=0.0, help="peak dense bf16 TFLOPS (default: by GPU name)")
    args = ap.parse_args(argv)
    if args.hidden % args.heads or args.heads % args.kv_heads:
        ap.error("hidden must divide by heads, and heads by kv heads")
    if args.global_batch % args.micro_batch:
        ap.error("global batch must be a multiple of micro batch")
    if args.steps < 2:
        ap.error("--steps must be >= 2 (the first step is not timed)")
    return args


def llama_params(s: ModelShape) -> dict[str, int]:
    """Parameter counts of a Llama decoder (untied embeddings, RMSNorm, SwiGLU, grouped-query attention)."""
    head = s.hidden // s.heads
    attn = 2 * s.hidden * s.hidden + 2 * s.hidden * s.kv_heads * head
    mlp = 3 * s.hidden * s.ffn
    layer = attn + mlp + 2 * s.hidden
    body = s.layers * layer + s.hidden
    return {"embedding": s.vocab * s.hidden, "non_embedding": body + s.vocab * s.hidden,
            "total": body + 2 * s.vocab * s.hidden}


def lora_params(s: ModelShape, r: int) -> int:
    """LoRA on q,k,v,o,gate,up,down: r * (in + out) per adapted matrix."""
    kv = s.kv_heads * (s.hidden // s.heads)
    per_layer = r * ((s.hidden + s.hidden) * 2 + (s.hidden + kv) * 2 + (s.hidden + s.ffn) * 3)
    return s.layers * per_layer


def mfu(tokens_per_s: float, n_params: int, peak_tflops: float) -> float:
    """Model FLOPs utilisation: 6 * N * tokens/s over the peak."""
    return 6.0 * n_params * tokens_per_s / (peak_tflops * 1e12)


def peak_for(device_name: str) -> tuple[float, str]:
    for key, tflops in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return tflops, f"{key} dense bf16 {tflops:g} TFLOPS"
    return 0.0, ""


def synthetic_records(n: int, seq: int, seed: int = 0) -> list[dict]:
    """Records of very different lengths (~5%-90% of seq words) so padding wastes compute."""
    rng = random.Random(seed)
    words = [f"w{i}x" for i in range(3000)]
    rows = []
    for i in range(n):
        k = rng.randint(seq // 20, seq * 9 // 10)
        rows.append({"id": f"gpu/{i}", "input": " ".join(rng.choice(words) for _ in range(k)),
                     "output": " ".join(rng.choice(words) for _ in range(rng.randint(16, 128)))})
    return rows


def render(results: dict) -> str:
    lines = [f"### GPU check ({results['date']})", "",
             f"{results['device']}; torch {results['torch']}; peak used: {results['peak']}.",
             f"Model: Llama architecture, random init, {results['params_non_embedding'] / 1e9:.2f}B parameters "
             f"without input embedding ({results['shape']}); LoRA r={results['lora_r']} on q,k,v,o,gate,up,down "
             f"({results['lora_params'] / 1e6:.0f}M trainable); bf16 autocast; seq {results['seq']}; "
             f"global batch {results['global_batch']}, micro batch {results['micro_batch']}.", "",
             "| batches | real tokens/s | step time (s) | MFU (6N) | peak memory (GiB) |",
             "|---|---:|---:|---:|---:|"]
    for name, r in results["runs"].items():
        lines.append(f"| {name} | {r['tokens_per_s']:,.0f} | {r['step_time_s']:.3f} | {100 * r['mfu']:.1f}% | "
                     f"{r['peak_mem_gib']:.1f} |")
    lines += ["", "MFU = 6 x N x real tokens/s / peak (LoRA does less than 6N of work; attention not counted)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU visible; nothing measured", file=sys.stderr)
        return NO_GPU_EXIT
    from clinie_nemo.engines.local.runtime import quiet_transformers
    from clinie_nemo.engines.local.settings import LocalSettings
    from clinie_nemo.engines.local.tiny_model import TinyModelConfig, build_tiny_model
    from clinie_nemo.engines.local.trainer import run_training

    quiet_transformers()
    name = torch.cuda.get_device_name(0)
    peak, peak_text = (args.peak_tflops, f"{args.peak_tflops:g} TFLOPS (given)") if args.peak_tflops \
        else peak_for(name)
    if not peak:
        print(f"gpu_check: unknown peak for {name!r}; pass --peak-tflops", file=sys.stderr)
        return 2
    work = Path(args.work or tempfile.mkdtemp(prefix="gpu-check-"))
    data_dir = work / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "training.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in synthetic_records(args.records, args.seq)))
    model_dir = work / "model"
    print(f"gpu_check: building the random-init model in {model_dir}", file=sys.stderr)
    facts = build_tiny_model(data_dir, model_dir, TinyModelConfig(
        vocab_size=args.vocab, hidden_size=args.hidden, num_layers=args.layers, num_heads=args.heads,
        num_kv_heads=args.kv_heads, intermediate_size=args.ffn, max_position_embeddings=args.seq), force=True)
    shape = ModelShape(args.hidden, args.layers, args.heads, args.kv_heads, args.ffn, facts["vocab_size"])
    n = llama_params(shape)
    runs = {}
    for label, packing in (("packed", True), ("padded", False)):
        settings = LocalSettings(model_path=str(model_dir), lora_r=args.lora_r, lora_alpha=args.lora_r,
                                 lora_dropout=0.0, lora_targets=("linear_qkv", "linear_proj", "linear_fc1",
                                                                 "linear_fc2"),
                                 global_batch=args.global_batch, micro_batch=args.micro_batch,
                                 max_steps=args.steps, seq_length=args.seq, packing=packing,
                                 save_interval=10_000, log_interval=1, lr=1e-4)
        run = work / f"run-{label}"
        torch.cuda.reset_peak_memory_stats()
        with contextlib.redirect_stderr(io.StringIO()):
            run_training(settings, data_dir, run)
        m = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()][1:]
        tps = statistics.median(x["tokens_per_s"] for x in m)
        runs[f"{label} (micro batch {args.micro_batch})"] = {
            "tokens_per_s": tps, "step_time_s": statistics.median(x["step_time_s"] for x in m),
            "mfu": mfu(tps, n["non_embedding"], peak),
            "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30}
        print(f"gpu_check: {label}: {tps:,.0f} tokens/s", file=sys.stderr)
    results = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "device": name, "torch": torch.__version__, "peak": peak_text, "shape": str(shape),
               "params_non_embedding": n["non_embedding"], "lora_params": lora_params(shape, args.lora_r),
               "lora_r": args.lora_r, "seq": args.seq, "global_batch": args.global_batch,
               "micro_batch": args.micro_batch, "runs": runs}
    Path(args.out).write_text(render(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    print(render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
