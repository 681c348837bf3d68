"""Encoder token classification on the local engine: tiny offline BERT, windows, batched prediction.

The model side of the encoder arm (issue 18); how per-token labels are made (BIO/BIOES over entities) is
not decided here: callers hand over label ids per token and receive a label per token.

- :func:`tiny_encoder` builds an offline random-init BERT (``BertModel`` from a ``BertConfig``, seeded) and a
  FAST WordPiece tokenizer trained on the given texts; the folder loads with
  ``AutoModelForTokenClassification.from_pretrained(folder, local_files_only=True)`` (the classifier head
  is created at training, with ``num_labels`` from the label names) and ``AutoTokenizer``. Nothing downloads.
- :func:`encode_texts` is THE tokenisation of a note: ``(input_ids, offsets)`` of its content tokens, no
  special tokens, offsets = (char start, char end) in the note. Training examples (:class:`TokenExample`)
  carry such ``input_ids`` with one label id per token (-100 = ignored, e.g. non-first sub-tokens).
- :func:`windows` cuts a long token sequence into overlapping windows of at most ``max_len`` content tokens,
  consecutive windows sharing ``stride`` tokens; :func:`window_owners` merges predictions back: each token
  takes the prediction of the window where it is MOST CENTRAL (largest distance to that window's nearer
  edge; on a tie the earlier window). A text that fits is one window, so merging changes nothing.
- :func:`predict_token_labels` runs batched, LENGTH-SORTED inference over all windows of all texts (longest
  first, input order restored) and returns per text the list of ``(char start, char end, label)`` per
  content token (special tokens never appear: they are added around each window and dropped).

Bad input raises :class:`ConfigError`/:class:`InputError` (exit 2): a tokenizer without offset mapping
(slow tokenizer) names the model folder; expected labels the model has no id for; a label set that differs
from a model being continued (:mod:`.encoder_train`). torch/transformers are imported lazily.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from clinie_nemo.core.errors import ConfigError, InputError, Problem
from clinie_nemo.core.fileio import atomic_dir

IGNORE = -100
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
DEFAULT_LABEL = re.compile(r"^LABEL_\d+$")  # transformers' placeholder names: no label map trained yet


@dataclass(frozen=True)
class TinyEncoderConfig:
    vocab_size: int = 2000
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 2
    intermediate_size: int = 128
    max_position_embeddings: int = 512
    seed: int = 0

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ConfigError(f"hidden size {self.hidden_size} must divide by heads {self.num_heads}")
        if self.vocab_size < 100:
            raise ConfigError("vocab size must be >= 100")


@dataclass(frozen=True)
class TokenExample:
    """One training text as the model tokenizer's content tokens (:func:`encode_texts`, no special tokens)
    and one label id per token: an index into the label names, or -100 (no loss on that token)."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.input_ids) != len(self.labels):
            raise ConfigError(f"token example has {len(self.input_ids)} tokens but {len(self.labels)} labels")


def train_wordpiece(texts: Iterable[str], vocab_size: int) -> Any:
    """A BERT-style WordPiece tokenizer trained on ``texts``; returns a transformers PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(texts, trainer=trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", clean_up_tokenization_spaces=False)


def tiny_encoder(folder: str | Path, texts: Iterable[str], config: TinyEncoderConfig | None = None,
                 force: bool = False) -> dict[str, Any]:
    """Build a random-init BERT and a WordPiece tokenizer trained on ``texts``; save both atomically into
    ``folder``. Returns facts (parameters, vocab size, the config)."""
    import torch
    from transformers import BertConfig, BertModel

    config = config or TinyEncoderConfig()
    tokenizer = train_wordpiece(texts, config.vocab_size)
    torch.manual_seed(config.seed)
    bert = BertConfig(vocab_size=len(tokenizer), hidden_size=config.hidden_size,
                      num_hidden_layers=config.num_layers, num_attention_heads=config.num_heads,
                      intermediate_size=config.intermediate_size,
                      max_position_embeddings=config.max_position_embeddings,
                      pad_token_id=tokenizer.pad_token_id)
    model = BertModel(bert, add_pooling_layer=False)
    with atomic_dir(folder, force=force) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    params = sum(p.numel() for p in model.parameters())
    return {"parameters": params, "vocab_size": len(tokenizer), **asdict(config)}


def load_fast_tokenizer(model_dir: str | Path) -> Any:
    """The folder's tokenizer; a tokenizer without offset mapping (a slow, Python one) is a ConfigError."""
    from transformers import AutoTokenizer

    if not Path(model_dir).is_dir():
        raise ConfigError(f"model folder {model_dir} not found (the local engine loads local HF folders only)")
    tok = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    if not getattr(tok, "is_fast", False):
        raise ConfigError(f"{model_dir}: tokenizer {type(tok).__name__} has no offset mapping (a slow tokenizer); "
                          "token classification needs a fast tokenizer (tokenizer.json, HF `tokenizers`)")
    return tok


