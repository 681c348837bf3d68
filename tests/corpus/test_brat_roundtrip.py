"""Property-based: brat write -> read gives back exactly the document (unicode, CRLF, discontinuous
spans, nested events, attributes, relations, Equiv/N/# metadata)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clinie_nemo.core.document import Document, Entity, Event, EventArgument, Relation, fragments_text
from clinie_nemo.corpus.readers import brat as brat_reader
from clinie_nemo.corpus.writers import brat as brat_writer
from tests.hypothesis_profiles import examples

NAME = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-0123456789", min_size=1,
               max_size=8)
NOTE_CHARS = st.one_of(
    st.sampled_from(["\r\n", "\n", "\r", " ", "  ", "\t", "é", "ß", "中", "😀", "\u00a0", "\u2028"]),
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\ufeff"),
)


@st.composite
def documents(draw) -> Document:
    text = "".join(draw(st.lists(NOTE_CHARS, min_size=1, max_size=60)))
    n = len(text)
    entities = []
    for i in range(draw(st.integers(0, 6))):
        cuts = sorted(draw(st.sets(st.integers(0, n), min_size=2, max_size=6)))
        if len(cuts) % 2:
            cuts = cuts[:-1]
        spans = tuple((cuts[j], cuts[j + 1]) for j in range(0, len(cuts), 2))
        attrs = draw(st.dictionaries(NAME, st.one_of(st.just("true"), NAME), max_size=2))
        entities.append(Entity(f"T{i + 1}", draw(NAME), spans, fragments_text(text, spans),
                               tuple(sorted(attrs.items()))))
    ids = [e.id for e in entities]
    events: list[Event] = []
    if entities:
        for i in range(draw(st.integers(0, 4))):
            refs = ids + [ev.id for ev in events]  # earlier events: nesting E -> E
            args = tuple(EventArgument(draw(NAME), draw(st.sampled_from(refs)))
                         for _ in range(draw(st.integers(0, 3))))
            attrs = draw(st.dictionaries(NAME, st.one_of(st.just("true"), NAME), max_size=2))
            events.append(Event(f"E{i + 1}", draw(NAME), draw(st.sampled_from(ids)), args,
                                tuple(sorted(attrs.items()))))
    targets = ids + [ev.id for ev in events]
    relations = []
    if targets:
        for i in range(draw(st.integers(0, 4))):
            relations.append(Relation(f"R{i + 1}", draw(NAME), draw(st.sampled_from(targets)),
                                      draw(st.sampled_from(targets))))
    metadata: dict = {}
    free_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Zl", "Zp", "Cc")), max_size=12)
    if ids and draw(st.booleans()):
        metadata["equiv"] = [{"label": "Equiv", "ids": draw(st.lists(st.sampled_from(ids), min_size=2,
                                                                        max_size=3))}]
    if targets and draw(st.booleans()):
        metadata["normalizations"] = [{"id": "N1", "label": "Reference", "target": draw(st.sampled_from(targets)),
                                       "ref": "umls:C0001", "text": draw(free_text)}]
    if targets and draw(st.booleans()):
        metadata["notes"] = [{"id": "#1", "label": "AnnotatorNotes", "target": draw(st.sampled_from(targets)),
                              "text": draw(free_text)}]
    doc_id = draw(st.sampled_from(["note", "sub/dir/note-1", "a.b", "ünï/code"]))
    return Document(doc_id, text, entities=tuple(entities), relations=tuple(relations), events=tuple(events),
                    metadata=metadata)


@settings(max_examples=examples(150), suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_brat_write_read_round_trip(doc):
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "brat"
        assert brat_writer.write([doc], out) == 1
        back = list(brat_reader.read(out))
    assert back == [doc]
