"""BIO / BIOES tagging of entity spans over a tokenizer's offsets, and back (the encoder arm's concept layer).

Pure Python: it reads character offsets (``(start, end)`` into ``Document.text``, as a Hugging Face fast
tokenizer's ``offset_mapping`` gives them) and never imports a tokenizer or a model.

Rules (the same for both directions):

- A token is ignored when its offset is ``None`` or empty (``start >= end``): special tokens ([CLS], [SEP],
  padding) are marked ``(0, 0)``. Its tag is ``None`` in :attr:`Encoding.tags` (the trainer maps it to -100).
- A token belongs to an entity when its span lies inside the entity span. Every sub-token is tagged (not only
  the first of a word): B on the first token of the entity, I on the others (BIOES: S for a one-token entity,
  E on the last token of a longer one); O elsewhere.
- A gold entity that this cannot represent is *lost*, counted by cause (:data:`CAUSES`), checked in this order:

  ``discontinuous``       several fragments (one tag sequence has no gaps);
  ``window_edge``         partly inside the encoded window (a whole-document window never has it);
  ``boundary_mid_token``  a token straddles its start or end (the span is not a union of whole tokens);
  ``boundary_off_token``  its start or end falls in characters no token covers (edge whitespace, characters
                          the tokenizer drops), or no token lies inside it;
  ``nested``              inside, or containing, an entity that is kept (the same span with another label too);
  ``overlapping``         crossing an entity that is kept.

  Entities with a cause above ``nested`` never block others. The rest are kept longest first (characters;
  ties: earlier start, then the label's position in ``labels``), each unless it shares a token with one
  already kept: nesting keeps the OUTER entity, a crossing pair keeps the longer one. Copies of a kept entity
  (same label and span) are kept too: they are the same tags.
- Entities wholly outside the window are not this window's business: neither kept nor lost.

:func:`decode` reads tags back to ``(label, start, end)`` spans with the chunking of seqeval's default
(conlleval) mode, lenient to ill-formed sequences: an I (or E) whose type differs from the open entity's, or
that follows O, starts a new entity; B/I without an E ends at the next B, S or O (or at a type change).
An entity spans from its first token's start to its last token's end. ``decode(encode(x).tags) == kept``.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from clinie_nemo.core.document import Entity
from clinie_nemo.core.errors import ConfigError, unknown_name

Offset = tuple[int, int]
SCHEMES = ("BIO", "BIOES")
CAUSES = ("discontinuous", "window_edge", "boundary_mid_token", "boundary_off_token", "nested", "overlapping")


@dataclass(frozen=True)
class Encoding:
    """Per-token tags (``None`` for ignored tokens), the entities they represent, and what was lost.
    ``lost_entities`` pairs each lost entity with its cause; ``lost`` counts them by cause."""

    tags: list[str | None]
    kept: tuple[Entity, ...]
    lost: Counter[str] = field(default_factory=Counter)
    lost_entities: tuple[tuple[Entity, str], ...] = ()


def check_scheme(scheme: str) -> str:
    if scheme not in SCHEMES:
        raise unknown_name("tagging scheme", scheme, SCHEMES)
    return scheme


def tag_names(labels: Sequence[str], scheme: str = "BIO") -> list[str]:
    """Every tag: ``O`` first, then per label in the given order B, I (BIOES: B, I, E, S). A tag's list
    index is its class id."""
    prefixes = "BI" if check_scheme(scheme) == "BIO" else "BIES"
    _check_labels(labels)
    return ["O", *(f"{p}-{label}" for label in labels for p in prefixes)]


def _check_labels(labels: Sequence[str]) -> None:
    seen: set[str] = set()
    for label in labels:
        if not isinstance(label, str) or not label or any(c.isspace() for c in label):
            raise ConfigError(f"entity label {label!r}: a label must be a non-empty string without whitespace")
        if label in seen:
            raise ConfigError(f"entity label {label!r} is given twice")
        seen.add(label)


def _real(offset: Offset | None) -> bool:
    return offset is not None and offset[0] < offset[1]


def encode(entities: Sequence[Entity], offsets: Sequence[Offset | None], labels: Sequence[str],
           scheme: str = "BIO", window: Offset | None = None) -> Encoding:
    """Tag ``entities`` over the tokens ``offsets`` of the window ``[start, end)`` (``None``: the whole
    text). An entity whose label is not in ``labels`` is a :class:`ConfigError` naming it (the model has no
    tag for it). See the module docstring for the rules."""
    check_scheme(scheme)
    _check_labels(labels)
    rank = {label: i for i, label in enumerate(labels)}
    for e in entities:
        if e.label not in rank:
            raise ConfigError(f"entity {e.id} has the label {e.label!r}, which has no tag; labels: "
                              f"{', '.join(labels)}")
    real = [i for i, o in enumerate(offsets) if _real(o)]
    spans: list[Offset] = [offsets[i] for i in real]  # type: ignore[misc]
    starts: dict[int, int] = {}  # offset -> the first token starting there
    ends: dict[int, int] = {}  # offset -> the last token ending there
    for k, (s, t) in enumerate(spans):
        starts.setdefault(s, k)
        ends[t] = k
    inside_token = _inside_token(spans)
    lost: list[tuple[Entity, str]] = []
    candidates: list[tuple[Entity, int, int]] = []  # entity, first and last token (positions in `real`)
    for e in entities:
        if window is not None and (e.end <= window[0] or e.start >= window[1]):
            continue
        cause = _unrepresentable(e, window, inside_token, starts, ends)
        if cause:
            lost.append((e, cause))
        else:
            candidates.append((e, starts[e.start], ends[e.end]))
    candidates.sort(key=lambda c: (-(c[0].end - c[0].start), c[0].start, rank[c[0].label]))
    owner: dict[int, tuple[Entity, int, int]] = {}  # token position -> the kept entity covering it
    kept: list[tuple[Entity, int, int]] = []
    for cand in candidates:
        e, first, last = cand
        blockers = {id(owner[k]): owner[k] for k in range(first, last + 1) if k in owner}
        if not blockers:
            kept.append(cand)
            owner.update((k, cand) for k in range(first, last + 1))
            continue
        if any(b[0].label == e.label and b[0].spans == e.spans for b in blockers.values()):
            kept.append(cand)  # a copy of a kept entity: the same tags
            continue
        nested = any(b[1] <= first and last <= b[2] or first <= b[1] and b[2] <= last for b in blockers.values())
        lost.append((e, "nested" if nested else "overlapping"))
    tags: list[str | None] = [None] * len(offsets)
    for i in real:
        tags[i] = "O"
    for e, first, last in kept:
        for k in range(first, last + 1):
            tags[real[k]] = f"{_prefix(scheme, k, first, last)}-{e.label}"
    kept_entities = tuple(e for e, _, _ in sorted(kept, key=lambda c: (c[1], c[2], rank[c[0].label])))
    return Encoding(tags, kept_entities, Counter(cause for _, cause in lost), tuple(lost))


def _prefix(scheme: str, k: int, first: int, last: int) -> str:
    if scheme == "BIOES":
        if first == last:
            return "S"
        if k == last:
            return "E"
    return "B" if k == first else "I"


def _inside_token(spans: list[Offset]) -> Callable[[int], bool]:
    """offset -> whether some token has start < offset < end (log time; tokens may overlap or be unsorted)."""
    ordered = sorted(spans)
    token_starts = [s for s, _ in ordered]
    reach: list[int] = []  # the furthest end among the tokens up to each, in start order
    for _, t in ordered:
        reach.append(max(t, reach[-1]) if reach else t)

    def inside(offset: int) -> bool:
        k = bisect.bisect_left(token_starts, offset) - 1  # the last token starting before offset
        return k >= 0 and reach[k] > offset
    return inside


def _unrepresentable(e: Entity, window: Offset | None, inside_token: Callable[[int], bool],
                     starts: dict[int, int], ends: dict[int, int]) -> str:
    if e.is_discontinuous:
        return "discontinuous"
    if window is not None and (e.start < window[0] or e.end > window[1]):
        return "window_edge"
    if inside_token(e.start) or inside_token(e.end):
        return "boundary_mid_token"
    if e.start not in starts or e.end not in ends or starts[e.start] > ends[e.end]:
        return "boundary_off_token"
    return ""


def _split(tag: str | None) -> tuple[str, str]:
    if tag is None or tag == "O":
        return "O", ""
    prefix, sep, label = tag.partition("-")
    if not sep or prefix not in ("B", "I", "E", "S") or not label:
        raise ValueError(f"tag {tag!r} is not O, B-, I-, E- or S- followed by a label")
    return prefix, label


def _ends(prev: str, prev_type: str, tag: str, type_: str) -> bool:
    """seqeval's end_of_chunk: the entity open at the previous token ends before this one."""
    return (prev in ("E", "S") or (prev in ("B", "I") and tag in ("B", "S", "O"))
            or (prev != "O" and prev_type != type_))


