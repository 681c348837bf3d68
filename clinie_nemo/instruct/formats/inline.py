"""``inline`` target format: the chunk text with XML-like tags around each mention.

    The patient took <Drug>aspirin</Drug> and <Drug>aspirin</Drug> again.

The position in the text makes a repeated mention unambiguous. Rules that keep the inverse exact:

* nesting and overlap: tags open at the mention start and close at its end; a closing tag ``</L>`` closes
  the most recently opened unclosed ``L``; at one offset closing tags come before opening tags, and the
  longer of two mentions opening together opens first. Two mentions of the *same* label that cross
  (a starts, b starts, a ends, b ends) carry an ``id`` on both tags, and their closing tags name it:
  ``<R id="1">a<R id="2">a</R id="1">a</R id="2">``.
* discontinuous mentions: every fragment is tagged and carries the same ``id``:
  ``<ADE id="3">rash</ADE> and <ADE id="3">hives</ADE>``.
* attributes ride on the (first) opening tag: ``<StatusTime StatusTimeVal="past">quit</StatusTime>``
  (values HTML-escaped); relations on their head's tag when the task has relations:
  ``<Strength id="2" rel="Strength-Drug:1">10 mg</Strength>``, every entity then carrying its ``id``.
* note text that already looks like a tag stays text: the inverse reads a tag-shaped string as text
  when the chunk has exactly that string at that offset. Only a real tag identical to such a string at the
  same offset is ambiguous (counted as ``tag_like_text_collision``).

``re_pair`` answers with the relation label alone, or ``none``.
"""

from __future__ import annotations

import html
import re
from collections import Counter

from clinie_nemo.instruct.formats._common import DecodeError, check_answer
from clinie_nemo.instruct.placement import occurrence_index, place_exact
from clinie_nemo.instruct.target import Fragment, Target, TargetEntity, TargetRelation

NAME = "inline"
RESERVED = ("id", "rel")
_GENERIC_LABEL = r'[^\s<>/"=]+'
_SAFE_LABEL = re.compile(_GENERIC_LABEL)
_SAFE_NAME = re.compile(r"[\w.:-]+")
_ATTR = re.compile(r'\s+([\w.:-]+)="([^"]*)"')


def describe(with_relations: bool) -> str:
    text = ("Answer by copying the text exactly and putting tags around every mention: <label>mention</label>. "
            "Nested mentions get nested tags; the parts of a split mention share an id, as in "
            '<label id="1">part</label> ... <label id="1">part</label>; attributes go in the opening tag '
            'as name="value".')
    if with_relations:
        text += (' Give every mention an id="n" and write its relations on the opening tag of the head as '
                 'rel="relation:tail id;relation:tail id".')
    return text


def tag_pattern(labels: tuple[str, ...] | None) -> re.Pattern[str]:
    alt = "|".join(re.escape(lb) for lb in sorted(labels, key=len, reverse=True)) if labels else _GENERIC_LABEL
    return re.compile(rf'<(/?)({alt})((?:\s+[\w.:-]+="[^"]*")*)\s*>')


def encode(target: Target, chunk_text: str, with_relations: bool = False,
           labels: tuple[str, ...] | None = None) -> tuple[str, Counter[str]]:
    losses: Counter[str] = Counter()
    frags: list[tuple[int, int, int, int]] = []  # (start, end, entity index, fragment index)
    kept: set[int] = set()
    for i, e in enumerate(target.entities):
        if not _SAFE_LABEL.fullmatch(e.label) or not all(_SAFE_NAME.fullmatch(k) for k, _ in e.attributes):
            losses["label_or_attribute_not_tag_safe"] += 1
        elif any(k in RESERVED for k, _ in e.attributes):
            losses["reserved_attribute_name"] += 1
        else:
            kept.add(i)
            spans = [place_exact(chunk_text, f.text, f.occurrence) for f in e.fragments]
            frags.extend((s, t, i, k) for k, (s, t) in enumerate(spans))
    crossing = {i for a, b, i, _ in frags for s, t, j, _ in frags
                if i != j and target.entities[i].label == target.entities[j].label and (a < s < b < t or s < a < t < b)}
    rels: dict[int, list[str]] = {}
    if with_relations:
        for r in target.relations:
            if r.head in kept and r.tail in kept:
                rels.setdefault(r.head, []).append(f"{r.label}:{r.tail + 1}")
            else:
                losses["relation_argument_dropped"] += 1
    opens = sorted(frags, key=lambda f: (f[0], -f[1], f[2], f[3]))
    marks: list[tuple[int, int, int, str]] = []
    for n, (s, t, i, k) in enumerate(opens):
        e = target.entities[i]
        attrs = []
        if with_relations or len(e.fragments) > 1 or i in crossing:
            attrs.append(("id", str(i + 1)))
        if k == 0:
            attrs += list(e.attributes)
            if i in rels:
                attrs.append(("rel", ";".join(rels[i])))
        tag = "<" + e.label + "".join(f' {a}="{html.escape(v, quote=True)}"' for a, v in attrs) + ">"
        close = f'</{e.label} id="{i + 1}">' if i in crossing else f"</{e.label}>"
        marks.append((s, 1, n, tag))
        marks.append((t, 0, -n, close))
    marks.sort()
    out, pos = [], 0
    for at, _, _, tag in marks:
        if chunk_text.startswith(tag, at):
            losses["tag_like_text_collision"] += 1
        out.append(chunk_text[pos:at])
        out.append(tag)
        pos = at
    out.append(chunk_text[pos:])
    return "".join(out), losses


