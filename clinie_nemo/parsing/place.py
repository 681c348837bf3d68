"""Placing a generated mention in its chunk: exact, then case-insensitive, then whitespace-normalised.

A mention is ``(text, occurrence)``; occurrence is 1-based among the (overlapping) matches of the
first placer that finds the text at all, as rendering counts them (occurrence 1 when the format omits
it). Failures carry a cause: ``mention_not_in_text`` or ``ambiguous_occurrence`` (an occurrence
beyond the matches found).
"""

from __future__ import annotations

import re
from collections.abc import Callable

Span = tuple[int, int]

MENTION_NOT_IN_TEXT = "mention_not_in_text"
AMBIGUOUS_OCCURRENCE = "ambiguous_occurrence"


class PlacementFailure(ValueError):
    def __init__(self, cause: str):
        self.cause = cause
        super().__init__(cause)


def exact_matches(text: str, mention: str) -> list[Span]:
    out = []
    i = text.find(mention)
    while i >= 0:
        out.append((i, i + len(mention)))
        i = text.find(mention, i + 1)
    return out


def casefold_matches(text: str, mention: str) -> list[Span]:
    low_text, low_mention = text.lower(), mention.lower()
    if len(low_text) != len(text) or len(low_mention) != len(mention):
        return []  # lower() changed lengths (rare Unicode): offsets would drift
    return exact_matches(low_text, low_mention)


def whitespace_matches(text: str, mention: str) -> list[Span]:
    tokens = mention.split()
    if not tokens:
        return []
    pattern = re.compile(r"\s+".join(re.escape(t) for t in tokens), re.IGNORECASE)
    out = []
    pos = 0
    while (m := pattern.search(text, pos)) is not None:
        out.append((m.start(), m.end()))
        pos = m.start() + 1
    return out


Matcher = Callable[[str, str], list[Span]]
#: tried in order; the first one that finds the mention at all decides
MATCHERS: dict[str, Matcher] = {"exact": exact_matches, "casefold": casefold_matches,
                                "whitespace": whitespace_matches}


def place_mention(text: str, mention: str, occurrence: int = 1) -> tuple[Span, str]:
    """``((start, end), matcher name)`` of the mention in ``text``, or PlacementFailure."""
    if not mention.strip():
        raise PlacementFailure(MENTION_NOT_IN_TEXT)
    if mention != mention.strip() and (found := exact_matches(text, mention)):
        if not 1 <= occurrence <= len(found):  # edge whitespace kept when the text has it too
            raise PlacementFailure(AMBIGUOUS_OCCURRENCE)
        return found[occurrence - 1], "exact"
    mention = mention.strip()
    for name, matcher in MATCHERS.items():
        found = matcher(text, mention)
        if found:
            if not 1 <= occurrence <= len(found):
                raise PlacementFailure(AMBIGUOUS_OCCURRENCE)
            return found[occurrence - 1], name
    raise PlacementFailure(MENTION_NOT_IN_TEXT)
