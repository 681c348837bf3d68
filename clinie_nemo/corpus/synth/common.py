"""Shared pieces of the synthetic corpus generators: a brat note builder, split assignment, file output.

:class:`BratNote` appends text and records annotations at the current character offset, so offsets are
exact by construction (CRLF notes count the ``\\r``; unicode counts characters, as brat does).
Everything is deterministic given the seed: one ``random.Random`` per document, seeded from (seed, index).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

Span = tuple[int, int]

LENGTHS = ("short", "n2c2")  # short notes for tests; n2c2: realistic 3-6 KB discharge summaries


def doc_rng(seed: int, index: int, salt: int) -> random.Random:
    """The random generator of one document: independent of how many documents come before it."""
    return random.Random((seed * 1_000_003 + index) * 97 + salt)


def split_counts(n_docs: int, splits: Sequence[str]) -> list[str]:
    """The split of each document index: ~80% train, the rest dev/test; every split gets a document
    once there are enough documents."""
    if len(splits) == 2:
        n_test = max(1, n_docs // 5) if n_docs >= 2 else 0
        return [splits[0]] * (n_docs - n_test) + [splits[1]] * n_test
    n_dev = max(1, n_docs // 10) if n_docs >= 3 else 0
    n_test = max(1, n_docs // 5) if n_docs >= 2 else 0
    return [splits[0]] * (n_docs - n_dev - n_test) + [splits[1]] * n_dev + [splits[2]] * n_test


class BratNote:
    """A note under construction with brat annotations (T, R, E, A lines)."""

    def __init__(self, newline: str = "\n") -> None:
        self.parts: list[str] = []
        self.pos = 0
        self.nl = newline
        self.entities: list[tuple[str, str, tuple[Span, ...]]] = []  # (id, label, spans)
        self.lines: list[str] = []  # R / E / A lines, in creation order
        self._n = {"T": 0, "R": 0, "E": 0, "A": 0}

    # ----------------------------------------------------------------------------------------- text
    def add(self, text: str) -> Span:
        start = self.pos
        self.parts.append(text)
        self.pos += len(text)
        return start, self.pos

    def newline(self, count: int = 1) -> None:
        self.add(self.nl * count)

    def _next(self, kind: str) -> str:
        self._n[kind] += 1
        return f"{kind}{self._n[kind]}"

    # ---------------------------------------------------------------------------------- annotations
    def ent(self, label: str, text: str) -> str:
        """Append ``text`` and annotate it as one entity."""
        return self.entity(label, (self.add(text),))

    def entity(self, label: str, spans: Sequence[Span]) -> str:
        """Annotate already-appended text (one or more fragments, in order)."""
        tid = self._next("T")
        self.entities.append((tid, label, tuple(spans)))
        return tid

    def rel(self, label: str, arg1: str, arg2: str) -> str:
        rid = self._next("R")
        self.lines.append(f"{rid}\t{label} Arg1:{arg1} Arg2:{arg2}")
        return rid

    def event(self, label: str, trigger: str, args: Sequence[tuple[str, str]]) -> str:
        eid = self._next("E")
        parts = [f"{label}:{trigger}"] + [f"{role}:{ref}" for role, ref in args]
        self.lines.append(f"{eid}\t{' '.join(parts)}")
        return eid

    def attr(self, name: str, ref: str, value: str | None = None) -> str:
        aid = self._next("A")
        self.lines.append(f"{aid}\t{name} {ref}" + (f" {value}" if value is not None else ""))
        return aid

    # ---------------------------------------------------------------------------------------- output
    def text(self) -> str:
        return "".join(self.parts)

    def render(self) -> tuple[str, str]:
        """(note text, .ann text). Discontinuous fragments are joined by ``;`` and their texts by a space."""
        text = self.text()
        out = []
        for tid, label, spans in self.entities:
            offsets = ";".join(f"{s} {e}" for s, e in spans)
            out.append(f"{tid}\t{label} {offsets}\t{' '.join(text[s:e] for s, e in spans)}")
        out.extend(self.lines)
        return text, "\n".join(out) + "\n"


def write_text(path: Path, text: str) -> None:
    """Write exactly these characters (no newline translation), UTF-8."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)


def write_brat(folder: Path, name: str, note: BratNote) -> int:
    """Write NAME.txt and NAME.ann; returns the note's size in characters."""
    text, ann = note.render()
    if note.nl != "\n":  # a CRLF note gets a CRLF .ann too, as some real releases have
        ann = ann.replace("\n", note.nl)
    write_text(folder / f"{name}.txt", text)
    write_text(folder / f"{name}.ann", ann)
    return len(text)


def write_brat_release(root: Path, n_docs: int, splits: Sequence[str], name: Callable[[int], str],
                       build: Callable[[int], BratNote]) -> Iterator[int]:
    """A brat release: one folder per split, NAME.txt/NAME.ann per document; yields each note's size."""
    assigned = split_counts(n_docs, splits)
    for split in splits:
        (root / split).mkdir(parents=True, exist_ok=True)
    for index, split in enumerate(assigned):
        yield write_brat(root / split, name(index), build(index))


def pick(rng: random.Random, items: Sequence[str]) -> str:
    return items[rng.randrange(len(items))]
