"""docs_jsonl.encode (the fast JSONL writer) gives exactly the text of json.dumps(document_to_json(doc)):
on the synthetic corpus of every dataset (events, attributes, metadata, CRLF, unicode) and on generated
documents whose strings hold quotes, backslashes, control characters and any unicode."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clinie_nemo.core import docs_jsonl
from clinie_nemo.core.document import Document, Entity, Event, EventArgument, Relation, document_to_json
from clinie_nemo.corpus import readers
from clinie_nemo.corpus.datasets import DATASETS, get
from clinie_nemo.corpus.datasets.convert import find_splits
from clinie_nemo.corpus.synth import generate
from tests.hypothesis_profiles import examples


def reference(doc: Document) -> str:
    return json.dumps(document_to_json(doc), ensure_ascii=False)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_encode_matches_json_dumps_on_every_synthetic_corpus(tmp_path, name):
    generate(name, tmp_path / name, 8, 5)
    spec = get(name)
    docs = [doc for split in find_splits(spec, tmp_path / name)
            for doc in readers.get(spec.reader).read(split.path, **split.options)]
    assert docs and any(d.entities for d in docs)
    for doc in docs:
        assert docs_jsonl.encode(doc) == reference(doc)


ANY = st.text(max_size=8)
SPAN = st.tuples(st.integers(0, 10**9), st.integers(0, 10**9))
ATTRS = st.lists(st.tuples(ANY, ANY), max_size=2).map(lambda kv: tuple(sorted(dict(kv).items())))
ENTITY = st.builds(Entity, ANY, ANY, st.lists(SPAN, min_size=1, max_size=3).map(tuple), ANY, ATTRS)
EVENT = st.builds(Event, ANY, ANY, ANY, st.lists(st.builds(EventArgument, ANY, ANY), max_size=2).map(tuple), ATTRS)
JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | ANY,
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ANY, inner, max_size=3),
                       max_leaves=6)
DOCUMENT = st.builds(Document, ANY, st.text(max_size=40), ANY, ANY,
                     st.lists(ENTITY, max_size=4).map(tuple),
                     st.lists(st.builds(Relation, ANY, ANY, ANY, ANY), max_size=3).map(tuple),
                     st.lists(EVENT, max_size=2).map(tuple), st.dictionaries(ANY, JSONISH, max_size=3))


@settings(max_examples=examples(300))
@given(DOCUMENT)
def test_encode_matches_json_dumps_on_any_strings(doc):
    assert docs_jsonl.encode(doc) == reference(doc)
    assert docs_jsonl.document_from_json(json.loads(docs_jsonl.encode(doc))) == doc


def test_encode_falls_back_on_unexpected_field_types():
    doc = Document(id=7, text="x", entities=(Entity("T1", "Drug", ((0, 1),), "x"),))  # type: ignore[arg-type]
    assert docs_jsonl.encode(doc) == reference(doc) == docs_jsonl.encode(doc)


def test_write_then_read_round_trips(tmp_path):
    docs = [Document("a", "aspirin 81 mg\r\n", entities=(Entity("T1", "Drug", ((0, 7),), "aspirin"),)),
            Document("b", "\"quoted\" \\ é 中 😀", metadata={"k": [1, {"x": None}]})]
    assert docs_jsonl.write(tmp_path / "d.jsonl", docs) == 2
    assert list(docs_jsonl.read(tmp_path / "d.jsonl")) == docs
    lines = (tmp_path / "d.jsonl").read_text(encoding="utf-8").splitlines()
    assert lines == [reference(d) for d in docs]
