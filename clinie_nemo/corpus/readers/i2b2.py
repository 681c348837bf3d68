"""Reader for the 2010 i2b2/VA corpus: ``record.txt`` with ``.con`` concepts, ``.ast`` assertions and
``.rel`` relations, addressed as ``line:token`` (lines 1-based, tokens 0-based, end token inclusive).

Files are found by basename anywhere under the release folder (the release splits ``txt/``,
``concept/``, ``ast/``, ``rel/`` into sibling folders). Tokens are split on single spaces; when a line
has runs of whitespace and the single-space reading disagrees with the mention, whitespace tokens are
tried. The lowercased mention ``c="..."`` is checked case-insensitively against the note.
Concepts become entities ``T1..`` labelled problem/test/treatment; an ``.ast`` line adds the attribute
``assertion`` to the matching ``.con`` problem (merged, never duplicated); ``.rel`` lines become relations
``R1..`` with head = first concept (the treatment/test). Document id = ``.txt`` path relative to the
folder, without extension. A folder with no ``.con`` file at all, or a record without one, is an error
(not an empty document). Options: ``dataset``, ``split``, ``skip_invalid`` (see :mod:`._common`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from clinie_nemo.core.document import Document, Entity, Relation
from clinie_nemo.core.errors import InputError, Problem
from clinie_nemo.corpus.readers._common import (
    FileIndex,
    Problems,
    SkipOption,
    read_annotation_lines,
    read_note,
    relative_id,
    same_text,
    stream,
)

_CONCEPT = r'c="(?P<{p}text>.*?)" (?P<{p}l1>\d+):(?P<{p}t1>\d+) (?P<{p}l2>\d+):(?P<{p}t2>\d+)'
CON_LINE = re.compile("^" + _CONCEPT.format(p="") + r'\|\|t="(?P<type>[^"]*)"$')
AST_LINE = re.compile("^" + _CONCEPT.format(p="") + r'\|\|t="(?P<type>[^"]*)"\|\|a="(?P<value>[^"]*)"$')
REL_LINE = re.compile("^" + _CONCEPT.format(p="a") + r'\|\|r="(?P<rel>[^"]*)"\|\|' + _CONCEPT.format(p="b") + "$")


class TokenIndex:
    """Character offsets of ``line:token`` addresses in one note."""

    def __init__(self, text: str):
        self.text = text
        self.line_starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]

    def _line(self, line: int) -> tuple[int, str]:
        start = self.line_starts[line - 1]
        end = self.line_starts[line] - 1 if line < len(self.line_starts) else len(self.text)
        return start, self.text[start:end].rstrip("\r")

    def tokens(self, line: int, whitespace: bool) -> list[tuple[int, int]]:
        start, content = self._line(line)
        if whitespace:
            return [(start + m.start(), start + m.end()) for m in re.finditer(r"\S+", content)]
        out, pos = [], 0
        for tok in content.split(" "):
            out.append((start + pos, start + pos + len(tok)))
            pos += len(tok) + 1
        return out

    def span(self, l1: int, t1: int, l2: int, t2: int, mention: str) -> tuple[int, int] | str:
        """(start, end) of the address, or a message saying what is wrong with it."""
        if not (1 <= l1 <= l2 <= len(self.line_starts)) or (l1 == l2 and t1 > t2):
            return f"address {l1}:{t1} {l2}:{t2} outside the note ({len(self.line_starts)} lines) or reversed"
        found = None
        for whitespace in (False, True):
            first, last = self.tokens(l1, whitespace), self.tokens(l2, whitespace)
            if t1 >= len(first) or t2 >= len(last):
                continue
            start, end = first[t1][0], last[t2][1]
            if start < end and same_text(mention, self.text[start:end], case_insensitive=True):
                return start, end
            found = found or (start, end)
        if found is None:
            return f"token address {l1}:{t1} {l2}:{t2} outside the line"
        return f"mention text disagrees with the note at {l1}:{t1} {l2}:{t2}"


def _address(m: re.Match[str], p: str = "") -> tuple[int, int, int, int]:
    return int(m[p + "l1"]), int(m[p + "t1"]), int(m[p + "l2"]), int(m[p + "t2"])


def read_record(txt: Path, index: FileIndex, doc_id: str, problems: Problems, dataset: str = "",
                split: str = "") -> Document | None:
    try:
        text, _ = read_note(txt)
    except UnicodeDecodeError as exc:
        problems.add(txt, None, f"note is not valid UTF-8 (byte {exc.start})")
        return None
    tokens = TokenIndex(text)
    entities: list[Entity] = []
    by_span: dict[tuple[int, int, str], int] = {}  # (start, end, label) -> position in entities
    attrs: dict[int, dict[str, str]] = {}

    def concept(path: Path, lineno: int, line: str, m: re.Match[str], label: str) -> int | None:
        where = tokens.span(*_address(m), m["text"])
        if isinstance(where, str):
            problems.add(path, lineno, where, line)
            return None
        key = (where[0], where[1], label)
        if key not in by_span:
            by_span[key] = len(entities)
            entities.append(Entity(f"T{len(entities) + 1}", label, (where,), text[where[0]:where[1]]))
        return by_span[key]

    if index.partner(txt, ".con") is None:
        problems.add(txt, None, f"no .con concept file for record {doc_id}")
        return None
    for suffix, pattern in ((".con", CON_LINE), (".ast", AST_LINE)):
        ann = index.partner(txt, suffix)
        for lineno, line in enumerate(read_annotation_lines(ann) if ann else [], 1):
            if not line.strip():
                continue
            m = pattern.match(line.strip())
            if not m:
                expected = 'c="..." L:T L:T||t="..."' + ('||a="..."' if suffix == ".ast" else "")
                problems.add(ann, lineno, f"malformed {suffix} line (expected {expected})")  # type: ignore[arg-type]
                continue
            pos = concept(ann, lineno, line, m, m["type"])  # type: ignore[arg-type]
            if pos is not None and suffix == ".ast":
                attrs.setdefault(pos, {})["assertion"] = m["value"]
    relations: list[Relation] = []
    rel = index.partner(txt, ".rel")
    spans_to_id: dict[tuple[int, int], str] = {}
    for e in entities:
        spans_to_id.setdefault(e.spans[0], e.id)
    for lineno, line in enumerate(read_annotation_lines(rel) if rel else [], 1):
        if not line.strip():
            continue
        m = REL_LINE.match(line.strip())
        if not m:
            problems.add(rel, lineno, 'malformed .rel line (expected c="..." L:T L:T||r="..."||c="..." L:T L:T)')  # type: ignore[arg-type]
            continue
        ends = []
        for p in ("a", "b"):
            where = tokens.span(*_address(m, p), m[p + "text"])
            if isinstance(where, str):
                problems.add(rel, lineno, where, line)  # type: ignore[arg-type]
            elif where not in spans_to_id:
                problems.add(rel, lineno, f"relation refers to a concept missing from .con "
                             f"({m[p + 'l1']}:{m[p + 't1']} {m[p + 'l2']}:{m[p + 't2']})", line)  # type: ignore[arg-type]
            else:
                ends.append(spans_to_id[where])
        if len(ends) == 2:
            relations.append(Relation(f"R{len(relations) + 1}", m["rel"], ends[0], ends[1]))
    entities = [Entity(e.id, e.label, e.spans, e.text, tuple(sorted(attrs[i].items())) if i in attrs else ())
                for i, e in enumerate(entities)]
    return Document(doc_id, text, dataset, split, tuple(entities), tuple(relations))


def read(path: str | Path, dataset: str = "", split: str = "",
         skip_invalid: SkipOption = False) -> Iterator[Document]:
    """Stream documents from a 2010 i2b2 release folder (or one record .txt)."""
    root = Path(path)
    if not root.exists():
        raise InputError(Problem(str(root), None, "no such file or folder"))
    index = FileIndex(root if root.is_dir() else root.parent, (".txt", ".con", ".ast", ".rel"))
    txts = index.all(".txt") if root.is_dir() else [root]
    if not txts:
        raise InputError(Problem(str(root), None, "no .txt records found under this folder"))
    if not index.all(".con"):
        where = root if root.is_dir() else root.parent
        raise InputError(Problem(str(where), None, "no .con concept files found under this folder (the 2010 "
                                 "release keeps them in a concept/ folder beside txt/: give the folder holding "
                                 "both)"))
    problems = Problems(skip_invalid)
    docs = (read_record(t, index, relative_id(t, root, ".txt"), problems, dataset, split) for t in txts)
    return stream(docs, problems)
