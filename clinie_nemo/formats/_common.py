"""What the target formats share: the decode error, backslash escaping, and splitting on unescaped
separators. Escapes: ``\\n`` newline, ``\\r`` carriage return, ``\\t`` tab; ``\\x`` is ``x`` otherwise."""

from __future__ import annotations

NONE_ANSWER = "none"
_CONTROL = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_UNCONTROL = {"n": "\n", "r": "\r", "t": "\t"}


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
