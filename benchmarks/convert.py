"""Benchmark: converting synthetic n2c2-like brat notes (3-6 KB each) to documents JSONL.

Measures, each in its own single-threaded child process (so peak RSS is clean):
  * baseline ``read_files``: read and decode every .txt/.ann (the floor any converter pays),
  * baseline ``naive``: parse every note into memory first, then write (what streaming avoids),
  * ``reader``: the brat reader alone (``clinie_nemo.corpus.readers.READERS["brat"]``),
  * ``convert_dumps``: ``convert_dataset`` writing each line with the reference
    ``json.dumps(document_to_json(doc))`` instead of ``docs_jsonl.encode`` (same bytes; the writer's gain),
  * ``convert``: ``convert_dataset("n2c2_2018", ...)``: reader + schema validation + JSONL writing.
at 5,000 and 20,000 notes, and writes a ``## convert`` section into benchmarks/RESULTS.md, with every rate
also given as a ratio to the file-reading and naive baselines measured in the same run.

    python benchmarks/convert.py                  # 20,000 and 5,000 notes (about 2-4 minutes)
    python benchmarks/convert.py --docs 2000 --small 500 --no-write   # quick look
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "RESULTS.md"
# Earlier figures of this benchmark (same machine), kept in the section so the trend stays visible.
HISTORY = ("Before the brat fast paths and `docs_jsonl.encode` (main at e105498, 2026-11-30, same machine, "
           "20,000 notes): convert 1,362 notes/CPU-s (12.8 MB/s), reader 1,881, file reading 36,270, "
           "peak RSS 49 MB.")
MODES = ("read_files", "naive", "reader", "convert_dumps", "convert")


def child(mode: str, release: Path, out: Path) -> dict:
    """Run one mode in this process; returns docs, bytes, seconds and peak RSS."""
    start, cpu_start = time.perf_counter(), time.process_time()
    docs = 0
    if mode == "breakdown":
        return breakdown(release)
    if mode == "read_files":
        for p in sorted(release.rglob("*.ann")):
            p.read_bytes().decode("utf-8")
            p.with_suffix(".txt").read_bytes().decode("utf-8")
            docs += 1
    elif mode == "naive":
        from clinie_nemo.core import docs_jsonl
        from clinie_nemo.corpus import readers

        brat = readers.READERS["brat"]
        everything = [d for split in ("train", "test") for d in brat.read(release / split)]
        docs = len(everything)
        docs_jsonl.write(out / "all.jsonl", everything)
    elif mode == "reader":
        from clinie_nemo.corpus import readers

        for split in ("train", "test"):
            for _ in readers.READERS["brat"].read(release / split):
                docs += 1
    else:
        from clinie_nemo.core import docs_jsonl
        from clinie_nemo.core.document import document_to_json
        from clinie_nemo.corpus.datasets import convert_dataset

        if mode == "convert_dumps":  # the reference encoding docs_jsonl.encode must equal (tests check it)
            docs_jsonl.encode = lambda doc: json.dumps(document_to_json(doc), ensure_ascii=False)
        summary = convert_dataset("n2c2_2018", release, out / "docs", show_progress=False)
        docs = sum(s["documents"] for s in summary["splits"].values())
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {"mode": mode, "docs": docs, "seconds": seconds, "cpu_seconds": cpu,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def breakdown(release: Path, n: int = 1000) -> dict:
    """Where convert's CPU time goes, per note: the reader's top functions (cProfile, own time) and, on
    documents already in memory, schema validation, Document -> dict, and json.dumps."""
    import cProfile
    import itertools
    import pstats

    from clinie_nemo.core.docs_jsonl import encode
    from clinie_nemo.core.document import document_to_json
    from clinie_nemo.corpus import readers
    from clinie_nemo.corpus.datasets import get
    from clinie_nemo.corpus.datasets.validate import validate_issues

    profile = cProfile.Profile()
    profile.enable()
    docs = list(itertools.islice(readers.READERS["brat"].read(release / "train"), n))
    profile.disable()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    top = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)[:4]
    hot = [{"function": f"{Path(k[0]).name}:{k[1]}({k[2]})", "share_of_reader": v[2] / sum(x[2] for x in stats.values())}
           for k, v in top]
    spec = get("n2c2_2018")
    out = {"documents": len(docs), "reader_hot_spots": hot}
    for name, fn in (("validate", lambda d: validate_issues(d, spec)), ("to_dict", document_to_json),
                     ("json_dumps", None), ("encode", encode)):
        objs = [document_to_json(d) for d in docs] if fn is None else docs
        t = time.process_time()
        for o in objs:
            fn(o) if fn else json.dumps(o, ensure_ascii=False)
        out[f"{name}_ms"] = (time.process_time() - t) / len(docs) * 1e3
    return out


def run_child(mode: str, release: Path, work: Path) -> dict:
    out = Path(tempfile.mkdtemp(dir=work))
    cmd = [sys.executable, __file__, "--child", mode, str(release), str(out)]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]  # one core
    result = subprocess.run(cmd, capture_output=True, text=True, check=True)
    shutil.rmtree(out, ignore_errors=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def machine() -> str:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = re.search(r"Model name:\s*(.+)", lscpu)
        cpus = re.search(r"^CPU\(s\):\s*(\d+)", lscpu, re.M)
        return f"{model.group(1).strip() if model else platform.processor()}, {cpus.group(1) if cpus else os.cpu_count()} CPUs"
    except OSError:
        return f"{platform.processor()}, {os.cpu_count()} CPUs"


def input_mb(release: Path) -> float:
    return sum(p.stat().st_size for p in release.rglob("*") if p.is_file()) / 1e6


def write_section(text: str) -> None:
    """Replace (or append) the ``## convert`` section of RESULTS.md."""
    old = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(r"^## convert\n.*?(?=^## |\Z)", re.M | re.S)
    new = pattern.sub(text, old) if pattern.search(old) else old.rstrip("\n") + "\n\n" + text
    RESULTS.write_text(new, encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=20_000)
    ap.add_argument("--small", type=int, default=5_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    ap.add_argument("--child", nargs=3, metavar=("MODE", "RELEASE", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]), Path(args.child[2]))))
        return 0

    from clinie_nemo.corpus.synth import generate

    work = Path(tempfile.mkdtemp(prefix="bench_convert_"))
    try:
        rows = []
        gen = {}
        for n in (args.small, args.docs):
            t = time.perf_counter()
            generate("n2c2_2018", work / f"rel{n}", n, args.seed, length="n2c2")
            gen[n] = time.perf_counter() - t
            mb = input_mb(work / f"rel{n}")
            for mode in MODES:
                r = run_child(mode, work / f"rel{n}", work)
                r.update(n=n, mb=mb, docs_per_s=r["docs"] / r["cpu_seconds"], mb_per_s=mb / r["cpu_seconds"],
                         wall_docs_per_s=r["docs"] / r["seconds"])
                rows.append(r)
                print(f"{n:>6} {mode:<10} {r['docs_per_s']:>9.0f} docs/CPU-s {r['mb_per_s']:>7.1f} MB/CPU-s "
                      f"{r['wall_docs_per_s']:>9.0f} docs/wall-s  peak RSS {r['peak_rss_mb']:>7.1f} MB", flush=True)
            if n == args.small:
                split_costs = run_child("breakdown", work / f"rel{n}", work)
            shutil.rmtree(work / f"rel{n}", ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    by = {(r["n"], r["mode"]): r for r in rows}
    big, small = args.docs, args.small
    lines = [
        "## convert", "",
        f"`python benchmarks/convert.py` on {dt.date.today().isoformat()}, {machine()}; every measurement in its own "
        f"child process pinned to one core (`taskset -c 0`), Python {platform.python_version()}. Input: "
        f"synthetic 2018 n2c2 brat notes (`clinie-nemo synth --dataset n2c2_2018 --length n2c2`), "
        f"{by[(big, 'convert')]['mb']:.1f} MB of .txt+.ann for {big:,} notes "
        f"(generated at {big / gen[big]:,.0f} notes/s wall). The machine is shared by several jobs (load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the end), so rates are per CPU-second of the child "
        "(`time.process_time`), with wall-clock rates beside them; read the ratios.", "",
        "| notes | pass | notes/CPU-s | MB/CPU-s | x file reading | x naive | notes/wall-s | MB/wall-s | "
        "peak RSS (MB) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in (small, big):
        for mode in MODES:
            r = by[(n, mode)]
            ratio = r["docs_per_s"] / by[(n, "read_files")]["docs_per_s"]
            vs_naive = r["docs_per_s"] / by[(n, "naive")]["docs_per_s"]
            lines.append(f"| {n:,} | {mode} | {r['docs_per_s']:,.0f} | {r['mb_per_s']:.1f} | {ratio:.3f} | "
                         f"{vs_naive:.2f} | {r['wall_docs_per_s']:,.0f} | {r['mb'] / r['seconds']:.1f} | "
                         f"{r['peak_rss_mb']:.0f} |")
    conv_big, conv_small = by[(big, "convert")], by[(small, "convert")]
    naive_big, naive_small = by[(big, "naive")], by[(small, "naive")]
    files_big, files_small = by[(big, "read_files")], by[(small, "read_files")]
    reader_big, dumps_big = by[(big, "reader")], by[(big, "convert_dumps")]
    goal = "meets" if conv_big["docs_per_s"] >= 2000 else "misses"
    lines += [
        "",
        f"- `convert_dataset` (brat reader + schema validation + JSONL writing): **{conv_big['docs_per_s']:,.0f} "
        f"notes per CPU-second**, {conv_big['mb_per_s']:.1f} MB/s, at {big:,} notes; it {goal} the 2,000 notes/s "
        f"goal (wall clock on the shared machine: {conv_big['wall_docs_per_s']:,.0f} notes/s). "
        f"x{conv_big['docs_per_s'] / naive_big['docs_per_s']:.2f} the naive read-all-then-write baseline, "
        f"x{conv_big['docs_per_s'] / dumps_big['docs_per_s']:.2f} the same conversion writing lines with "
        f"`json.dumps(document_to_json(doc))`. The reader alone: {reader_big['docs_per_s']:,.0f} notes/s, i.e. "
        f"reading is {conv_big['docs_per_s'] / reader_big['docs_per_s']:.0%} of convert's CPU time, validation "
        f"+ JSONL writing the rest. Plain file reading: {files_big['docs_per_s']:,.0f} notes/s.",
        f"- Memory does not grow with the documents: convert's peak RSS is {conv_small['peak_rss_mb']:.0f} MB at "
        f"{small:,} notes and {conv_big['peak_rss_mb']:.0f} MB at {big:,}, the same as plain file reading "
        f"({files_small['peak_rss_mb']:.0f} / {files_big['peak_rss_mb']:.0f} MB), whose growth is the list of "
        f"file paths (about 1 KB per note). Reading everything first grows {naive_small['peak_rss_mb']:.0f} -> "
        f"{naive_big['peak_rss_mb']:.0f} MB (x{naive_big['peak_rss_mb'] / naive_small['peak_rss_mb']:.1f}).",
        f"- Where the time goes (per note, CPU, {split_costs['documents']:,} notes in memory): schema validation "
        f"{split_costs['validate_ms']:.3f} ms, the JSONL line by `docs_jsonl.encode` {split_costs['encode_ms']:.3f} "
        f"ms (the reference Document -> dict {split_costs['to_dict_ms']:.3f} ms + `json.dumps` "
        f"{split_costs['json_dumps_ms']:.3f} ms), against {1e3 / reader_big['docs_per_s']:.3f} ms for the reader. "
        "Reader hot spots (own time under cProfile): "
        + ", ".join(f"`{h['function']}` {h['share_of_reader']:.0%}" for h in split_costs["reader_hot_spots"]) + ".",
        f"- {HISTORY}",
        "",
    ]
    section = "\n".join(lines) + "\n"
    print(section)
    if not args.no_write:
        write_section(section)
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