def special_ids(tokenizer: Any) -> tuple[list[int], list[int]]:
    """(ids put before, ids put after) each window: [CLS] .. [SEP] (else BOS .. EOS, when defined)."""
    first = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    last = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    return ([first] if first is not None else []), ([last] if last is not None else [])


def encode_texts(tokenizer: Any, texts: Sequence[str]) -> list[tuple[list[int], list[tuple[int, int]]]]:
    """Per text (content token ids, (char start, char end) per token); no special tokens, no truncation."""
    if not texts:
        return []
    enc = tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True, truncation=False,
                    verbose=False)
    return [(list(ids), [(int(s), int(e)) for s, e in offs])
            for ids, offs in zip(enc["input_ids"], enc["offset_mapping"])]


def content_length(tokenizer: Any, model_config: Any, max_length: int | None = None) -> int:
    """Content tokens per window: the model's (or the asked) length less the special tokens."""
    limit = getattr(model_config, "max_position_embeddings", None) or 512
    total = min(limit, max_length) if max_length else limit
    before, after = special_ids(tokenizer)
    room = total - len(before) - len(after)
    if room < 2:
        raise ConfigError(f"max length {total} leaves no room for content tokens")
    return room


def windows(offsets: Sequence[Any] | int, max_len: int, stride: int) -> list[tuple[int, int]]:
    """Token ranges [start, end) covering ``offsets`` (a token list, or its length): at most ``max_len``
    tokens each, consecutive windows overlapping by ``stride`` tokens (the last one ends at the text's end,
    so it may overlap more). An empty text has no window; a text that fits has one."""
    n = offsets if isinstance(offsets, int) else len(offsets)
    if max_len < 1 or not 0 <= stride < max_len:
        raise ConfigError(f"windows need max_len >= 1 and 0 <= stride < max_len (got {max_len}, {stride})")
    if n == 0:
        return []
    if n <= max_len:
        return [(0, n)]
    step, spans, start = max_len - stride, [], 0
    while start + max_len < n:
        spans.append((start, start + max_len))
        start += step
    spans.append((n - max_len, n))
    return spans


def window_owners(spans: Sequence[tuple[int, int]], n: int) -> list[int]:
    """For each of ``n`` tokens, the index of the window where it is most central (distance to that
    window's nearer edge largest; ties go to the earlier window)."""
    owner, best = [0] * n, [-1] * n
    for w, (s, e) in enumerate(spans):
        for i in range(s, e):
            d = min(i - s, e - 1 - i)
            if d > best[i]:
                owner[i], best[i] = w, d
    return owner


def model_labels(config: Any) -> list[str] | None:
    """The model's label names by id, or None when it carries only transformers' placeholders."""
    id2label = getattr(config, "id2label", None) or {}
    names = [id2label[i] for i in sorted(id2label, key=int)]
    if not names or all(DEFAULT_LABEL.match(str(n)) for n in names):
        return None
    return [str(n) for n in names]


