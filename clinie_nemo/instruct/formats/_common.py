"""What the target formats share: the decode error, backslash escaping, and splitting on unescaped
separators. Escapes: ``\\n`` newline, ``\\r`` carriage return, ``\\t`` tab, ``\\s`` space (used only where a
space would end a target line); ``\\x`` is ``x`` otherwise."""

from __future__ import annotations

import re

from clinie_nemo.instruct.target import Target

NONE_ANSWER = "none"
_CONTROL = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_UNCONTROL = {"n": "\n", "r": "\r", "t": "\t", "s": " "}


class DecodeError(ValueError):
    """Output text the exact inverse cannot read; ``cause`` is a short counter key."""

    def __init__(self, cause: str, detail: str = ""):
        self.cause = cause
        super().__init__(f"{cause}: {detail}" if detail else cause)


def escape(text: str, specials: str) -> str:
    """Backslash-escape ``\\``, control characters and each character of ``specials``."""
    out = []
    for ch in text:
        if ch in _CONTROL:
            out.append(_CONTROL[ch])
        elif ch == "\\" or ch in specials:
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def unescape(text: str) -> str:
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append(_UNCONTROL.get(nxt, nxt))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def split_unescaped(text: str, sep: str) -> list[str]:
    """Split on occurrences of ``sep`` not inside a backslash escape; pieces stay escaped."""
    pieces = []
    i = last = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text.startswith(sep, i):
            pieces.append(text[last:i])
            i += len(sep)
            last = i
        else:
            i += 1
    pieces.append(text[last:])
    return pieces


_ANSWER = re.compile(r"[^\s\"'{}\[\]<>|]*[\w)]")


def check_answer(text: str, labels: tuple[str, ...] | None) -> str:
    """A ``re_pair`` answer as rendering writes it: one label (from ``labels`` when given) or ``none``."""
    if labels is not None:
        if text != NONE_ANSWER and text not in labels:
            raise DecodeError("invalid_label")
    elif not _ANSWER.fullmatch(text):
        raise DecodeError("not_a_label")
    return text


def check_target(target: Target, chunk_text: str, labels: tuple[str, ...] | None) -> Target:
    """What rendering writes is well-formed: labels from ``labels`` (when given), every fragment placeable
    in the chunk, relations between existing entities. Anything else is not an exact target."""
    from clinie_nemo.instruct.placement import PlacementError, place_exact

    for e in target.entities:
        if labels is not None and e.label not in labels:
            raise DecodeError("invalid_label")
        for f in e.fragments:
            try:
                place_exact(chunk_text, f.text, f.occurrence)
            except PlacementError as exc:
                raise DecodeError(exc.cause) from None
    n = len(target.entities)
    if any(not (0 <= r.head < n and 0 <= r.tail < n) for r in target.relations):
        raise DecodeError("unknown_entity_reference")
    return target
