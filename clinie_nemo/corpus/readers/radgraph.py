"""Reader for RadGraph JSON: ``{doc_key: {"text", "entities": {id: {"tokens", "label", "start_ix",
"end_ix", "relations": [[label, target_id], ...]}}, "data_source", "data_split"}}``.

``start_ix``/``end_ix`` are 0-based whitespace-token indices over the whole report, end inclusive; they
become character offsets. Relations are stored on their source entity (head = source). In the test split
the entities sit under ``labeler_1``/``labeler_2`` (``{"labeler_1": {"entities": {...}}}``; a flat
``{"labeler_1": {id: entity}}`` is read too): option ``labeler`` picks one (default ``labeler_1``;
the choice is kept in ``metadata["labeler"]``). ``path`` is one ``.json`` file or a folder of them.
Entity ids are RadGraph's keys; relation ids ``R1..``. ``split`` defaults to the file's ``data_split``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from clinie_nemo.core.document import Document, Entity, Relation
from clinie_nemo.core.errors import InputError, Problem
from clinie_nemo.corpus.readers._common import FileIndex, Problems, SkipOption, same_text, stream

LABELERS = ("labeler_1", "labeler_2")


class Locator:
    """Line numbers of report and entity keys in the raw JSON, computed only when a problem needs one."""

    def __init__(self, raw: str):
        self.raw = raw

    def line(self, report_key: str, entity_id: str | None = None) -> int | None:
        pos = self.raw.find(json.dumps(report_key, ensure_ascii=False) + ":")
        if pos < 0:
            pos = self.raw.find(json.dumps(report_key))
        if pos < 0:
            return None
        if entity_id is not None:
            found = self.raw.find(json.dumps(entity_id) + ":", pos)
            pos = found if found >= 0 else pos
        return self.raw.count("\n", 0, pos) + 1


def _quote(entity_id: str, ent: Any) -> str:
    return f'"{entity_id}": ' + json.dumps(ent, ensure_ascii=False)


def read_report(key: str, report: Any, path: Path, problems: Problems, labeler: str, dataset: str,
                split: str, where: Locator) -> Document | None:
    if not isinstance(report, dict) or not isinstance(report.get("text"), str):
        problems.add(path, where.line(key), f"report {key}: expected an object with a string 'text'")
        return None
    text = report["text"]
    tokens = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    metadata: dict[str, Any] = {}
    if "entities" in report:
        raw = report["entities"]
    elif labeler in report:
        raw = report[labeler]
        if isinstance(raw, dict) and isinstance(raw.get("entities"), dict):
            raw = raw["entities"]  # the release nests them: {"labeler_1": {"entities": {...}}}
        metadata["labeler"] = labeler
    else:
        problems.add(path, where.line(key), f"report {key}: no 'entities' and no {labeler!r}")
        return None
    if not isinstance(raw, dict):
        problems.add(path, where.line(key), f"report {key}: entities must be an object")
        return None
    entities: list[Entity] = []
    pending: list[tuple[str, str, str, Any]] = []  # source, label, target, quoted entity
    for ent_id, ent in raw.items():
        try:
            start_ix, end_ix, label = int(ent["start_ix"]), int(ent["end_ix"]), str(ent["label"])
            rels = [(str(r[0]), str(r[1])) for r in ent.get("relations", [])]
        except (KeyError, TypeError, ValueError, IndexError):
            problems.add(path, where.line(key, ent_id), f"report {key}: malformed entity {ent_id}", _quote(ent_id, ent))
            continue
        if not (0 <= start_ix <= end_ix < len(tokens)):
            problems.add(path, where.line(key, ent_id), f"report {key}: entity {ent_id} token indices {start_ix}-{end_ix} outside "
                         f"the report ({len(tokens)} tokens)", _quote(ent_id, ent))
            continue
        start, end = tokens[start_ix][0], tokens[end_ix][1]
        if "tokens" in ent and not same_text(str(ent["tokens"]), text[start:end]):
            problems.add(path, where.line(key, ent_id), f"report {key}: entity {ent_id} tokens disagree with the report at "
                         f"{start_ix}-{end_ix}", _quote(ent_id, ent))
            continue
        entities.append(Entity(str(ent_id), label, ((start, end),), text[start:end]))
        pending += [(str(ent_id), rl, tgt, ent) for rl, tgt in rels]
    ids = {e.id for e in entities}
    relations: list[Relation] = []
    for source, rel_label, target, ent in pending:
        if target not in ids:
            problems.add(path, where.line(key, source), f"report {key}: relation {rel_label} of entity {source} refers to "
                         f"missing entity {target}", _quote(source, ent))
            continue
        relations.append(Relation(f"R{len(relations) + 1}", rel_label, source, target))
    if report.get("data_source") is not None:
        metadata["data_source"] = report["data_source"]
    return Document(str(key), text, dataset, split or str(report.get("data_split") or ""), tuple(entities),
                    tuple(relations), metadata=metadata)


def read_file(path: Path, problems: Problems, labeler: str, dataset: str, split: str) -> Iterator[Document | None]:
    try:
        raw = path.read_bytes().decode("utf-8-sig")
        data = json.loads(raw)
    except UnicodeDecodeError as exc:
        problems.add(path, None, f"not valid UTF-8 (byte {exc.start})")
        return
    except json.JSONDecodeError as exc:
        problems.add(path, exc.lineno, f"invalid JSON ({exc.msg} at column {exc.colno})")
        return
    if not isinstance(data, dict):
        problems.add(path, 1, "expected a JSON object {report_id: report}")
        return
    for key, report in data.items():
        yield read_report(key, report, path, problems, labeler, dataset, split, Locator(raw))


def read(path: str | Path, labeler: str = "labeler_1", dataset: str = "", split: str = "",
         skip_invalid: SkipOption = False) -> Iterator[Document]:
    """Stream reports from a RadGraph .json file or a folder of them."""
    if labeler not in LABELERS:
        raise InputError(Problem(str(path), None, f"unknown labeler {labeler!r}; valid: {', '.join(LABELERS)}"))
    root = Path(path)
    if not root.exists():
        raise InputError(Problem(str(root), None, "no such file or folder"))
    files = FileIndex(root, (".json",)).all(".json") if root.is_dir() else [root]
    if not files:
        raise InputError(Problem(str(root), None, "no .json files found under this folder"))
    problems = Problems(skip_invalid)
    docs = (doc for f in files for doc in read_file(f, problems, labeler, dataset, split))
    return stream(docs, problems)
