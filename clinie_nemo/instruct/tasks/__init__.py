"""Task kinds: ``TASKS`` maps a name to a module that turns a chunk into items (prompt text + target) and
turns a generated target back into document annotations.

A task module defines ``NAME``, ``WITH_RELATIONS``, ``items(view, schema, fmt, options) -> (list[TaskItem],
losses by cause)``,
``gold(view, schema, options) -> Annotations`` (what decoding all of a chunk's items must give back) and
``decode(output, view, extras, schema, fmt, id_prefix) -> (Annotations, failures)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from clinie_nemo.core.errors import unknown_name


@dataclass(frozen=True)
class TaskOptions:
    """Task knobs (all deterministic)."""

    per_label: bool = False  # ce: one record per label (the MRC-style variant)
    attributes: bool = True  # carry entity/event attribute values in targets
    pair_window_chars: int | None = None  # re_pair: max characters between the two mentions
    pair_window_sentences: int | None = None  # re_pair: max sentence distance
    negative_ratio: float | None = None  # re_pair: keep round(ratio * positives) negatives per chunk; None = all
    seed: int = 13


@dataclass(frozen=True)
class TaskItem:
    suffix: str  # appended to the record id ("" for one record per chunk)
    text: str  # the chunk as the prompt shows it (re_pair: with pair markers)
    output: str
    entity_labels: tuple[str, ...]  # the labels the instruction lists
    extras: dict[str, Any] = field(default_factory=dict)


def _registry() -> dict[str, ModuleType]:
    from clinie_nemo.instruct.tasks import ce, re_e2e, re_pair

    return {"ce": ce, "re_pair": re_pair, "re_e2e": re_e2e}


TASKS: dict[str, ModuleType] = {}


def get(name: str) -> ModuleType:
    if not TASKS:
        TASKS.update(_registry())
    if name not in TASKS:
        raise unknown_name("task", name, TASKS)
    return TASKS[name]


TASKS.update(_registry())
