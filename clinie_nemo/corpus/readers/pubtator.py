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
``.txt``/``.pubtator`` files. Options: ``dataset``, ``split``, ``skip_invalid`` (see :mod:`._common`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from clinie_nemo.core.document import Document, Entity
from clinie_nemo.core.errors import InputError, Problem
from clinie_nemo.corpus.readers._common import FileIndex, Problems, SkipOption, same_text, shown_id, stream

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


def parse_block(block: list[tuple[int, str]], path: Path, problems: Problems, dataset: str,
                split: str) -> Document | None:
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
    if title is None:
        problems.add(path, block[0][0], f"document {shown_id(pmid)} (block starting at this line): no title line "
                     "(PMID|t|...)")
        return None
    text = title if abstract is None else title + "\n" + abstract
    entities: list[Entity] = []
    for lineno, line, fields in mentions:
        start, end = int(fields[1]), int(fields[2])
        if not (0 <= start < end <= len(text)):
            problems.add(path, lineno, f"offsets {start}-{end} outside the text (length {len(text)}) or empty",
                         line)
            continue
        if not same_text(fields[3], text[start:end]):
            problems.add(path, lineno, f"mention text disagrees with the text at {start}-{end}", line)
            continue
        attrs = (("concept_id", fields[5].strip()),) if len(fields) > 5 and fields[5].strip() else ()
        entities.append(Entity(f"T{len(entities) + 1}", fields[4].strip(), ((start, end),), text[start:end],
                               attrs))
    metadata = {"relations": relations} if relations else {}
    return Document(pmid, text, dataset, split, tuple(entities), metadata=metadata)


def read(path: str | Path, dataset: str = "", split: str = "",
         skip_invalid: SkipOption = False) -> Iterator[Document]:
    """Stream documents from a PubTator file (or every PubTator file under a folder)."""
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
    problems = Problems(skip_invalid)

    def docs() -> Iterator[Document | None]:
        for f in files:
            try:
                for block in _blocks(f):
                    yield parse_block(block, f, problems, dataset, split)
            except UnicodeDecodeError as exc:
                problems.add(f, None, f"not valid UTF-8 (byte {exc.start})")

    return stream(docs(), problems)
