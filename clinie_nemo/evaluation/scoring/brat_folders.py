"""Scoring two brat folders pair by pair, without building Documents: what ``clinie-nemo score --format brat``
runs.

Each ``.ann`` file is read with two whole-file regular expressions (plain ``T`` and ``R`` lines) straight
into matchable items (:mod:`clinie_nemo.evaluation.scoring.matching`), checked against its note exactly as the brat
reader checks them (offsets inside the note, the text column equal to the note's slice, ids unique,
relation arguments present). Any file with another kind of line, or a line that fails a check, takes the
named fallback: the full brat reader (:func:`clinie_nemo.corpus.readers.brat.read_pair`; for the system folder
with ``system=``: text column ignored, zero-length spans kept, as the official n2c2 script reads them), so
events, attributes, BOMs and every problem message behave exactly as when the folders are read as documents. The
counts are identical either way (``tests/evaluation/test_score_brat_folders.py`` checks both paths on the same files).

Documents are scored as they are read and only their counts are kept, so memory does not grow with the
notes; the cyclic garbage collector is paused while reading and scoring (nothing here forms cycles).
"""

from __future__ import annotations

import multiprocessing
import os
import re
from collections.abc import Collection
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinie_nemo.core.document import Document
from clinie_nemo.corpus.readers._common import Problems, read_note
from clinie_nemo.corpus.readers.brat import find_pairs, read_pair
from clinie_nemo.evaluation.scoring.docsets import Alignment, align_documents
from clinie_nemo.evaluation.scoring.items import entity_items, relation_items, relation_kept
from clinie_nemo.evaluation.scoring.n2c2 import isolated_keys, n2c2_counts
from clinie_nemo.evaluation.scoring.rules import N2C2, RuleSet
from clinie_nemo.evaluation.scoring.scorer import (
    MODES,
    DocumentScore,
    Scores,
    empty_like,
    gc_paused,
    kinds_of,
    score_document,
    score_items,
)

# The same line shapes as the reader's fast path (readers/brat_ann.py PLAIN_T_LINE / PLAIN_R_LINE), as
# whole-file patterns; a T line may carry more fragments (";START END" ...), written in ascending order.
T_LINES = re.compile(r"^(T\S*)\t(\S+) (\d+) (\d+)((?:;\d+ \d+)*)\t(.*)$", re.MULTILINE)
R_LINES = re.compile(r"^(R\S*)\t(\S+) Arg1:([^\s:]+) Arg2:([^\s:]+)$", re.MULTILINE)



@dataclass(frozen=True)
class Ref:
    """One document of a folder: its id and files (what docsets.align_documents pairs by id)."""

    id: str
    ann: Path | None
    txt: Path | None


@dataclass
class FolderScores:
    scores: Scores
    alignment: Alignment
    fast: int = 0  # documents scored from the plain lines
    fallback: int = 0  # documents that took the full reader
    tolerated: list[tuple[Path, int, str]] = field(default_factory=list)  # see readers/brat.py read_pair(system=)


def _fragments(first: tuple[int, int], more: str) -> tuple[tuple[int, int], ...] | None:
    spans = [first]
    for frag in more[1:].split(";"):
        start, _, end = frag.partition(" ")
        spans.append((int(start), int(end)))
    if any(spans[i][1] > spans[i + 1][0] for i in range(len(spans) - 1)):
        return None  # out of order or overlapping: the reader sorts and checks these
    return tuple(spans)


@dataclass
class PlainAnn:
    """The T and R lines of a plain ``.ann`` file: entities as flat ``(label, start, end)`` (the outer span
    of a discontinuous one, whose fragments are in ``fragments``), relations as (id, label, head, tail)."""

    entities: dict[str, tuple[str, int, int]]
    fragments: dict[str, tuple[tuple[int, int], ...]]
    relations: list[tuple[str, str, str, str]]


EMPTY = PlainAnn({}, {}, [])


