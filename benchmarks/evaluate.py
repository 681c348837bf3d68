"""Benchmark: scoring 10,000 synthetic documents (entities + relations, strict and lenient).

Default: entities/s and documents/s of ``clinie_nemo.evaluation.scoring.score_pairs`` (rules ``default``) on documents
in memory, peak Python memory (tracemalloc), and the ratio against a naive all-pairs matcher measured in
the same run on the same documents (it compares every prediction with every gold annotation of a document
and must produce identical counts).

``--official``: end to end against the official n2c2 scorer's algorithm. Synthetic 2018 n2c2 notes
(``clinie-nemo synth --length n2c2``) as a gold brat folder, a perturbed system folder (.ann only), then,
interleaved ``--repeat`` times, each in its own child process: ``benchmarks/n2c2_official.py`` (a
transcription of Track2-evaluate-ver4.py) and ``clinie-nemo score --format brat --rules n2c2_2018``.
Ours runs twice: ``--workers 1`` (one process) and the default (worker processes for 2,000+ notes). Reports
wall and CPU seconds (user + sys of the child and its workers), peak RSS, the ratios, and asserts that the
runs give identical TP/FP/FN overall, per entity label and per relation type, strict and lenient.

    python benchmarks/evaluate.py [--docs 10000] [--entities 60] [--seed 0]
    python benchmarks/evaluate.py --official [--docs 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clinie_nemo.core.document import Document, Entity, Relation  # noqa: E402
from clinie_nemo.evaluation.scoring import RULES, score_pairs  # noqa: E402
from clinie_nemo.evaluation.scoring.items import entity_items, relation_items  # noqa: E402
from clinie_nemo.evaluation.scoring.matching import lenient_equal  # noqa: E402

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


def perturb_system(gold: Path, system: Path, seed: int) -> None:
    """A system's .ann files: 70% of entities kept, 10% shifted by one character, 6% relabelled, the rest
    missed; 4% get an extra overlapping duplicate and 3% a spurious neighbour; 80% of the relations whose
    arguments survive. Text columns are the note's own slices (a valid system output)."""
    rng = random.Random(seed)
    system.mkdir()
    for ann in sorted(gold.glob("*.ann")):
        note = ann.with_suffix(".txt").read_bytes().decode("utf-8").replace("\n", " ").replace("\r", " ")
        out, kept, extra = [], set(), 0
        for line in ann.read_text(encoding="utf-8").splitlines():
            if line.startswith("T"):
                tid, mid, text = line.split("\t")
                parts = mid.split(" ")
                label, s, e = parts[0], int(parts[1]), int(parts[-1])
                r = rng.random()
                if len(parts) > 3 or r < 0.70 or (r < 0.80 and note[s + 1:e] != note[s + 1:e].strip()):
                    out.append(line)
                    kept.add(tid)
                elif r < 0.80:
                    out.append(f"{tid}\t{label} {s + 1} {e}\t{note[s + 1:e]}")
                    kept.add(tid)
                elif r < 0.86:
                    out.append(f"{tid}\t{rng.choice(LABELS)} {s} {e}\t{text}")
                    kept.add(tid)
                for lo, hi, chance in ((s, e - 1, 0.04), (e + 1, e + 4, 0.03)):
                    piece = note[lo:hi]
                    if len(parts) == 3 and rng.random() < chance and piece and piece == piece.strip():
                        extra += 1
                        out.append(f"T{1000 + extra}\t{label} {lo} {hi}\t{piece}")
            elif line.startswith("R"):
                rid, mid = line.split("\t")
                _, a1, a2 = mid.split(" ")
                if a1.split(":")[1] in kept and a2.split(":")[1] in kept and rng.random() < 0.8:
                    out.append(line)
        (system / ann.name).write_text("\n".join(out) + "\n", encoding="utf-8")


