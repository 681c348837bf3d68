"""Benchmark of the local engine on CPU: training tokens/s (LoRA and full, padded and packed) and generation
tokens/s, batched versus one prompt at a time, for the tiny model, all in one run.

    python benchmarks/engine_local.py [--out benchmarks/engine_local.json] [--quick]

Synthetic clinical-style records (made up here, no real notes); the model is `tiny-model`'s default
(hidden 128, 4 layers) unless --hidden/--layers say otherwise. Prints a markdown table to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROBLEMS = ("chest pain", "shortness of breath", "fever", "hypertension", "type 2 diabetes", "cough", "anemia")
TESTS = ("chest x-ray", "CBC", "troponin", "ECG", "CT of the abdomen", "blood culture")
TREATMENTS = ("aspirin", "metoprolol", "insulin", "ceftriaxone", "furosemide", "heparin drip")


def clinical_records(n: int, seed: int = 0) -> list[dict]:
    """Records shaped like concept-extraction prompts: instruction + a note chunk -> 'label: text' lines."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        p, t, r = rng.choice(PROBLEMS), rng.choice(TESTS), rng.choice(TREATMENTS)
        chunk = (f"Patient is a {rng.randint(20, 90)} year old admitted with {p}. A {t} was obtained and was "
                 f"unremarkable. Started on {r} and monitored overnight. Plan: follow up in clinic.")
        rows.append({"id": f"bench/{i}", "input": "Extract all problems, tests and treatments from the note. "
                     f"Answer one per line as 'label: text'.\nNote: {chunk}",
                     "output": f"problem: {p}\ntest: {t}\ntreatment: {r}"})
    return rows


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name"))
        cpus = next(ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("CPU(s)"))
    except (OSError, StopIteration):
        model, cpus = platform.processor() or "unknown", "?"
    import torch

    return f"{model}, {cpus} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads)"


def train_rate(model_dir: Path, data_dir: Path, work: Path, steps: int, **kw) -> dict:
    from clinie_nemo.engines.local.settings import LocalSettings
    from clinie_nemo.engines.local.trainer import run_training

    base = dict(model_path=str(model_dir), lora_r=16, lora_alpha=32, lora_dropout=0.0,
                lora_targets=("linear_qkv", "linear_proj", "linear_fc1", "linear_fc2"), lr=1e-2,
                global_batch=8, micro_batch=8, max_steps=steps, seq_length=512, save_interval=10_000,
                log_interval=10_000)
    base.update(kw)
    run = work / f"run-{len(list(work.iterdir()))}"
    with contextlib.redirect_stderr(io.StringIO()):
        run_training(LocalSettings(**base), data_dir, run)
    m = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()][1:]  # skip warm-up step
    return {"tokens_per_s": statistics.median(x["tokens_per_s"] for x in m),
            "step_time_s": statistics.median(x["step_time_s"] for x in m), "loss_last": m[-1]["loss"]}


def generation_rate(model_dir: Path, records: list[dict], batch_size: int, new_tokens: int) -> dict:
    import torch

    from clinie_nemo.engines.local import data
    from clinie_nemo.engines.local.generation import GenOptions, generate_batch
    from clinie_nemo.engines.local.runtime import load_causal_lm, load_tokenizer

    tok, model = load_tokenizer(model_dir), load_causal_lm(model_dir).eval()
    prompts = sorted((data.prompt_ids(tok, r["input"] + " ", False) for r in records), key=len)
    opts = GenOptions(max_new_tokens=new_tokens, batch_size=batch_size)
    generate_batch(model, tok, prompts[:1], GenOptions(max_new_tokens=2), torch.device("cpu"))  # warm-up
    t0 = time.perf_counter()
    outputs = []
    for i in range(0, len(prompts), batch_size):
        outputs += generate_batch(model, tok, prompts[i:i + batch_size], opts, torch.device("cpu"))
    dt = time.perf_counter() - t0
    tokens = sum(len(o) for o, _ in outputs)
    return {"seconds": dt, "tokens": tokens, "tokens_per_s": tokens / dt, "outputs": [o for o, _ in outputs]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="", help="also write the figures as JSON here")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--steps", type=int, default=8, help="training steps per configuration")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=32)
    args = ap.parse_args()

    from clinie_nemo.engines.local.runtime import quiet_transformers
    from clinie_nemo.engines.local.tiny_model import TinyModelConfig, build_tiny_model

    quiet_transformers()
    work = Path(tempfile.mkdtemp(prefix="bench-local-"))
    data_dir = work / "data"
    data_dir.mkdir()
    records = clinical_records(256)
    (data_dir / "training.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    model_dir = work / "model"
    build_tiny_model(data_dir, model_dir, TinyModelConfig(hidden_size=args.hidden, num_layers=args.layers))
    runs = work / "runs"
    runs.mkdir()
    train_rate(model_dir, data_dir, runs, 4)  # warm-up: the first run in a process is several times slower
    rows = {}
    for name, kw in (("LoRA r16, padded", {}), ("LoRA r16, packed", {"packing": True}),
                     ("full, padded", {"method": "full", "lr": 3e-3}),
                     ("full, packed", {"method": "full", "lr": 3e-3, "packing": True})):
        rows[name] = train_rate(model_dir, data_dir, runs, args.steps, **kw)
    gen_records = clinical_records(args.prompts, seed=1)
    batched = generation_rate(model_dir, gen_records, args.prompts, args.new_tokens)
    single = generation_rate(model_dir, gen_records, 1, args.new_tokens)
    same = batched["outputs"] == single["outputs"]
    speedup = single["seconds"] / batched["seconds"]
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"machine: {machine()}; date {when}; model hidden {args.hidden} x {args.layers} layers\n")
    print("| training (GBS 8, MBS 8, seq <= 512) | tokens/s | step time (s) |")
    print("|---|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['tokens_per_s']:,.0f} | {r['step_time_s']:.3f} |")
    print(f"\n| generation ({args.prompts} prompts x {args.new_tokens} new tokens, greedy) | seconds | tokens/s |")
    print("|---|---:|---:|")
    print(f"| one prompt at a time (baseline) | {single['seconds']:.2f} | {single['tokens_per_s']:,.0f} |")
    print(f"| batched ({args.prompts} per batch, left padding) | {batched['seconds']:.2f} | "
          f"{batched['tokens_per_s']:,.0f} |")
    print(f"\nbatched / one-at-a-time speed-up: {speedup:.1f}x (goal >= 5x); identical greedy outputs: {same}")
    if args.out:
        for r in (batched, single):
            r.pop("outputs")
        Path(args.out).write_text(json.dumps({"machine": machine(), "date": when, "training": rows,
                                              "generation": {"batched": batched, "single": single,
                                                             "speedup": speedup, "identical": same}}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