def parse_plain(content: str, text: str) -> PlainAnn | None:
    """The annotations of an ``.ann`` file made only of plain T/R lines that all check out against
    ``text`` as the reader checks them; None when anything else is there (the caller then reads the file
    with the full reader)."""
    if "\r" in content:  # CRLF lines, as the reader takes them (readers/_common.read_annotation_lines)
        content = content.replace("\r\n", "\n")
        if "\r" in content:
            return None
    if content.startswith("\ufeff"):
        return None
    n = len(text)
    entities: dict[str, tuple[str, int, int]] = {}
    fragments: dict[str, tuple[tuple[int, int], ...]] = {}
    for tid, label, a, b, more, annotated in T_LINES.findall(content):
        s, e = int(a), int(b)
        if more:
            spans = _fragments((s, e), more)
            if spans is None or not all(0 <= x < y <= n for x, y in spans) or \
                    annotated != " ".join(text[x:y] for x, y in spans):
                return None
            fragments[tid] = spans
            e = spans[-1][1]
        elif not (0 <= s < e <= n and e - s == len(annotated) and text.startswith(annotated, s)):
            return None
        entities[tid] = (label, s, e)
    relations = R_LINES.findall(content)
    n_lines = content.count("\n") + (1 if content and not content.endswith("\n") else 0)
    if len(entities) + len(relations) != n_lines or len({r[0] for r in relations}) != len(relations):
        return None  # another kind of line, a blank line, or a duplicate id
    if any(r[2] not in entities or r[3] not in entities for r in relations):
        return None  # a missing argument: the reader reports it
    return PlainAnn(entities, fragments, relations)


def flat_keys(ann: PlainAnn, labels: Collection[str] | None, kinds: Collection[str]) -> dict[str, list[Any]]:
    """The keys of scoring/n2c2.py: entities ``(label, start, end)``, relations
    ``(label, head label, tail label, head start, head end, tail start, tail end)``, untyped ``(label, ...)``."""
    ents = ann.entities
    out: dict[str, list[Any]] = {}
    if "entities" in kinds:
        out["entities"] = list(ents.values()) if labels is None else [k for k in ents.values() if k[0] in labels]
    rels = [r for r in ann.relations if relation_kept(labels, r[1], ents[r[2]][0], ents[r[3]][0])]
    if "relations" in kinds:
        out["relations"] = [(label, h[0], t[0], h[1], h[2], t[1], t[2])
                            for _, label, head, tail in rels for h, t in ((ents[head], ents[tail]),)]
    if "relations_untyped" in kinds:
        out["relations_untyped"] = [(label, h[1], h[2], t[1], t[2])
                                    for _, label, head, tail in rels for h, t in ((ents[head], ents[tail]),)]
    return out


def plain_items(ann: PlainAnn, rules: RuleSet, labels: Collection[str] | None,
                kinds: Collection[str]) -> dict[str, list[Any]]:
    """The items of scoring/items.py (entity_items, relation_items) of a parsed plain file."""
    keyed: dict[str, tuple[str, Any, tuple[int, int]]] = {}  # id -> label, exact key, outer span
    entities = []
    for tid, (label, s, e) in ann.entities.items():
        segments = ((s, e),)
        spans = ann.fragments.get(tid)
        exact = spans if spans is not None and not rules.collapse_discontinuous else segments
        keyed[tid] = (label, exact, segments[0])
        if labels is None or label in labels:
            entities.append(((label,), exact, segments))
    out: dict[str, list[Any]] = {"entities": entities} if "entities" in kinds else {}
    for kind, typed in (("relations", True), ("relations_untyped", False)):
        if kind in kinds:
            out[kind] = [((label, keyed[head][0], keyed[tail][0]) if typed else (label,),
                          (keyed[head][1], keyed[tail][1]), (keyed[head][2], keyed[tail][2]))
                         for _, label, head, tail in ann.relations
                          if relation_kept(labels, label, keyed[head][0], keyed[tail][0])]
    return out


