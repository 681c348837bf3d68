"""Benchmark: the cost of per-template scoring (``by_template``) inside ``evaluate_predictions``.

Builds synthetic notes (one drug + strength per sentence), renders ``ce`` under every template
(``all_templates``), uses the targets as predictions with every fifth record answered ``[]``, and times
``evaluate_predictions`` with ``per_template=False`` (the baseline: parse, merge, score) and with
``per_template=True`` in the same run. Reports records/s and the ratio (with / without).

    python benchmarks/template_variance.py [--docs 300] [--sentences 40] [--repeat 3]
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clinie_nemo.core.document import Document, Entity, Relation  # noqa: E402
from clinie_nemo.core.progress import say  # noqa: E402
from clinie_nemo.engines.predictions import Prediction  # noqa: E402
from clinie_nemo.evaluation.evaluate import evaluate_predictions  # noqa: E402
from clinie_nemo.evaluation.scoring import RULES  # noqa: E402
from clinie_nemo.instruct.render import RenderOptions, render_documents  # noqa: E402


def note(i: int, sentences: int) -> Document:
    parts, entities, relations, pos = [], [], [], 0
    for k in range(sentences):
        drug, strength = f"drug{(i + k) % 11}", f"{k + 1} mg"
        sentence = f"Gave {drug} {strength} by mouth.\n"
        d0 = pos + 5
        s0 = d0 + len(drug) + 1
        entities += [Entity(f"T{2 * k + 1}", "Drug", ((d0, d0 + len(drug)),), drug),
                     Entity(f"T{2 * k + 2}", "Strength", ((s0, s0 + len(strength)),), strength)]
        relations.append(Relation(f"R{k + 1}", "Strength-Drug", f"T{2 * k + 2}", f"T{2 * k + 1}"))
        parts.append(sentence)
        pos += len(sentence)
    return Document(f"d{i:05d}", "".join(parts), "", "test", tuple(entities), tuple(relations))


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=300)
    ap.add_argument("--sentences", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    docs = [note(i, args.sentences) for i in range(args.docs)]
    records = render_documents(docs, RenderOptions(task="ce", format="json", max_tokens=400, all_templates=True,
                                                   check_roundtrip=False)).records
    preds = {r["id"]: Prediction(r["id"], "[]" if k % 5 == 0 else r["output"]) for k, r in enumerate(records)}
    rules = RULES["default"]
    say(f"{len(docs)} documents, {len(records)} records")
    base = best(lambda: evaluate_predictions(records, preds, docs, rules, per_template=False), args.repeat)
    full = best(lambda: evaluate_predictions(records, preds, docs, rules, per_template=True), args.repeat)
    spread = evaluate_predictions(records, preds, docs, rules).result["template_spread"]["entities"]
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("Model name")), "?")
    print(f"machine: {model}, {len(__import__('os').sched_getaffinity(0))} cores, Python {platform.python_version()}")
    print(f"{len(docs)} documents x {args.sentences} sentences, {len(records)} records "
          f"({spread['templates']} templates), best of {args.repeat}")
    print(f"| evaluate | wall s | records/s | ratio |\n|---|---|---|---|\n"
          f"| without by_template (baseline) | {base:.2f} | {len(records) / base:,.0f} | 1.00 |\n"
          f"| with by_template | {full:.2f} | {len(records) / full:,.0f} | {full / base:.2f} |")


if __name__ == "__main__":
    main()
