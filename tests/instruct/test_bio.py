"""BIO/BIOES tagging (clinie_nemo.instruct.bio): exact lost counts on crafted cases, seqeval-lenient decoding,
a hypothesis round trip, and decode(encode(gold)) == the kept gold on every dataset's synthetic corpus."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clinie_nemo.core.document import Entity
from clinie_nemo.core.errors import ConfigError
from clinie_nemo.instruct.bio import decode, encode, tag_names
from clinie_nemo.instruct.bio_ceiling import word_offsets
from clinie_nemo.instruct.chunking import legal_cuts
from tests.synthetic_fixtures import synthetic_corpora  # noqa: F401 - a fixture

TEXT = "Pt has chest pain and left arm pain today."
LABELS = ["Problem", "Body"]


def ent(ident: str, label: str, *spans: tuple[int, int], text: str = TEXT) -> Entity:
    return Entity(ident, label, tuple(spans), " ".join(text[s:e] for s, e in spans))


CRAFTED = [
    ent("T2", "Body", (7, 12)),                 # "chest" inside T1: nested, the outer one is kept
    ent("T1", "Problem", (7, 17)),              # "chest pain"
    ent("T8", "Problem", (7, 17)),              # a copy of T1: the same tags, kept
    ent("T9", "Body", (7, 17)),                 # T1's span with another label: nested
    ent("T3", "Body", (22, 30)),                # "left arm"
    ent("T4", "Problem", (27, 35)),             # "arm pain": crosses T3, as long, starts later: overlapping
    ent("T5", "Problem", (22, 26), (31, 35)),   # "left ... pain": discontinuous
    ent("T6", "Problem", (36, 40)),             # "toda": ends inside the token "today"
    ent("T7", "Problem", (35, 41)),             # " today": starts on a space no token covers
    ent("T10", "Problem", (36, 41)),            # "today": one token
]
CRAFTED_LOST = Counter(nested=2, overlapping=1, discontinuous=1, boundary_mid_token=1, boundary_off_token=1)
CRAFTED_TAGS = {
    "BIO": ["O", "O", "B-Problem", "I-Problem", "O", "B-Body", "I-Body", "O", "B-Problem", "O"],
    "BIOES": ["O", "O", "B-Problem", "E-Problem", "O", "B-Body", "E-Body", "O", "S-Problem", "O"],
}


def spans_of(entities) -> list[tuple[str, int, int]]:
    return [(e.label, e.start, e.end) for e in entities]


def test_tag_names():
    assert tag_names(["A", "B"], "BIO") == ["O", "B-A", "I-A", "B-B", "I-B"]
    assert tag_names(["A"], "BIOES") == ["O", "B-A", "I-A", "E-A", "S-A"]
    with pytest.raises(ConfigError, match="valid: BIO, BIOES"):
        tag_names(["A"], "IOB1")
    with pytest.raises(ConfigError, match="twice"):
        tag_names(["A", "A"])


@pytest.mark.parametrize("scheme", ["BIO", "BIOES"])
def test_crafted_lost_counts_and_tags(scheme):
    offsets = word_offsets(TEXT)
    assert len(offsets) == 10
    enc = encode(CRAFTED, offsets, LABELS, scheme)
    assert enc.lost == CRAFTED_LOST
    assert {e.id: cause for e, cause in enc.lost_entities} == {
        "T2": "nested", "T9": "nested", "T4": "overlapping", "T5": "discontinuous", "T6": "boundary_mid_token",
        "T7": "boundary_off_token"}
    assert [e.id for e in enc.kept] == ["T1", "T8", "T3", "T10"]  # text order
    assert enc.tags == CRAFTED_TAGS[scheme]
    assert decode(enc.tags, offsets, scheme) == [("Problem", 7, 17), ("Body", 22, 30), ("Problem", 36, 41)]


@pytest.mark.parametrize("scheme", ["BIO", "BIOES"])
def test_entity_order_does_not_change_the_result(scheme):
    offsets = word_offsets(TEXT)
    forward = encode(CRAFTED, offsets, LABELS, scheme)
    backward = encode(CRAFTED[::-1], offsets, LABELS, scheme)
    assert backward.tags == forward.tags and backward.lost == forward.lost
    assert {e.id for e in backward.kept} == {e.id for e in forward.kept}


@pytest.mark.parametrize("scheme", ["BIO", "BIOES"])
def test_crossing_keeps_the_longer_and_nesting_the_outer(scheme):
    offsets = word_offsets(TEXT)
    left_arm, arm_pain_today = ent("A", "Body", (22, 30)), ent("B", "Problem", (27, 41))
    enc = encode([left_arm, arm_pain_today], offsets, LABELS, scheme)
    assert [e.id for e in enc.kept] == ["B"] and enc.lost == Counter(overlapping=1)
    inner, outer = ent("I", "Body", (27, 30)), ent("O", "Problem", (22, 35))
    enc = encode([inner, outer], offsets, LABELS, scheme)
    assert [e.id for e in enc.kept] == ["O"] and enc.lost == Counter(nested=1)
    # A lost entity blocks nothing: the mid-token T6 does not stop "today"
    enc = encode([ent("T6", "Problem", (36, 40)), ent("T10", "Body", (36, 41))], offsets, LABELS, scheme)
    assert spans_of(enc.kept) == [("Body", 36, 41)] and enc.lost == Counter(boundary_mid_token=1)


@pytest.mark.parametrize("scheme", ["BIO", "BIOES"])
def test_subword_offsets_and_special_tokens(scheme):
    text = "hypertension noted"
    offsets = [(0, 0), (0, 5), (5, 12), (13, 18), None]  # [CLS] hyper ##tension noted [SEP]
    whole = ent("W", "Problem", (0, 12), text=text)
    part = ent("P", "Problem", (0, 5), text=text)
    mid = ent("M", "Problem", (0, 7), text=text)
    enc = encode([whole, mid], offsets, LABELS, scheme)
    assert enc.tags == [None, "B-Problem", "I-Problem" if scheme == "BIO" else "E-Problem", "O", None]
    assert enc.lost == Counter(boundary_mid_token=1)
    assert decode(enc.tags, offsets, scheme) == [("Problem", 0, 12)]
    enc = encode([part], offsets, LABELS, scheme)  # a sub-token alone is representable
    assert decode(enc.tags, offsets, scheme) == [("Problem", 0, 5)]


def test_window_edge_and_entities_outside_the_window():
    window = (0, 30)
    offsets = [o for o in word_offsets(TEXT) if o[1] <= window[1]]
    chosen = [e for e in CRAFTED if e.id in ("T1", "T3", "T4", "T5", "T10")]
    enc = encode(chosen, offsets, LABELS, "BIO", window=window)
    # T10 lies wholly outside: neither kept nor lost; T4 crosses the window's end
    assert [e.id for e in enc.kept] == ["T1", "T3"]
    assert enc.lost == Counter(window_edge=1, discontinuous=1)


def test_unknown_label_is_a_config_error():
    with pytest.raises(ConfigError, match=r"entity T1 has the label 'Drug', which has no tag; labels: Problem, Body"):
        encode([ent("T1", "Drug", (7, 17))], word_offsets(TEXT), LABELS)


OFFS4 = [(0, 1), (2, 3), (4, 5), (6, 7)]


@pytest.mark.parametrize(("scheme", "tags", "expected"), [
    ("BIO", ["I-A", "I-A", "O", "O"], [("A", 0, 3)]),                     # I without B starts an entity
    ("BIO", ["B-A", "I-B", "I-B", "O"], [("A", 0, 1), ("B", 2, 5)]),      # a type change starts another
    ("BIO", ["B-A", "B-A", "I-A", "O"], [("A", 0, 1), ("A", 2, 5)]),
    ("BIO", ["O", "I-A", "O", "B-A"], [("A", 2, 3), ("A", 6, 7)]),
    ("BIO", [None, "B-A", None, "O"], [("A", 2, 3)]),                     # None on a real token reads as O
    ("BIOES", ["B-A", "O", "S-A", "S-A"], [("A", 0, 1), ("A", 4, 5), ("A", 6, 7)]),  # B without E ends at O
    ("BIOES", ["E-A", "I-A", "E-A", "O"], [("A", 0, 1), ("A", 2, 5)]),    # E after O: one token; I after E starts
    ("BIOES", ["B-A", "I-A", "I-A", "B-B"], [("A", 0, 5), ("B", 6, 7)]),
    ("BIOES", ["S-A", "E-A", "B-A", "E-B"], [("A", 0, 1), ("A", 2, 3), ("A", 4, 5), ("B", 6, 7)]),
])
def test_decode_is_lenient_like_seqeval(scheme, tags, expected):
    assert decode(tags, OFFS4, scheme) == expected


def test_decode_errors():
    with pytest.raises(ValueError, match="under scheme BIO"):
        decode(["S-A", "O", "O", "O"], OFFS4, "BIO")
    with pytest.raises(ValueError, match="not O, B-, I-, E- or S-"):
        decode(["X-A", "O", "O", "O"], OFFS4, "BIO")
    with pytest.raises(ValueError, match="3 tags for 4"):
        decode(["O", "O", "O"], OFFS4, "BIO")


@st.composite
def tokens_and_entities(draw):
    """Random tokens (some adjacent, like sub-words), special tokens anywhere, and random non-overlapping
    contiguous entities made of whole tokens."""
    n = draw(st.integers(1, 25))
    text, offsets = "", []
    for _ in range(n):
        text += draw(st.sampled_from(["", " ", "  ", "\n"])) if text else ""
        word = draw(st.text("abcxyz", min_size=1, max_size=4))
        offsets.append((len(text), len(text) + len(word)))
        text += word
    segments = draw(st.lists(st.tuples(st.integers(1, 4), st.sampled_from([None, "A", "B-x", "C"])),
                             min_size=1, max_size=n))
    entities, i = [], 0
    for length, label in segments:
        if i >= n:
            break
        last = min(i + length, n) - 1
        if label is not None:
            entities.append(ent(f"T{len(entities)}", label, (offsets[i][0], offsets[last][1]), text=text))
        i = last + 1
    for _ in range(draw(st.integers(0, 3))):
        offsets.insert(draw(st.integers(0, len(offsets))), draw(st.sampled_from([None, (0, 0)])))
    return text, offsets, entities


@pytest.mark.parametrize("scheme", ["BIO", "BIOES"])
@given(case=tokens_and_entities())
def test_round_trip_of_token_aligned_entities(scheme, case):
    _, offsets, entities = case
    enc = encode(entities, offsets, ["A", "B-x", "C"], scheme)
    assert not enc.lost and list(enc.kept) == entities
    assert decode(enc.tags, offsets, scheme) == spans_of(entities)
    assert [t is None for t in enc.tags] == [o is None or o == (0, 0) for o in offsets]


def check_round_trip(doc, offsets, scheme, window=None):
    """decode(encode(gold)) == the kept gold; kept + lost == the gold (in the window); returns the encoding."""
    labels = sorted({e.label for e in doc.entities})
    enc = encode(doc.entities, offsets, labels, scheme, window)
    assert set(decode(enc.tags, offsets, scheme)) == set(spans_of(enc.kept))
    assert len(decode(enc.tags, offsets, scheme)) == len(set(spans_of(enc.kept)))
    inside = [e for e in doc.entities if window is None or (e.end > window[0] and e.start < window[1])]
    assert sorted([e.id for e in enc.kept] + [e.id for e, _ in enc.lost_entities]) == sorted(e.id for e in inside)
    assert sum(enc.lost.values()) == len(enc.lost_entities)
    return enc


@pytest.mark.parametrize("scheme", ["BIO", "BIOES"])
def test_synthetic_corpora_round_trip(synthetic_corpora, scheme):  # noqa: F811 - the fixture
    for dataset, docs in synthetic_corpora.items():
        kept = lost = 0
        for doc in docs:
            enc = check_round_trip(doc, word_offsets(doc.text), scheme)
            kept, lost = kept + len(enc.kept), lost + len(enc.lost_entities)
            # Windows between the cut points of the project's chunking (never inside an entity) lose nothing more
            cuts = [0, *legal_cuts(doc), len(doc.text)]
            kept_in_windows = []
            for start, end in zip(cuts, cuts[1:]):
                offsets = [(s + start, t + start) for s, t in word_offsets(doc.text[start:end])]
                win = check_round_trip(doc, offsets, scheme, (start, end))
                assert "window_edge" not in win.lost
                kept_in_windows += win.kept
            assert sorted(e.id for e in kept_in_windows) == sorted(e.id for e in enc.kept)
        assert kept + lost == sum(len(d.entities) for d in docs) and kept > 0, dataset


@st.composite
def tokens_and_any_spans(draw):
    """Random tokens (special ones too) and random contiguous entities anywhere: misaligned, nested, crossing."""
    text, offsets, _ = draw(tokens_and_entities())
    n = len(text)
    entities = []
    for i in range(draw(st.integers(0, 8))):
        start = draw(st.integers(0, n - 1))
        end = draw(st.integers(start + 1, n))
        entities.append(ent(f"R{i}", draw(st.sampled_from(["A", "C"])), (start, end), text=text))
    return offsets, entities


@pytest.mark.parametrize("scheme", ["BIO", "BIOES"])
@given(case=tokens_and_any_spans())
def test_any_spans_against_brute_force(scheme, case):
    offsets, entities = case
    real = [o for o in offsets if o is not None and o[0] < o[1]]
    enc = encode(entities, offsets, ["A", "C"], scheme)
    assert sorted([e.id for e in enc.kept] + [e.id for e, _ in enc.lost_entities]) == sorted(e.id for e in entities)
    causes = {e.id: cause for e, cause in enc.lost_entities}
    for e in entities:
        mid = any(s < x < t for s, t in real for x in (e.start, e.end))
        covered = [(s, t) for s, t in real if e.start <= s and t <= e.end]
        aligned = bool(covered) and min(covered)[0] == e.start and max(t for _, t in covered) == e.end
        assert (causes.get(e.id) == "boundary_mid_token") == mid
        assert (causes.get(e.id) == "boundary_off_token") == (not mid and not aligned)
    tokens_of = {e.id: {o for o in real if e.start <= o[0] and o[1] <= e.end} for e in enc.kept}
    for a in enc.kept:
        for b in enc.kept:
            if a is not b and (a.label, a.spans) != (b.label, b.spans):
                assert not tokens_of[a.id] & tokens_of[b.id]
    assert decode(enc.tags, offsets, scheme) == sorted(set(spans_of(enc.kept)), key=lambda x: (x[1], x[2]))
