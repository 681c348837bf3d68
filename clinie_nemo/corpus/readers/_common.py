"""Helpers every reader shares: finding files by basename, reading note text, whitespace-normalised
comparison, and the problem/skip policy (fail with every located problem, or skip and record).

Skip policy: a reader takes ``skip_invalid`` = ``False`` (collect every problem of the input, raise one
:class:`InputError` at the end, yield nothing after the first problem), ``True`` (drop invalid annotations
and documents silently) or a callable ``on_skip(problem)`` (drop them and report each problem to it;
:class:`SkipReport` is such a callable that the ``--skip-invalid`` report is built from).

Warnings: an oddity a reader tolerates (the input is read, as the official scorer reads it) is a located
:class:`Problem` passed to ``on_warning`` (a reader option); by default it is printed on stderr as
``warning: FILE:LINE: ...``. Warnings never fail a read and are not subject to the skip policy.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinie_nemo.core.errors import InputError, Problem

SkipOption = bool | Callable[[Problem], None]
WarningSink = Callable[[Problem], None]


def print_warning(problem: Problem) -> None:
    """The default warning sink: one ``warning: FILE:LINE: message`` line on stderr."""
    from clinie_nemo.core.progress import say

    say(f"warning: {problem}")


def normalise_ws(text: str) -> str:
    """Collapse every run of whitespace to one space and trim: how annotated and note text are compared."""
    return " ".join(text.split())


def same_text(annotated: str, note: str, case_insensitive: bool = False) -> bool:
    a, b = normalise_ws(annotated), normalise_ws(note)
    if case_insensitive:
        a, b = a.casefold(), b.casefold()
    return a == b


ID_LIKE = re.compile(r"(?=[^\d]*\d)[\w.:/-]{1,40}")


def shown_id(value: str) -> str:
    """A document id for a message: quoted when it looks like an id (one short word with a digit, as PMIDs
    and corpus ids have), else a placeholder, so that note text taken for an id is never echoed."""
    value = value.strip()
    return repr(value) if ID_LIKE.fullmatch(value) else "(not an id)"


def read_note(path: Path) -> tuple[str, bool]:
    """The note text exactly as stored (CR kept, so offsets count ``\\r``), and whether it had a BOM
    (the BOM itself is removed from the text)."""
    raw = path.read_bytes()
    text = raw.decode("utf-8")
    if text.startswith("\ufeff"):
        return text[1:], True
    return text, False


def read_annotation_lines(path: Path) -> list[str]:
    """Annotation file lines split on ``\\n`` only, line ends (``\\n``, ``\\r\\n``) removed, BOM removed."""
    text = path.read_bytes().decode("utf-8")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if "\r" not in text:
        return lines
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def relative_id(path: Path, root: Path, suffix: str) -> str:
    """Document id: the path relative to the input folder, '/'-separated, without the known extension."""
    rel = path.relative_to(root).as_posix() if root.is_dir() else path.name
    return rel[: -len(suffix)] if rel.endswith(suffix) else rel


class FileIndex:
    """Every file under a folder by (basename without extension, extension); found recursively."""

    def __init__(self, root: Path, suffixes: Iterable[str]):
        self.root = root
        self.by_key: dict[tuple[str, str], list[Path]] = {}
        wanted = tuple(suffixes)
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                for suffix in wanted:
                    if name.endswith(suffix):
                        stem = name[: -len(suffix)]
                        self.by_key.setdefault((stem, suffix), []).append(Path(dirpath) / name)

    def all(self, suffix: str) -> list[Path]:
        return sorted(p for (_, s), paths in self.by_key.items() if s == suffix for p in paths)

    def partner(self, anchor: Path, suffix: str) -> Path | None:
        """The file with ``suffix`` and the same basename as ``anchor``: in the same folder if there is
        one, else the candidate sharing the longest path prefix with ``anchor`` (txt/, ann/ siblings)."""
        stem = anchor.name[: anchor.name.rfind(".")] if "." in anchor.name else anchor.name
        candidates = self.by_key.get((stem, suffix), [])
        if not candidates:
            return None
        same_dir = anchor.with_name(stem + suffix)
        if same_dir in candidates:
            return same_dir

        def shared(p: Path) -> int:
            return len(os.path.commonprefix([p.parent.parts, anchor.parent.parts]))

        return max(candidates, key=shared)


@dataclass
class Problems:
    """The problems found in one input, with the skip policy applied when the reader is done with it."""

    skip_invalid: SkipOption = False
    found: list[Problem] = field(default_factory=list)
    failed: bool = False  # any problem so far in this whole read (strict mode stops yielding)
    pending: list[Problem] = field(default_factory=list)  # strict mode: every problem, raised at the end
    on_warning: WarningSink | None = None  # tolerated oddities (default: printed on stderr)

    def warn(self, path: str | Path, line: int | None, message: str, quote: str = "") -> None:
        """A tolerated oddity: reported at once (never raised, never skipped)."""
        (self.on_warning or print_warning)(Problem(str(path), line, message, quote))

    def add(self, path: str | Path, line: int | None, message: str, quote: str = "") -> None:
        self.found.append(Problem(str(path), line, message, quote))

    def take(self) -> list[Problem]:
        """Problems added since the last call; in skip mode they are reported and forgotten."""
        new, self.found = self.found, []
        new.sort(key=lambda p: (p.path, p.line or 0))  # one document's problems, in file order
        if new and self.skip_invalid:
            if callable(self.skip_invalid):
                for p in new:
                    self.skip_invalid(p)
            return []
        if new:
            self.failed = True
            self.pending.extend(new)
        return new

    def may_yield(self) -> bool:
        self.take()
        return not self.failed

    def finish(self) -> None:
        self.take()
        if self.pending:
            raise InputError(self.pending)


def warn_tolerated(problems: Problems, path: Path, lines: list[int | None], what: str, show: int = 5) -> None:
    """One warning for the tolerated oddities of one system file: how many, what was done, the first lines."""
    if not lines:
        return
    located = [n for n in lines if n is not None]
    first = ", ".join(str(n) for n in located[:show]) + (", ..." if len(located) > show else "")
    problems.warn(path, located[0] if located else None,
                  f"{len(lines)} {what}" + (f" (lines {first})" if located else ""))


def stream(docs: Iterator[Any], problems: Problems) -> Iterator[Any]:
    """Yield documents while the input is clean; after the whole input is read, raise every problem."""
    for doc in docs:
        if problems.may_yield() and doc is not None:
            yield doc
    problems.finish()


@dataclass
class SkipReport:
    """A ``skip_invalid`` callback that records what was skipped, for ``FILE.skipped.json``."""

    problems: list[Problem] = field(default_factory=list)

    def __call__(self, problem: Problem) -> None:
        self.problems.append(problem)

    def to_json(self) -> dict[str, Any]:
        return {
            "skipped": len(self.problems),
            "problems": [{"path": p.path, "line": p.line, "message": p.message, "quote": p.quote}
                         for p in self.problems],
        }
