"""Offset-preserving chunking under a real fast tokenizer (trained offline in a fixture): chunks fit the
budget, never cut an entity, keep offsets, and count relations split across chunks."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clinie_nemo.core.document import Document, Entity
from clinie_nemo.core.errors import InputError
from clinie_nemo.core.tokens import FallbackCounter, HFTokenCounter, load_counter
from clinie_nemo.instruct.chunking import chunk_spans, cut_points, legal_cuts
from clinie_nemo.instruct.render import RenderOptions, render_documents
from tests.hypothesis_profiles import examples
from tests.instruct_fixtures import hard_document, long_document, train_tokenizer


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def real_tokenizer(tokenizer_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)


def real_length(tok, record: dict) -> int:
    n = len(tok(record["input"], add_special_tokens=False)["input_ids"])
    return n + len(tok(record["output"], add_special_tokens=False)["input_ids"]) + 2


@pytest.mark.parametrize(("task", "fmt"), [("ce", "inline"), ("re_e2e", "json"), ("re_pair", "lines")])
def test_chunks_fit_the_real_tokenizer_budget_and_never_cut_entities(tokenizer_dir: Path, real_tokenizer,
                                                                      task: str, fmt: str) -> None:
    doc = long_document()
    budget = 500 if task == "re_pair" else 1000
    result = render_documents([doc], RenderOptions(task=task, format=fmt, max_tokens=budget,
                                                   tokenizer=str(tokenizer_dir)))
    assert result.chunks > 2
    chunks = sorted({tuple(r["chunk"]) for r in result.records})
    for record in result.records[:40]:
        assert real_length(real_tokenizer, record) <= budget
        start, end = record["chunk"]
        shown = record["input"]
        for marker in ("[E1]", "[/E1]", "[E2]", "[/E2]"):
            shown = shown.replace(marker, "")
        assert doc.text[start:end] in shown
    for e in doc.entities:
        holders = [c for c in chunks if c[0] <= e.start and e.end <= c[1]]
        assert len(holders) <= 1
        assert not any(c[0] < e.start < c[1] < e.end or e.start < c[0] < e.end for c in chunks)
    # the note-spanning relation R999 is reported, never silently dropped
    assert result.cross_chunk["relation_across_chunks:Strength-Drug"] == 1
    assert result.roundtrip.exact, result.roundtrip.to_json()
    assert result.roundtrip.gold["relations" if task != "ce" else "entities"] > 0


def test_chunk_offsets_cover_the_text_between_trimmed_edges(tokenizer_dir: Path) -> None:
    doc = long_document()
    counter = HFTokenCounter(tokenizer_dir)
    spans = chunk_spans(doc, lambda s, e: counter.count(doc.text[s:e]) <= 120)
    assert len(spans) > 3
    assert all(s < e for s, e in spans) and all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    # only whitespace lies between or around chunks
    covered = set()
    for s, e in spans:
        covered.update(range(s, e))
        assert not doc.text[s].isspace() and not doc.text[e - 1].isspace()
    assert all(doc.text[i].isspace() for i in range(len(doc.text)) if i not in covered)


def test_cut_points_follow_lines_and_sentences_and_skip_entities() -> None:
    text = "One. Two three.\nFour"
    assert cut_points(text) == [5, 16]
    doc = Document("d", text, entities=(Entity("T1", "X", ((0, 9),), "One. Two "),))
    assert legal_cuts(doc) == [16]


def test_unsplittable_piece_names_document_and_span_count() -> None:
    text = "word " * 200
    doc = Document("note-17", text.strip(), entities=(Entity("T1", "X", ((0, 994),), text[:994]),))
    with pytest.raises(InputError) as info:
        render_documents([doc], RenderOptions(task="ce", format="json", max_tokens=300))
    message = str(info.value)
    assert "note-17" in message and "1 annotated spans" in message and "max_tokens=300" in message


def test_whole_document_is_one_chunk_without_a_budget() -> None:
    doc = hard_document()
    result = render_documents([doc], RenderOptions(task="ce", format="json"))
    assert result.chunks == 1
    assert result.records[0]["chunk"] == [0, len(doc.text.rstrip())]


def test_fallback_counter_is_words_plus_punctuation() -> None:
    assert FallbackCounter().count("Aspirin 10mg, daily.") == 5
    assert load_counter(None) is load_counter(None)


@settings(max_examples=examples(40))
@given(st.lists(st.tuples(st.integers(1, 12), st.booleans(), st.booleans()), min_size=1, max_size=25),
       st.integers(120, 260))
def test_random_notes_chunk_within_budget_without_cutting_entities(sentences, budget: int) -> None:
    """Random notes of sentences (some annotated, some ending in a line break) under the fallback counter:
    every record fits, no entity is cut, and the round trip stays exact; a piece too long to split is the
    only acceptable failure."""
    text, entities = "", []
    for k, (words, annotated, newline) in enumerate(sentences):
        sentence = " ".join(f"w{k}x{i}" for i in range(words)) + "."
        if annotated:
            entities.append(Entity(f"T{k}", "X", ((len(text), len(text) + len(sentence) - 1),),
                                   sentence[:-1]))
        text += sentence + ("\n" if newline else " ")
    doc = Document("rand", text, entities=tuple(entities))
    try:
        result = render_documents([doc], RenderOptions(task="ce", format="lines", max_tokens=budget))
    except InputError as exc:
        assert "rand" in str(exc)
        return
    assert all(n <= budget for n in result.token_lengths)
    chunks = [tuple(r["chunk"]) for r in result.records]
    for e in entities:
        assert sum(1 for s, t in chunks if s <= e.start and e.end <= t) == 1
    assert result.roundtrip.exact


def test_tokenizer_json_counts_equal_autotokenizer_counts(tokenizer_dir: Path, real_tokenizer) -> None:
    counter = HFTokenCounter(tokenizer_dir)
    texts = [hard_document().text, long_document().text, "", "café ≥ 2 cm\r\n<Drug>"]
    expected = [len(real_tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    assert [counter.count(t) for t in texts] == expected
    assert counter.count_many(texts) == expected
    spans = counter.spans(texts[0])
    assert len(spans) == expected[0] and spans[0][0] == 0
