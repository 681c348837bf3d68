"""One duplicate rule for `evaluate` and `score` (issue 17): a line an answer repeats is one more prediction
under ``duplicates=count`` and one under ``set``; the same mention from two overlapping chunks is one
prediction either way. For the same predictions, ``evaluate``'s counts equal ``score``'s on the brat
documents ``evaluate --brat-out`` writes, in every rule set of RULES, plus the unplaced predictions (which
have no span to write) as false positives counted under the same rule."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from clinie_nemo.core import docs_jsonl
from clinie_nemo.core.document import Document, Entity, Event, EventArgument, Relation
from clinie_nemo.core.fileio import write_jsonl
from clinie_nemo.corpus.writers import WRITERS
from clinie_nemo.evaluation.scoring.rules import COUNT, RULES, SET
from tests.cli_plugin import cli

TEXT_A = "Aspirin 81 mg daily. Heparin drip. Stop ibuprofen and heparin today."
TEXT_B = "Heparin drip started."
TEXT_C = "Smokes daily. Quit 2010."
OVERLAP = (21, 35)  # "Heparin drip. " lies in both ce chunks of note a


def corpus() -> list[Document]:
    a = Document("a", TEXT_A, "dup", "test", entities=(
        Entity("T1", "Drug", ((0, 7),), "Aspirin"), Entity("T2", "Strength", ((8, 13),), "81 mg"),
        Entity("T3", "Drug", ((21, 28),), "Heparin"), Entity("T4", "Form", ((29, 33),), "drip"),
        Entity("T5", "Drug", ((40, 49),), "ibuprofen"), Entity("T6", "Drug", ((54, 61),), "heparin")),
        relations=(Relation("R1", "Strength-Drug", "T2", "T1"),))
    b = Document("b", TEXT_B, "dup", "test", entities=(
        Entity("T1", "Drug", ((0, 7),), "Heparin"), Entity("T2", "Form", ((8, 12),), "drip")))
    c = Document("c", TEXT_C, "dup", "test", entities=(
        Entity("T1", "Tobacco", ((0, 6),), "Smokes"), Entity("T2", "Status", ((7, 12),), "daily")),
        events=(Event("E1", "Tobacco", "T1", (EventArgument("Status", "T2"),)),))
    return [a, b, c]


def record(rid: str, doc: str, task: str, chunk: tuple[int, int]) -> dict:
    return {"id": rid, "doc_id": doc, "dataset": "dup", "task": task, "format": "lines", "chunk": list(chunk),
            "template": "t", "template_hash": "h", "input": "PROMPT", "output": ""}


RECORDS = [
    record("a/ce/0", "a", "ce", (0, 35)),
    record("a/ce/1", "a", "ce", (OVERLAP[0], len(TEXT_A))),
    record("b/ce/0", "b", "ce", (0, len(TEXT_B))),
    record("a/re_e2e/0", "a", "re_e2e", (0, len(TEXT_A))),
    record("b/re_e2e/0", "b", "re_e2e", (0, len(TEXT_B))),
    record("c/ce/0", "c", "ce", (0, len(TEXT_C))),
    record("c/re_e2e/0", "c", "re_e2e", (0, len(TEXT_C))),
]

PREDICTIONS = {
    # Aspirin said twice; Heparin twice here and once by the overlapping chunk (max: 2); drip once by each
    # chunk (1); warfarin (not in the note) said twice; Dose (no such label) once
    "a/ce/0": "Drug | Aspirin\nDrug | Aspirin\nStrength | 81 mg\nDrug | Heparin\nDrug | Heparin\nForm | drip\n"
              "Drug | warfarin\nDrug | warfarin\nDose | 81 mg",
    "a/ce/1": "Drug | Heparin\nForm | drip\nDrug | ibuprofen\nDrug | heparin",
    "b/ce/0": "Drug | Heparin\nForm | drip\nForm | drip",
    # the relation line said twice; a relation whose argument (80 mg) is not in the note, said twice
    "a/re_e2e/0": "Drug | Aspirin\nStrength | 81 mg\n=> Strength-Drug | 2 | 1\n=> Strength-Drug | 2 | 1\n"
                  "Strength | 80 mg\n=> Strength-Drug | 3 | 1\n=> Strength-Drug | 3 | 1",
    "b/re_e2e/0": "Drug | Heparin",
    "c/ce/0": "Tobacco | Smokes\nStatus | daily",
    # an event: its trigger and its argument relation said twice (entities count the repeat, the event is
    # merged once); a trigger not in the note (Vapes) with an argument relation: unplaced, once under events
    "c/re_e2e/0": "Tobacco | Smokes\nTobacco | Smokes\nStatus | daily\n=> Status | 1 | 3\n=> Status | 1 | 3\n"
                  "Tobacco | Vapes\n=> Status | 4 | 3",
}


def unplaced_fp(task: str, kind: str, duplicates: str) -> int:
    """The false positives of predictions that have no span (not in the brat files evaluate writes)."""
    count = duplicates == COUNT
    if task == "ce":
        return {"entities": (2 if count else 1) + 1}.get(kind, 0)  # warfarin x2, Dose
    # 80 mg and Vapes; the Strength-Drug relation to 80 mg said twice; under events: the trigger Vapes and
    # its Status argument, each once (events are merged once)
    return {"entities": 2, "relations": 2 if count else 1, "relations_untyped": 2 if count else 1,
            "events": 2}.get(kind, 0)


# variants of the default rules that only this test registers: duplicates as a set, and label-free spans
VARIANTS = {"default+set": {"duplicates": SET}, "default+spans": {"duplicates": SET, "ignore_labels": True}}


@pytest.fixture(autouse=True)
def variants(monkeypatch):
    for name, fields in VARIANTS.items():
        monkeypatch.setitem(RULES, name, replace(RULES["default"], name=name, **fields))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dup")
    docs_jsonl.write(tmp / "docs.jsonl", corpus())
    write_jsonl(tmp / "test.jsonl", RECORDS)
    write_jsonl(tmp / "pred.jsonl", [{"id": k, "prediction": v} for k, v in PREDICTIONS.items()])
    WRITERS["brat"].write(corpus(), tmp / "gold")
    return tmp


def evaluate(tmp, name: str) -> dict:
    out = tmp / name
    r = cli("evaluate", "--records", tmp / "test.jsonl", "--predictions", tmp / "pred.jsonl", "--corpus",
            tmp / "docs.jsonl", "--rules", name, "--json", out / "scores.json", "--brat-out", out / "brat", "--force")
    assert r.returncode == 0, r.stderr
    return json.loads((out / "scores.json").read_text())


def counts(block: dict, mode: str) -> tuple[int, int, int]:
    return tuple(block[mode][c] for c in ("tp", "fp", "fn"))


def test_repeated_lines_count_under_count_and_once_under_set(files):
    """The default rules count every line; a set rule set counts a repeated line once; the mention the two
    overlapping chunks both found is one prediction under both (merging chunks is not duplication)."""
    s = evaluate(files, "default")
    assert RULES["default"].duplicates == COUNT
    ents = s["by_task"]["ce"]["entities"]
    # 10 gold entities all found; FP: Aspirin again, Heparin again (chunk 0 said it twice), drip again (b),
    # warfarin twice, Dose; the overlap's drip and Heparin of chunk 1 add nothing
    assert counts(ents, "strict") == (10, 6, 0)
    assert ents["by_label"]["Form"]["strict"]["fp"] == 1
    assert ents["by_label"]["Drug"]["strict"]["fp"] == 4
    assert ents["by_label"]["unplaced:invalid_label"]["strict"]["fp"] == 1
    rels = s["by_task"]["re_e2e"]["relations"]
    assert counts(rels, "strict") == (1, 3, 0)  # the repeat, and the unplaced relation said twice
    e2e = s["by_task"]["re_e2e"]
    assert e2e["entities"]["by_label"]["Tobacco"]["strict"]["fp"] == 2  # Smokes again, Vapes
    assert counts(e2e["events"], "strict") == (2, 2, 0)  # trigger + argument once; Vapes and its argument
    # Aspirin, Heparin, warfarin, drip (b), the two relation lines (a), Smokes and its relation line (c)
    assert s["parse"]["repeated"] == 8
    ann = (files / "default" / "brat" / "ce" / "a.ann").read_text()
    assert ann.count("\tDrug 0 7\tAspirin") == 2 and ann.count("\tForm 29 33\tdrip") == 1

    s = evaluate(files, "default+set")
    ents = s["by_task"]["ce"]["entities"]
    assert counts(ents, "strict") == (10, 2, 0)  # warfarin once, Dose; the placed repeats are one prediction
    assert counts(s["by_task"]["re_e2e"]["relations"], "strict") == (1, 1, 0)
    assert s["parse"]["repeated"] == 8  # the parse statistics do not depend on the rules


@pytest.mark.parametrize("name", sorted(RULES) + sorted(VARIANTS))
def test_evaluate_equals_score_on_the_documents_it_writes(files, name):
    """Every rule set: TP and FN equal, FP differ by exactly the unplaced predictions (counted as the rule
    set counts repeats), strict and lenient, per kind; per label outside the unplaced rows."""
    rules = RULES[name]
    s = evaluate(files, name)
    for task in ("ce", "re_e2e"):
        out = files / name / f"score_{task}.json"
        r = cli("score", "--gold", files / "gold", "--pred", files / name / "brat" / task, "--format", "brat",
                "--rules", name, "--json", out, "--workers", "1")
        assert r.returncode == 0, r.stderr
        scored, evaluated = json.loads(out.read_text()), s["by_task"][task]
        kinds = [k for k in ("entities", "relations", "relations_untyped", "events") if k in evaluated]
        assert "entities" in kinds
        for kind in kinds:
            extra = unplaced_fp(task, kind, rules.duplicates)
            for mode in ("strict", "lenient"):
                tp, fp, fn = counts(scored[kind], mode)
                assert counts(evaluated[kind], mode) == (tp, fp + extra, fn), (task, kind, mode)
            labels = {k for k in evaluated[kind].get("by_label", {}) if not k.startswith("unplaced:")}
            for label in labels | set(scored[kind].get("by_label", {})):
                ours = evaluated[kind]["by_label"].get(label, {}).get("strict")
                theirs = scored[kind]["by_label"].get(label, {}).get("strict")
                if ours and theirs:
                    assert (ours["tp"], ours["fn"]) == (theirs["tp"], theirs["fn"]), (task, kind, label)
                    assert ours["fp"] >= theirs["fp"]
