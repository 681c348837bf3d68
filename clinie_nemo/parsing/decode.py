"""Tolerant decoders of generated text, one per target format, into mentions and links.

``lines``: one ``label | mention`` per line, an optional third field ``k`` or ``#k`` = occurrence.
``json``: a list of ``{"label", "text"[, "occurrence"]}`` objects, or ``{"entities": [...],
"relations": [{"label", "head", "tail"}]}`` with head/tail as entity indices or mention texts.
``inline``: the chunk text with ``<Label>mention</Label>`` tags; a mention's occurrence is counted in
the tag-stripped output, so a repeated string keeps its place.
A relation-classification answer (``re_pair``) is a bare label or ``none`` in any format.

Each decoder gets text already cleaned of fences and returns :class:`Decoded`; lines or elements it
cannot read are counted (``unreadable``), not guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from clinie_nemo.parsing.clean import dedupe_lines, is_none_answer, load_json, strip_bullet


@dataclass(frozen=True)
class Mention:
    label: str
    text: str
    occurrence: int = 1
    attributes: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Link:
    label: str
    head: int  # index into Decoded.mentions
    tail: int


@dataclass
class Decoded:
    mentions: list[Mention] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    unreadable: int = 0
    truncated: bool = False
    answer: str | None = None  # re_pair: the relation label (or "none")


OCCURRENCE = re.compile(r"^#?\s*(\d{1,4})$")


def decode_lines(text: str) -> Decoded:
    out = Decoded()
    if is_none_answer(text):
        return out
    lines = dedupe_lines([strip_bullet(x).strip() for x in text.splitlines()])
    for line in lines:
        if not line or "|" not in line:
            continue  # prose around the answer
        parts = [p.strip() for p in line.strip("|").split("|")]
        occurrence = 1
        if len(parts) == 3 and OCCURRENCE.match(parts[2]):
            occurrence = int(OCCURRENCE.match(parts[2]).group(1))
            parts = parts[:2]
        if len(parts) != 2 or not parts[0] or not parts[1]:
            out.unreadable += 1
            continue
        out.mentions.append(Mention(parts[0], parts[1].strip("\"'`"), occurrence))
    return out


def _first(obj: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if k in obj:
            return obj[k]
    return None


def _mention(obj: Any) -> Mention | None:
    if not isinstance(obj, dict):
        return None
    label, text = _first(obj, "label", "type", "entity_type", "category"), _first(obj, "text", "mention", "span")
    if not isinstance(label, str) or not isinstance(text, str) or not text.strip():
        return None
    occ = _first(obj, "occurrence", "occ", "n")
    attrs = obj.get("attributes")
    attributes = tuple(sorted((str(k), str(v)) for k, v in attrs.items())) if isinstance(attrs, dict) else ()
    return Mention(label, text, int(occ) if isinstance(occ, int) and not isinstance(occ, bool) else 1, attributes)


def _ref(value: Any, mentions: list[Mention]) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value if 0 <= value < len(mentions) else None
    if isinstance(value, str):
        return next((i for i, m in enumerate(mentions) if m.text == value), None)
    return None


def decode_json(text: str) -> Decoded:
    out = Decoded()
    if is_none_answer(text):
        return out
    value, out.truncated = load_json(text)  # ValueError: unparseable
    if isinstance(value, dict) and isinstance(_first(value, "relation", "answer", "label"), str) \
            and "entities" not in value:
        out.answer = _first(value, "relation", "answer", "label")
        return out
    entities = value if isinstance(value, list) else _first(value, "entities", "mentions") if isinstance(value, dict) else None
    relations = value.get("relations", []) if isinstance(value, dict) else []
    if entities is None:
        raise ValueError("no entities in the JSON value")
    seen: set[Mention] = set()
    for obj in entities if isinstance(entities, list) else []:
        m = _mention(obj)
        if m is None:
            out.unreadable += 1
        elif m not in seen:
            seen.add(m)
            out.mentions.append(m)
    for obj in relations if isinstance(relations, list) else []:
        label = _first(obj, "label", "type", "relation") if isinstance(obj, dict) else None
        head = _ref(_first(obj, "head", "arg1", "source"), out.mentions) if isinstance(obj, dict) else None
        tail = _ref(_first(obj, "tail", "arg2", "target"), out.mentions) if isinstance(obj, dict) else None
        if not isinstance(label, str) or head is None or tail is None:
            out.unreadable += 1
        elif Link(label, head, tail) not in out.links:
            out.links.append(Link(label, head, tail))
    return out


TAG = re.compile(r"<([A-Za-z][^<>/]{0,60}?)>(.*?)</\1\s*>", re.S)


def decode_inline(text: str) -> Decoded:
    out = Decoded()
    if is_none_answer(text):
        return out
    plain: list[str] = []
    pos = 0
    found: list[tuple[str, str, int]] = []
    for m in TAG.finditer(text):
        plain.append(text[pos:m.start()])
        before = "".join(plain)
        inner = TAG.sub(lambda x: x.group(2), m.group(2))
        found.append((m.group(1).strip(), inner, len(before)))
        plain.append(inner)
        pos = m.end()
    plain.append(text[pos:])
    stripped = "".join(plain)
    for label, inner, start in found:
        occurrence = 1 + sum(1 for _ in re.finditer(f"(?={re.escape(inner)})", stripped[:start])) if inner else 1
        if inner.strip():
            out.mentions.append(Mention(label, inner, occurrence))
        else:
            out.unreadable += 1
    if re.search(r"<[A-Za-z][^<>]*>[^<]*$", text) and not found[-1:]:
        out.truncated = True
    return out


def decode_answer(text: str) -> Decoded:
    """re_pair: the relation label, in any format (bare word, ``label: X``, JSON)."""
    if is_none_answer(text):
        return Decoded(answer="none")
    if text.lstrip().startswith(("{", "[")):
        try:
            return decode_json(text)
        except ValueError:
            pass
    for line in text.splitlines():
        line = strip_bullet(line).strip().strip("`'\".")
        if line:
            line = re.sub(r"^(relation|answer|label)\s*[:=]\s*", "", line, flags=re.I)
            return Decoded(answer=line.split("|")[-1].strip())
    return Decoded(unreadable=1)


DECODERS = {"lines": decode_lines, "json": decode_json, "inline": decode_inline}
