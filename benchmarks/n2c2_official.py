"""A transcription of the 2018 n2c2 track 2 official scorer's algorithm (``Track2-evaluate-ver4.py``), the
baseline of ``benchmarks/evaluate.py --official``.

Same reading (every ``.ann`` line split in Python, one object per tag and relation, discontinuous spans of
two or three fragments collapsed to first start / last end), same matching (for every system tag, a scan of
all gold tags of the label; a system tag that matches an already-matched gold tag is dropped, from a list,
with ``list.remove``), same passes (overall and once per label, strict and lenient, each a full pass over
the corpus) and the same count formulas (TP = distinct system ids that match; FP = system - TP;
FN = gold - TP). Only the printing differs: counts go out as JSON so the benchmark can assert that
``clinie-nemo score --rules n2c2_2018`` gives identical numbers. The official script is not vendored;
this is written from its published algorithm (../shared/notes/scoring.md).

    python benchmarks/n2c2_official.py GOLD_DIR SYSTEM_DIR [--json out.json]
"""

from __future__ import annotations

import argparse
import glob
import json
import os


class Tag:
    """ClinicalConcept: fields normalised with str()/strip() as the official class does."""

    def __init__(self, tid: str, start: int | str, end: int | str, ttype: str, text: str = "") -> None:
        self.tid = str(tid).strip()
        self.start = int(start)
        self.end = int(end)
        self.text = str(text).strip()
        self.ttype = str(ttype).strip()

    def span_matches(self, other: Tag, mode: str = "strict") -> bool:
        assert mode in ("strict", "lenient")
        if mode == "strict":
            return self.start == other.start and self.end == other.end
        return (self.end > other.start and self.start < other.end) or \
            (self.start < other.end and other.start < self.end)

    def equals(self, other: Tag, mode: str = "strict") -> bool:
        assert mode in ("strict", "lenient")
        return other.ttype == self.ttype and self.span_matches(other, mode)


class Rel:
    def __init__(self, rid: str, arg1: Tag, arg2: Tag, rtype: str) -> None:
        assert isinstance(arg1, Tag) and isinstance(arg2, Tag)
        self.rid, self.arg1, self.arg2, self.rtype = str(rid).strip(), arg1, arg2, str(rtype).strip()

    def equals(self, other: Rel, mode: str = "strict") -> bool:
        assert mode in ("strict", "lenient")
        return self.arg1.equals(other.arg1, mode) and self.arg2.equals(other.arg2, mode) and self.rtype == other.rtype


class Measures:
    """The official Measures class: type-checked counts; F computed from precision() and recall() calls."""

    def __init__(self, tp: int = 0, tn: int = 0, fp: int = 0, fn: int = 0) -> None:
        assert type(tp) is int and type(tn) is int and type(fp) is int and type(fn) is int
        self.tp, self.tn, self.fp, self.fn = tp, tn, fp, fn

    def precision(self) -> float:
        try:
            return self.tp / (self.tp + self.fp)
        except ZeroDivisionError:
            return 0.0

    def recall(self) -> float:
        try:
            return self.tp / (self.tp + self.fn)
        except ZeroDivisionError:
            return 0.0

    def f_score(self, beta: float = 1) -> float:
        assert beta > 0.0
        try:
            num = (1 + beta**2) * (self.precision() * self.recall())
            den = beta**2 * (self.precision() + self.recall())
            return num / den
        except ZeroDivisionError:
            return 0.0

    def f1(self) -> float:
        return self.f_score(beta=1)


