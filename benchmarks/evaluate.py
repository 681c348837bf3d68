"""Benchmark: scoring 10,000 synthetic documents (entities + relations, strict and lenient).

Reports entities/s and documents/s of ``clinie_nemo.scoring.score_pairs`` (rules ``default``), peak
Python memory (tracemalloc), and the ratio against a naive all-pairs matcher measured in the same run
on the same documents (it compares every prediction with every gold annotation of a document and
must produce identical counts).

    python benchmarks/evaluate.py [--docs 10000] [--entities 60] [--seed 0]
"""

from __future__ import annotations

import argparse
import platform
import random
import resource
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clinie_nemo.document import Document, Entity, Relation  # noqa: E402
from clinie_nemo.scoring import RULES, score_pairs  # noqa: E402
from clinie_nemo.scoring.items import entity_items, relation_items  # noqa: E402
from clinie_nemo.scoring.matching import lenient_equal  # noqa: E402

LABELS = ("Drug", "Strength", "Dosage", "Frequency", "Route", "Form", "Duration", "Reason", "ADE")


def synth_pair(i: int, n_entities: int, rng: random.Random) -> tuple[Document, Document]:
    gold_e, pred_e, gold_r, pred_r = [], [], [], []
    pos = 0
    for k in range(n_entities):
        pos += rng.randint(2, 40)
        length = rng.randint(3, 20)
        label = rng.choice(LABELS)
        span = (pos, pos + length)
        gold_e.append(Entity(f"T{k}", label, (span,), ""))
        roll = rng.random()
        if roll < 0.70:
            pred_e.append(Entity(f"T{k}", label, (span,), ""))
        elif roll < 0.82:
            pred_e.append(Entity(f"T{k}", label, ((span[0] + 1, span[1]),), ""))  # off by one
        elif roll < 0.88:
            pred_e.append(Entity(f"T{k}", rng.choice(LABELS), (span,), ""))  # maybe wrong label
        # else missed
        if rng.random() < 0.05:
            pred_e.append(Entity(f"X{k}", label, ((pos + length + 1, pos + length + 4),), ""))  # spurious
        pos += length
    ids = {e.id for e in pred_e}
    for k in range(1, n_entities, 2):
        r = Relation(f"R{k}", "Attr-Drug", f"T{k}", f"T{k - 1}")
        gold_r.append(r)
        if f"T{k}" in ids and f"T{k - 1}" in ids and rng.random() < 0.8:
            pred_r.append(r)
    text = "x" * (pos + 10)
    return (Document(f"d{i}", text, entities=tuple(gold_e), relations=tuple(gold_r)),
            Document(f"d{i}", text, entities=tuple(pred_e), relations=tuple(pred_r)))


def naive_tp(gold: list, pred: list, lenient: bool) -> int:
    """One-to-one like the scorer (exact matches first, then overlap), by scanning all pairs."""
    used = [False] * len(gold)
    left = []
    tp = 0
    for p in pred:
        hit = next((i for i, g in enumerate(gold) if not used[i] and g[0] == p[0] and g[1] == p[1]), None)
        if hit is None:
            left.append(p)
        else:
            used[hit] = True
            tp += 1
    if lenient:
        order = sorted(range(len(gold)), key=lambda i: gold[i][2][0][0])
        for p in left:
            hit = next((i for i in order if not used[i] and lenient_equal(gold[i], p)), None)
            if hit is not None:
                used[hit] = True
                tp += 1
    return tp


def naive_score(pairs: list[tuple[Document, Document]]) -> Counter:
    rules = RULES["default"]
    totals: Counter = Counter()
    for gold, pred in pairs:
        for kind, g, p in (("entities", entity_items(gold, rules), entity_items(pred, rules)),
                           ("relations", relation_items(gold, rules, True), relation_items(pred, rules, True))):
            for mode in ("strict", "lenient"):
                tp = naive_tp(g, p, mode == "lenient")
                totals[(kind, mode, "tp")] += tp
                totals[(kind, mode, "fp")] += len(p) - tp
                totals[(kind, mode, "fn")] += len(g) - tp
    return totals


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        return f"{fields.get('Model name', '?').strip()}, {fields.get('CPU(s)', '?').strip()} CPUs"
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=10_000)
    ap.add_argument("--entities", type=int, default=60, help="gold entities per document")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="timed repetitions (best of N)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    pairs = [synth_pair(i, args.entities, rng) for i in range(args.docs)]
    n_gold = sum(len(g.entities) for g, _ in pairs)
    n_pred = sum(len(p.entities) for _, p in pairs)

    ours = naive_s = float("inf")
    for _ in range(args.repeat):  # interleaved, best of N: the machine is shared and noisy
        t0 = time.perf_counter()
        result = score_pairs(pairs, RULES["default"]).to_json()
        ours = min(ours, time.perf_counter() - t0)
        t0 = time.perf_counter()
        naive = naive_score(pairs)
        naive_s = min(naive_s, time.perf_counter() - t0)
    tracemalloc.start()  # a second, traced pass: tracing slows allocation, so it is not timed
    score_pairs(pairs, RULES["default"]).to_json()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    for kind in ("entities", "relations"):
        for mode in ("strict", "lenient"):
            for c in ("tp", "fp", "fn"):
                assert result[kind][mode][c] == naive[(kind, mode, c)], (kind, mode, c)

    print(f"machine: {cpu_model()}; python {platform.python_version()}; {time.strftime('%Y-%m-%d')}")
    print(f"documents: {args.docs}; gold entities: {n_gold}; predicted entities: {n_pred}; "
          f"relations: {sum(len(g.relations) for g, _ in pairs)}")
    print(f"best of {args.repeat}, interleaved")
    print(f"scorer: {ours:.2f} s = {args.docs / ours:,.0f} documents/s, {(n_gold + n_pred) / ours:,.0f} entities/s "
          f"(gold + predicted, strict + lenient, entities + relations)")
    print(f"peak traced memory while scoring (documents already in memory): {peak / 2**20:.1f} MiB")
    print(f"process max RSS (documents + scoring): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    print(f"naive all-pairs matcher: {naive_s:.2f} s; speed-up {naive_s / ours:.1f}x; counts identical")
    print(f"entities strict F1 {result['entities']['strict']['f1']:.4f}, lenient F1 "
          f"{result['entities']['lenient']['f1']:.4f}")


if __name__ == "__main__":
    main()
