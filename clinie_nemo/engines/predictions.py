"""Records and predictions JSONL: reading and cross-checking them before anything is scored.

Predictions JSONL (every engine writes it): one ``{"id": record_id, "prediction": str}`` per line, plus
optional engine keys (``engine``, ``model``, ``tokens``, ``finish_reason``). Checked, all problems of a
file collected with their line numbers: missing or non-string fields, duplicate ids, ids of no record.
Records without a prediction are an error too, unless the caller allows them (then they count as a
``missing_prediction`` parse failure and predict nothing).

Writing (every engine, :class:`ResumablePredictions`): generation appends each finished batch to a partial
file beside the output, ``.<output name>.partial``, and flushes and fsyncs it, so a preempted or requeued
generate skips the records already done instead of starting from zero. The partial's first line names what
it belongs to (a key over the engine, the run, the records file's bytes and the generation settings): a
partial of other inputs is discarded. Its other lines are the final lines themselves; a last line cut by a
kill mid-write (no newline, or not JSON) is dropped and cut off the file. Only when every record has a
prediction is the output written, atomically, in the records' order, and the partial removed: the bytes
equal an uninterrupted run's (the engines make each batch's output independent of earlier batches).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from clinie_nemo.core.errors import ConfigError, InputError, Problem, ProblemCollector
from clinie_nemo.core.fileio import atomic_write, iter_jsonl, sha256_file
from clinie_nemo.core.progress import say
from clinie_nemo.instruct.tasks import TASKS

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
        task = TASKS.get(obj["task"])
        if task is None:
            problems.add(path, lineno, f"record {rid!r}: unknown task {obj['task']!r}; valid: {', '.join(sorted(TASKS))}")
            continue
        if (problem := task.record_problem(obj)) is not None:
            problems.add(path, lineno, f"record {rid!r}: {problem}")
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


PARTIAL_FORMAT = "clinie-nemo partial predictions v1"


def partial_path(output_path: str | Path) -> Path:
    """The partial file of an output: ``.<name>.partial`` in the output's folder."""
    out = Path(output_path)
    return out.with_name(f".{out.name}.partial")


def generation_key(engine: str, run_dir: str | Path, records_path: str | Path, settings: dict[str, Any]) -> str:
    """What a partial belongs to: the engine, the run folder (its path and the bytes of its DONE, which a
    retraining rewrites), the records file's bytes and the generation settings."""
    run = Path(run_dir)
    done = run / "DONE"
    facts = {"engine": engine, "run": str(run.resolve()), "done": sha256_file(done) if done.is_file() else None,
             "records": sha256_file(records_path), "settings": settings}
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()


def batch_seed(seed: int, index: int) -> int:
    """The torch seed of batch ``index`` (engines that sample): its samples do not depend on the batches before
    it, so a resumed run draws what an uninterrupted one drew; distinct (seed, index) pairs give distinct
    seeds (a 64-bit value, as torch.manual_seed takes)."""
    return ((seed & 0xFFFFFFFF) << 32) | index


def _line_spans(data: bytes) -> Iterable[tuple[int, int]]:
    """(start, index of the newline or the last byte) of each line of ``data``, split on b"\\n" only."""
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) - 1 if end < 0 else end
        yield start, end
        start = end + 1


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ResumablePredictions:
    """Predictions of ``ids`` (the records' ids, in their order) for ``output_path``, written batch by batch.

    ``writer=False`` (a rank that generates but does not write) only reads what is done: it never creates,
    cuts or removes the partial. Use: ``todo()`` -> generate those -> ``add(rows)`` per batch (appended,
    flushed, fsynced) -> ``publish()`` once ``complete``."""

    def __init__(self, output_path: str | Path, ids: Sequence[Any], key: str, writer: bool = True):
        self.output = Path(output_path)
        self.path = partial_path(self.output)
        self.ids = list(ids)
        self.key = key
        self.writer = writer
        self.lines: dict[Any, str] = {}
        self._fh: IO[bytes] | None = None
        seen: set[Any] = set()
        for rid in self.ids:
            if rid in seen:
                raise ConfigError(f"record id {rid!r} appears more than once in the records; predictions are "
                                  "matched to records by id: make the ids unique")
            seen.add(rid)
        self._load(seen)

    def _load(self, known: set[Any]) -> None:
        if not self.path.is_file():
            return
        data = self.path.read_bytes()
        kept, pos, stale = 0, 0, False
        for n, raw in enumerate(data[i:j + 1] for i, j in _line_spans(data)):
            if not raw.endswith(b"\n"):
                break  # cut mid-write
            try:
                obj = json.loads(raw)
            except ValueError:
                break
            if n == 0:
                if not (isinstance(obj, dict) and obj.get("partial") == PARTIAL_FORMAT and obj.get("key") == self.key):
                    stale = True
                    break
            elif not (isinstance(obj, dict) and obj.get("id") in known):
                break
            else:
                self.lines.setdefault(obj["id"], raw.decode("utf-8"))
            pos += len(raw)
            kept = pos
        if stale or kept == 0:
            self.lines.clear()
            say(f"{self.path}: a partial of other records, run or settings (or empty): starting over")
            if self.writer:
                self.path.unlink()
            return
        if kept < len(data):
            say(f"{self.path}: dropped {len(data) - kept} bytes after the last complete prediction "
                "(a write cut by a kill)")
            if self.writer:
                with self.path.open("r+b") as fh:
                    fh.truncate(kept)
                    fh.flush()
                    os.fsync(fh.fileno())
        if self.lines:
            say(f"resuming: {len(self.lines)} of {len(self.ids)} predictions already in {self.path}")

    def __contains__(self, rid: object) -> bool:
        return rid in self.lines

    def todo(self) -> list[int]:
        """Positions (in ``ids``) of the records still without a prediction."""
        return [i for i, rid in enumerate(self.ids) if rid not in self.lines]

    @property
    def complete(self) -> bool:
        return len(self.lines) == len(self.ids)

    def _open(self) -> IO[bytes]:
        if self._fh is None:
            new = not self.path.exists()
            self._fh = self.path.open("ab")
            if new:
                self._fh.write((json.dumps({"partial": PARTIAL_FORMAT, "key": self.key}) + "\n").encode())
                self._fh.flush()
                os.fsync(self._fh.fileno())
                _fsync_dir(self.path.parent)  # the new name survives a crash too
        return self._fh

    def add(self, rows: Iterable[dict[str, Any]]) -> int:
        """Append the rows of records not done yet (one batch), flush and fsync. Returns how many."""
        new = []
        for row in rows:
            rid = row["id"]
            if rid in self.lines:
                continue
            line = json.dumps(row, ensure_ascii=False) + "\n"  # as fileio.write_jsonl writes it
            self.lines[rid] = line
            new.append(line)
        if new and self.writer:
            fh = self._open()
            fh.write("".join(new).encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        return len(new)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def publish(self) -> int:
        """Write the output atomically in the records' order (fsynced), then remove the partial."""
        missing = [rid for rid in self.ids if rid not in self.lines]
        if missing:
            raise ConfigError(f"{len(missing)} of {len(self.ids)} records have no prediction yet "
                              f"(e.g. {missing[0]!r}); not writing {self.output}")
        self.close()
        self.output.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.output) as fh:
            fh.write("".join(self.lines[rid] for rid in self.ids))
            fh.flush()
            os.fsync(fh.fileno())
        _fsync_dir(self.output.parent)
        self.path.unlink(missing_ok=True)
        return len(self.ids)

    def __enter__(self) -> ResumablePredictions:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
