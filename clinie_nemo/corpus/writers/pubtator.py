"""Writer for PubTator: ``id|t|title``, ``id|a|abstract``, one mention line per entity fragment, relation
lines, blocks separated by a blank line.

The text is split at its first ``\\n`` into title and abstract (no ``\\n``: the abstract is empty). Line
breaks inside the abstract are written as spaces (same length, so offsets stay valid). A discontinuous
entity becomes one mention line per fragment (PubTator has no discontinuous mentions). The concept id
column is the entity's ``concept_id`` attribute (empty when absent). Relation lines: the document-level
``metadata["relations"]`` lists as they are, then span relations as ``id<TAB>label<TAB>head<TAB>tail``
using the entities' concept ids (their entity ids when they have none).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from clinie_nemo.core.document import Document
from clinie_nemo.core.fileio import atomic_write, check_output

_BREAKS = str.maketrans({"\n": " ", "\r": " ", "\t": " "})


def block_lines(doc: Document) -> list[str]:
    """The PubTator lines of one document."""
    title, _, abstract = doc.text.partition("\n")
    lines = [f"{doc.id}|t|{title.translate(_BREAKS)}", f"{doc.id}|a|{abstract.translate(_BREAKS)}"]
    concept = {}
    for e in doc.entities:
        cid = e.attrs.get("concept_id", "")
        concept[e.id] = cid or e.id
        for start, end in e.spans:
            lines.append(f"{doc.id}\t{start}\t{end}\t{doc.text[start:end].translate(_BREAKS)}\t{e.label}\t{cid}")
    for rel in doc.metadata.get("relations", ()):
        lines.append("\t".join([doc.id, *map(str, rel)]))
    for r in doc.relations:
        lines.append(f"{doc.id}\t{r.label}\t{concept.get(r.head, r.head)}\t{concept.get(r.tail, r.tail)}")
    return lines


def write(docs: Iterable[Document], path: str | Path, force: bool = False) -> int:
    """Atomically write a PubTator file; an existing file is replaced only with ``force``."""
    check_output(path, force)
    n = 0
    with atomic_write(path) as fh:
        for doc in docs:
            fh.write("\n".join(block_lines(doc)) + "\n\n")
            n += 1
    return n
