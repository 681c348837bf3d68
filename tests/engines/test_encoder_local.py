"""The encoder arm's model side on the local engine: a tiny random-init BERT learns a synthetic tagging task,
windows merge back per token, batched length-sorted prediction equals one-at-a-time, bad input exits 2."""

from __future__ import annotations

import random
import re
import shutil

import pytest

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from clinie_nemo.core.errors import ClinieError, ConfigError, InputError  # noqa: E402
from clinie_nemo.engines.local import encoder as enc  # noqa: E402
from clinie_nemo.engines.local.encoder_train import EncoderTrainSettings, train_token_classifier  # noqa: E402

LABELS = ["O", "B-DRUG", "I-DRUG", "B-PROBLEM", "I-PROBLEM"]
DRUGS = ["aspirin", "metoprolol tartrate", "heparin drip", "insulin glargine", "ceftriaxone"]
PROBLEMS = ["chest pain", "fever", "type two diabetes", "shortness of breath", "acute kidney injury"]
FILLER = ["patient", "was", "given", "for", "and", "with", "noted", "the", "on", "admitted", "started",
          "history", "of", "denies", "today", "pain", "clinic", "follow", "up", "daily"]


def sentence(rng: random.Random) -> tuple[str, list[tuple[str, str]]]:
    """A made-up note line and its words with their BIO tags (entities from the closed lists above)."""
    words: list[tuple[str, str]] = []
    for _ in range(rng.randint(6, 14)):
        r = rng.random()
        if r < 0.35:
            kind, names = ("DRUG", DRUGS) if r < 0.17 else ("PROBLEM", PROBLEMS)
            for j, w in enumerate(rng.choice(names).split()):
                words.append((w, f"{'B' if j == 0 else 'I'}-{kind}"))
        else:
            words.append((rng.choice(FILLER), "O"))
    return " ".join(w for w, _ in words) + " .", words + [(".", "O")]


def word_spans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in re.finditer(r"\S+", text)]


def first_token_labels(offsets, text, tags) -> list[int]:
    """Label id on the first sub-token of each word, -100 on the rest (the word-level rule of the task)."""
    spans = word_spans(text)
    labels, seen, w = [], set(), 0
    for s, _ in offsets:
        while spans[w][1] <= s:
            w += 1
        labels.append(-100 if w in seen else LABELS.index(tags[w][1]))
        seen.add(w)
    return labels


def word_tags(pred, text) -> list[str]:
    """The predicted tag of each word: its first sub-token's label."""
    tags = []
    for s, e in word_spans(text):
        tags.append(next(lab for ts, te, lab in pred if ts >= s and te <= e))
    return tags


def entities(tags: list[str]) -> set[tuple[int, int, str]]:
    out, start, kind = set(), None, None
    for i, t in enumerate(tags + ["O"]):
        if start is not None and not (t.startswith("I-") and t[2:] == kind):
            out.add((start, i, kind))
            start = None
        if t.startswith("B-") or (t.startswith("I-") and start is None):
            start, kind = i, t[2:]
    return out


@pytest.fixture(scope="module")
def task():
    rng = random.Random(7)
    return [sentence(rng) for _ in range(320)], [sentence(rng) for _ in range(60)]


@pytest.fixture(scope="module")
def base(tmp_path_factory, task):
    folder = tmp_path_factory.mktemp("enc") / "base"
    train, test = task
    facts = enc.tiny_encoder(folder, [t for t, _ in train + test],
                             enc.TinyEncoderConfig(vocab_size=140, hidden_size=64, num_layers=2, num_heads=2))
    assert facts["vocab_size"] <= 140
    return folder


@pytest.fixture(scope="module")
def trained(base, task, tmp_path_factory):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(base), local_files_only=True)
    train, _ = task
    examples = []
    for (text, tags), (ids, offs) in zip(train, enc.encode_texts(tok, [t for t, _ in train])):
        examples.append(enc.TokenExample(tuple(ids), tuple(first_token_labels(offs, text, tags))))
    assert any(x == -100 for ex in examples for x in ex.labels), "the small vocabulary splits some words"
    out = tmp_path_factory.mktemp("enc") / "tagger"
    facts = train_token_classifier(base, examples, LABELS, out, EncoderTrainSettings(
        lr=3e-3, epochs=20, batch_size=16, warmup_steps=10, seed=0, log_interval=50))
    return out, facts, examples


def test_tiny_encoder_loads_offline(base):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(base), local_files_only=True)
    assert tok.is_fast
    model = AutoModelForTokenClassification.from_pretrained(str(base), num_labels=3, local_files_only=True)
    assert model.config.num_labels == 3
    ids, offs = enc.encode_texts(tok, ["Chest pain today."])[0]
    assert len(ids) == len(offs) and offs[0] == (0, 5)


def test_learns_synthetic_tagging(trained, task):
    out, facts, _ = trained
    _, test = task
    assert facts["labels"] == LABELS and (out / "encoder_train.json").is_file()
    preds = enc.predict_token_labels(out, [t for t, _ in test], batch_size=16)
    correct = total = tp = n_pred = n_gold = 0
    for (text, gold), pred in zip(test, preds):
        tags = word_tags(pred, text)
        gold_tags = [t for _, t in gold]
        correct += sum(a == b for a, b in zip(tags, gold_tags))
        total += len(gold_tags)
        p, g = entities(tags), entities(gold_tags)
        tp, n_pred, n_gold = tp + len(p & g), n_pred + len(p), n_gold + len(g)
    f1 = 2 * tp / max(1, n_pred + n_gold)
    print(f"word accuracy {correct / total:.4f} entity F1 {f1:.4f}")
    assert correct / total >= 0.9 and f1 >= 0.9, (correct / total, f1)


