"""Reader for brat standoff corpora: ``.txt`` notes with ``.ann`` annotation files.

``read(path)`` takes a folder (every ``.ann`` under it, recursively, paired with the ``.txt`` of the same
basename: in the same folder, else the nearest one, so ``ann/`` and ``txt/`` sibling folders work) or one
``.ann``/``.txt`` file. Documents stream one at a time in path order; the id is the ``.ann`` path relative
to the folder, without extension. Note text is kept byte-exact (CRLF kept: offsets count ``\\r``); a BOM
is removed, and when the annotation tool counted it (brat does) offsets are shifted back by one.

Gold and system files: a gold file is validated strictly (an annotated text that disagrees with the note,
an empty or out-of-range span is an error: it means a wrong note or encoding and would change every
figure). A system's predictions (``score --format brat --pred``) are read as the official n2c2 script
reads them: the text column is ignored and a zero-length span is kept (a false positive), each counted
in one warning (file and line, never note text); see :func:`.brat_ann.system_text_bound`.

Options: ``notes`` (keep ``#`` annotator notes in metadata, default True; False drops them on purpose),
``dataset``/``split`` (fill those document fields), ``skip_invalid`` (see :mod:`._common`).
Line-level parsing lives in :mod:`clinie_nemo.corpus.readers.brat_ann`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from clinie_nemo.core.document import Document
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
from clinie_nemo.corpus.readers.brat_ann import parse_ann, parse_spans


def _bom_shift(lines: list[str], text: str) -> int:
    """1 if the text-bound offsets agree with the note better when the removed BOM is counted, else 0."""
    votes = [0, 0]
    for line in lines:
        fields = line.split("\t")
        if not line.startswith("T") or len(fields) < 3:
            continue
        spans = parse_spans(fields[1].strip().partition(" ")[2])
        for shift in (0, 1):
            if spans and all(0 <= s - shift < e - shift <= len(text) for s, e in spans) and same_text(
                    "\t".join(fields[2:]), " ".join(text[s - shift:e - shift] for s, e in spans)):
                votes[shift] += 1
    return 1 if votes[1] > votes[0] else 0


def read_pair(ann: Path | None, txt: Path | None, doc_id: str, problems: Problems, notes: bool = True,
              dataset: str = "", split: str = "",
              system: list[tuple[Path, int, str]] | None = None) -> Document | None:
    """One document from an .ann/.txt pair (either may be missing: a located problem). ``system``: the
    pair is a system's predictions, read as the official n2c2 scorer reads them (text column ignored,
    zero-length spans kept); what was tolerated is appended as (file, line, what)."""
    if txt is None or not txt.is_file():
        problems.add(ann or doc_id, None, f"no .txt note found for {doc_id}")
        return None
    try:
        text, had_bom = read_note(txt)
    except UnicodeDecodeError as exc:
        problems.add(txt, None, f"note is not valid UTF-8 (byte {exc.start})")
        return None
    if ann is None:
        problems.add(txt, None, f"no .ann file found for {doc_id}")
        return None
    try:
        lines = read_annotation_lines(ann)
    except UnicodeDecodeError as exc:
        problems.add(ann, None, f"annotation file is not valid UTF-8 (byte {exc.start})")
        return None
    shift = _bom_shift(lines, text) if had_bom else 0
    tolerated: list[tuple[int, str]] | None = [] if system is not None else None
    parsed = parse_ann(lines, text, ann, problems, keep_notes=notes, offset_shift=shift, system=tolerated)
    if system is not None and tolerated:
        system.extend((ann, lineno, what) for lineno, what in tolerated)
    return Document(id=doc_id, text=text, dataset=dataset, split=split, entities=tuple(parsed.entities),
                    relations=tuple(parsed.relations), events=tuple(parsed.events), metadata=parsed.metadata)


def find_pairs(path: Path) -> Iterator[tuple[Path | None, Path | None, str]]:
    """(ann, txt, document id) for a folder or a single file; a missing path or an empty folder is fatal."""
    if path.is_file():
        if path.suffix not in (".ann", ".txt"):
            raise InputError(Problem(str(path), None, "expected a folder, an .ann or a .txt file"))
        ann, txt = path.with_suffix(".ann"), path.with_suffix(".txt")
        yield (ann if ann.is_file() else None), (txt if txt.is_file() else None), relative_id(path, path, path.suffix)
        return
    if not path.is_dir():
        raise InputError(Problem(str(path), None, "no such file or folder"))
    index = FileIndex(path, (".ann", ".txt"))
    anns = index.all(".ann")
    if not anns:
        raise InputError(Problem(str(path), None, "no .ann files found under this folder"))
    for ann in anns:
        yield ann, index.partner(ann, ".txt"), relative_id(ann, path, ".ann")


def read(path: str | Path, notes: bool = True, dataset: str = "", split: str = "",
         skip_invalid: SkipOption = False) -> Iterator[Document]:
    """Stream documents from a brat corpus folder or one .ann/.txt file."""
    problems = Problems(skip_invalid)
    docs = (read_pair(ann, txt, doc_id, problems, notes, dataset, split)
            for ann, txt, doc_id in find_pairs(Path(path)))
    return stream(docs, problems)
