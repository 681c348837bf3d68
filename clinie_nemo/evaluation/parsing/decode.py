"""Tolerant decoders of generated text, one per target format, into mentions and links.

The formats are those rendering writes (:mod:`clinie_nemo.instruct.formats`; grammar in their docstrings):
``lines``: ``label | mention[ ... fragment] [| #k[,k]] [| name=value; ...]`` per line, relations as
``=> relation | i | j`` (1-based entity line numbers); ``json``: a list of ``{"label", "text",
"occurrence", "fragments", "attributes"}`` objects or ``{"entities": [... "id" ...], "relations":
[{"label", "head", "tail"}]}``; ``inline``: the chunk text with ``<Label attr="v">mention</Label>``
tags (fragments of one mention share ``id``; relations as ``rel="label:tail id;..."``).
``re_pair`` answers: a bare label or ``none`` (``{"relation": ...}`` in json).

These decoders accept what the exact inverses refuse: bullets, prose lines, repeated lines, unescaped
text, missing ids, unclosed or stray tags, altered chunk text. They never guess a mention: an element
they cannot read is counted in ``unreadable``. A mention or relation said again in the same answer is
kept once, its repeats counted (``Decoded.repeats``, ``Decoded.link_repeats``): the rule set's
``duplicates`` decides whether they count when scoring.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from clinie_nemo.evaluation.parsing.clean import is_none_answer, load_json, strip_bullet
from clinie_nemo.instruct.placement import occurrence_index, ranked_matches

Fragments = tuple[tuple[str, int], ...]  # ((text, occurrence), ...)


@dataclass(frozen=True)
class Mention:
    label: str
    fragments: Fragments
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
    repeats: Counter[int] = field(default_factory=Counter)  # mention index -> times said again
    link_repeats: Counter[int] = field(default_factory=Counter)  # link index -> times said again

    def add(self, mention: Mention) -> int:
        """Index of the mention, added once (repeats map to the first and are counted in ``repeats``)."""
        try:
            index = self.mentions.index(mention)
        except ValueError:
            self.mentions.append(mention)
            return len(self.mentions) - 1
        self.repeats[index] += 1
        return index

    def link(self, label: str, head: int | None, tail: int | None) -> None:
        if head is None or tail is None or not label:
            self.unreadable += 1
            return
        link = Link(label, head, tail)
        if link in self.links:
            self.link_repeats[self.links.index(link)] += 1
        else:
            self.links.append(link)


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r", "t": "\t", "s": " "}.get(m.group(1), m.group(1)), text)


def _split(text: str, sep: str) -> list[str]:
    return re.split(r"(?<!\\)" + re.escape(sep), text)


OCCURRENCES = re.compile(r"^#?\s*(\d{1,4}(?:\s*,\s*\d{1,4})*)$")
QUOTE_PAIRS = {'"': '"', "'": "'", "`": "`", "\u201c": "\u201d", "\u2018": "\u2019"}
QUOTES = "".join(QUOTE_PAIRS.keys() | QUOTE_PAIRS.values())


def _in_chunk(chunk: str, mention: str) -> bool:
    return next(ranked_matches(chunk, mention), None) is not None


def unquote(mention: str, chunk: str) -> str:
    """A mention exactly as written when the chunk has it (a note's own ``"quoted"`` words, ``5' 10"``);
    quotes around it are peeled (a matching pair at a time, then stray edge quotes) only when the
    written form is nowhere in the chunk and the peeled one is: then they were formatting."""
    if not chunk or _in_chunk(chunk, mention):
        return mention
    m = mention
    while len(m) >= 2 and QUOTE_PAIRS.get(m[0]) == m[-1] and m[1:-1].strip():
        m = m[1:-1].strip()
        if _in_chunk(chunk, m):
            return m
    bare = mention.strip(QUOTES).strip()
    return bare if bare and _in_chunk(chunk, bare) else mention


def _lines_entity(fields: list[str], chunk: str = "") -> Mention | None:
    label, mention, extras = fields[0], fields[1], fields[2:]
    texts = [unquote(_unescape(t.strip()), chunk) for t in _split(mention, " ... ")]
    occurrences = [1] * len(texts)
    attrs: list[tuple[str, str]] = []
    for extra in extras:
        m = OCCURRENCES.match(extra)
        if m:
            occurrences = [int(x) for x in re.split(r"\s*,\s*", m.group(1))]
        elif "=" in extra:
            for item in _split(extra, ";"):
                key, sep, value = item.partition("=")
                if not sep or not key.strip():
                    return None
                attrs.append((_unescape(key.strip()), _unescape(value.strip())))
        else:
            return None
    if not label or not all(texts) or len(occurrences) != len(texts):
        return None
    return Mention(_unescape(label), tuple(zip(texts, occurrences)), tuple(sorted(attrs)))


def decode_lines(text: str, chunk: str = "") -> Decoded:
    out = Decoded()
    if is_none_answer(text):
        return out
    line_to_mention: list[int | None] = []  # the model's entity line numbering (repeats included)
    relation_lines: list[list[str]] = []
    for raw in text.splitlines():
        line = strip_bullet(raw).strip()
        if "|" not in line:
            continue  # prose around the answer, or "none"
        if line.startswith("=>"):
            relation_lines.append([f.strip() for f in _split(line[2:].strip(), "|")])
            continue
        fields = [f.strip() for f in _split(line.strip("|"), "|")]
        mention = _lines_entity(fields, chunk) if 2 <= len(fields) <= 4 else None
        if mention is None:
            out.unreadable += 1
            line_to_mention.append(None)
        else:
            line_to_mention.append(out.add(mention))
    for fields in relation_lines:
        if len(fields) != 3 or not fields[1].isdigit() or not fields[2].isdigit():
            out.unreadable += 1
            continue
        h, t = int(fields[1]) - 1, int(fields[2]) - 1
        ok = 0 <= h < len(line_to_mention) and 0 <= t < len(line_to_mention)
        out.link(_unescape(fields[0]), line_to_mention[h] if ok else None, line_to_mention[t] if ok else None)
    return out


def _first(obj: dict[str, Any], *keys: str) -> Any:
    return next((obj[k] for k in keys if k in obj), None)


def _occ(value: Any) -> int | None:
    if value is None:
        return 1
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("#").isdigit():
        return int(value.strip().lstrip("#"))
    return None


def _json_mention(obj: Any, chunk: str = "") -> Mention | None:
    if not isinstance(obj, dict):
        return None
    label = _first(obj, "label", "type", "entity_type", "category")
    frags = obj.get("fragments")
    if isinstance(frags, list) and frags:
        pairs = [(f.get("text"), _occ(f.get("occurrence"))) if isinstance(f, dict) else (None, None) for f in frags]
    else:
        pairs = [(_first(obj, "text", "mention", "span"), _occ(_first(obj, "occurrence", "occ")))]
    if not isinstance(label, str) or not all(isinstance(t, str) and t.strip() and o for t, o in pairs):
        return None
    pairs = [(unquote(t, chunk), o) for t, o in pairs]
    attrs = obj.get("attributes")
    attributes = tuple(sorted((str(k), str(v)) for k, v in attrs.items())) if isinstance(attrs, dict) else ()
    return Mention(label, tuple(pairs), attributes)


def decode_json(text: str, chunk: str = "") -> Decoded:
    out = Decoded()
    if is_none_answer(text):
        return out
    value, out.truncated = load_json(text)  # ValueError: unparseable
    if isinstance(value, dict) and "entities" not in value and isinstance(_first(value, "relation", "answer"), str):
        out.answer = _first(value, "relation", "answer")
        return out
    if isinstance(value, list):
        entities, relations = value, []
    elif isinstance(value, dict) and isinstance(_first(value, "entities", "mentions"), list):
        entities, relations = _first(value, "entities", "mentions"), value.get("relations") or []
    else:
        raise ValueError("no entities in the JSON value")
    by_id: dict[Any, int] = {}
    for n, obj in enumerate(entities):
        m = _json_mention(obj, chunk)
        if m is None:
            out.unreadable += 1
            continue
        index = out.add(m)
        ident = obj.get("id", n + 1)
        by_id[ident] = index
        by_id.setdefault(str(ident), index)
    for obj in relations if isinstance(relations, list) else []:
        if not isinstance(obj, dict):
            out.unreadable += 1
            continue

        def ref(value: Any) -> int | None:
            if value in by_id and not isinstance(value, bool):
                return by_id[value]
            if isinstance(value, str):
                return next((i for i, m in enumerate(out.mentions) if " ".join(t for t, _ in m.fragments) == value),
                            None)
            return None

        label = _first(obj, "label", "type", "relation")
        out.link(label if isinstance(label, str) else "", ref(_first(obj, "head", "arg1", "source")),
                 ref(_first(obj, "tail", "arg2", "target")))
    return out


TAG = re.compile(r'<(/?)([A-Za-z][^\s<>/"=]{0,60})((?:\s+[\w.:-]+\s*=\s*"[^"]*")*)\s*>')
ATTR = re.compile(r'([\w.:-]+)\s*=\s*"([^"]*)"')
RESERVED = ("id", "rel")


MIN_BODY_LINE = 4  # a line of the answer this long that the chunk contains is note text, not prose


def _body(plain: str, chunk: str, tagged: list[int]) -> tuple[int, int, bool]:
    """``(start, end, verbatim)``: where the tagged note text lies in the answer's plain text. When the
    chunk occurs verbatim, exactly there (prose before and after is not note text); otherwise from the
    first line that holds a tag or a piece of the chunk to the end (a prose preamble is skipped)."""
    if not chunk:
        return 0, len(plain), False
    at = plain.find(chunk)
    if at >= 0:
        return at, at + len(chunk), True
    first_tag = min(tagged, default=len(plain))
    line_start = 0
    for line in plain.splitlines(keepends=True):
        piece = line.strip()
        if line_start + len(line) > first_tag or (len(piece) >= MIN_BODY_LINE and piece in chunk):
            return line_start, len(plain), False
        line_start += len(line)
    return 0, len(plain), False


def decode_inline(text: str, chunk: str = "") -> Decoded:
    """Tags whose exact string also occurs in the chunk are chunk text, not tags. Stray closing tags and
    tags never closed are counted as unreadable. The tagged text is aligned to the chunk (:func:`_body`):
    a mention's occurrence is counted in the chunk when the note text is reproduced verbatim, else in the
    answer from its first line of note text; tags in prose around a verbatim note text are ignored."""
    out = Decoded()
    if is_none_answer(text):
        return out
    parts: list[str] = []
    pos = last = 0
    stacks: dict[str, list[int]] = {}
    opened: list[tuple[str, dict[str, str], int]] = []  # (label, attributes, start in the plain text)
    spans: dict[int, tuple[int, int]] = {}
    stray: list[int] = []  # plain-text offsets of closing tags that close nothing
    for m in TAG.finditer(text):
        if chunk and m.group(0) in chunk:
            continue
        parts.append(text[last:m.start()])
        pos += m.start() - last
        last = m.end()
        label = m.group(2)
        if m.group(1):
            stack = stacks.get(label)
            if stack:
                n = stack.pop()
                spans[n] = (opened[n][2], pos)
            else:
                stray.append(pos)
        else:
            attrs = {k: html.unescape(v) for k, v in ATTR.findall(m.group(3))}
            opened.append((label, attrs, pos))
            stacks.setdefault(label, []).append(len(opened) - 1)
    parts.append(text[last:])
    plain = "".join(parts)
    body_start, body_end, verbatim = _body(plain, chunk, [o[2] for o in opened] + stray)

    def in_body(*offsets: int) -> bool:
        return not verbatim or all(body_start <= x <= body_end for x in offsets)

    out.unreadable += sum(1 for x in stray if in_body(x))
    out.unreadable += sum(1 for st in stacks.values() for n in st if in_body(opened[n][2]))
    groups: dict[str, list[int]] = {}
    for n, (_, attrs, _) in enumerate(opened):
        if n in spans and in_body(*spans[n]):
            groups.setdefault(f"id:{attrs['id']}" if "id" in attrs else f"open:{n}", []).append(n)
    index_of_id: dict[str, int] = {}
    rel_specs: list[tuple[int, str]] = []
    for key, members in groups.items():
        frags = []
        for s, t in sorted(spans[n] for n in members):
            mention = plain[s:t]
            if not mention.strip():
                break
            if verbatim:  # the chunk's own offsets: the occurrence rendering would have written
                frags.append((mention, occurrence_index(chunk, mention, s - body_start)))
            else:
                base = body_start if s >= body_start else 0
                frags.append((mention, occurrence_index(plain[base:], mention, s - base)))
        else:
            attrs = tuple(sorted({k: v for n in members for k, v in opened[n][1].items() if k not in RESERVED}.items()))
            index = out.add(Mention(opened[members[0]][0], tuple(frags), attrs))
            if key.startswith("id:"):
                index_of_id[key[3:]] = index
            rel_specs += [(index, opened[n][1]["rel"]) for n in members if "rel" in opened[n][1]]
            continue
        out.unreadable += 1
    for head, spec in rel_specs:
        for item in spec.split(";"):
            label, _, tail = item.strip().rpartition(":")
            out.link(label.strip(), head, index_of_id.get(tail.strip()))
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
            answer = line.split("|")[-1].strip()
            return Decoded(answer="none" if is_none_answer(answer) else answer)
    return Decoded(unreadable=1)


DECODERS = {"lines": decode_lines, "json": decode_json, "inline": decode_inline}