def test_windows_cover_and_overlap():
    assert enc.windows(0, 8, 2) == [] and enc.windows(5, 8, 2) == [(0, 5)]
    spans = enc.windows(list(range(30)), 8, 3)
    assert spans[0] == (0, 8) and spans[-1][1] == 30
    assert all(e - s == 8 for s, e in spans)
    assert all(b[0] == a[1] - 3 for a, b in zip(spans[:-2], spans[1:-1]))
    owners = enc.window_owners(spans, 30)
    for i, w in enumerate(owners):
        s, e = spans[w]
        assert s <= i < e
        d = min(i - s, e - 1 - i)
        assert all(min(i - s2, e2 - 1 - i) <= d for s2, e2 in spans if s2 <= i < e2)
    with pytest.raises(ConfigError):
        enc.windows(10, 4, 4)


def _single_pass(model, tok, ids):
    import torch

    before, after = enc.special_ids(tok)
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([before + ids + after])).logits[0]
    return logits.argmax(-1).tolist()[len(before):len(before) + len(ids)]


def test_windows_merge_equals_single_pass(trained, task):
    out, _, _ = trained
    model, tok, _ = enc.load_token_classifier(out)
    text = " ".join(t for t, _ in task[1][:12])
    (ids, offs), = enc.encode_texts(tok, [text])
    assert len(ids) > 100
    # fits: one window, the same ids as one forward pass of the whole text
    assert enc.predict_ids(model, tok, [(ids, offs)], max_length=512)[0] == _single_pass(model, tok, ids)
    # does not fit: every token takes the prediction of its most central window
    windowed = enc.predict_ids(model, tok, [(ids, offs)], max_length=34, stride=12)[0]
    spans = enc.windows(len(ids), 32, 12)
    assert len(spans) > 3
    passes = [_single_pass(model, tok, ids[s:e]) for s, e in spans]
    owners = enc.window_owners(spans, len(ids))
    assert windowed == [passes[w][i - spans[w][0]] for i, w in enumerate(owners)]


def test_batched_length_sorted_equals_unbatched(trained, task):
    out, _, _ = trained
    model, tok, _ = enc.load_token_classifier(out)
    rng = random.Random(1)
    texts = [" ".join(t for t, _ in rng.sample(task[1], rng.randint(1, 8))) for _ in range(25)] + ["", "fever ."]
    rng.shuffle(texts)
    encoded = enc.encode_texts(tok, texts)
    batched = enc.predict_ids(model, tok, encoded, batch_size=8, max_length=64, stride=16)
    alone = [enc.predict_ids(model, tok, [e], batch_size=1, max_length=64, stride=16)[0] for e in encoded]
    assert batched == alone
    assert [len(b) for b in batched] == [len(ids) for ids, _ in encoded]
    labelled = enc.predict_token_labels(out, texts, batch_size=8, max_length=64, stride=16)
    assert [[(s, e) for s, e, _ in p] for p in labelled] == [offs for _, offs in encoded]


def test_slow_tokenizer_names_folder(trained, tmp_path):
    from transformers import ByT5Tokenizer

    out, _, examples = trained
    slow = tmp_path / "slow-model"
    shutil.copytree(out, slow)
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (slow / f).unlink(missing_ok=True)
    ByT5Tokenizer().save_pretrained(slow)
    with pytest.raises(ConfigError, match="slow-model.*offset mapping"):
        enc.predict_token_labels(slow, ["fever ."])
    with pytest.raises(ConfigError, match="slow-model.*offset mapping"):
        train_token_classifier(slow, examples[:4], LABELS, tmp_path / "x", EncoderTrainSettings(max_steps=1))
    assert not (tmp_path / "x").exists()


def test_label_without_id_at_predict(trained):
    out, _, _ = trained
    with pytest.raises(ConfigError, match="no label id for B-DOSE, I-DOSE"):
        enc.predict_token_labels(out, ["fever ."], expected_labels=["B-DRUG", "B-DOSE", "I-DOSE"])
    assert enc.predict_token_labels(out, ["fever ."], expected_labels=LABELS[1:])[0]


def test_continued_model_label_set(trained, tmp_path):
    out, _, examples = trained
    with pytest.raises(ConfigError, match="different label set.*B-DOSE"):
        train_token_classifier(out, examples[:8], LABELS[:3] + ["B-DOSE", "I-DOSE"], tmp_path / "cont",
                               EncoderTrainSettings(max_steps=1))
    assert not (tmp_path / "cont").exists()
    # same labels in another order: mapped onto the model's ids, the model's order kept
    swapped = [LABELS[0], LABELS[2], LABELS[1], LABELS[3], LABELS[4]]
    remap = {1: 2, 2: 1}
    ex = [enc.TokenExample(e.input_ids, tuple(remap.get(x, x) for x in e.labels)) for e in examples[:8]]
    facts = train_token_classifier(out, ex, swapped, tmp_path / "cont", EncoderTrainSettings(max_steps=1))
    assert facts["labels"] == LABELS


def test_bad_label_ids_are_input_errors(base, tmp_path):
    bad = [enc.TokenExample((5, 6), (0, 9)), enc.TokenExample((5,), (-100,))]
    with pytest.raises(InputError, match=r"examples\[0\].*label ids \[9\]") as err:
        train_token_classifier(base, bad, LABELS, tmp_path / "o", EncoderTrainSettings(max_steps=1))
    assert isinstance(err.value, ClinieError) and err.value.exit_code == 2
    with pytest.raises(ConfigError):
        enc.TokenExample((1, 2), (0,))