def read_record(path: str) -> tuple[dict[str, Tag], dict[str, Rel]]:
    tags: dict[str, Tag] = {}
    rels: dict[str, Rel] = {}
    with open(path) as f:
        lines = f.readlines()
    for line in lines:
        if line.strip().startswith("T"):
            tid, middle, text = line.strip().split("\t")
            parts = middle.split(" ")
            ttype, start, end = parts[0], parts[1], parts[-1]  # 3, 4 or 5 fields: first start, last end
            tags[tid] = Tag(tid, int(start), int(end), ttype, text)
    for line in lines:
        if line.strip().startswith("R"):
            rid, middle = line.strip().split("\t")
            rtype, a1, a2 = middle.split(" ")
            rels[rid] = Rel(rid, tags[a1.split(":")[1]], tags[a2.split(":")[1]], rtype)
    return tags, rels


def pare_and_count(gold: list, system: list, mode: str, by_id: bool) -> tuple[int, int, int]:
    """The official SingleEvaluator body for one kind: drop system items that hit an already matched gold
    item, then TP = distinct matching system items (by id for tags, by object for relations)."""
    kept = list(system)
    matched: list = []
    for s in system:
        for g in gold:
            if g.equals(s, mode):
                if g not in matched:
                    matched.append(g)
                elif s in kept:
                    kept.remove(s)
    key = (lambda x: x.tid) if by_id else (lambda x: x)
    tp = len({key(s) for s in kept for g in gold if g.equals(s, mode)})
    return tp, len({key(s) for s in kept}) - tp, len(gold) - tp


def evaluate(docs: list, key: str | None, mode: str) -> dict[str, list[float]]:
    """One MultipleEvaluator pass: micro counts summed, and the per-document P/R/F summed for the macro row
    (the official computes both in every pass, overall and per label)."""
    totals: dict[str, list[float]] = {"tags": [0, 0, 0, 0.0, 0.0, 0.0], "relations": [0, 0, 0, 0.0, 0.0, 0.0]}
    for (g_tags, g_rels), (s_tags, s_rels) in docs:
        gol = [t for t in g_tags.values() if key is None or t.ttype == key]
        sys_ = [t for t in s_tags.values() if key is None or t.ttype == key]
        gol_r = [r for r in g_rels.values() if key is None or r.rtype == key]
        sys_r = [r for r in s_rels.values() if key is None or r.rtype == key]
        for target, counts in (("tags", pare_and_count(gol, sys_, mode, True)),
                               ("relations", pare_and_count(gol_r, sys_r, mode, False))):
            row = totals[target]
            for i, n in enumerate(counts):
                row[i] += n
            measures = Measures(tp=counts[0], fp=counts[1], fn=counts[2], tn=0)
            for i, name in enumerate(("precision", "recall", "f1"), 3):
                row[i] += getattr(measures, name)()
    for row in totals.values():
        row[3:] = [x / len(docs) for x in row[3:]] if docs else [0.0, 0.0, 0.0]
    return totals


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("gold")
    ap.add_argument("system")
    ap.add_argument("--json", help="write the counts here")
    args = ap.parse_args()
    names = sorted({os.path.basename(p) for p in glob.glob(os.path.join(args.gold, "*.ann"))}
                   & {os.path.basename(p) for p in glob.glob(os.path.join(args.system, "*.ann"))})
    docs = [(read_record(os.path.abspath(os.path.join(args.gold, n))),
             read_record(os.path.abspath(os.path.join(args.system, n)))) for n in names]
    tag_labels = sorted({t.ttype for (tags, _), _ in docs for t in tags.values()}, key=len)  # get_annotations
    rel_labels = sorted({r.rtype for (_, rels), _ in docs for r in rels.values()}, key=len)
    out: dict = {"documents": len(docs)}
    for mode in ("strict", "lenient"):
        overall = evaluate(docs, None, mode)
        out[mode] = {"tags": overall["tags"][:3], "relations": overall["relations"][:3],
                     "macro": {"tags": overall["tags"][3:], "relations": overall["relations"][3:]},
                     "by_label": {label: evaluate(docs, label, mode)["tags"][:3] for label in tag_labels},
                     "by_relation": {rel: evaluate(docs, rel, mode)["relations"][:3] for rel in rel_labels}}
    text = json.dumps(out, indent=1)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