def check_expected_labels(model_dir: str | Path, names: Sequence[str] | None, expected: Iterable[str]) -> None:
    """Every label the caller will look for must have an id in the model."""
    missing = sorted(set(expected) - set(names or ()))
    if missing:
        raise ConfigError(f"{model_dir}: the model has no label id for {', '.join(missing)} "
                          f"(its labels: {', '.join(names or ['none (not trained for token classification)'])})")


def load_token_classifier(model_dir: str | Path) -> tuple[Any, Any, list[str]]:
    """(model in eval mode on the device, fast tokenizer, label names by id) of a trained folder."""
    from transformers import AutoModelForTokenClassification

    from clinie_nemo.engines.local import runtime

    runtime.quiet_transformers()
    if not (Path(model_dir) / "config.json").is_file():
        raise ConfigError(f"model folder {model_dir} has no config.json (the local engine loads local HF folders)")
    tokenizer = load_fast_tokenizer(model_dir)
    model = AutoModelForTokenClassification.from_pretrained(str(model_dir), local_files_only=True)
    names = model_labels(model.config)
    if names is None:
        raise ConfigError(f"{model_dir}: no label map (id2label) in config.json; is it a trained token classifier?")
    device, _ = runtime.device_and_dtype("fp32")
    model.to(device).eval()
    return model, tokenizer, names


def predict_ids(model: Any, tokenizer: Any, encoded: Sequence[tuple[list[int], Any]], batch_size: int = 32,
                max_length: int | None = None, stride: int = 64) -> list[list[int]]:
    """Predicted label id per content token of each encoded text: all windows of all texts, sorted by
    length (longest first), run ``batch_size`` at a time (padded to the batch's longest), merged back."""
    import torch

    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1 (got {batch_size})")
    room = content_length(tokenizer, model.config, max_length)
    before, after = special_ids(tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    spans = [windows(len(ids), room, min(stride, room - 1)) for ids, _ in encoded]
    pieces = [(t, w, s, e) for t, sp in enumerate(spans) for w, (s, e) in enumerate(sp)]
    order = sorted(range(len(pieces)), key=lambda k: -(pieces[k][3] - pieces[k][2]))  # stable: ties keep order
    out: dict[tuple[int, int], list[int]] = {}
    device = next(model.parameters()).device
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            batch = [pieces[k] for k in order[b:b + batch_size]]
            rows = [before + encoded[t][0][s:e] + after for t, _, s, e in batch]
            width = max(len(r) for r in rows)
            ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=device)
            mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=device)
            best = model(input_ids=ids, attention_mask=mask).logits.argmax(-1).tolist()
            for (t, w, s, e), row in zip(batch, best):
                out[(t, w)] = row[len(before):len(before) + e - s]
    result = []
    for t, sp in enumerate(spans):
        n = len(encoded[t][0])
        owners = window_owners(sp, n)
        result.append([out[(t, owners[i])][i - sp[owners[i]][0]] for i in range(n)])
    return result


def predict_token_labels(model_dir: str | Path, texts: Sequence[str], batch_size: int = 32,
                         max_length: int | None = None, stride: int = 64,
                         expected_labels: Iterable[str] = ()) -> list[list[tuple[int, int, str]]]:
    """Per text, ``(char start, char end, label)`` for each content token, in input order. ``stride``:
    tokens shared by consecutive windows of a long text; ``expected_labels``: labels the caller will decode
    (e.g. B-/I- of every entity type of the schema), each must have an id in the model."""
    bad = [Problem(f"texts[{i}]", None, f"expected a string, got {type(t).__name__}")
           for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise InputError(bad, "predict_token_labels: not texts")
    model, tokenizer, names = load_token_classifier(model_dir)
    check_expected_labels(model_dir, names, expected_labels)
    encoded = encode_texts(tokenizer, texts)
    ids = predict_ids(model, tokenizer, encoded, batch_size, max_length, stride)
    return [[(s, e, names[p]) for (s, e), p in zip(offs, pred)] for (_, offs), pred in zip(encoded, ids)]