def document_items(doc: Any, rules: RuleSet, labels: Collection[str] | None,
                   kinds: Collection[str]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    if "entities" in kinds:
        out["entities"] = entity_items(doc, rules, labels)
    if "relations" in kinds:
        out["relations"] = relation_items(doc, rules, True, labels)
    if "relations_untyped" in kinds:
        out["relations_untyped"] = relation_items(doc, rules, False, labels)
    return out


def relation_labels(*folders: str | Path) -> tuple[set[str], list[tuple[str, str, str]]]:
    """The relation labels of the brat files under ``folders`` and every relation as (label, head label,
    tail label): what ``score --labels`` needs to keep relations by their arguments (items.KeptLabels)."""
    names: set[str] = set()
    rows: list[tuple[str, str, str]] = []
    for folder in folders:
        for ref in folder_refs(folder):
            if ref.ann is None:
                continue
            kinds: dict[str, str] = {}
            rels: list[list[str]] = []
            for line in Path(ref.ann).read_text(encoding="utf-8-sig", errors="replace").splitlines():
                ident, _, body = line.partition("\t")
                fields = body.split()
                if ident[:1] in "TE" and fields:
                    kinds[ident] = fields[0].split(":")[0]
                elif ident.startswith("R") and len(fields) >= 3:
                    rels.append(fields[:3])
            for label, head, tail in rels:
                names.add(label)
                rows.append((label, kinds.get(head.partition(":")[2], ""), kinds.get(tail.partition(":")[2], "")))
    return names, rows


def folder_refs(path: str | Path) -> list[Ref]:
    return [Ref(doc_id, ann, txt) for ann, txt, doc_id in find_pairs(Path(path))]


class _Notes:
    """Note texts by path, read once (a system folder without notes uses the gold folder's)."""

    def __init__(self) -> None:
        self.last: tuple[Path | None, tuple[str, bool] | None] = (None, None)

    def get(self, path: Path) -> tuple[str, bool] | None:
        if self.last[0] != path:
            try:
                self.last = (path, read_note(path))
            except (OSError, UnicodeDecodeError):
                self.last = (path, None)  # the reader reports it on the fallback path
        return self.last[1]


def _read_ann(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


PARALLEL_MIN_PAIRS = 2000  # below this, one process (a worker pool costs more than it saves)


def default_workers() -> int:
    """Worker processes for large folders: the CPUs this process may use, at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))


@dataclass
class _ChunkResult:
    docs: list[DocumentScore]
    fast: int
    fallback: int
    tolerated: list[tuple[Path, int, str]]
    gold_problems: list[Any]
    pred_problems: list[Any]


def _score_chunk(pairs: list[tuple[Ref, Ref | None]], rules: RuleSet, labels: Collection[str] | None,
                 wanted: list[str]) -> _ChunkResult:
    """Score consecutive document pairs: the plain path when both files are plain, else the full reader."""
    gold_problems, pred_problems = Problems(), Problems()
    notes, system_notes = _Notes(), _Notes()
    out = _ChunkResult([], 0, 0, [], [], [])
    flat = rules.multiple_matches == N2C2
    with gc_paused():
        for g, p in pairs:
            note = notes.get(g.txt) if g.txt is not None else None
            p_txt = (p.txt or g.txt) if p is not None else None
            g_content = _read_ann(g.ann) if g.ann is not None and note is not None and not note[1] else None
            g_ann = parse_plain(g_content, note[0]) if g_content is not None else None  # type: ignore[index]
            p_ann = EMPTY if p is None else None
            if g_ann is not None and p is not None and p_txt is not None:
                p_note = note if p_txt == g.txt else system_notes.get(p_txt)
                p_content = _read_ann(p.ann) if p.ann is not None and p_note is not None and not p_note[1] else None
                p_ann = parse_plain(p_content, p_note[0]) if p_content is not None else None  # type: ignore[index]
            if g_ann is not None and p_ann is not None:
                out.fast += 1
                score = DocumentScore(g.id, "")
                if flat:
                    add_n2c2_counts(score, g_ann, flat_keys(g_ann, labels, wanted), flat_keys(p_ann, labels, wanted))
                else:
                    p_items = plain_items(p_ann, rules, labels, wanted)
                    texts = (note[0], p_note[0] if p is not None else note[0])  # type: ignore[index]
                    score_items(score, {k: (gi, p_items[k]) for k, gi in plain_items(g_ann, rules, labels,
                                                                                     wanted).items()}, rules, texts)
                out.docs.append(score)
                continue
            out.fallback += 1
            gold_doc = read_pair(g.ann, g.txt, g.id, gold_problems)
            pred_doc = (read_pair(p.ann, p_txt, p.id, pred_problems, system=out.tolerated)
                        if p is not None and p_txt is not None else None)
            gold_problems.take()
            pred_problems.take()
            if gold_doc is None:
                continue
            if pred_doc is None and p is not None and p_txt is None:
                pred_doc = Document(p.id, "")
            out.docs.append(score_document(gold_doc, pred_doc if pred_doc is not None else empty_like(gold_doc),
                                           rules, labels, wanted))
    out.gold_problems, out.pred_problems = gold_problems.pending, pred_problems.pending
    return out


def score_brat_folders(gold_dir: str | Path, pred_dir: str | Path, rules: RuleSet,
                       labels: Collection[str] | None = None, kinds: Collection[str] | None = None,
                       workers: int | None = None) -> FolderScores:
    """Score every document pair of two brat folders under ``rules`` (document sets aligned by
    rules.documents, as docsets.align_documents does for documents). From PARALLEL_MIN_PAIRS pairs on, the
    pairs are split into ``workers`` consecutive chunks scored by worker processes (default: the usable
    CPUs, at most 8); results and problems are joined in document order, so the output does not depend
    on the number of workers."""
    gold_refs, pred_refs = folder_refs(gold_dir), folder_refs(pred_dir)
    alignment = align_documents(gold_refs, pred_refs, rules, str(gold_dir), str(pred_dir))  # type: ignore[arg-type]
    wanted = [k for k in kinds_of(rules) if kinds is None or k in kinds]
    pairs = alignment.pairs
    n = default_workers() if workers is None else max(1, workers)
    if workers is None and len(pairs) < PARALLEL_MIN_PAIRS:
        n = 1
    if n == 1:
        results = [_score_chunk(pairs, rules, labels, wanted)]
    else:
        size = -(-len(pairs) // n)
        chunks = [pairs[i:i + size] for i in range(0, len(pairs), size)]
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
        with ProcessPoolExecutor(len(chunks), mp_context=multiprocessing.get_context(method)) as pool:
            results = list(pool.map(_score_chunk, chunks, *([x] * len(chunks) for x in (rules, labels, wanted))))
    gold_problems, pred_problems = Problems(), Problems()
    for r in results:
        gold_problems.pending.extend(r.gold_problems)
        pred_problems.pending.extend(r.pred_problems)
    gold_problems.finish()
    pred_problems.finish()
    return FolderScores(Scores([d for r in results for d in r.docs], rules, tuple(wanted)), alignment,
                        sum(r.fast for r in results), sum(r.fallback for r in results),
                        [t for r in results for t in r.tolerated])


def add_n2c2_counts(score: DocumentScore, gold_ann: PlainAnn, gold: dict[str, list[Any]],
                    pred: dict[str, list[Any]]) -> None:
    """scoring/n2c2.py's counts of each kind. A gold relation's arguments are gold entities of this file:
    when both are isolated entities, the relation is an isolated key of its group too."""
    entities = isolated_keys(set(gold_ann.entities.values()), 1)
    for kind, g in gold.items():
        p = pred.get(kind, [])
        if not g and not p:
            continue
        width = 3 if kind == "relations" else 1
        if kind == "entities":
            isolated: set[Any] | None = entities
        elif kind == "relations":
            isolated = {k for k in g if (k[1], k[3], k[4]) in entities and (k[2], k[5], k[6]) in entities}
        else:  # an untyped group may mix argument labels: computed in n2c2_counts
            isolated = None
        for mode, rows in zip(MODES, n2c2_counts(g, p, width, isolated)):
            for label, row in rows.items():
                score.counts[(kind, mode, label)] = row
