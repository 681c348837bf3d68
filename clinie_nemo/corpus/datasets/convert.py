"""Convert a dataset's release folder into one documents JSONL per split, validated against its schema.

``convert_dataset(name, input_dir, output_dir)`` finds each split in the release layout of the dataset,
streams it through the dataset's reader (setting ``dataset``/``split``), checks every annotation against
the schema and writes ``OUT_DIR/<split>.jsonl`` plus ``OUT_DIR/summary.json`` atomically. Any problem
(reader or schema) fails the whole conversion with every located problem (exit 2, no output); with
``skip_invalid`` the invalid annotations are dropped and listed in ``OUT_DIR/skipped.json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clinie_nemo.core.document import Document
from clinie_nemo.core.errors import InputError, Problem
from clinie_nemo.corpus.datasets.spec import DatasetSpec, SplitSource
from clinie_nemo.corpus.datasets.validate import Issue, drop_invalid, validate_issues

USER_SCHEMA_FILE = "schema.yaml"  # a ufhealth release may carry its own schema at its root
MAX_PROBLEMS = 10_000  # beyond this, stop collecting (the message says how many more there were)


@dataclass(frozen=True)
class SplitInput:
    split: str
    path: Path
    options: dict[str, Any]


def find_splits(spec: DatasetSpec, input_dir: Path) -> list[SplitInput]:
    """The existing path of each split; a missing required split is an InputError naming the candidates."""
    if not input_dir.exists():
        raise InputError(Problem(str(input_dir), None, "no such release folder"))
    if input_dir.is_file():
        raise InputError(Problem(str(input_dir), None, f"expected the {spec.name} release folder, got a file"))
    found: list[SplitInput] = []
    missing: list[SplitSource] = []
    for source in spec.layout.splits:
        path = next((input_dir / c for c in source.candidates if (input_dir / c).exists()), None)
        if path is None:
            if source.required:
                missing.append(source)
            continue
        found.append(SplitInput(source.split, path, dict(source.reader_options)))
    if missing or not found:
        wanted = "; ".join(f"{s.split}: {' or '.join(s.candidates)}" for s in (missing or spec.layout.splits))
        present = ", ".join(sorted(p.name for p in input_dir.iterdir())[:20]) or "nothing"
        raise InputError(Problem(str(input_dir), None,
                                 f"{spec.name} release layout not found (need {wanted}; found: {present}). "
                                 f"{spec.layout.note}"))
    return found


class ProblemLocator:
    """Turns schema issues into located problems: brat -> the .ann file, line and line text."""

    def __init__(self, spec: DatasetSpec, split: SplitInput) -> None:
        self.spec = spec
        self.split = split

    def _source(self, doc: Document) -> Path:
        if self.split.path.is_file():
            return self.split.path
        suffix = ".ann" if self.spec.reader == "brat" else ".txt"
        return self.split.path / f"{doc.id}{suffix}"

    def locate(self, doc: Document, issues: list[Issue]) -> list[Problem]:
        path = self._source(doc)
        lines: dict[str, tuple[int, str]] = {}  # annotation id, or "attribute name target" -> line
        if self.spec.reader == "brat" and path.is_file():
            with path.open(encoding="utf-8-sig") as fh:
                for lineno, line in enumerate(fh, 1):
                    ann_id, _, rest = line.partition("\t")
                    located = (lineno, line.rstrip("\r\n"))
                    lines.setdefault(ann_id.strip(), located)
                    if ann_id[:1] in ("A", "M"):
                        lines.setdefault(" ".join(rest.split()[:2]), located)
        out = []
        for issue in issues:
            key = f"{issue.attribute} {issue.ann_id}" if issue.attribute else issue.ann_id
            lineno, quote = lines.get(key) or lines.get(issue.ann_id, (None, ""))
            where = "" if lineno else f"document {doc.id}: "
            out.append(Problem(str(path), lineno, where + issue.message, quote))
        return out


def _validated(docs: Iterator[Document], spec: DatasetSpec, locator: ProblemLocator, skip_invalid: bool,
               problems: list[Problem], skipped: list[dict[str, Any]], counts: dict[str, int]) -> Iterator[Document]:
    for doc in docs:
        issues = validate_issues(doc, spec)
        if issues:
            located = locator.locate(doc, issues)
            if skip_invalid:
                doc, dropped = drop_invalid(doc, issues)
                counts["skipped_annotations"] += len(dropped)
                skipped.extend({"split": locator.split.split, "document": doc.id, "path": p.path, "line": p.line,
                                "message": p.message, "quote": p.quote} for p in located)
            else:
                counts["problems"] += len(located)
                problems.extend(located[: max(0, MAX_PROBLEMS - len(problems))])
        counts["documents"] += 1
        counts["entities"] += len(doc.entities)
        counts["relations"] += len(doc.relations)
        counts["events"] += len(doc.events)
        yield doc


def user_schema_for(spec_name: str, input_dir: Path, schema: str | Path | None) -> str | Path | None:
    """ufhealth without --schema: the release's own schema.yaml if it has one."""
    if schema is None and spec_name == "ufhealth" and (input_dir / USER_SCHEMA_FILE).is_file():
        return input_dir / USER_SCHEMA_FILE
    return schema