def decode(text: str, chunk_text: str, with_relations: bool = False,
           labels: tuple[str, ...] | None = None) -> Target:
    stacks: dict[str, list[tuple[int, int, dict[str, str]]]] = {}
    opened: list[tuple[str, dict[str, str]]] = []  # by open order
    spans: dict[int, list[tuple[int, int]]] = {}
    plain: list[str] = []
    pos = last = 0
    for m in tag_pattern(labels).finditer(text):
        pos += m.start() - last
        plain.append(text[last:m.start()])
        last = m.end()
        if chunk_text.startswith(m.group(0), pos):  # text of the note that looks like a tag
            plain.append(m.group(0))
            pos += len(m.group(0))
            continue
        label = m.group(2)
        if m.group(1):
            close_id = dict(_ATTR.findall(m.group(3))).get("id")
            stack = stacks.get(label) or []
            k = len(stack) - 1 if close_id is None else next(
                (k for k in range(len(stack) - 1, -1, -1) if stack[k][2].get("id") == close_id), -1)
            if k < 0:
                raise DecodeError("unmatched_closing_tag")
            start, n, _ = stack.pop(k)
            spans.setdefault(n, []).append((start, pos))
        else:
            attrs = {k: html.unescape(v) for k, v in _ATTR.findall(m.group(3))}
            stacks.setdefault(label, []).append((pos, len(opened), attrs))
            opened.append((label, attrs))
    plain.append(text[last:])
    if any(stacks.values()):
        raise DecodeError("unclosed_tag")
    if "".join(plain) != chunk_text:
        raise DecodeError("text_altered")
    groups: dict[str, list[int]] = {}
    order: list[str] = []
    for n, (_, attrs) in enumerate(opened):
        key = f"id:{attrs['id']}" if "id" in attrs else f"open:{n}"
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(n)
    entities, index_of_id, rel_specs = [], {}, []
    for key in order:
        members = groups[key]
        label = opened[members[0]][0]
        if any(opened[n][0] != label for n in members):
            raise DecodeError("id_reused_across_labels")
        frag_spans = sorted(s for n in members for s in spans[n])
        if any(s == t for s, t in frag_spans):
            raise DecodeError("empty_mention")
        attrs = {k: v for n in members for k, v in opened[n][1].items() if k not in RESERVED}
        fragments = tuple(Fragment(chunk_text[s:t], occurrence_index(chunk_text, chunk_text[s:t], s))
                          for s, t in frag_spans)
        if key.startswith("id:"):
            index_of_id[key[3:]] = len(entities)
        for n in members:
            if "rel" in opened[n][1]:
                rel_specs.append((len(entities), opened[n][1]["rel"]))
        entities.append(TargetEntity(label, fragments, tuple(sorted(attrs.items()))))
    relations = []
    for head, spec in rel_specs:
        for item in spec.split(";"):
            rel_label, _, tail = item.rpartition(":")
            if not rel_label or tail not in index_of_id:
                raise DecodeError("bad_relation_reference")
            relations.append(TargetRelation(rel_label, head, index_of_id[tail]))
    return Target(tuple(entities), tuple(relations))


def encode_answer(label: str) -> str:
    return label


def decode_answer(text: str, labels: tuple[str, ...] | None = None) -> str:
    return check_answer(text, labels)


def describe_answer() -> str:
    return "Answer with the relation label alone, or none."
