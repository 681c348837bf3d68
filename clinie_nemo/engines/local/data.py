"""Training data for the local engine: records -> token ids with completion-only labels -> rows -> batches.

A record ``{"input", "output", ...}`` (the record row of :mod:`clinie_nemo.instruct.records`) becomes ``[BOS?] prompt [completion EOS?]`` where the
prompt is the template text before ``{output}`` ("{input} {output}" -> ``input + " "``), tokenised on its
own exactly as :mod:`.generation` tokenises it, so training and inference see the same prompt tokens.
Labels are ``-100`` on prompt tokens (completion-only loss) and on padding.

Packing concatenates several examples into one row of at most ``seq_length`` tokens. Each example's
``position_ids`` restart at 0; transformers (>= 4.54, masking_utils.find_packed_sequence_indices) turns
restarting position ids with ``attention_mask=None`` into a block-diagonal causal mask, so packed
examples do not attend to each other (tests/engines/test_local_engine.py checks the logits equal unpacked ones).
Rows are right-padded; padding tokens continue the last example's positions, sit after every real token
(so causal attention never lets a real token see them) and carry label -100.

The row stream is a pure function of (records, seed, epoch): resuming skips ``step * global_batch`` rows.
Nothing here prints record text.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clinie_nemo.core.errors import ProblemCollector
from clinie_nemo.core.fileio import iter_jsonl

IGNORE = -100


@dataclass(frozen=True)
class Example:
    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    truncated: bool = False


@dataclass(frozen=True)
class Row:
    """One training sequence: one example, or several packed ones (positions restart per example)."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    position_ids: tuple[int, ...]
    examples: int = 1


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Read a records JSONL; every line needs string ``input`` and ``output`` (all problems reported)."""
    problems = ProblemCollector()
    records = []
    for lineno, obj in iter_jsonl(path):
        bad = [k for k in ("input", "output") if not isinstance(obj.get(k), str)]
        if bad:
            problems.add(path, lineno, f"record needs string field(s) {bad}")
            continue
        records.append(obj)
    problems.raise_if_any(f"{path}: not a records file")
    return records


def prompt_ids(tokenizer: Any, prompt: str, add_bos: bool) -> list[int]:
    ids = list(tokenizer.encode(prompt, add_special_tokens=False))
    if add_bos and tokenizer.bos_token_id is not None:
        ids.insert(0, tokenizer.bos_token_id)
    return ids


def encode_example(tokenizer: Any, settings: Any, record: dict[str, Any]) -> Example:
    """Token ids and labels of one record; the prompt is cut from its end when the whole is too long."""
    p_ids = prompt_ids(tokenizer, settings.prompt_of(record["input"]), settings.add_bos)
    c_ids = list(tokenizer.encode(record["output"], add_special_tokens=False))
    if settings.add_eos and tokenizer.eos_token_id is not None:
        c_ids.append(tokenizer.eos_token_id)
    truncated = False
    over = len(p_ids) + len(c_ids) - settings.seq_length
    if over > 0:
        truncated = True
        keep = max(1, len(p_ids) - over)
        p_ids = p_ids[:keep]
        c_ids = c_ids[: settings.seq_length - len(p_ids)]
    prompt_labels = [IGNORE] * len(p_ids) if settings.answer_only_loss else list(p_ids)
    return Example(tuple(p_ids + c_ids), tuple(prompt_labels + c_ids), truncated)


def single_row(ex: Example) -> Row:
    return Row(ex.input_ids, ex.labels, tuple(range(len(ex.input_ids))))


def pack(examples: Sequence[Example], seq_length: int) -> list[Row]:
    """Greedy packing in the given order: start a new row when the next example does not fit."""
    rows: list[Row] = []
    ids: list[int] = []
    labels: list[int] = []
    pos: list[int] = []
    count = 0
    for ex in examples:
        if ids and len(ids) + len(ex.input_ids) > seq_length:
            rows.append(Row(tuple(ids), tuple(labels), tuple(pos), count))
            ids, labels, pos, count = [], [], [], 0
        ids += ex.input_ids
        labels += ex.labels
        pos += range(len(ex.input_ids))
        count += 1
    if ids:
        rows.append(Row(tuple(ids), tuple(labels), tuple(pos), count))
    return rows


def epoch_rows(examples: Sequence[Example], seed: int, epoch: int, packing: bool, seq_length: int) -> list[Row]:
    """The rows of one epoch: examples shuffled by (seed, epoch), then packed or one per row."""
    order = list(range(len(examples)))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    shuffled = [examples[i] for i in order]
    return pack(shuffled, seq_length) if packing else [single_row(e) for e in shuffled]


def row_stream(examples: Sequence[Example], seed: int, packing: bool, seq_length: int,
               skip: int = 0) -> Iterator[tuple[int, Row]]:
    """Endless (epoch, row) stream over epochs; ``skip`` rows are dropped first (resume)."""
    epoch = 0
    while True:
        rows = epoch_rows(examples, seed, epoch, packing, seq_length)
        if not rows:
            return
        if skip >= len(rows):
            skip -= len(rows)
        else:
            for row in rows[skip:]:
                yield epoch, row
            skip = 0
        epoch += 1


def collate(rows: Sequence[Row], pad_id: int) -> dict[str, Any]:
    """Right-pad rows to the longest: tensors input_ids, labels, position_ids (+ real token count)."""
    import torch

    width = max(len(r.input_ids) for r in rows)
    ids, labels, pos = [], [], []
    for r in rows:
        n = width - len(r.input_ids)
        last = r.position_ids[-1] if r.position_ids else -1
        ids.append(list(r.input_ids) + [pad_id] * n)
        labels.append(list(r.labels) + [IGNORE] * n)
        pos.append(list(r.position_ids) + list(range(last + 1, last + 1 + n)))
    return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels),
            "position_ids": torch.tensor(pos), "tokens": sum(len(r.input_ids) for r in rows)}
