"""Word-boundary preference when placing generated mentions, on real notes (MEDDOCAN test extracts,
tests/data/placement/PROVENANCE.md): a short mention whose text first occurs inside a longer word lands on
the whole word; a mention found only inside words falls back there and is counted (``placed_in_word``);
and the lenient scores show the difference against first-occurrence placement."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clinie_nemo.core.document import Document, Entity
from clinie_nemo.corpus.readers import READERS
from clinie_nemo.engines.predictions import Prediction
from clinie_nemo.evaluation.evaluate import evaluate_predictions
from clinie_nemo.evaluation.parsing.place import PlacementFailure, place_mention
from clinie_nemo.evaluation.scoring import RULES, score_pairs

DATA = Path(__file__).resolve().parents[1] / "data" / "placement"

# (note, gold label, mention, gold start, start of its first occurrence, inside a longer word), found by
# in_word_first() below over these notes and fixed here
CASES = [
    ("S0004-06142009000100010-3", "EDAD_SUJETO_ASISTENCIA", "57", 249, 77),  # in the number 14657845
    ("S0365-66912005001100009-2", "SEXO_SUJETO_ASISTENCIA", "M", 256, 8),  # in Minerva
    ("S1130-05582017000300150-3", "SEXO_SUJETO_ASISTENCIA", "H", 229, 46),  # in NHC
    ("S1139-76322013000100009-1", "SEXO_SUJETO_ASISTENCIA", "H", 245, 68),  # in NHC
    ("S1139-76322013000100009-1", "EDAD_SUJETO_ASISTENCIA", "mes", 596, 233),  # in meses
]


def boundary(text: str, i: int) -> bool:
    """The test's own word boundary: the text's edge or a side that is not alphanumeric."""
    return i <= 0 or i >= len(text) or not (text[i - 1].isalnum() and text[i].isalnum())


def whole(text: str, start: int, end: int) -> bool:
    return boundary(text, start) and boundary(text, end)


@pytest.fixture(scope="module")
def notes() -> dict[str, Document]:
    return {d.id: d for d in READERS["brat"].read(DATA)}


def in_word_first(doc: Document) -> list[tuple]:
    """Gold mentions on a whole word whose text occurs earlier inside a longer word."""
    out = []
    for e in doc.entities:
        (a, b), m = e.spans[0], e.text
        first = doc.text.find(m)
        if len(e.spans) == 1 and whole(doc.text, a, b) and first < a and not whole(doc.text, first, first + len(m)):
            out.append((doc.id, e.label, m, a, first))
    return out


def test_the_cases_are_what_the_notes_hold(notes):
    assert sorted(c for d in notes.values() for c in in_word_first(d)) == sorted(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}:{c[2]}")
def test_a_short_mention_lands_on_the_whole_word(notes, case):
    doc_id, label, mention, start, inside = case
    text = notes[doc_id].text
    assert text.find(mention) == inside  # what first-occurrence placement would take
    assert place_mention(text, mention) == ((start, start + len(mention)), "exact")
    record = {"id": "r", "doc_id": doc_id, "dataset": "", "task": "ce", "format": "lines", "chunk": [0, len(text)]}
    s = evaluate_predictions([record], {"r": Prediction("r", f"{label} | {mention}")}, [notes[doc_id]],
                             RULES["default"], per_template=False).result
    assert s["parse"]["placed_by"] == {"exact": 1} and s["parse"]["placed_in_word"] == 0
    assert s["entities"]["by_label"][label]["strict"]["tp"] == 1


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}:{c[2]}")
def test_lenient_scores_change_with_the_placement(notes, case):
    """Against the one gold mention: whole-word placement is a TP, strict and lenient; the in-word
    occurrence does not overlap it, so first-occurrence placement is an FP and an FN even leniently."""
    doc_id, label, mention, start, inside = case
    note = notes[doc_id]
    gold = replace(note, entities=tuple(e for e in note.entities if e.spans == ((start, start + len(mention)),)),
                   relations=(), events=())
    (s, e), _ = place_mention(note.text, mention)

    def scored(at: int) -> dict:
        pred = replace(gold, entities=(Entity("T1", label, ((at, at + len(mention)),), mention),))
        return score_pairs([(gold, pred)], RULES["default"]).to_json()["entities"]["lenient"]

    ours, first = scored(s), scored(inside)
    assert (ours["tp"], ours["fp"], ours["fn"]) == (1, 0, 0)
    assert (first["tp"], first["fp"], first["fn"]) == (0, 1, 1)


def test_a_mention_only_inside_words_falls_back_and_is_counted(notes):
    doc = notes["S1139-76322013000100009-1"]
    text = doc.text
    assert place_mention(text, "eses") == ((234, 238), "exact_in_word")  # in "meses": no whole word "eses"
    record = {"id": "r", "doc_id": doc.id, "dataset": "", "task": "ce", "format": "lines", "chunk": [0, len(text)]}
    answer = "EDAD_SUJETO_ASISTENCIA | eses\nSEXO_SUJETO_ASISTENCIA | H\nEDAD_SUJETO_ASISTENCIA | Ierro"
    s = evaluate_predictions([record], {"r": Prediction("r", answer)}, [doc], RULES["default"],
                             per_template=False).result["parse"]
    assert s["placed_by"] == {"exact_in_word": 1, "exact": 1, "casefold_in_word": 1}
    assert s["placed_in_word"] == 2 and s["by_dataset_task"]["(none)/ce"]["placed_in_word"] == 2


WORD = st.text(alphabet="abAB", min_size=1, max_size=6)
SEP = st.sampled_from([" ", "-", ". ", "(", ")", "/"])


@settings(max_examples=300, deadline=None)
@given(words=st.lists(WORD, min_size=1, max_size=12), seps=st.lists(SEP, min_size=12, max_size=12),
       mention=st.text(alphabet="ab-", min_size=1, max_size=3).filter(lambda m: m.strip("-")))
def test_whole_words_first_then_the_first_match_inside_a_word(words, seps, mention):
    """The rank order with the test's own boundary: exact whole word, case-insensitive whole word, then
    (the fallback) exact inside a word, case-insensitive inside a word; each tier's first in text order."""
    text = "".join(w + s for w, s in zip(words, seps))
    exact = [i for i in range(len(text)) if text.startswith(mention, i)]
    folded = [i for i in range(len(text)) if text.lower().startswith(mention.lower(), i)]
    tiers = [("exact", [i for i in exact if whole(text, i, i + len(mention))]),
             ("casefold", [i for i in folded if whole(text, i, i + len(mention))]),
             ("exact_in_word", exact), ("casefold_in_word", folded)]
    expected = next(((i[0], name) for name, i in tiers if i), None)
    if expected is None:
        with pytest.raises(PlacementFailure):
            place_mention(text, mention)
    else:
        start, how = expected
        assert place_mention(text, mention) == ((start, start + len(mention)), how)
