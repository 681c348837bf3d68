"""Safe file output: write to a temp file beside the target, then rename; never overwrite silently.

Every command that writes a user-visible file goes through :func:`atomic_write` / :func:`atomic_dir`
so a failure leaves no partial output (their temp files and folders are created with mode 0666 / 0777 and
the umask, exactly as ``open()`` / ``mkdir`` would create the final name, so group-shared folders stay
shared), and through :func:`check_output` (before any work) so nothing a
user made is overwritten unless they said ``--force``, a folder is never given where a file is written
(or the reverse), and no output replaces the command's own input.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from clinie_nemo.core.errors import ClinieError, InputError, Problem

FILE, DIR = "file", "dir"
# Without an explicit kind, an output path with one of these suffixes is taken for a file.
FILE_SUFFIXES = (".jsonl", ".json", ".yaml", ".yml", ".txt", ".pubtator", ".xml", ".md", ".csv", ".tsv")


def _same_or_inside(path: Path, other: Path) -> bool:
    """Whether ``path`` is ``other`` or lies inside it (symlinks resolved)."""
    a, b = path.resolve(), other.resolve()
    return a == b or b in a.parents


def check_output(path: str | Path, force: bool = False, kind: str | None = None,
                 inputs: Iterable[str | Path | None] = ()) -> Path:
    """Check an output path before any work: refuse to replace an existing file or non-empty folder unless
    ``force``; refuse, whatever ``force``, a path of the wrong kind (``kind="file"``: an existing folder, or
    a parent that is a file; ``kind="dir"``: an existing file; ``None``: a file kind when the name ends in
    one of :data:`FILE_SUFFIXES`) and an output that is one of the command's ``inputs`` (or, for a folder,
    one that contains an input: replacing it would delete the input)."""
    p = Path(path)
    if kind is None and p.suffix.lower() in FILE_SUFFIXES:
        kind = FILE
    if kind == FILE and p.is_dir():
        raise ClinieError(f"{p} is a folder; this output is a file: give a file path")
    if kind == DIR and p.exists() and not p.is_dir():
        raise ClinieError(f"{p} is a file; this output is a folder: give a folder path")
    blocking = next((q for q in p.parents if q.exists() and not q.is_dir()), None)
    if blocking is not None:
        raise ClinieError(f"{p}: cannot write under {blocking}, which is a file")
    for given in inputs:
        if given is None or not str(given):
            continue
        source = Path(given)
        if p.resolve() == source.resolve():
            raise ClinieError(f"{p} is the input {source}; write the output elsewhere")
        if kind != FILE and source.exists() and _same_or_inside(source, p):
            raise ClinieError(f"{p} contains the input {source}; replacing it would delete the input: "
                              "write the output elsewhere")
    if p.exists() and not force and (p.is_file() or (p.is_dir() and any(p.iterdir()))):
        raise ClinieError(f"{p} already exists; pass --force to replace it")
    return p


TEMP_ATTEMPTS = 100


def _create_temp(target: Path, directory: bool) -> tuple[int, str]:
    """Create ``.<name>.<random>.tmp`` beside ``target``: a file opened for writing (returns its fd) or a
    folder (fd -1). Unlike tempfile.mkstemp (mode 0600) and mkdtemp (0700), which ignore the umask (CPython
    3.11.7 Lib/tempfile.py:256 ``_os.open(file, flags, 0o600)``, :368 ``_os.mkdir(file, 0o700)``), the mode is
    0666 / 0777 so the kernel applies the umask and any default ACL of the folder, as for a plain open() or
    mkdir: a study folder shared by a group (umask 002, setgid) stays writable by the group."""
    for _ in range(TEMP_ATTEMPTS):
        name = str(target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            if directory:
                os.mkdir(name, 0o777)
                return -1, name
            return os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666), name
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {target} after {TEMP_ATTEMPTS} tries")


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temp file beside ``path``; rename it onto ``path`` only if the block succeeds."""
    target = Path(path)
    if target.is_dir():
        raise ClinieError(f"{target} is a folder; this output is a file: give a file path")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(target, directory=False)
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
    check_output(target, force, kind=DIR)
    target.parent.mkdir(parents=True, exist_ok=True)
    _, name = _create_temp(target, directory=True)
    tmp = Path(name)
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
