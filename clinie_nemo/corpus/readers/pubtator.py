"""Reader for PubTator files (BioCreative V CDR and other public biomedical corpora).

A document is a block of lines separated by blank lines::

    PMID|t|title
    PMID|a|abstract
    PMID<TAB>start<TAB>end<TAB>mention<TAB>type[<TAB>concept id[<TAB>extra ...]]
    PMID<TAB>CID<TAB>id1<TAB>id2[<TAB>score ...]

Text = title + "\\n" + abstract; offsets are 0-based, end exclusive, over that text. Mentions become
entities ``T1..`` with the concept id in attribute ``concept_id`` (extra columns such as system scores are
tolerated and ignored). Problems quote a mention line, never a text line or a line that did not parse
(it may be note text). Relation lines are document-level, between concept ids, so they are kept as lists
of their fields (PMID removed) in ``metadata["relations"]``. ``path`` is a file or a folder of
``.txt``/``.pubtator`` files. Options: ``dataset``, ``split``, ``skip_invalid`` (see :mod:`._common`),
``on_warning`` and ``system``: a system's output, read as the BioCreative V CDR kit reads it (by type and
offsets only: a mention whose text column disagrees with the note, lies past its end, is empty, or belongs
to a block with no title line is kept at its offsets; one warning per file counts them, with their lines).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from clinie_nemo.core.document import Document, Entity
from clinie_nemo.core.errors import InputError, Problem
from clinie_nemo.corpus.readers._common import (
    FileIndex,
    Problems,
    SkipOption,
    WarningSink,
    same_text,
    shown_id,
    stream,
    warn_tolerated,
)

NO_TEXT = "documents with no title/abstract lines read from their annotation lines"
NO_TITLE = "documents with an abstract but no title line read from their annotation lines (the note text unknown)"
EMPTY = "empty mentions (start = end) kept, matching no gold mention"
DISAGREES = "mentions whose text column disagrees with the note (or lies past its end) scored by their offsets"
Tolerated = list[tuple[int, str]]  # system lines read as the kit reads them: (line, what)
TEXT_LINE = re.compile(r"^([^\t|]+)\|([ta])\|(.*)$", re.DOTALL)
SUFFIXES = (".pubtator", ".PubTator", ".txt")


def _blocks(path: Path) -> Iterator[list[tuple[int, str]]]:
    """Blocks of (line number, line) separated by blank lines; streamed."""
    block: list[tuple[int, str]] = []
    with path.open(encoding="utf-8-sig", newline="\n") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\r\n")
            if line.strip():
                block.append((lineno, line))
            elif block:
                yield block
                block = []
    if block:
        yield block


def _by_document(block: list[tuple[int, str]]) -> list[list[tuple[int, str]]]:
    """A system's block with no title/abstract line split by PMID (the kit reads annotation lines one by one,
    so a file of annotation lines needs no blank line between documents); other blocks unchanged."""
    if any(TEXT_LINE.match(line) for _, line in block):
        return [block]
    parts: dict[str, list[tuple[int, str]]] = {}
    for lineno, line in block:
        parts.setdefault(line.split("\t", 1)[0].strip(), []).append((lineno, line))
    return list(parts.values())


def parse_block(block: list[tuple[int, str]], path: Path, problems: Problems, dataset: str,
                split: str, system: Tolerated | None = None) -> Document | None:
    """One document; ``system`` (a system's output): tolerated lines are recorded there, see the module."""
    pmid, title, abstract = "", None, None
    mentions: list[tuple[int, str, list[str]]] = []
    relations: list[list[str]] = []
    for lineno, line in block:
        head = TEXT_LINE.match(line)
        if head and head[2] == "t":
            doc_id, title = head[1], head[3]
        elif head:
            doc_id, abstract = head[1], head[3]
        else:
            fields = line.split("\t")
            doc_id = fields[0]
            if len(fields) >= 5 and fields[1].strip().isdigit() and fields[2].strip().isdigit():
                mentions.append((lineno, line, fields))
            elif len(fields) >= 4 and not fields[1].strip().isdigit():
                relations.append([f.strip() for f in fields[1:]])
            else:
                # never quoted: a line that is not PubTator may be note text
                problems.add(path, lineno, f"malformed line ({len(fields)} tab-separated fields; expected a "
                             "PMID|t|title or PMID|a|abstract line, a mention PMID<TAB>start<TAB>end<TAB>text<TAB>"
                             "type or a relation PMID<TAB>type<TAB>id<TAB>id)")
                continue
        if pmid and doc_id.strip() != pmid:
            problems.add(path, lineno, f"document id {shown_id(doc_id)} inside the block of {shown_id(pmid)} "
                         "(missing blank line?)")
        pmid = pmid or doc_id.strip()
    if title is None and system is not None:
        # the kit never reads the text: with no title, the abstract's place in the offsets is unknown
        system.append((block[0][0], NO_TEXT if abstract is None else NO_TITLE))
        abstract = None
    elif title is None:
        problems.add(path, block[0][0], f"document {shown_id(pmid)} (block starting at this line): no title line "
                     "(PMID|t|...)")
        return None
    text = (title or "") if abstract is None else (title or "") + "\n" + abstract
    entities: list[Entity] = []
    for lineno, line, fields in mentions:
        start, end = int(fields[1]), int(fields[2])
        if system is not None and start == end:
            system.append((lineno, EMPTY))
        elif system is not None and start < end and (end > len(text) or not same_text(fields[3], text[start:end])):
            if text:
                system.append((lineno, DISAGREES))
        elif not (0 <= start < end <= len(text)):
            problems.add(path, lineno, f"offsets {start}-{end} outside the text (length {len(text)}) or empty",
                         line)
            continue
        elif not same_text(fields[3], text[start:end]):
            problems.add(path, lineno, f"mention text disagrees with the text at {start}-{end}", line)
            continue
        attrs = (("concept_id", fields[5].strip()),) if len(fields) > 5 and fields[5].strip() else ()
        entities.append(Entity(f"T{len(entities) + 1}", fields[4].strip(), ((start, end),), text[start:end],
                               attrs))
    metadata = {"relations": relations} if relations else {}
    return Document(pmid, text, dataset, split, tuple(entities), metadata=metadata)


def read(path: str | Path, dataset: str = "", split: str = "", skip_invalid: SkipOption = False,
         on_warning: WarningSink | None = None, system: bool = False) -> Iterator[Document]:
    """Stream documents from a PubTator file (or every PubTator file under a folder); ``system``,
    ``on_warning``: see the module."""
    root = Path(path)
    if not root.exists():
        raise InputError(Problem(str(root), None, "no such file or folder"))
    if root.is_dir():
        index = FileIndex(root, SUFFIXES)
        files = sorted({p for s in SUFFIXES for p in index.all(s)})
    else:
        files = [root]
    if not files:
        raise InputError(Problem(str(root), None, "no PubTator files found under this folder"))
    problems = Problems(skip_invalid, on_warning=on_warning)

    def docs() -> Iterator[Document | None]:
        for f in files:
            tolerated: Tolerated | None = [] if system else None
            try:
                for block in _blocks(f):
                    for part in _by_document(block) if system else (block,):
                        yield parse_block(part, f, problems, dataset, split, tolerated)
            except UnicodeDecodeError as exc:
                problems.add(f, None, f"not valid UTF-8 (byte {exc.start})")
            for what in (NO_TEXT, NO_TITLE, EMPTY, DISAGREES):
                warn_tolerated(problems, f, [n for n, w in tolerated or () if w == what],
                               f"{what}, as the BioCreative V CDR kit reads them")

    return stream(docs(), problems)
