"""Statistics of a records JSONL (training.jsonl, ...): counts per dataset/task/template, token lengths,
and packing statistics (:mod:`clinie_nemo.instruct.packing`), token counts from the renderer's counter
(:func:`record_token_lengths`, which mixing uses too)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from clinie_nemo.core.errors import ConfigError, InputError, Problem
from clinie_nemo.core.tokens import SPECIAL_TOKENS_PER_RECORD, TokenCounter
from clinie_nemo.instruct.records import prompt_of, target_of

TOKEN_BATCH = 256  # records per count_many call


def length_summary(lengths: Sequence[int]) -> dict[str, Any]:
    """min / mean / p50 / p95 / max (nearest-rank percentiles)."""
    if not lengths:
        return {"records": 0}
    ordered = sorted(lengths)

    def pct(p: float) -> int:
        return ordered[max(0, math.ceil(p * len(ordered) - 1e-9) - 1)]

    return {"records": len(ordered), "min": ordered[0], "mean": round(sum(ordered) / len(ordered), 2),
            "p50": pct(0.50), "p95": pct(0.95), "max": ordered[-1]}


def record_token_lengths(records: Sequence[dict[str, Any]], counter: TokenCounter,
                         progress_wrap: Callable[[Iterable[Any]], Iterable[Any]] | None = None) -> list[int]:
    """Tokens per record as the SFT loaders build it: prompt + target + BOS + EOS (either record form)."""
    lengths: list[int] = []
    starts: Iterable[int] = range(0, len(records), TOKEN_BATCH)
    if progress_wrap is not None:
        starts = progress_wrap(starts)
    for start in starts:
        chunk = records[start:start + TOKEN_BATCH]
        ins = counter.count_many([prompt_of(r) for r in chunk])
        outs = counter.count_many([target_of(r) for r in chunk])
        lengths.extend(a + b + SPECIAL_TOKENS_PER_RECORD for a, b in zip(ins, outs))
    return lengths


def _chat_turns(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The chat form {"messages": [{"role": "user"|"assistant", "content"}...]} as input/output."""
    messages = obj.get("messages")
    if not isinstance(messages, list):
        return None
    user = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    assistant = [m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "assistant"]
    if not user or not assistant or not all(isinstance(t, str) for t in user + assistant):
        return None
    return {**obj, "input": "\n".join(user), "output": "\n".join(assistant)}


def read_records(path: str) -> list[dict[str, Any]]:
    """Records with string "input"/"output" (or the chat "messages" form); every bad line is reported
    (by line number, no text)."""
    from clinie_nemo.core.fileio import iter_jsonl

    records, problems = [], []
    for lineno, obj in iter_jsonl(path):
        if "messages" in obj:
            obj = _chat_turns(obj) or {}
        if not isinstance(obj.get("input"), str) or not isinstance(obj.get("output"), str):
            problems.append(Problem(path, lineno, 'not a record: "input" and "output" (or "messages" with user '
                                                  'and assistant turns) must be strings'))
            continue
        records.append(obj)
    if problems:
        raise InputError(problems)
    return records


def records_stats(path: str, seq_length: int = 4096, tokenizer: str | None = None, micro_batch: int = 1,
                  pad_multiple: int = 16) -> dict[str, Any]:
    from clinie_nemo.core.progress import progress
    from clinie_nemo.core.tokens import load_counter
    from clinie_nemo.instruct.packing import packing_stats

    if seq_length < 1 or micro_batch < 1 or pad_multiple < 1:
        raise ConfigError("--seq-length, --micro-batch and --pad-multiple must be >= 1")
    records = read_records(path)
    counter = load_counter(tokenizer)
    lengths = record_token_lengths(records, counter, lambda it: progress(
        it, "tokens", total=-(-len(records) // TOKEN_BATCH), unit="batch"))

    def count(key: str) -> dict[str, int]:
        return dict(sorted(Counter(str(r.get(key, "-")) for r in records).items()))

    return {"kind": "records", "records": len(records), "tokenizer": counter.name,
            "by_dataset": count("dataset"), "by_task": count("task"), "by_template": count("template"),
            "tokens": length_summary(lengths),
            "packing": packing_stats(lengths, seq_length, micro_batch, pad_multiple).as_dict()}


def print_records_stats(s: dict[str, Any]) -> None:
    from clinie_nemo.instruct.packing import PackingStats, format_packing_table

    t = s["tokens"]
    print(f"records: {s['records']}  tokenizer: {s['tokenizer']}")
    if s["records"]:
        print(f"tokens per record: min {t['min']}  mean {t['mean']}  p50 {t['p50']}  p95 {t['p95']}  max {t['max']}")
    for key in ("by_dataset", "by_task", "by_template"):
        print(f"{key.replace('_', ' ')}:")
        for name, n in s[key].items():
            print(f"  {name:<28} {n:>8}")
    print(format_packing_table(PackingStats(**s["packing"])))
