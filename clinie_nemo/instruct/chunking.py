"""Offset-preserving chunking: line/sentence-aware windows of a document that fit a token budget.

A chunk is ``[start, end)`` of ``Document.text`` (text is never altered). Cuts are allowed after a line
break, or after sentence-final punctuation plus its whitespace, and never inside an entity (outer span
of every fragment set). Each chunk is the longest run of pieces for which ``fits(start, end)`` holds (the
renderer checks prompt + target against ``max_tokens``). A piece that cannot fit on its own is an
:class:`InputError` naming the document and the number of annotated spans in the piece.
Relations and event arguments whose ends land in different chunks are counted, not dropped silently.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Callable

from clinie_nemo.core.document import Document, Event, EventArgument
from clinie_nemo.core.errors import InputError, Problem
from clinie_nemo.instruct.target import ChunkView

_SENTENCE_END = re.compile(r"[.!?;](?=\s)\s*|\n")


def cut_points(text: str) -> list[int]:
    """Offsets after a line break or a sentence end (with the whitespace that follows it), sorted."""
    points = {m.end() for m in _SENTENCE_END.finditer(text)}
    return sorted(p for p in points if 0 < p < len(text))


def sentence_index(text: str) -> Callable[[int], int]:
    """Offset -> sentence number (0-based), with sentences as :func:`cut_points` splits them."""
    starts = cut_points(text)
    return lambda offset: bisect.bisect_right(starts, offset)


def legal_cuts(doc: Document) -> list[int]:
    """Cut points that fall inside no entity."""
    blocked = [0] * (len(doc.text) + 2)
    for e in doc.entities:
        blocked[e.start + 1] += 1
        blocked[e.end] -= 1
    depth, inside = 0, []
    for i in range(len(doc.text) + 1):
        depth += blocked[i]
        inside.append(depth > 0)
    return [p for p in cut_points(doc.text) if not inside[p]]


def chunk_spans(doc: Document, fits: Callable[[int, int], bool] | None, budget_note: str = "",
                verify: Callable[[int, int], bool] | None = None) -> list[tuple[int, int]]:
    """Greedy longest chunks; ``fits=None`` means the whole document is one chunk. ``fits`` may be a cheap
    estimate: ``verify`` (exact) then checks the chosen end and steps back a cut point while it fails."""
    n = len(doc.text)
    verify = verify or fits
    if fits is None or n == 0 or (fits(0, n) and verify is not None and verify(0, n)):
        return [trim(doc, 0, n)]
    points = [0, *legal_cuts(doc), n]
    spans: list[tuple[int, int]] = []
    i = 0
    while points[i] < n:
        start = points[i]
        if not (fits(start, points[i + 1]) and verify(start, points[i + 1])):
            end = points[i + 1]
            inside = sum(1 for e in doc.entities for s, _ in e.spans if start <= s < end)
            raise InputError(Problem(f"document {doc.id}", None,
                                     f"characters {start}-{end} ({inside} annotated spans) do not fit "
                                     f"{budget_note or 'the token budget'} with the prompt and target, and cannot be "
                                     "split further at a line or sentence boundary outside an entity"))
        lo, hi = i + 1, len(points) - 1  # fits(start, points[lo]) holds
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if fits(start, points[mid]):
                lo = mid
            else:
                hi = mid - 1
        while lo > i + 1 and not verify(start, points[lo]):
            lo -= 1
        spans.append((start, points[lo]))
        i = lo
    return [trim(doc, s, e) for s, e in spans]


def trim(doc: Document, start: int, end: int) -> tuple[int, int]:
    """Shrink [start, end) past edge whitespace that no entity covers (the SFT loaders strip spaces)."""
    inside = [e for e in doc.entities if start <= e.start and e.end <= end]
    lo = min([e.start for e in inside], default=end)
    hi = max([e.end for e in inside], default=start)
    s, t = start, end
    while s < min(t, lo) and doc.text[s].isspace():
        s += 1
    while t > max(s, hi) and doc.text[t - 1].isspace():
        t -= 1
    return (s, t) if s < t else (start, end)


def view_for(doc: Document, start: int, end: int) -> ChunkView:
    """The chunk [start, end) with the annotations wholly inside it (used to size candidate chunks)."""
    return chunk_views(doc, [(start, end)], only=True)[0][0]


def chunk_views(doc: Document, spans: list[tuple[int, int]],
                only: bool = False) -> tuple[list[ChunkView], Counter[str]]:
    """The chunks with the gold annotations inside each, and what crosses chunks (cause -> count).
    ``only``: ``spans`` need not cover the document; annotations outside them are ignored."""
    starts = [s for s, _ in spans]

    def chunk_of(offset: int, end: int) -> int:
        k = bisect.bisect_right(starts, offset) - 1
        if only and (k < 0 or end > spans[k][1]):
            return -1
        return max(0, k)

    entity_chunk = {e.id: chunk_of(e.start, e.end) for e in doc.entities}
    event_chunk = {ev.id: entity_chunk.get(ev.trigger, -1) for ev in doc.events}
    where = {**entity_chunk, **event_chunk}
    crossing: Counter[str] = Counter()
    per_chunk: list[dict[str, list]] = [{"entities": [], "relations": [], "events": []} for _ in spans]
    for e in doc.entities:
        if entity_chunk[e.id] >= 0:
            per_chunk[entity_chunk[e.id]]["entities"].append(e)
    for r in doc.relations:
        h, t = where.get(r.head, -1), where.get(r.tail, -1)
        if only and (h < 0 or t < 0):
            continue
        if h == t and h >= 0:
            per_chunk[h]["relations"].append(r)
        else:
            crossing[f"relation_across_chunks:{r.label}"] += 1
    for ev in doc.events:
        c = event_chunk[ev.id]
        if c < 0:
            crossing["event_trigger_outside" if only else "event_trigger_missing"] += 1
            continue
        kept: list[EventArgument] = []
        for a in ev.arguments:
            if where.get(a.ref, -1) == c:
                kept.append(a)
            else:
                crossing[f"event_argument_across_chunks:{ev.label}.{a.role}"] += 1
        per_chunk[c]["events"].append(Event(ev.id, ev.label, ev.trigger, tuple(kept), ev.attributes))
    views = [ChunkView(doc, k, s, e, tuple(p["entities"]), tuple(p["relations"]), tuple(p["events"]))
             for k, ((s, e), p) in enumerate(zip(spans, per_chunk))]
    return views, crossing
