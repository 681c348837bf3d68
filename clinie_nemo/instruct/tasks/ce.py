"""``ce`` task: concept extraction. All of the schema's entity labels in one target per chunk, or with
``per_label`` one record per label (the study's MRC-style variant; record id suffix ``/<label>``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from types import ModuleType
from typing import Any

from clinie_nemo.core.document import Entity
from clinie_nemo.corpus.schema import TaskSchema
from clinie_nemo.instruct.target import Annotations, ChunkView, build_target, resolve_target
from clinie_nemo.instruct.tasks.base import TaskItem, TaskOptions

NAME = "ce"
WITH_RELATIONS = False
MARKERS: tuple[str, ...] = ()
OUTPUT = "target"
SCORES = ("entities",)  # no relations or events
MERGES_EVENTS = False
HEADLINE = {"entities": 0}


def describe(fmt: ModuleType) -> str:
    return fmt.describe(WITH_RELATIONS)


def record_problem(record: dict[str, Any]) -> str | None:
    return None


def items(view: ChunkView, schema: TaskSchema, fmt: ModuleType,
          options: TaskOptions) -> tuple[list[TaskItem], Counter[str]]:
    # labels outside the schema are counted once, by the whole-chunk target
    full, losses = build_target(view, schema, with_attributes=options.attributes)
    if not options.per_label:
        text, fmt_losses = fmt.encode(full, view.text, False, labels=schema.entity_names)
        return [TaskItem("", view.text, text, schema.entity_names)], losses + fmt_losses
    out = []
    for label in schema.entity_names:
        target, _ = build_target(view, schema, labels=(label,), with_attributes=options.attributes)
        text, fmt_losses = fmt.encode(target, view.text, False, labels=schema.entity_names)
        losses += fmt_losses
        out.append(TaskItem(f"/{label}", view.text, text, (label,), {"label": label}))
    return out, losses


def longest_output(view: ChunkView, schema: TaskSchema, fmt: ModuleType, options: TaskOptions,
                   count: Callable[[str], int]) -> int:
    """Tokens of the longest target among the chunk's items."""
    return longest_item_output(items(view, schema, fmt, options)[0], count)


def longest_item_output(task_items: list[TaskItem], count: Callable[[str], int]) -> int:
    return max((count(i.output) for i in task_items), default=0)


def gold_entities(view: ChunkView, schema: TaskSchema, options: TaskOptions) -> tuple[Entity, ...]:
    return tuple(e if options.attributes else Entity(e.id, e.label, e.spans, e.text)
                 for e in view.entities)


def gold(view: ChunkView, schema: TaskSchema, options: TaskOptions) -> Annotations:
    return Annotations(entities=gold_entities(view, schema, options))


def decode(output: str, view: ChunkView, extras: dict[str, Any], schema: TaskSchema, fmt: ModuleType,
           id_prefix: str) -> tuple[Annotations, Counter[str]]:
    target = fmt.decode(output, view.text, False, labels=schema.entity_names)
    return resolve_target(target, view.doc, view.start, view.end, schema, id_prefix=id_prefix)
