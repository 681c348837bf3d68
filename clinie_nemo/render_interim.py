"""INTERIM renderer, used by :mod:`clinie_nemo.render_bridge` only while the instruction renderer
(:mod:`clinie_nemo.render`, helper "instruct") is not in this checkout; delete it once that is merged.

Sentence/line windows filled up to ``max_tokens`` (never cutting an entity), ``label | mention`` targets,
prompts laid out like the real renderer's (instruction, examples, ``Text:``/``Answer:`` headers), and the
record contract fields, so mixing is exercised for real.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinie_nemo.document import Document
from clinie_nemo.errors import ConfigError

FALLBACK_TOKENIZER = "fallback:words+punct"
SPECIAL_TOKENS_PER_RECORD = 2  # BOS and EOS
TEXT_HEADER, ANSWER_HEADER = "Text:", "Answer:"
_FALLBACK_PATTERN = re.compile(r"\w+|[^\w\s]")


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

    def token_starts(self, text: str) -> list[int]:
        """Character offset where each token of ``text`` starts (tokenized as a whole)."""
        if self._tokenizer is None:
            return [m.start() for m in _FALLBACK_PATTERN.finditer(text)]
        enc = self._tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return [start for start, _ in enc["offset_mapping"]]

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
    "ce": ("ce_list", "Extract every clinical concept from the text. Answer one 'label | mention' per line."),
    "re_pair": ("re_list", "List the relations between concepts in the note below, one "
                           "'label | head | tail' per line.\n\n"),
    "re_e2e": ("re_e2e_list", "Extract the concepts and the relations between them from the note below.\n\n"),
}


def _interim_chunks(doc: Document, budget: int, counter: TokenCounter, with_entities: bool) -> list[tuple[int, int]]:
    """Greedy sentence/line windows whose text tokens (plus, when ``with_entities``, the target lines of
    the entities inside) sum to at most ``budget``; never cut inside an entity. A segment longer than the
    budget becomes its own chunk."""
    inside = [False] * (len(doc.text) + 1)
    for e in doc.entities:
        for i in range(e.start + 1, e.end):
            inside[i] = True
    cuts = [m.end() for m in re.finditer(r"\n+|(?<=[.;:!?])\s+", doc.text) if not inside[m.end()]]
    edges = [0, *cuts, len(doc.text)]
    segments = [(a, b) for a, b in zip(edges, edges[1:]) if b > a]
    starts = [a for a, _ in segments]
    needs = [0] * len(segments)
    for token_start in counter.token_starts(doc.text):  # tokens of the whole text, by segment
        needs[max(0, bisect.bisect_right(starts, token_start) - 1)] += 1
    if with_entities:  # plus each segment's target lines ("label | mention\n")
        lines = ["" for _ in segments]
        for e in doc.entities:
            lines[max(0, bisect.bisect_right(starts, e.start) - 1)] += f"{e.label} | {e.text}\n"
        needs = [n + c for n, c in zip(needs, counter.count_many(lines))]
    chunks: list[tuple[int, int]] = []
    start, used = 0, 0
    for (a, _end), need in zip(segments, needs):
        if used and used + need > budget:
            chunks.append((start, a))
            start, used = a, 0
        used += need
    chunks.append((start, len(doc.text)))
    return chunks


def build_prompt(instruction: str, text: str, examples: Sequence[tuple[str, str]] = ()) -> str:
    parts = [instruction.rstrip("\n")]
    parts += [f"Example {k}\n{TEXT_HEADER}\n{t}\n{ANSWER_HEADER}\n{a}" for k, (t, a) in enumerate(examples, 1)]
    parts.append(f"{TEXT_HEADER}\n{text}\n{ANSWER_HEADER}")
    return "\n\n".join(parts)


def interim_render(docs: Sequence[Document], dataset: str, options: Any) -> RenderResult:
    """``options``: render_bridge.RenderSettings."""
    if options.task not in _INTERIM_TEMPLATES:
        raise ConfigError(f"unknown task {options.task!r}; valid: {', '.join(sorted(_INTERIM_TEMPLATES))}")
    name, instruction = _INTERIM_TEMPLATES[options.task]
    template_hash = hashlib.sha256(instruction.encode()).hexdigest()[:12]
    counter = token_counter(options.tokenizer)
    # prompt + chunk + target + EOS within max_tokens; 2% slack (relations, token merges at the joins)
    fixed = counter.count(build_prompt(instruction, "", options.few_shot))
    budget = max(8, int((options.max_tokens - fixed - SPECIAL_TOKENS_PER_RECORD) * 0.98))
    records: list[dict[str, Any]] = []
    relations_cut = 0
    for doc in docs:
        by_id = doc.entity_index()
        for index, (cs, ce) in enumerate(_interim_chunks(doc, budget, counter, options.task != "re_pair")):
            ents = [e for e in doc.entities if cs <= e.start and e.end <= ce]
            ids = {e.id for e in ents}
            rels = [r for r in doc.relations if r.head in ids and r.tail in ids]
            relations_cut += sum(1 for r in doc.relations if (r.head in ids) != (r.tail in ids))
            lines = [f"{e.label} | {e.text}" for e in ents] if options.task != "re_pair" else []
            if options.task != "ce":
                lines += [f"{r.label} | {by_id[r.head].text} | {by_id[r.tail].text}" for r in rels]
            extra = {"few_shot": len(options.few_shot)} if options.few_shot else {}
            records.append({
                "input": build_prompt(instruction, doc.text[cs:ce], options.few_shot), "output": "\n".join(lines) or "none",
                "id": f"{dataset}/{doc.id}/{options.task}/{index}", "dataset": dataset, "task": options.task,
                "template": options.template_name or name, "template_hash": template_hash,
                "format": options.format, "doc_id": doc.id, "chunk": [cs, ce], **extra,
            })
    return RenderResult(records, {"renderer": "interim", "documents": len(docs),
                                  "records": len(records), "relations_cut_by_chunking": relations_cut})