def run_child(cmd: list[str]) -> tuple[float, float, int]:
    """(wall s, CPU s = user + sys, peak RSS MiB) of one child process, which must succeed."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024


def official_counts(path: Path) -> dict:
    data = json.loads(path.read_text())
    out = {}
    for mode in ("strict", "lenient"):
        out[("entities", mode, "(all)")] = tuple(data[mode]["tags"])
        out[("relations", mode, "(all)")] = tuple(data[mode]["relations"])
        out.update({("entities", mode, k): tuple(v) for k, v in data[mode]["by_label"].items()})
        out.update({("relations", mode, k): tuple(v) for k, v in data[mode]["by_relation"].items()})
    return out


def our_counts(path: Path) -> dict:
    data = json.loads(path.read_text())
    out = {}
    for kind in ("entities", "relations"):
        for mode in ("strict", "lenient"):
            c = data[kind][mode]
            out[(kind, mode, "(all)")] = (c["tp"], c["fp"], c["fn"])
            for label, by in data[kind]["by_label"].items():
                out[(kind, mode, label)] = (by[mode]["tp"], by[mode]["fp"], by[mode]["fn"])
    return out


def official_main(args: argparse.Namespace) -> None:
    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="clinie-eval-bench-") as tmp:
        root = Path(tmp)
        subprocess.run([sys.executable, "-m", "clinie_nemo", "synth", "--dataset", "n2c2_2018", "--docs",
                        str(args.docs), "--length", "n2c2", "--seed", str(args.seed), "--output", str(root / "rel")],
                       check=True, cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        gold = root / "gold"
        gold.mkdir()
        for f in (root / "rel").rglob("*"):
            if f.suffix in (".ann", ".txt"):
                f.rename(gold / f.name)
        perturb_system(gold, root / "system", args.seed)
        n_ann = sum(1 for _ in gold.glob("*.ann"))
        mb = sum(f.stat().st_size for f in gold.iterdir()) / 1e6
        official_cmd = [sys.executable, str(repo / "benchmarks" / "n2c2_official.py"), str(gold),
                        str(root / "system"), "--json", str(root / "official.json")]
        ours_cmd = [sys.executable, "-m", "clinie_nemo", "score", "--gold", str(gold), "--pred",
                    str(root / "system"), "--format", "brat", "--rules", "n2c2_2018", "--json",
                    str(root / "ours.json"), "--force"]
        runs: dict[str, list[tuple[float, float, int]]] = {"official": [], "ours-1": [], "ours": []}
        for _ in range(args.repeat):  # interleaved: the machine may be shared
            runs["official"].append(run_child(official_cmd))
            runs["ours-1"].append(run_child([*ours_cmd, "--workers", "1"]))
            runs["ours"].append(run_child(ours_cmd))
        a, b = official_counts(root / "official.json"), our_counts(root / "ours.json")
        missing = [k for k in a if b.get(k) != a[k]]
        assert not missing, f"counts differ: {[(k, a[k], b.get(k)) for k in missing[:5]]}"
    best = {name: (min(r[0] for r in rs), min(r[1] for r in rs), max(r[2] for r in rs)) for name, rs in runs.items()}
    print(f"machine: {cpu_model()}; python {platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M')}; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{n_ann:,} note pairs ({mb:.0f} MB gold .txt+.ann), best of {args.repeat} interleaved; "
          f"counts identical on {len(a)} rows (overall, per label, per relation; strict and lenient)")
    from clinie_nemo.evaluation.scoring.brat_folders import default_workers

    print("| scorer | wall s | CPU s (all processes) | notes/wall-s | peak RSS MiB (largest process) | "
          "wall ratio | CPU ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, label in (("official", "official n2c2 algorithm (transcription), one process"),
                        ("ours-1", "clinie-nemo score --format brat --workers 1"),
                        ("ours", f"clinie-nemo score --format brat ({default_workers()} worker processes, "
                                 "the default here)")):
        wall, cpu, rss = best[name]
        print(f"| {label} | {wall:.2f} | {cpu:.2f} | {n_ann / wall:,.0f} | {rss} | "
              f"{best['official'][0] / wall:.1f}x | {best['official'][1] / cpu:.1f}x |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=10_000)
    ap.add_argument("--entities", type=int, default=60, help="gold entities per document")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="timed repetitions (best of N)")
    ap.add_argument("--official", action="store_true", help="end to end against the official n2c2 algorithm")
    args = ap.parse_args()
    if args.official:
        official_main(args)
        return
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
