"""``ce`` task: concept extraction. All of the schema's entity labels in one target per chunk, or with
``per_label`` one record per label (the study's MRC-style variant; record id suffix ``/<label>``)."""

from __future__ import annotations

from collections import Counter
from types import ModuleType
from typing import Any

from clinie_nemo.document import Entity
from clinie_nemo.schema import TaskSchema
from clinie_nemo.target import Annotations, ChunkView, build_target, resolve_target
from clinie_nemo.tasks import TaskItem, TaskOptions

NAME = "ce"
WITH_RELATIONS = False


def items(view: ChunkView, schema: TaskSchema, fmt: ModuleType, options: TaskOptions) -> list[TaskItem]:
    groups: list[tuple[str, tuple[str, ...] | None, dict[str, Any]]] = [("", None, {})]
    if options.per_label:
        groups = [(f"/{label}", (label,), {"label": label}) for label in schema.entity_names]
    out = []
    for suffix, labels, extras in groups:
        target, losses = build_target(view, schema, labels=labels, with_attributes=options.attributes)
        if options.per_label:  # labels outside the schema are counted once, by the whole-chunk target
            losses = build_target(view, schema, with_attributes=options.attributes)[1] if not out else Counter()
        text, fmt_losses = fmt.encode(target, view.text, False, labels=schema.entity_names)
        out.append(TaskItem(suffix, view.text, text, labels or schema.entity_names, extras, losses + fmt_losses))
    return out


def gold_entities(view: ChunkView, schema: TaskSchema, options: TaskOptions) -> tuple[Entity, ...]:
    return tuple(e if options.attributes else Entity(e.id, e.label, e.spans, e.text)
                 for e in view.entities)


def gold(view: ChunkView, schema: TaskSchema, options: TaskOptions) -> Annotations:
    return Annotations(entities=gold_entities(view, schema, options))


def decode(output: str, view: ChunkView, extras: dict[str, Any], schema: TaskSchema, fmt: ModuleType,
           id_prefix: str) -> tuple[Annotations, Counter[str]]:
    target = fmt.decode(output, view.text, False, labels=schema.entity_names)
    return resolve_target(target, view.doc, view.start, view.end, schema, id_prefix=id_prefix)
