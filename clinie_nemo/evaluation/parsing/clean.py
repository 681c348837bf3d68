"""Cleaning what LLMs emit before decoding: small pure functions, each undoing one habit.

Code fences, bullets and numbering, prose before or after the answer, duplicated lines, the ``none``
answer in its many spellings, truncated JSON (closed where that loses nothing already complete), and
label case/spacing/punctuation variants (:class:`LabelMap`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n?(.*?)(?:```|\Z)", re.S)
BULLET = re.compile(r"^\s*(?:[-*\u2022\u2023\u25e6+>]|\(?\d{1,3}[.)\]:]|\(?[a-z][.)](?=\s))\s+")
NONE_ANSWERS = {"none", "no", "nothing", "n/a", "na", "null", "[]", "{}", "no entities", "no relation",
                "no relations", "no mentions", "no entities found", "none found", "there are none",
                "no relation exists", "nil", "empty"}


def strip_code_fences(text: str) -> str:
    """The content of the first fenced block when there is one (a missing closing fence is fine)."""
    m = FENCE.search(text)
    return m.group(1) if m else text


def strip_bullet(line: str) -> str:
    return BULLET.sub("", line, count=1)


def dedupe_lines(lines: list[str]) -> list[str]:
    """Drop exact repeats (a decoding loop often repeats lines), keeping first-seen order."""
    seen: set[str] = set()
    out = []
    for line in lines:
        if line not in seen:
            seen.add(line)
            out.append(line)
    return out


def is_none_answer(text: str) -> bool:
    t = strip_code_fences(text).strip().strip("`'\"").strip().rstrip(".!").strip().lower()
    return t in NONE_ANSWERS


def json_span(text: str) -> str | None:
    """From the first ``{`` or ``[`` to the end (prose before is dropped; prose after is cut by parsing)."""
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    return text[min(starts):] if starts else None


def _close(prefix: str) -> str | None:
    """Close the open strings, objects and arrays of a JSON prefix; None if the prefix cannot end well."""
    stack: list[str] = []
    in_string = escaped = False
    for ch in prefix:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]" and (not stack or stack.pop() != ch):
            return None
    if in_string:
        return None
    body = prefix.rstrip().rstrip(",")
    return body + "".join(reversed(stack))


def load_json(text: str) -> tuple[Any, bool]:
    """``(value, truncated)``: the first JSON value in ``text``; a truncated one is repaired by cutting back
    to the last complete element and closing the brackets. Raises ValueError when nothing can be read."""
    body = json_span(text)
    if body is None:
        raise ValueError("no JSON value")
    try:
        value, _ = json.JSONDecoder().raw_decode(body)
        return value, False
    except json.JSONDecodeError:
        pass
    # truncated: try cutting after each element boundary, from the longest prefix back
    cuts = [m.end() for m in re.finditer(r"[}\]](?=\s*(?:,|[}\]]|$))", body)]
    for cut in reversed(cuts):
        closed = _close(body[:cut])
        if closed is None:
            continue
        try:
            return json.loads(closed), True
        except json.JSONDecodeError:
            continue
    closed = _close(body)
    if closed is not None:
        try:
            return json.loads(closed), True
        except json.JSONDecodeError:
            pass
    raise ValueError("unreadable JSON")


def label_key(label: str) -> str:
    return re.sub(r"[\s_\-./]+", "", label.strip().strip("*`'\":[]<>").lower())


class LabelMap:
    """``LabelMap(["Drug", "Strength-Drug"]).get("strength drug") == "Strength-Drug"``; None if unknown."""

    def __init__(self, labels: Iterable[str]):
        self.labels = tuple(labels)
        self._by_key = {label_key(lb): lb for lb in self.labels}

    def get(self, raw: str) -> str | None:
        if raw in self.labels:
            return raw
        return self._by_key.get(label_key(raw))

    def __bool__(self) -> bool:
        return bool(self.labels)
