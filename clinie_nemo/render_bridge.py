"""The one place where mixing calls into rendering (task kinds, templates, chunking, target formats).

:func:`render_documents` turns documents of one dataset into records for one task kind, and
:func:`token_counter` gives the token counter rendering uses (a local tokenizer folder or the fallback).
Mixing, packing statistics and the benchmarks call only these, so the renderer behind them can change
without touching them.

INTERIM: until the instruction renderer (issue 3, helper "instruct") is merged, a minimal renderer lives
here: one record per document and task, the whole document as one chunk, ``lines``-style targets. It keeps
the record contract (``input``, ``output``, ``id``, ``dataset``, ``task``, ``template``, ``template_hash``,
``format``, ``doc_id``, ``chunk``) so everything downstream is exercised for real.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinie_nemo.document import Document
from clinie_nemo.errors import ConfigError

FALLBACK_TOKENIZER = "fallback"
_FALLBACK_PATTERN = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True)
class RenderOptions:
    task: str
    format: str = "json"
    template_policy: str = "rotate"  # fixed | rotate
    template_name: str | None = None
    max_tokens: int = 2048
    tokenizer: str | None = None  # local tokenizer folder; None = fallback counter
    seed: int = 13


@dataclass
class RenderResult:
    records: list[dict[str, Any]]
    report: dict[str, Any] = field(default_factory=dict)  # counts only (losses by cause, cut relations)


class TokenCounter:
    """Counts tokens of a text: a local Hugging Face tokenizer folder (offline) or the fallback counter
    (one token per word or punctuation character, a stated approximation)."""

    def __init__(self, tokenizer: str | Path | None = None):
        self.name = FALLBACK_TOKENIZER
        self._tokenizer: Any = None
        if tokenizer is not None:
            folder = Path(tokenizer)
            if not folder.is_dir():
                raise ConfigError(f"tokenizer folder {folder} not found (give a local folder, or no tokenizer "
                                  "for the fallback counter)")
            from transformers import AutoTokenizer  # the tokenizer loader: imported lazily

            try:
                self._tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            except (OSError, ValueError) as exc:
                raise ConfigError(f"cannot load a tokenizer from {folder}: {exc}") from None
            self.name = str(folder)

    def count(self, text: str) -> int:
        if self._tokenizer is None:
            return len(_FALLBACK_PATTERN.findall(text))
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_many(self, texts: Sequence[str]) -> list[int]:
        if self._tokenizer is None or not texts:
            return [self.count(t) for t in texts]
        return [len(ids) for ids in self._tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


_COUNTERS: dict[str, TokenCounter] = {}


def token_counter(tokenizer: str | Path | None = None) -> TokenCounter:
    """The (cached) counter rendering uses for ``tokenizer``."""
    key = str(Path(tokenizer).resolve()) if tokenizer is not None else FALLBACK_TOKENIZER
    if key not in _COUNTERS:
        _COUNTERS[key] = TokenCounter(tokenizer)
    return _COUNTERS[key]


# ------------------------------------------------------------------------------------ interim renderer

_INTERIM_TEMPLATES = {
    "ce": ("ce_list", "Extract every clinical concept from the note below. Answer one 'label | mention' per line.\n\n"),
    "re_pair": ("re_list", "List the relations between concepts in the note below, one "
                           "'label | head | tail' per line.\n\n"),
    "re_e2e": ("re_e2e_list", "Extract the concepts and the relations between them from the note below.\n\n"),
}


def _interim_render(docs: Iterable[Document], dataset: str, options: RenderOptions) -> RenderResult:
    if options.task not in _INTERIM_TEMPLATES:
        raise ConfigError(f"unknown task {options.task!r}; valid: {', '.join(sorted(_INTERIM_TEMPLATES))}")
    name, instruction = _INTERIM_TEMPLATES[options.task]
    template_hash = hashlib.sha256(instruction.encode()).hexdigest()[:12]
    records = []
    for doc in docs:
        by_id = doc.entity_index()
        if options.task == "ce":
            lines = [f"{e.label} | {e.text}" for e in doc.entities]
        else:
            lines = [f"{r.label} | {by_id[r.head].text if r.head in by_id else r.head} | "
                     f"{by_id[r.tail].text if r.tail in by_id else r.tail}" for r in doc.relations]
            if options.task == "re_e2e":
                lines = [f"{e.label} | {e.text}" for e in doc.entities] + lines
        records.append({
            "input": instruction + doc.text, "output": "\n".join(lines) or "none",
            "id": f"{dataset}/{doc.id}/{options.task}/0", "dataset": dataset, "task": options.task,
            "template": options.template_name or name, "template_hash": template_hash, "format": options.format,
            "doc_id": doc.id, "chunk": [0, len(doc.text)],
        })
    return RenderResult(records, {"renderer": "interim", "documents": len(records)})


def render_documents(docs: Sequence[Document], dataset: str, options: RenderOptions) -> RenderResult:
    """Records for ``docs`` (all of one dataset) and one task kind, in document order."""
    return _interim_render(docs, dataset, options)


def attach_few_shot(record: dict[str, Any], examples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The record with ``examples`` (records of the same task) shown before its prompt; the example ids
    are kept in ``few_shot`` so a reader can check where they came from."""
    if not examples:
        return record
    shots = "".join(f"### Example {i}\n{ex['input']}\n### Answer\n{ex['output']}\n\n"
                    for i, ex in enumerate(examples, 1))
    return {**record, "input": f"{shots}### Task\n{record['input']}", "few_shot": [ex["id"] for ex in examples]}


def record_token_lengths(records: Sequence[dict[str, Any]], counter: TokenCounter,
                         progress_wrap: Callable[[Iterable[Any]], Iterable[Any]] | None = None) -> list[int]:
    """Tokens per record as the SFT loaders build it: prompt + target + EOS (NeMo add_eos=true)."""
    batch = 256
    lengths: list[int] = []
    starts: Iterable[int] = range(0, len(records), batch)
    if progress_wrap is not None:
        starts = progress_wrap(starts)
    for start in starts:
        chunk = records[start:start + batch]
        ins = counter.count_many([r["input"] for r in chunk])
        outs = counter.count_many([r["output"] for r in chunk])
        lengths.extend(a + b + 1 for a, b in zip(ins, outs))
    return lengths
