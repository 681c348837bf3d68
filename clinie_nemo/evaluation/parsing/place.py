"""Placing a generated mention in its chunk, in the rank order rendering counts occurrences by.

A mention is ``(text, occurrence)``; occurrence k (1 when the format omits it) picks the k-th match in
:func:`clinie_nemo.instruct.placement.ranked_matches` order: whole-token matches first (exact case, then
case-insensitive, then whitespace-normalised), then the same three inside a word. So ``ana`` lands on a
case-insensitive whole word ``Ana`` before the ``ana`` inside ``banana``, and a mention goes inside a word
only when no whole-token match exists (``evaluate`` counts those in ``parse.placed_in_word``). A token
boundary is the text's edge, a character that is neither letter nor digit, or a letter/digit change, so a
mention that itself starts or ends with punctuation is bounded there. Failures carry a cause: ``mention_not_in_text`` or
``ambiguous_occurrence`` (an occurrence beyond the matches found).
"""

from __future__ import annotations

from clinie_nemo.instruct.placement import TIERS, nth_match, ranked_matches

Span = tuple[int, int]

MENTION_NOT_IN_TEXT = "mention_not_in_text"
AMBIGUOUS_OCCURRENCE = "ambiguous_occurrence"

#: placement tiers, best first (the ``placed_by`` counter uses these names)
MATCHERS = TIERS
#: the suffix of the fallback tiers: a mention placed inside a word (no whole-token match in the chunk)
IN_WORD = "_in_word"


class PlacementFailure(ValueError):
    def __init__(self, cause: str):
        self.cause = cause
        super().__init__(cause)


def place_mention(text: str, mention: str, occurrence: int = 1) -> tuple[Span, str]:
    """``((start, end), tier name)`` of the mention in ``text``, or PlacementFailure. Edge whitespace is kept
    when the text has the mention with it exactly (rendering writes such mentions), else stripped."""
    if not mention.strip():
        raise PlacementFailure(MENTION_NOT_IN_TEXT)
    if mention == mention.strip() or mention not in text:
        mention = mention.strip()
    found = nth_match(text, mention, occurrence)
    if found is not None:
        return found
    if next(ranked_matches(text, mention), None) is None:
        raise PlacementFailure(MENTION_NOT_IN_TEXT)
    raise PlacementFailure(AMBIGUOUS_OCCURRENCE)
