"""``re_e2e`` task: end-to-end relation extraction, entities and their relations from raw text. Events
(SDOH) travel as trigger entities, role relations (trigger -> argument) and attribute values, and come
back as Events (see :mod:`clinie_nemo.instruct.target`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from types import ModuleType
from typing import Any

from clinie_nemo.corpus.schema import TaskSchema
from clinie_nemo.instruct.target import Annotations, ChunkView, build_target, resolve_target
from clinie_nemo.instruct.tasks import ce
from clinie_nemo.instruct.tasks.base import TaskItem, TaskOptions

NAME = "re_e2e"
WITH_RELATIONS = True
MARKERS: tuple[str, ...] = ()
OUTPUT = "target"
SCORES = ("entities", "relations", "relations_untyped", "events")
MERGES_EVENTS = True
HEADLINE = {"entities": 1, "relations": 1, "events": 0}  # entities after ce, relations after re_pair


def describe(fmt: ModuleType) -> str:
    return fmt.describe(WITH_RELATIONS)


def record_problem(record: dict[str, Any]) -> str | None:
    return None


def items(view: ChunkView, schema: TaskSchema, fmt: ModuleType,
          options: TaskOptions) -> tuple[list[TaskItem], Counter[str]]:
    target, losses = build_target(view, schema, with_relations=True, with_attributes=options.attributes)
    text, fmt_losses = fmt.encode(target, view.text, True, labels=schema.entity_names)
    return [TaskItem("", view.text, text, schema.entity_names)], losses + fmt_losses


def longest_output(view: ChunkView, schema: TaskSchema, fmt: ModuleType, options: TaskOptions,
                   count: Callable[[str], int]) -> int:
    return ce.longest_item_output(items(view, schema, fmt, options)[0], count)


def gold(view: ChunkView, schema: TaskSchema, options: TaskOptions) -> Annotations:
    return Annotations(ce.gold_entities(view, schema, options), view.relations, view.events)


def decode(output: str, view: ChunkView, extras: dict[str, Any], schema: TaskSchema, fmt: ModuleType,
           id_prefix: str) -> tuple[Annotations, Counter[str]]:
    target = fmt.decode(output, view.text, True, labels=schema.entity_names)
    return resolve_target(target, view.doc, view.start, view.end, schema, id_prefix=id_prefix, with_events=True)
