"""Placing a mention back in a chunk: (mention text, occurrence) <-> character offsets.

Every target format names a mention by its text plus an occurrence index: the k-th place (1-based) where
that exact string starts in the chunk, counting overlapping matches (``"aa"`` occurs twice in ``"aaa"``).
Occurrence 1 is the default and formats omit it. This module is the exact placer; the parser of generated
text (scoring) registers tolerant fallbacks (case-insensitive, whitespace-normalised) in :data:`PLACERS`.
"""

from __future__ import annotations

from collections.abc import Callable

from clinie_nemo.document import Span


class PlacementError(ValueError):
    """A mention that cannot be placed; ``cause`` is a short counter key."""

    def __init__(self, cause: str, detail: str = ""):
        self.cause = cause
        super().__init__(f"{cause}: {detail}" if detail else cause)


def occurrences(text: str, mention: str) -> list[int]:
    """Start offsets of every (possibly overlapping) exact occurrence of ``mention`` in ``text``."""
    if not mention:
        return []
    starts: list[int] = []
    i = text.find(mention)
    while i >= 0:
        starts.append(i)
        i = text.find(mention, i + 1)
    return starts


def occurrence_index(text: str, mention: str, start: int) -> int:
    """The 1-based occurrence number of ``mention`` starting at ``start`` (it must be there)."""
    if not mention or text[start:start + len(mention)] != mention:
        raise PlacementError("mention_not_at_offset", f"offset {start}")
    n = 1
    i = text.find(mention)
    while i < start:
        n += 1
        i = text.find(mention, i + 1)
    return n


def place_exact(text: str, mention: str, occurrence: int = 1) -> Span:
    """Offsets (start, end) of the ``occurrence``-th exact match of ``mention`` in ``text``."""
    if not mention:
        raise PlacementError("empty_mention")
    if occurrence < 1:
        raise PlacementError("bad_occurrence", f"occurrence {occurrence}")
    i = -1
    for _ in range(occurrence):
        i = text.find(mention, i + 1)
        if i < 0:
            found = len(occurrences(text, mention))
            if found == 0:
                raise PlacementError("mention_not_in_text")
            raise PlacementError("occurrence_out_of_range", f"occurrence {occurrence} of {found}")
    return (i, i + len(mention))


Placer = Callable[[str, str, int], Span]

#: name -> placer; ``exact`` is the only one rendering uses. The parser adds tolerant ones.
PLACERS: dict[str, Placer] = {"exact": place_exact}


def place(text: str, mention: str, occurrence: int = 1, mode: str = "exact") -> Span:
    """Place a mention with the placer ``mode`` (unknown modes fail listing the valid ones)."""
    from clinie_nemo.errors import unknown_name

    if mode not in PLACERS:
        raise unknown_name("placement mode", mode, PLACERS)
    return PLACERS[mode](text, mention, occurrence)
