"""The BIO ceiling: what a token classifier cannot represent in a corpus, measured per dataset and split.

For each document, the gold entities are encoded (:func:`clinie_nemo.instruct.bio.encode`, the whole text
as one window) over the tokens of ``tokenize(text)`` and decoded back. Per (dataset, split):

- ``entities``: gold entity annotations; ``lost``: those the tags cannot represent, by cause (the causes of
  :mod:`clinie_nemo.instruct.bio`); ``lost_share`` = lost / entities;
- the *oracle* strict micro precision, recall and F1 of ``decode(encode(gold))`` against the full gold: set
  arithmetic on (document, label, spans) where a decoded span is one fragment and a discontinuous gold
  entity keeps its fragment tuple, so it can never be matched. This is the best strict F1 any BIO/BIOES
  token classifier with this tokenizer can reach on the corpus. Identical gold annotations (same label and
  span) count once in the sets, once each in ``entities``.

``tokenize`` maps a text to token offsets. :func:`word_offsets` (words and punctuation characters, the
project's fallback token counter) needs no model; :func:`tokenizer_offsets` adapts a Hugging Face fast
tokenizer (``transformers`` or ``tokenizers``), :func:`load_tokenize` a local tokenizer folder.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinie_nemo.core.document import Document
from clinie_nemo.core.errors import ConfigError
from clinie_nemo.core.tokens import FallbackCounter, load_counter
from clinie_nemo.instruct.bio import CAUSES, Offset, check_scheme, decode, encode

Tokenize = Callable[[str], list[Offset]]
CEILING_CAUSES = tuple(c for c in CAUSES if c != "window_edge")  # one window per document: never at an edge


def word_offsets(text: str) -> list[Offset]:
    """Words (``\\w+``) and punctuation characters: the default tokens, no model needed."""
    return FallbackCounter().spans(text)


def _trim(text: str, offsets: Iterable[Any]) -> list[Offset]:
    """Offsets without edge whitespace (SentencePiece and byte-level tokens carry the space before a word);
    special and empty tokens dropped."""
    out = []
    for o in offsets:
        if o is None:
            continue
        s, t = int(o[0]), int(o[1])
        while s < t and text[s].isspace():
            s += 1
        while t > s and text[t - 1].isspace():
            t -= 1
        if s < t:
            out.append((s, t))
    return out


def tokenizer_offsets(tokenizer: Any) -> Tokenize:
    """A ``tokenize`` function from a Hugging Face fast tokenizer: a ``transformers`` tokenizer (called with
    ``return_offsets_mapping=True``) or a ``tokenizers.Tokenizer`` (``encode(...).offsets``). No special
    tokens are added; offsets are trimmed of edge whitespace. A slow tokenizer (no offset mapping) is a
    :class:`ConfigError`."""
    if getattr(tokenizer, "is_fast", None) is False:
        raise ConfigError(f"tokenizer {type(tokenizer).__name__} is a slow tokenizer: it has no offset mapping, "
                          "which BIO tagging needs (use a fast tokenizer: a folder with tokenizer.json)")
    if callable(tokenizer) and hasattr(tokenizer, "is_fast"):  # transformers PreTrainedTokenizerFast
        def tokenize(text: str) -> list[Offset]:
            enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False)
            return _trim(text, enc["offset_mapping"])
        return tokenize
    if hasattr(tokenizer, "encode"):  # tokenizers.Tokenizer
        def tokenize_fast(text: str) -> list[Offset]:
            return _trim(text, tokenizer.encode(text, add_special_tokens=False).offsets)
        return tokenize_fast
    raise ConfigError(f"{type(tokenizer).__name__} is not a Hugging Face fast tokenizer")


def load_tokenize(folder: str | Path | None) -> tuple[str, Tokenize]:
    """(name, tokenize) for a local tokenizer folder, or the word-level default for ``None``."""
    if folder is None:
        return FallbackCounter.name, word_offsets
    counter = load_counter(folder)

    def tokenize(text: str) -> list[Offset]:
        try:
            return _trim(text, counter.spans(text))
        except NotImplementedError:  # transformers: return_offsets_mapping on a slow tokenizer
            raise ConfigError(f"the tokenizer in {folder} has no offset mapping (a slow tokenizer), which BIO "
                              "tagging needs; give a folder with tokenizer.json") from None
    return counter.name, tokenize


@dataclass
class CeilingRow:
    """The ceiling of one (dataset, split)."""

    dataset: str
    split: str
    documents: int = 0
    entities: int = 0
    lost: Counter[str] = field(default_factory=Counter)
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def lost_total(self) -> int:
        return sum(self.lost.values())

    @property
    def lost_share(self) -> float:
        return self.lost_total / self.entities if self.entities else 0.0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "split": self.split, "documents": self.documents,
                "entities": self.entities, "lost": {c: self.lost.get(c, 0) for c in CEILING_CAUSES},
                "lost_total": self.lost_total, "lost_share": self.lost_share, "tp": self.tp, "fp": self.fp,
                "fn": self.fn, "precision": self.precision, "recall": self.recall, "f1": self.f1}


def document_ceiling(doc: Document, tokenize: Tokenize = word_offsets, scheme: str = "BIO"
                     ) -> tuple[Counter[str], set[tuple], set[tuple]]:
    """(lost by cause, gold set, decoded set) of one document; set items are (label, spans)."""
    labels = sorted({e.label for e in doc.entities})
    offsets = tokenize(doc.text)
    enc = encode(doc.entities, offsets, labels, scheme)
    gold = {(e.label, e.spans) for e in doc.entities}
    decoded = {(label, ((start, end),)) for label, start, end in decode(enc.tags, offsets, scheme)}
    return enc.lost, gold, decoded


def bio_ceiling(documents: Iterable[Document], tokenize: Tokenize = word_offsets, scheme: str = "BIO"
                ) -> dict[tuple[str, str], CeilingRow]:
    """The ceiling per (dataset, split), in first-seen order (module docstring)."""
    check_scheme(scheme)
    rows: dict[tuple[str, str], CeilingRow] = {}
    for doc in documents:
        row = rows.setdefault((doc.dataset, doc.split), CeilingRow(doc.dataset, doc.split))
        lost, gold, decoded = document_ceiling(doc, tokenize, scheme)
        row.documents += 1
        row.entities += len(doc.entities)
        row.lost.update(lost)
        row.tp += len(gold & decoded)
        row.fp += len(decoded - gold)
        row.fn += len(gold - decoded)
    return rows


def ceiling_total(rows: Iterable[CeilingRow]) -> CeilingRow:
    """All rows summed (micro): dataset and split ``all``."""
    total = CeilingRow("all", "all")
    for row in rows:
        total.documents += row.documents
        total.entities += row.entities
        total.lost.update(row.lost)
        total.tp, total.fp, total.fn = total.tp + row.tp, total.fp + row.fp, total.fn + row.fn
    return total


_SHORT = {"discontinuous": "discont", "boundary_mid_token": "mid_tok", "boundary_off_token": "off_tok",
          "nested": "nested", "overlapping": "overlap"}


def format_ceiling(rows: list[CeilingRow], scheme: str, tokenizer_name: str) -> list[str]:
    """The table printed by `clinie-nemo stats --bio-ceiling`; a total line when there are several rows."""
    lines = [f"{scheme} ceiling (tokens: {tokenizer_name}; oracle = decode(encode(gold)) vs gold, strict micro)",
             "  lost by cause: " + ", ".join(f"{_SHORT[c]} = {c}" for c in CEILING_CAUSES)]
    head = (f"  {'dataset':<16} {'split':<8} {'entities':>8} "
            + " ".join(f"{_SHORT[c]:>8}" for c in CEILING_CAUSES)
            + f" {'lost':>6} {'lost%':>6} {'P':>6} {'R':>6} {'F1':>6}")
    lines.append(head)
    shown = [*rows, ceiling_total(rows)] if len(rows) > 1 else rows
    for r in shown:
        lines.append(f"  {r.dataset or '-':<16} {r.split or '-':<8} {r.entities:>8} "
                     + " ".join(f"{r.lost.get(c, 0):>8}" for c in CEILING_CAUSES)
                     + f" {r.lost_total:>6} {100 * r.lost_share:>6.2f} {100 * r.precision:>6.2f}"
                     f" {100 * r.recall:>6.2f} {100 * r.f1:>6.2f}")
    return lines
