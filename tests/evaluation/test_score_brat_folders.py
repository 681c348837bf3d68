"""The streamed brat-folder scorer (scoring/brat_folders.py) and the n2c2 counting on flat keys
(scoring/n2c2.py): counts identical to a literal transcription of the official pare-down loops on random
spans (duplicates, overlaps, crowded groups), and identical to scoring documents read by the brat reader,
on the plain path and on the fallback path alike."""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from clinie_nemo.corpus.readers import READERS
from clinie_nemo.corpus.readers._common import Problems, read_note
from clinie_nemo.corpus.readers.brat import read_pair
from clinie_nemo.evaluation.scoring import RULES, score_pairs
from clinie_nemo.evaluation.scoring.brat_folders import parse_plain, score_brat_folders
from clinie_nemo.evaluation.scoring.n2c2 import n2c2_counts
from tests.cli_plugin import cli as run_cli
from tests.hypothesis_profiles import examples


class Obj:
    """A tag or relation of the official script: compared by type and spans, identity in its lists."""

    def __init__(self, key: tuple):
        self.key = key

    def equals(self, other: Obj, lenient: bool, width: int) -> bool:
        if self.key[:width] != other.key[:width]:
            return False
        pairs = range(width, len(self.key), 2)
        if not lenient:
            return self.key[width:] == other.key[width:]
        return all(self.key[i] < other.key[i + 1] and other.key[i] < self.key[i + 1] for i in pairs)


def official(gold: list[tuple], pred: list[tuple], width: int, lenient: bool) -> dict[str, list[int]]:
    """Track2-evaluate-ver4's SingleEvaluator loops, literally, once per label (MultipleEvaluator(key=...))."""
    out = {}
    for label in {k[0] for k in gold} | {k[0] for k in pred}:
        gol = [Obj(k) for k in gold if k[0] == label]
        sys_ = [Obj(k) for k in pred if k[0] == label]
        kept = list(sys_)
        matched: list = []
        for s in sys_:
            for g in gol:
                if g.equals(s, lenient, width):
                    if g not in matched:
                        matched.append(g)
                    elif s in kept:
                        kept.remove(s)
        tp = len({id(s) for s in kept for g in gol if g.equals(s, lenient, width)})
        out[label] = [tp, len(kept) - tp, len(gol) - tp]
    return out


span = st.tuples(st.integers(0, 12), st.integers(1, 5)).map(lambda t: (t[0], t[0] + t[1]))
entity = st.tuples(st.sampled_from("AB"), span).map(lambda t: (t[0], *t[1]))
relation = st.tuples(st.sampled_from(["R", "S"]), st.sampled_from("AB"), st.sampled_from("AB"), span, span).map(
    lambda t: (t[0], t[1], t[2], *t[3], *t[4]))


def once(keys: list[tuple]) -> list[tuple]:
    """Gold keys with repeats removed: the one deliberate difference from the official loops (scoring/n2c2.py)."""
    return list(dict.fromkeys(keys))


@settings(max_examples=examples(300))
@given(st.lists(entity, max_size=8), st.lists(entity, max_size=8))
def test_entity_counts_equal_the_official_loops(gold, pred):
    strict, lenient = n2c2_counts(gold, pred, 1)
    assert strict == official(once(gold), pred, 1, False)
    assert lenient == official(once(gold), pred, 1, True)


@settings(max_examples=examples(300))
@given(st.lists(relation, max_size=8), st.lists(relation, max_size=8))
def test_relation_counts_equal_the_official_loops(gold, pred):
    strict, lenient = n2c2_counts(gold, pred, 3)
    assert strict == official(once(gold), pred, 3, False)
    assert lenient == official(once(gold), pred, 3, True)


def test_repeated_gold_is_one_annotation_not_an_unavoidable_miss():
    # clinical-trials-gov repeats relation lines under new ids: the official loops mark both copies matched
    # by the first prediction and drop the second, so gold against itself misses one; here it scores 1.0
    gold = [("R", "A", "B", 0, 3, 5, 9), ("R", "A", "B", 0, 3, 5, 9)]
    assert official(gold, gold, 3, False) == {"R": [1, 0, 1]}
    assert n2c2_counts(gold, gold, 3) == ({"R": [1, 0, 0]}, {"R": [1, 0, 0]})


def test_crowded_group_takes_the_search_not_the_shortcut():
    # gold A 0-10 and A 5-15 overlap: a prediction equal to 0-10 also overlaps 5-15, which an earlier
    # prediction already matched, so the official script drops it (neither TP nor FP).
    gold = [("A", 0, 10), ("A", 5, 15)]
    pred = [("A", 12, 14), ("A", 0, 10)]
    assert n2c2_counts(gold, pred, 1)[1] == official(gold, pred, 1, True) == {"A": [1, 0, 1]}


def test_plain_parse_refuses_what_the_reader_must_see():
    text = "aspirin 81 mg daily"
    assert parse_plain("T1\tDrug 0 7\taspirin\nT2\tStrength 8 13\t81 mg\nR1\tStrength-Drug Arg1:T2 Arg2:T1\n", text)
    assert parse_plain("T1\tDrug 0 7\taspirin\r\n", text) is not None  # CRLF lines, like the reader
    for bad in ("T1\tDrug 0 7\tasprin\n",  # text column disagrees
                "T1\tDrug 0 7\taspirin\nA1\tNegated T1\n",  # another line type
                "T1\tDrug 0 7\taspirin\nT1\tDrug 8 10\t81\n",  # duplicate id
                "R1\tStrength-Drug Arg1:T2 Arg2:T1\n",  # missing arguments
                "T1\tDrug 0 7\taspirin\n\n",  # blank line
                "T1\tDrug 0 30\taspirin\n"):  # outside the note
        assert parse_plain(bad, text) is None, bad


