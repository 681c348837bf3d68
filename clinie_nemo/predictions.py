"""Records and predictions JSONL: reading and cross-checking them before anything is scored.

Predictions JSONL (every engine writes it): one ``{"id": record_id, "prediction": str}`` per line, plus
optional engine keys (``engine``, ``model``, ``tokens``, ``finish_reason``). Checked, all problems of a
file collected with their line numbers: missing or non-string fields, duplicate ids, ids of no record.
Records without a prediction are an error too, unless the caller allows them (then they count as a
``missing_prediction`` parse failure and predict nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clinie_nemo.errors import InputError, Problem, ProblemCollector
from clinie_nemo.fileio import iter_jsonl

RECORD_FIELDS = ("id", "doc_id", "task", "format", "chunk")
SHOW = 10


@dataclass(frozen=True)
class Prediction:
    id: str
    text: str
    finish_reason: str | None = None
    line: int = 0


def read_records(path: str | Path) -> list[dict[str, Any]]:
    problems = ProblemCollector()
    records: list[dict[str, Any]] = []
    first_line: dict[str, int] = {}
    for lineno, obj in iter_jsonl(path):
        missing = [f for f in RECORD_FIELDS if f not in obj]
        if missing:
            problems.add(path, lineno, f"record lacks {', '.join(missing)}")
            continue
        rid = str(obj["id"])
        if rid in first_line:
            problems.add(path, lineno, f"duplicate record id {rid!r} (first at line {first_line[rid]})")
            continue
        chunk = obj["chunk"]
        if not (isinstance(chunk, list) and len(chunk) == 2 and all(isinstance(x, int) for x in chunk)
                and 0 <= chunk[0] <= chunk[1]):
            problems.add(path, lineno, f"record {rid!r}: chunk must be [start, end]")
            continue
        if obj["task"] == "re_pair" and not (isinstance(obj.get("pair"), list) and len(obj["pair"]) == 2):
            problems.add(path, lineno, f"record {rid!r}: re_pair record without \"pair\": [head_id, tail_id]")
            continue
        first_line[rid] = lineno
        records.append(obj)
    problems.raise_if_any()
    return records


def read_predictions(path: str | Path, record_ids: set[str], allow_missing: bool = False) -> dict[str, Prediction]:
    problems = ProblemCollector()
    out: dict[str, Prediction] = {}
    for lineno, obj in iter_jsonl(path):
        rid, text = obj.get("id"), obj.get("prediction")
        if not isinstance(rid, str) or not isinstance(text, str):
            problems.add(path, lineno, 'expected {"id": str, "prediction": str}')
            continue
        if rid in out:
            problems.add(path, lineno, f"duplicate prediction for record {rid!r} (first at line {out[rid].line})")
            continue
        if rid not in record_ids:
            problems.add(path, lineno, f"prediction for unknown record id {rid!r}")
            continue
        reason = obj.get("finish_reason")
        out[rid] = Prediction(rid, text, reason if isinstance(reason, str) else None, lineno)
    problems.raise_if_any(header=f"{path}: predictions do not fit the records")
    missing = sorted(record_ids - out.keys())
    if missing and not allow_missing:
        shown = ", ".join(missing[:SHOW]) + (f", ... ({len(missing) - SHOW} more)" if len(missing) > SHOW else "")
        raise InputError(Problem(str(path), None, f"no prediction for {len(missing)} of {len(record_ids)} records: "
                                 f"{shown} (pass --allow-missing to score them as empty)"))
    return out