def convert_dataset(name: str, input_dir: str | Path, output_dir: str | Path, *, skip_invalid: bool = False,
                    force: bool = False, schema: str | Path | None = None, labeler: str | None = None,
                    show_progress: bool = True) -> dict[str, Any]:
    """Convert the release of dataset ``name`` at ``input_dir`` into ``output_dir/<split>.jsonl``.
    Returns summary counts per split. ``labeler`` overrides RadGraph's test labeler (labeler_1)."""
    from clinie_nemo.core import docs_jsonl
    from clinie_nemo.core.fileio import atomic_dir, atomic_write, check_output
    from clinie_nemo.core.progress import progress, say
    from clinie_nemo.corpus import readers
    from clinie_nemo.corpus.datasets.registry import resolve

    src = Path(input_dir)
    spec = resolve(name, user_schema_for(name, src, schema))
    reader = readers.get(spec.reader)
    splits = find_splits(spec, src)
    check_output(output_dir, force)
    summary: dict[str, Any] = {"dataset": spec.name, "input": str(src), "output": str(output_dir), "splits": {}}
    problems: list[Problem] = []
    skipped: list[dict[str, Any]] = []
    with atomic_dir(output_dir, force=force) as tmp:
        for split in splits:
            counts = {"documents": 0, "entities": 0, "relations": 0, "events": 0, "skipped_annotations": 0,
                      "problems": 0}
            reader_report = readers.SkipReport()
            options = dict(split.options)
            if labeler and "labeler" in options:
                options["labeler"] = labeler
            docs = reader.read(split.path, dataset=spec.name, split=split.split,
                               skip_invalid=reader_report if skip_invalid else False, **options)
            docs = progress(docs, desc=f"{spec.name} {split.split}", unit="doc", disable=not show_progress)
            docs = _validated(docs, spec, ProblemLocator(spec, split), skip_invalid, problems, skipped, counts)
            docs_jsonl.write(tmp / f"{split.split}.jsonl", docs)
            counts["source"] = str(split.path.relative_to(src))
            counts["skipped_annotations"] += len(reader_report.problems)
            skipped += [{"split": split.split, "document": "", "path": p.path, "line": p.line, "message": p.message,
                         "quote": p.quote} for p in reader_report.problems]
            summary["splits"][split.split] = counts
        total_problems = sum(c["problems"] for c in summary["splits"].values())
        if problems:
            more = total_problems - len(problems)
            raise InputError(problems, header=f"{spec.name}: {total_problems} annotations do not fit the schema"
                                              + (f" ({more} not listed)" if more else ""))
        summary["skipped"] = len(skipped)
        summary["licence"] = spec.licence
        if skip_invalid:
            with atomic_write(tmp / "skipped.json") as fh:
                json.dump({"skipped": len(skipped), "problems": skipped}, fh, indent=2, ensure_ascii=False)
        with atomic_write(tmp / "summary.json") as fh:
            json.dump(summary, fh, indent=2, ensure_ascii=False)
    for split_name, c in summary["splits"].items():
        say(f"{spec.name} {split_name}: {c['documents']} documents, {c['entities']} entities, "
            f"{c['relations']} relations, {c['events']} events -> {Path(output_dir) / (split_name + '.jsonl')}")
    say(f"licence: {spec.licence}")
    if skip_invalid:
        say(f"skipped {len(skipped)} invalid annotations/documents; see {Path(output_dir) / 'skipped.json'}")
    return summary
