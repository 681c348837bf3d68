"""The BIO ceiling (clinie_nemo.instruct.bio_ceiling): exact figures on crafted documents, the tokenizer
adapters (transformers and tokenizers fast tokenizers, a slow one refused), and the round trip on every
dataset's synthetic corpus with a WordPiece tokenizer whose sub-words split words."""

from __future__ import annotations

from collections import Counter

import pytest

from clinie_nemo.core.document import Document, Entity
from clinie_nemo.core.errors import ConfigError
from clinie_nemo.instruct.bio import decode, encode
from clinie_nemo.instruct.bio_ceiling import (
    bio_ceiling,
    ceiling_total,
    format_ceiling,
    load_tokenize,
    tokenizer_offsets,
    word_offsets,
)
from tests.instruct.test_bio import CRAFTED, CRAFTED_LOST, TEXT
from tests.local_extra import require_local
from tests.synthetic_fixtures import synthetic_corpora  # noqa: F401 - a fixture


def crafted_documents() -> list[Document]:
    chest = "chest pain"
    both = [Entity("D1", "Problem", ((0, 5), (6, 10)), chest),  # discontinuous, its hull is C1's span
            Entity("C1", "Problem", ((0, 10),), chest)]
    return [Document("a", TEXT, "ds", "train", tuple(CRAFTED)),
            Document("b", chest, "ds", "train", tuple(both)),
            Document("c", chest, "ds", "test", (both[1],))]


@pytest.mark.parametrize("scheme", ["BIO", "BIOES"])
def test_crafted_ceiling_is_exact(scheme):
    rows = bio_ceiling(crafted_documents(), word_offsets, scheme)
    assert list(rows) == [("ds", "train"), ("ds", "test")]
    train, test = rows["ds", "train"], rows["ds", "test"]
    assert (train.documents, train.entities, train.lost_total) == (2, 12, 8)
    # The ceiling ranks labels alphabetically: on T1's span, Body (T9) wins, so T1 and its copy T8 are lost
    # instead of T9 (test_bio's order, Problem first, keeps T1 and T8); D1 adds a discontinuous loss.
    assert train.lost == CRAFTED_LOST + Counter(nested=1, discontinuous=1)
    # gold set: 9 distinct in "a" (T1 and T8 are one) + 2 in "b"; decoded: T9, T3, T10 and C1.
    # D1's fragments never match the decoded (0, 10), which is C1's.
    assert (train.tp, train.fp, train.fn) == (4, 0, 7)
    assert train.precision == 1.0 and train.recall == pytest.approx(4 / 11)
    assert train.f1 == pytest.approx(2 * (4 / 11) / (1 + 4 / 11)) and train.lost_share == pytest.approx(8 / 12)
    assert (test.entities, test.lost_total, test.tp, test.f1) == (1, 0, 1, 1.0)
    total = ceiling_total(rows.values())
    assert (total.documents, total.entities, total.lost_total, total.tp, total.fn) == (3, 13, 8, 5, 7)
    table = format_ceiling(list(rows.values()), scheme, "words")
    assert table[0].startswith(f"{scheme} ceiling") and table[-1].split()[:3] == ["all", "all", "13"]
    json_row = train.to_json()
    assert json_row["lost"]["discontinuous"] == 2 and json_row["lost_total"] == 8 and "window_edge" not in json_row["lost"]


def test_no_entities_is_zero_not_an_error():
    row = bio_ceiling([Document("x", "nothing here", "ds", "train")])["ds", "train"]
    assert (row.entities, row.lost_share, row.precision, row.recall, row.f1) == (0, 0.0, 0.0, 0.0, 0.0)


def test_unknown_scheme():
    with pytest.raises(ConfigError, match="tagging scheme 'IO'"):
        bio_ceiling(crafted_documents(), scheme="IO")


def test_slow_tokenizer_is_refused():
    class Slow:
        is_fast = False

        def __call__(self, text, **kwargs):
            raise NotImplementedError

    with pytest.raises(ConfigError, match="slow tokenizer: it has no offset mapping"):
        tokenizer_offsets(Slow())
    with pytest.raises(ConfigError, match="not a Hugging Face fast tokenizer"):
        tokenizer_offsets(object())


@pytest.fixture(scope="module")
def wordpiece(synthetic_corpora, tmp_path_factory):  # noqa: F811 - the fixture
    """A BERT-style WordPiece tokenizer trained offline on the synthetic notes, small enough to split words:
    (tokenizers.Tokenizer, transformers fast tokenizer, folder with tokenizer.json)."""
    require_local()
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=150, special_tokens=["[UNK]", "[CLS]", "[SEP]", "[PAD]"],
                                        show_progress=False)
    tok.train_from_iterator([d.text for docs in synthetic_corpora.values() for d in docs], trainer)
    folder = tmp_path_factory.mktemp("wordpiece")
    tok.save(str(folder / "tokenizer.json"))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]")
    return tok, fast, folder


def test_adapters_agree_and_split_words(wordpiece, synthetic_corpora):  # noqa: F811 - the fixture
    tok, fast, folder = wordpiece
    from_tokenizers, from_transformers = tokenizer_offsets(tok), tokenizer_offsets(fast)
    _, from_folder = load_tokenize(folder)
    sub_words = 0
    for docs in synthetic_corpora.values():
        for doc in docs[:2]:
            offsets = from_tokenizers(doc.text)
            assert offsets == from_transformers(doc.text) == from_folder(doc.text)
            assert all(not doc.text[s].isspace() and not doc.text[t - 1].isspace() for s, t in offsets)
            sub_words += sum(1 for (_, t), (s, _) in zip(offsets, offsets[1:]) if t == s and doc.text[s].isalnum())
    assert sub_words > 50  # the test below tags sub-words, not whole words only


def test_byte_level_offsets_are_trimmed():
    require_local()
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False)
    tok.train_from_iterator(["chest pain and arm pain"] * 3, trainers.BpeTrainer(vocab_size=300, show_progress=False))
    text = "chest pain  today"
    raw = tok.encode(text).offsets
    assert any(text[s].isspace() for s, _ in raw)  # the leading space is in the token's offsets
    assert [text[s:t] for s, t in tokenizer_offsets(tok)(text)] == [w for s, t in raw if (w := text[s:t].strip())]


@pytest.mark.parametrize("scheme", ["BIO", "BIOES"])
def test_synthetic_round_trip_with_wordpiece(wordpiece, synthetic_corpora, scheme):  # noqa: F811 - the fixture
    tokenize = tokenizer_offsets(wordpiece[0])
    for dataset, docs in synthetic_corpora.items():
        for doc in docs:
            offsets = [(0, 0), *tokenize(doc.text), (0, 0)]  # as [CLS] ... [SEP]
            enc = encode(doc.entities, offsets, sorted({e.label for e in doc.entities}), scheme)
            assert sorted(decode(enc.tags, offsets, scheme)) == sorted({(e.label, e.start, e.end) for e in enc.kept})
            assert len(enc.kept) + sum(enc.lost.values()) == len(doc.entities), dataset
        words = ceiling_total(bio_ceiling(docs, word_offsets, scheme).values())
        pieces = ceiling_total(bio_ceiling(docs, tokenize, scheme).values())
        # the notes' entities are whole words: sub-words lose nothing more than words do
        assert (pieces.lost, pieces.tp, pieces.fn) == (words.lost, words.tp, words.fn), dataset