def _starts(prev: str, prev_type: str, tag: str, type_: str) -> bool:
    """seqeval's start_of_chunk: an entity starts at this token."""
    return (tag in ("B", "S") or (prev in ("E", "S", "O") and tag in ("I", "E"))
            or (tag != "O" and prev_type != type_))


def decode(tags: Sequence[str | None], offsets: Sequence[Offset | None], scheme: str = "BIO"
           ) -> list[tuple[str, int, int]]:
    """Per-token tags back to ``(label, start, end)`` character spans, in text order. Ignored tokens (offset
    ``None`` or empty) are skipped whatever their tag; ``None`` on a real token reads as O. Under BIO, E- and
    S- tags are an error. Lenient to ill-formed sequences as seqeval's default mode (module docstring)."""
    check_scheme(scheme)
    if len(tags) != len(offsets):
        raise ValueError(f"{len(tags)} tags for {len(offsets)} token offsets")
    out: list[tuple[str, int, int]] = []
    prev, prev_type = "O", ""
    open_: list = []  # [label, start, end] of the entity being read
    for tag, offset in zip(tags, offsets):
        if not _real(offset):
            continue
        prefix, label = _split(tag)
        if scheme == "BIO" and prefix in ("E", "S"):
            raise ValueError(f"tag {tag!r} under scheme BIO (E- and S- are BIOES tags)")
        if open_ and _ends(prev, prev_type, prefix, label):
            out.append(tuple(open_))  # type: ignore[arg-type]
            open_ = []
        if _starts(prev, prev_type, prefix, label):
            open_ = [label, offset[0], offset[1]]  # type: ignore[index]
        elif open_:
            open_[2] = offset[1]  # type: ignore[index]
        prev, prev_type = prefix, label
    if open_:
        out.append(tuple(open_))  # type: ignore[arg-type]
    return out
