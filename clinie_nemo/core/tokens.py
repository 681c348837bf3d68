"""Token counters for fitting prompts into ``max_tokens``: a real tokenizer from a local folder
(its ``tokenizer.json`` through ``tokenizers``, else ``transformers.AutoTokenizer.from_pretrained(dir,
local_files_only=True)``; both imported lazily), or the
stated fallback: one token per word (``\\w+``) or punctuation character (``[^\\w\\s]``).

A record's length is ``count(input) + count(output) + 2`` (BOS and EOS; the SFT loaders add them).
The fallback under-counts sub-word tokenizers on rare words: give ``--tokenizer`` for a real budget.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from clinie_nemo.core.errors import ConfigError

SPECIAL_TOKENS_PER_RECORD = 2
_FALLBACK_PATTERN = re.compile(r"\w+|[^\w\s]")


class TokenCounter(Protocol):
    name: str

    def count(self, text: str) -> int: ...

    def count_many(self, texts: Sequence[str]) -> list[int]: ...

    def spans(self, text: str) -> list[tuple[int, int]]: ...


class FallbackCounter:
    """Words and punctuation characters: a stated approximation, no tokenizer needed."""

    name = "fallback:words+punct"

    def count(self, text: str) -> int:
        return len(_FALLBACK_PATTERN.findall(text))

    def count_many(self, texts: Sequence[str]) -> list[int]:
        return [self.count(t) for t in texts]

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the tokens of ``text``."""
        return [m.span() for m in _FALLBACK_PATTERN.finditer(text)]


class HFTokenCounter:
    """A Hugging Face tokenizer loaded offline from a local folder. A folder with ``tokenizer.json`` (every
    fast tokenizer) is read with the ``tokenizers`` library directly: the same backend
    ``PreTrainedTokenizerFast`` calls, without importing transformers (and torch) in the core. Other folders
    (slow, sentencepiece-only) go through ``transformers.AutoTokenizer``."""

    def __init__(self, folder: str | Path):
        path = Path(folder)
        if not path.is_dir():
            raise ConfigError(f"tokenizer folder {path} not found (give a local folder, or omit --tokenizer "
                              "for the fallback counter)")
        self.name = f"tokenizer:{path}"
        self._fast: Any = None
        self._tok: Any = None
        if (path / "tokenizer.json").is_file():
            from tokenizers import Tokenizer  # imported lazily

            try:
                self._fast = Tokenizer.from_file(str(path / "tokenizer.json"))
                return
            except Exception as exc:  # noqa: BLE001 - a corrupt file: report it as a config problem
                raise ConfigError(f"cannot load {path / 'tokenizer.json'}: {exc}") from None
        from transformers import AutoTokenizer  # the tokenizer loader: imported lazily

        try:
            self._tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load a tokenizer from {path}: {exc}") from None

    def count(self, text: str) -> int:
        if self._fast is not None:
            return len(self._fast.encode(text, add_special_tokens=False).ids)
        return len(self._tok(text, add_special_tokens=False)["input_ids"])

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the tokens of ``text`` (what a range of it costs, approximately)."""
        if self._fast is not None:
            return list(self._fast.encode(text, add_special_tokens=False).offsets)
        return list(self._tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"])

    def count_many(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        if self._fast is not None:
            return [len(e.ids) for e in self._fast.encode_batch(list(texts), add_special_tokens=False)]
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
