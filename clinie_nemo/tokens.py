"""Token counters for fitting prompts into ``max_tokens``: a real tokenizer from a local folder
(``transformers.AutoTokenizer.from_pretrained(dir, local_files_only=True)``, imported lazily), or the
stated fallback: one token per word (``\\w+``) or punctuation character (``[^\\w\\s]``).

A record's length is ``count(input) + count(output) + 2`` (BOS and EOS; the SFT loaders add them).
The fallback under-counts sub-word tokenizers on rare words: give ``--tokenizer`` for a real budget.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from clinie_nemo.errors import ConfigError

SPECIAL_TOKENS_PER_RECORD = 2
_FALLBACK_PATTERN = re.compile(r"\w+|[^\w\s]")


class TokenCounter(Protocol):
    name: str

    def count(self, text: str) -> int: ...

    def count_many(self, texts: Sequence[str]) -> list[int]: ...


class FallbackCounter:
    """Words and punctuation characters: a stated approximation, no tokenizer needed."""

    name = "fallback:words+punct"

    def count(self, text: str) -> int:
        return len(_FALLBACK_PATTERN.findall(text))

    def count_many(self, texts: Sequence[str]) -> list[int]:
        return [self.count(t) for t in texts]


class HFTokenCounter:
    """A Hugging Face tokenizer loaded offline from a local folder."""

    def __init__(self, folder: str | Path):
        path = Path(folder)
        if not path.is_dir():
            raise ConfigError(f"tokenizer folder {path} not found (give a local folder, or omit --tokenizer "
                              "for the fallback counter)")
        from transformers import AutoTokenizer  # the tokenizer loader: imported lazily

        try:
            self._tok: Any = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load a tokenizer from {path}: {exc}") from None
        self.name = f"tokenizer:{path}"

    def count(self, text: str) -> int:
        return len(self._tok(text, add_special_tokens=False)["input_ids"])

    def count_many(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        return [len(ids) for ids in self._tok(list(texts), add_special_tokens=False)["input_ids"]]


_CACHE: dict[str, TokenCounter] = {}


def load_counter(tokenizer: str | Path | None = None) -> TokenCounter:
    """The (cached) counter for a local tokenizer folder, or the fallback for ``None``."""
    key = str(Path(tokenizer).resolve()) if tokenizer is not None else FallbackCounter.name
    if key not in _CACHE:
        _CACHE[key] = HFTokenCounter(tokenizer) if tokenizer is not None else FallbackCounter()
    return _CACHE[key]


def record_tokens(counter: TokenCounter, input_text: str, output_text: str) -> int:
    return counter.count(input_text) + counter.count(output_text) + SPECIAL_TOKENS_PER_RECORD
