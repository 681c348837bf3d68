"""Progress for long work: a tqdm bar on stderr (rate and ETA), periodic lines when not a terminal.

Progress lines carry counts and rates only, never note or generated text.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], desc: str, total: int | None = None, unit: str = "it",
             disable: bool = False) -> Iterator[T]:
    """Wrap an iterable with a progress bar. In a log file (not a TTY) it prints a line every 10 s."""
    tty = sys.stderr.isatty()
    yield from tqdm(items, desc=desc, total=total, unit=unit, file=sys.stderr, disable=disable,
                    mininterval=0.5 if tty else 10.0, dynamic_ncols=tty, ascii=not tty)


def say(message: str) -> None:
    """A step line for the user, on stderr (stdout stays for tables and machine-readable output)."""
    print(message, file=sys.stderr, flush=True)