def _perturb(gold: Path, pred: Path, seed: int) -> None:
    """A system folder (.ann only): shifted, relabelled, dropped and spurious entities; one file with an
    attribute line and one with a zero-length span, so both take the fallback path."""
    rng = random.Random(seed)
    pred.mkdir()
    for i, ann in enumerate(sorted(gold.rglob("*.ann"))):
        note = read_note(ann.with_suffix(".txt"))[0].replace("\n", " ").replace("\r", " ")
        out, kept, extra = [], set(), 0
        for line in ann.read_text(encoding="utf-8-sig").splitlines():
            if line.startswith("T"):
                tid, mid, text = line.split("\t")
                parts = mid.split(" ")
                label, s, e = parts[0], int(parts[1]), int(parts[-1])
                r = rng.random()
                if len(parts) > 3 or r < 0.6:
                    out.append(line)
                    kept.add(tid)
                elif r < 0.75 and note[s + 1:e].strip() == note[s + 1:e]:
                    out.append(f"{tid}\t{label} {s + 1} {e}\t{note[s + 1:e]}")
                    kept.add(tid)
                elif r < 0.85:
                    out.append(f"{tid}\t{rng.choice(['Drug', 'Dosage', 'ADE'])} {s} {e}\t{text}")
                    kept.add(tid)
                if rng.random() < 0.1 and e - s > 2 and note[s:e - 1].strip() == note[s:e - 1]:
                    extra += 1
                    out.append(f"T{900 + extra}\t{label} {s} {e - 1}\t{note[s:e - 1]}")
            elif line.startswith("R"):
                _, mid = line.split("\t")
                _, a1, a2 = mid.split(" ")
                if a1.split(":")[1] in kept and a2.split(":")[1] in kept and rng.random() < 0.8:
                    out.append(line)
        if i == 0 and kept:
            out.append(f"A1\tNegated {sorted(kept)[0]}")
        if i == 1:
            out.append("T999\tDrug 5 5\t")
        (pred / ann.name).write_text("\n".join(out) + "\n", encoding="utf-8")


def test_folders_score_exactly_like_documents_read_by_the_reader(tmp_path):
    release = tmp_path / "release"
    assert run_cli("synth", "--dataset", "n2c2_2018", "--docs", "24", "--seed", "5", "--output", release).returncode == 0
    gold = tmp_path / "gold"
    gold.mkdir()
    for f in release.rglob("*"):
        if f.is_file() and f.suffix in (".ann", ".txt"):
            (gold / f.name).write_bytes(f.read_bytes())
    pred = tmp_path / "pred"
    _perturb(gold, pred, seed=3)
    for name in ("n2c2_2018", "default"):
        rules = RULES[name]
        folders = score_brat_folders(gold, pred, rules)
        assert folders.fast > 0 and folders.fallback >= 2  # the attribute file and the zero-length span
        assert {what for _, _, what in folders.tolerated}  # the zero-length span, counted
        gold_docs = list(READERS["brat"].read(gold))
        problems, tolerated = Problems(), []
        pred_docs = {ann.stem: read_pair(ann, gold / f"{ann.stem}.txt", ann.stem, problems, system=tolerated)
                     for ann in sorted(pred.glob("*.ann"))}
        expected = score_pairs([(g, pred_docs[g.id]) for g in gold_docs], rules).to_json()
        got = folders.scores.to_json()
        for kind in ("entities", "relations"):
            assert got[kind]["strict"] == expected[kind]["strict"], (name, kind)
            assert got[kind]["lenient"] == expected[kind]["lenient"], (name, kind)
            assert got[kind]["by_label"] == expected[kind]["by_label"], (name, kind)
            assert got[kind]["macro"] == expected[kind]["macro"], (name, kind)
        assert got["entities"]["strict"]["tp"] > 0 and got["entities"]["strict"]["fp"] > 0
        parallel = score_brat_folders(gold, pred, rules, workers=3)  # three worker processes, same result
        assert parallel.scores.to_json() == got and (parallel.fast, parallel.fallback) == (folders.fast,
                                                                                          folders.fallback)
        assert [d.doc_id for d in parallel.scores.documents] == [d.doc_id for d in folders.scores.documents]


def test_score_cli_on_folders_reports_the_tolerated_lines(tmp_path):
    gold, pred = tmp_path / "gold", tmp_path / "pred"
    gold.mkdir()
    pred.mkdir()
    (gold / "a.txt").write_text("aspirin 81 mg daily\n", encoding="utf-8")
    (gold / "a.ann").write_text("T1\tDrug 0 7\taspirin\nT2\tStrength 8 13\t81 mg\n", encoding="utf-8")
    (pred / "a.ann").write_text("T1\tDrug 0 7\tSECRET\nT2\tStrength 8 13\t81 mg\n", encoding="utf-8")
    r = run_cli("score", "--gold", gold, "--pred", pred, "--format", "brat", "--rules", "n2c2_2018")
    assert r.returncode == 0, r.stderr
    assert "warning" in r.stderr and "SECRET" not in r.stderr and "aspirin" not in r.stderr
    assert "entities           (micro)                      strict         2       0       0" in r.stdout
