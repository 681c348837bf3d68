"""Benchmark: what the round-trip check (run on every render) costs, per target format, and the
round-trip figures on the synthetic corpora of all five datasets.

Everything is built here, offline: synthetic releases from clinie_nemo.corpus.synth (native layouts, read back
by the readers), rendered with clinie_nemo.instruct.render.render_documents. Throughput is records/s with the check
on versus off (the baseline, same run); the figures are counts of gold annotations recovered exactly.

    python benchmarks/roundtrip.py               # prints a markdown section for benchmarks/RESULTS.md
    python benchmarks/roundtrip.py --docs 40 --repeats 3
"""

from __future__ import annotations

import argparse
import datetime
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clinie_nemo.core import docs_jsonl  # noqa: E402
from clinie_nemo.corpus.datasets.convert import convert_dataset  # noqa: E402
from clinie_nemo.corpus.synth import GENERATOR_NAMES, generate  # noqa: E402
from clinie_nemo.instruct.formats import FORMATS  # noqa: E402
from clinie_nemo.instruct.render import RenderOptions, render_documents  # noqa: E402
from clinie_nemo.instruct.tasks import TASKS  # noqa: E402


def corpus(name: str, root: Path, n_docs: int, length: str) -> list:
    generate(name, root / name / "raw", n_docs, seed=11, length=length)
    convert_dataset(name, root / name / "raw", root / name / "docs", show_progress=False)
    return [d for f in sorted((root / name / "docs").glob("*.jsonl")) for d in docs_jsonl.read(f)]


def best_rate(docs: list, options: RenderOptions, repeats: int) -> tuple[float, int]:
    best = 0.0
    n = 0
    for _ in range(repeats):
        start = time.perf_counter()
        n = len(render_documents(docs, options).records)
        best = max(best, n / (time.perf_counter() - start))
    return best, n


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown CPU"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=20, help="documents per synthetic corpus")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=2048)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        long_notes = corpus("n2c2_2018", root / "long", args.docs, "n2c2")
        rows = []
        for fmt in sorted(FORMATS):
            for task in ("ce", "re_e2e"):
                on = RenderOptions(task=task, format=fmt, dataset="n2c2_2018", max_tokens=args.max_tokens)
                off = RenderOptions(task=task, format=fmt, dataset="n2c2_2018", max_tokens=args.max_tokens,
                                    check_roundtrip=False)
                rate_off, n = best_rate(long_notes, off, args.repeats)
                rate_on, _ = best_rate(long_notes, on, args.repeats)
                rows.append(f"| {task} | {fmt} | {n} | {rate_off:,.0f} | {rate_on:,.0f} | {rate_on / rate_off:.2f} |")
        figures = []
        for name in GENERATOR_NAMES:
            docs = corpus(name, root / "short", args.docs, "short")
            for task in sorted(TASKS):
                for fmt in sorted(FORMATS):
                    rt = render_documents(docs, RenderOptions(task=task, format=fmt, dataset=name)).roundtrip
                    parts = [f"{rt.recovered[k]}/{rt.gold[k]}" if rt.gold[k] else "-"
                             for k in ("entities", "relations", "events")]
                    figures.append(f"| {name} | {task} | {fmt} | {' | '.join(parts)} | "
                                   f"{sum(rt.losses.values()) + sum(rt.failures.values())} |")
    today = datetime.date.today().isoformat()
    print("## instruction rendering: round-trip check\n")
    print(f"Machine: {cpu_model()}, {len(__import__('os').sched_getaffinity(0))} CPUs, Python "
          f"{platform.python_version()}. Date: {today}. Command: `python benchmarks/roundtrip.py --docs {args.docs} "
          f"--repeats {args.repeats} --max-tokens {args.max_tokens}`.\n")
    print(f"{args.docs} synthetic n2c2-2018 notes of discharge-summary length (clinie_nemo.corpus.synth, `n2c2` length), "
          f"chunked to {args.max_tokens} tokens (fallback counter), best of {args.repeats}. Baseline: the same "
          "render with `check_roundtrip=False`.\n")
    print("| task | format | records | records/s, check off (baseline) | records/s, check on | ratio |")
    print("|---|---|---:|---:|---:|---:|")
    print("\n".join(rows))
    print(f"\nRound trip on the synthetic corpora ({args.docs} short documents each; recovered/gold, exact "
          "offsets, labels, attributes; losses + decode failures):\n")
    print("| dataset | task | format | entities | relations | events | losses |")
    print("|---|---|---|---:|---:|---:|---:|")
    print("\n".join(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
