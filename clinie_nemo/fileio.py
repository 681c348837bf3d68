"""Safe file output: write to a temp file beside the target, then rename; never overwrite silently.

Every command that writes a user-visible file goes through :func:`atomic_write` / :func:`atomic_dir`
so a failure leaves no partial output, and through :func:`check_output` so nothing a user made is
overwritten unless they said ``--force``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from clinie_nemo.errors import ClinieError, InputError, Problem


def check_output(path: str | Path, force: bool = False) -> Path:
    """Refuse to replace an existing file or non-empty folder unless ``force``."""
    p = Path(path)
    if p.exists() and not force and (p.is_file() or (p.is_dir() and any(p.iterdir()))):
        raise ClinieError(f"{p} already exists; pass --force to replace it")
    return p


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temp file beside ``path``; rename it onto ``path`` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode, encoding=encoding if "b" not in mode else None,
                       newline="" if "b" not in mode else None) as fh:
            yield fh
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | Path, force: bool = False) -> Iterator[Path]:
    """Build a folder under a temp name beside ``path``; move it into place only if the block succeeds.
    With ``force`` an existing folder is replaced (after success only)."""
    target = Path(path)
    check_output(target, force)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Atomically write one JSON object per line (UTF-8, no ASCII escaping, stable key order)."""
    n = 0
    with atomic_write(path) as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; invalid JSON raises a located InputError
    that quotes nothing (a JSONL line may hold a whole note)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(Problem(str(p), None, "file not found"))
    with p.open(encoding="utf-8-sig") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(Problem(str(p), lineno, f"invalid JSON ({exc.msg} at column {exc.colno})")) from None
            if not isinstance(obj, dict):
                raise InputError(Problem(str(p), lineno, "expected a JSON object"))
            yield lineno, obj


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
