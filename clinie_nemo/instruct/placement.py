"""Placing a mention back in a chunk: (mention text, occurrence) <-> character offsets.

Every target format names a mention by its text plus an occurrence index k (1-based; 1 is the default and
formats omit it): the k-th match of the text in the chunk, in this *rank order* (:func:`ranked_matches`):

1. ``exact``: exact-case matches that are whole tokens, in text order;
2. ``casefold``: case-insensitive whole-token matches (not already listed);
3. ``whitespace``: whole-token matches with whitespace runs normalised, case-insensitive;
4. ``exact_in_word``, ``casefold_in_word``, ``whitespace_in_word``: the same three inside a word.

A match is a whole token when each of its ends is a token boundary: the start or end of the text, a
character that is neither a letter nor a digit on either side, or a letter/digit change (``5`` is a
token in ``5mg``; ``ana`` is not one in ``banana``, nor ``A`` in ``MRSA``). Overlapping matches count
(``"aa"`` occurs twice in ``"aaa"``). So a one-letter mention is not pushed to ``#2`` by an acronym
that contains it, and a mention lands in the middle of a word only when no whole-token match exists.

Rendering (:func:`occurrence_index`) and the exact inverse (:func:`place_exact`, which accepts only an
exact-text k-th match) use this order, and so does the tolerant placer of generated text
(``parsing/place.py``), which takes the k-th match whatever its tier: render -> parse is exact.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from clinie_nemo.core.document import Span

#: rank tiers, best first (see the module docstring)
TIERS = ("exact", "casefold", "whitespace", "exact_in_word", "casefold_in_word", "whitespace_in_word")


class PlacementError(ValueError):
    """A mention that cannot be placed; ``cause`` is a short counter key."""

    def __init__(self, cause: str, detail: str = ""):
        self.cause = cause
        super().__init__(f"{cause}: {detail}" if detail else cause)


def at_boundary(text: str, i: int) -> bool:
    """Whether offset ``i`` separates tokens (see the module docstring)."""
    if i <= 0 or i >= len(text):
        return True
    before = text[i - 1]
    if before.isalpha():
        return not text[i].isalpha()
    return not (before.isdigit() and text[i].isdigit())


def whole_token(text: str, span: Span) -> bool:
    return at_boundary(text, span[0]) and at_boundary(text, span[1])


def _exact(text: str, mention: str) -> Iterator[Span]:
    i = text.find(mention)
    while i >= 0:
        yield (i, i + len(mention))
        i = text.find(mention, i + 1)


def _casefold(text: str, mention: str) -> Iterator[Span]:
    low_text, low_mention = text.lower(), mention.lower()
    if len(low_text) != len(text) or len(low_mention) != len(mention):
        return  # lower() changed lengths (rare Unicode): offsets would drift
    yield from _exact(low_text, low_mention)


def _whitespace(text: str, mention: str) -> Iterator[Span]:
    tokens = mention.split()
    if not tokens:
        return
    pattern = re.compile(r"\s+".join(re.escape(t) for t in tokens), re.IGNORECASE)
    pos = 0
    while (m := pattern.search(text, pos)) is not None:
        yield (m.start(), m.end())
        pos = m.start() + 1


_MATCHERS: tuple[tuple[str, Callable[[str, str], Iterator[Span]]], ...] = (
    ("exact", _exact), ("casefold", _casefold), ("whitespace", _whitespace))


def ranked_matches(text: str, mention: str) -> Iterator[tuple[Span, str]]:
    """Every match of ``mention`` in ``text`` with its tier, in rank order (lazily: the whole-token tiers
    are produced as they are found, so the usual k = 1 costs one scan)."""
    if not mention:
        return
    seen: set[Span] = set()
    in_word: list[tuple[Span, str]] = []
    for name, matcher in _MATCHERS:
        for span in matcher(text, mention):
            if span in seen or span[0] == span[1]:
                continue
            seen.add(span)
            if whole_token(text, span):
                yield span, name
            else:
                in_word.append((span, f"{name}_in_word"))
    yield from in_word  # collected tier by tier, each in text order


def _nth_exact_whole(text: str, mention: str, occurrence: int) -> Span | None:
    """Fast path of the usual case: the occurrence-th exact whole-token match (first tier), if any."""
    n = 0
    for span in _exact(text, mention):
        if whole_token(text, span):
            n += 1
            if n == occurrence:
                return span
    return None


def nth_match(text: str, mention: str, occurrence: int) -> tuple[Span, str] | None:
    """The ``occurrence``-th (1-based) ranked match, or None when there are fewer."""
    if occurrence < 1 or not mention:
        return None
    span = _nth_exact_whole(text, mention, occurrence)
    if span is not None:
        return span, "exact"
    for n, item in enumerate(ranked_matches(text, mention), 1):
        if n == occurrence:
            return item
    return None


def occurrences(text: str, mention: str) -> list[int]:
    """Start offsets of every exact (possibly overlapping) match of ``mention``, in rank order."""
    return [s for (s, e), _ in ranked_matches(text, mention) if text[s:e] == mention]


def occurrence_index(text: str, mention: str, start: int) -> int:
    """The occurrence number (rank, 1-based) of ``mention`` starting at ``start`` (it must be there)."""
    if not mention or text[start:start + len(mention)] != mention:
        raise PlacementError("mention_not_at_offset", f"offset {start}")
    target = (start, start + len(mention))
    if whole_token(text, target):  # first tier: count the exact whole-token matches before it
        n, size = 1, len(mention)
        # an end next to a character that is neither letter nor digit is always a boundary
        check_start, check_end = mention[0].isalnum(), mention[-1].isalnum()
        i = text.find(mention)
        while 0 <= i < start:
            if (not check_start or at_boundary(text, i)) and (not check_end or at_boundary(text, i + size)):
                n += 1
            i = text.find(mention, i + 1)
        return n
    for n, (span, _) in enumerate(ranked_matches(text, mention), 1):
        if span == target:
            return n
    raise PlacementError("mention_not_at_offset", f"offset {start}")  # unreachable: exact tiers list it


def place_exact(text: str, mention: str, occurrence: int = 1) -> Span:
    """Offsets (start, end) of the ``occurrence``-th ranked match of ``mention`` in ``text``, which must be
    the exact text (what rendering writes); PlacementError otherwise."""
    if not mention:
        raise PlacementError("empty_mention")
    if occurrence < 1:
        raise PlacementError("bad_occurrence", f"occurrence {occurrence}")
    found = nth_match(text, mention, occurrence)
    if found is None or text[found[0][0]:found[0][1]] != mention:
        if mention not in text:
            raise PlacementError("mention_not_in_text")
        if found is None:
            total = sum(1 for _ in ranked_matches(text, mention))
            raise PlacementError("occurrence_out_of_range", f"occurrence {occurrence} of {total}")
        raise PlacementError("occurrence_not_exact", f"occurrence {occurrence}")
    return found[0]


Placer = Callable[[str, str, int], Span]

#: name -> placer; ``exact`` is the only one rendering uses. The parser adds tolerant ones.
PLACERS: dict[str, Placer] = {"exact": place_exact}


def place(text: str, mention: str, occurrence: int = 1, mode: str = "exact") -> Span:
    """Place a mention with the placer ``mode`` (unknown modes fail listing the valid ones)."""
    from clinie_nemo.core.errors import unknown_name

    if mode not in PLACERS:
        raise unknown_name("placement mode", mode, PLACERS)
    return PLACERS[mode](text, mention, occurrence)
