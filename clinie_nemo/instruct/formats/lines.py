"""``lines`` target format: one ``label | mention`` per line.

Grammar (fields are separated by `` | ``; ``\\``, ``|``, newline, CR and tab inside a field are
backslash-escaped)::

    label | mention                      first occurrence of the mention in the chunk
    label | mention | #2                 its 2nd occurrence (overlapping matches count)
    label | frag1 ... frag2 | #1,3      a discontinuous entity: fragments joined by " ... ", one
                                         occurrence per fragment (dots of a mention containing "..."
                                         are escaped as "\\.")
    label | mention | k=v; k2=v2         attributes (after the occurrence field when both are present)
    => relation | 2 | 1                  relation from entity line 2 to entity line 1 (1-based)
    none                                 nothing to extract

A space ending a line is written ``\\s`` (NeMo and Megatron-Bridge strip spaces off the ends of a target).

For ``re_pair`` the answer is the relation label alone, or ``none``.
"""

from __future__ import annotations

import re
from collections import Counter

from clinie_nemo.instruct.formats._common import (
    NONE_ANSWER,
    DecodeError,
    check_answer,
    check_target,
    escape,
    split_unescaped,
    unescape,
)
from clinie_nemo.instruct.target import Fragment, Target, TargetEntity, TargetRelation

NAME = "lines"
FRAGMENT_SEPARATOR = " ... "
RELATION_PREFIX = "=> "
_OCCURRENCE = re.compile(r"#\d+(,\d+)*")


def describe(with_relations: bool) -> str:
    text = ("Answer with one line per mention: `label | mention`, copying the mention exactly from the text. "
            "If the same mention occurs more than once, add `| #k` for its k-th occurrence. "
            "Join the parts of a split mention with ` ... `. Add attributes as `| name=value`.")
    if with_relations:
        text += (" After the mentions, write one line per relation: `=> relation | i | j`, where i and j are "
                 "the line numbers of the head and tail mentions.")
    return text + f" If there is nothing to extract, answer `{NONE_ANSWER}`."


def _mention(fragment_text: str) -> str:
    escaped = escape(fragment_text, "|")
    return escaped.replace(".", "\\.") if "..." in fragment_text else escaped


def encode(target: Target, chunk_text: str, with_relations: bool = False,
           labels: tuple[str, ...] | None = None) -> tuple[str, Counter[str]]:
    lines = []
    for e in target.entities:
        fields = [escape(e.label, "|"), FRAGMENT_SEPARATOR.join(_mention(f.text) for f in e.fragments)]
        if any(f.occurrence != 1 for f in e.fragments):
            fields.append("#" + ",".join(str(f.occurrence) for f in e.fragments))
        if e.attributes:
            fields.append("; ".join(f"{escape(k, '|;=')}={escape(v, '|;=')}" for k, v in e.attributes))
        line = " | ".join(fields)
        # a space at the end of a line is escaped: the SFT loaders strip spaces off the whole target
        lines.append(line[:-1] + "\\s" if line.endswith(" ") else line)
    if with_relations:
        lines += [f"{RELATION_PREFIX}{escape(r.label, '|')} | {r.head + 1} | {r.tail + 1}" for r in target.relations]
    return ("\n".join(lines) if lines else NONE_ANSWER), Counter()


def _fields(line: str) -> list[str]:
    raw = split_unescaped(line, "|")
    out = []
    for i, f in enumerate(raw):
        if i > 0 and f.startswith(" "):
            f = f[1:]
        if i < len(raw) - 1 and f.endswith(" "):
            f = f[:-1]
        out.append(f)
    return out


def _attributes(field: str) -> tuple[tuple[str, str], ...]:
    items = []
    for i, item in enumerate(split_unescaped(field, ";")):
        if i > 0 and item.startswith(" "):
            item = item[1:]
        kv = split_unescaped(item, "=")
        if len(kv) != 2:
            raise DecodeError("bad_attribute")
        items.append((unescape(kv[0]), unescape(kv[1])))
    return tuple(sorted(items))


def decode(text: str, chunk_text: str, with_relations: bool = False,
           labels: tuple[str, ...] | None = None) -> Target:
    if text == NONE_ANSWER:
        return Target()
    entities: list[TargetEntity] = []
    relations: list[TargetRelation] = []
    for line in text.split("\n"):
        if line.startswith(RELATION_PREFIX):
            fields = _fields(line[len(RELATION_PREFIX):])
            if len(fields) != 3 or not fields[1].isdigit() or not fields[2].isdigit():
                raise DecodeError("bad_relation_line")
            relations.append(TargetRelation(unescape(fields[0]), int(fields[1]) - 1, int(fields[2]) - 1))
            continue
        fields = _fields(line)
        if len(fields) < 2 or len(fields) > 4:
            raise DecodeError("bad_line")
        mentions = [unescape(m) for m in split_unescaped(fields[1], FRAGMENT_SEPARATOR)]
        occ = [1] * len(mentions)
        attrs: tuple[tuple[str, str], ...] = ()
        for extra in fields[2:]:
            if _OCCURRENCE.fullmatch(extra):
                occ = [int(x) for x in extra[1:].split(",")]
            else:
                attrs = _attributes(extra)
        if len(occ) != len(mentions):
            raise DecodeError("bad_occurrence")
        entities.append(TargetEntity(unescape(fields[0]), tuple(Fragment(m, k) for m, k in zip(mentions, occ)),
                                     attrs))
    return check_target(Target(tuple(entities), tuple(relations)), chunk_text, labels)


def encode_answer(label: str) -> str:
    return label


def decode_answer(text: str, labels: tuple[str, ...] | None = None) -> str:
    return check_answer(text, labels)


def describe_answer() -> str:
    return f"Answer with the relation label alone, or {NONE_ANSWER}."
