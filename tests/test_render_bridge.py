"""The contract mixing relies on from rendering (whichever renderer sits behind render_bridge): records
within max_tokens by the same counter, chunks that tile the document without cutting an entity, stable
unique ids, and the record fields."""

from __future__ import annotations

from clinie_nemo.document import Document, Entity
from clinie_nemo.render_bridge import RenderOptions, record_token_lengths, render_documents, token_counter
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


def _check(doc: Document, tokenizer: str | None, max_tokens: int) -> None:
    records = render_documents([doc], "n2c2_2018", RenderOptions(task="ce", max_tokens=max_tokens,
                                                                  tokenizer=tokenizer)).records
    assert len(records) > 3
    lengths = record_token_lengths(records, token_counter(tokenizer))
    assert max(lengths) <= max_tokens
    spans = [tuple(r["chunk"]) for r in records]
    assert spans[0][0] == 0 and spans[-1][1] == len(doc.text)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))  # chunks tile the text
    for e in doc.entities:  # no entity is cut: each lies inside exactly one chunk
        assert sum(1 for s, t in spans if s <= e.start and e.end <= t) == 1
    assert len({r["id"] for r in records}) == len(records)
    assert records[1]["id"] == "n2c2_2018/long-1/ce/1"


def test_chunks_fit_max_tokens_fallback_counter():
    _check(_long_doc(), None, 200)


def test_chunks_fit_max_tokens_real_tokenizer(tmp_path):
    doc = _long_doc()
    folder = build_tokenizer_folder(tmp_path / "tok", [doc.text] * 3)
    _check(doc, str(folder), 200)
