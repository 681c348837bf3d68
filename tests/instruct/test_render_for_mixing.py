"""The contract mixing relies on from rendering (render_documents with one schema per dataset from the
schema resolver, token lengths by the renderer's counter): records within max_tokens by the same counter,
chunks covering all non-blank text without cutting an entity, stable unique ids, the record fields, and
few-shot examples cut back out of rendered records."""

from __future__ import annotations

from dataclasses import replace

from clinie_nemo.core.document import Document, Entity
from clinie_nemo.core.tokens import load_counter
from clinie_nemo.corpus.schema import resolve_schema
from clinie_nemo.instruct.records_stats import record_token_lengths
from clinie_nemo.instruct.render import RenderOptions, few_shot_pair, render_documents
from tests.mixture_fixtures import build_tokenizer_folder


def _long_doc(n_sentences: int = 120) -> Document:
    parts, entities, pos = [], [], 0
    for i in range(n_sentences):
        sentence = f"Day {i}: gave heparin drip for chest pain, monitored closely. "
        at = sentence.index("heparin drip")
        entities.append(Entity(f"T{i}", "Drug", ((pos + at, pos + at + len("heparin drip")),), "heparin drip"))
        parts.append(sentence)
        pos += len(sentence)
    return Document(id="long-1", text="".join(parts), dataset="n2c2_2018", entities=tuple(entities))


def _options(doc: Document, max_tokens: int, tokenizer: str | None = None) -> RenderOptions:
    """As mixing renders: the dataset's schema resolved once, templates rotated by seed."""
    return RenderOptions(task="ce", dataset="n2c2_2018", schema=resolve_schema([doc], "n2c2_2018"),
                         template_policy="rotate", max_tokens=max_tokens, tokenizer=tokenizer)


def _prompt_overhead(tokenizer: str | None) -> int:
    """Tokens of a record for a one-sentence note (instruction, label list, format text, headers)."""
    doc = _long_doc(1)
    options = _options(doc, max_tokens=100_000, tokenizer=tokenizer)
    return max(record_token_lengths(render_documents([doc], options).records, load_counter(tokenizer)))


def _check(doc: Document, tokenizer: str | None) -> None:
    max_tokens = _prompt_overhead(tokenizer) + 250
    records = render_documents([doc], _options(doc, max_tokens=max_tokens, tokenizer=tokenizer)).records
    assert len(records) > 3
    lengths = record_token_lengths(records, load_counter(tokenizer))
    assert max(lengths) <= max_tokens
    spans = [tuple(r["chunk"]) for r in records]
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # in order, no overlap
    edges = [0, *(x for span in spans for x in span), len(doc.text)]
    gaps = [doc.text[a:b] for a, b in zip(edges[::2], edges[1::2])]
    assert all(not gap.strip() for gap in gaps)  # only whitespace between chunks (edges may be trimmed)
    for e in doc.entities:  # no entity is cut: each lies inside exactly one chunk
        assert sum(1 for s, t in spans if s <= e.start and e.end <= t) == 1
    assert len({r["id"] for r in records}) == len(records)
    assert records[1]["id"] == "n2c2_2018/long-1/ce/1"


def test_chunks_fit_max_tokens_fallback_counter():
    _check(_long_doc(), None)


def test_chunks_fit_max_tokens_real_tokenizer(tmp_path):
    doc = _long_doc()
    folder = build_tokenizer_folder(tmp_path / "tok", [doc.text] * 3)
    _check(doc, str(folder))


def test_few_shot_pair_is_the_chunk_text_and_answer():
    doc = _long_doc(30)
    options = _options(doc, max_tokens=_prompt_overhead(None) + 150)
    records = render_documents([doc], options).records
    text, answer = few_shot_pair(records[0])
    start, end = records[0]["chunk"]
    assert text == doc.text[start:end] and answer == records[0]["output"]
    shown = render_documents([doc], replace(options, few_shot=((text, answer),),
                                            max_tokens=options.max_tokens + 400)).records
    assert all(r["few_shot"] == 1 and text in r["input"] and answer in r["input"] for r in shown)
