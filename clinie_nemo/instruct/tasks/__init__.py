"""The task registry: ``TASKS`` maps a task name to the module that owns every fact about it.

A task module (``ce``, ``re_pair``, ``re_e2e``) declares the facts listed in :data:`base.FACTS`: how a
chunk becomes items (prompt text + target) and back (render), how parse reads a prediction, which score
kinds its predictions produce and whether they merge into events (score), which headline figures it is the
source of (report). Render, parse, score, report and the CLI ask this registry; none branches on a task's
name. A new task is one module plus one line in ``TASKS`` (and its templates file,
``instruct/templates/<name>.yaml``).

Imports: core, corpus, instruct (formats, target, chunking). Imported by: render, templates, mixture,
engines, evaluation, commands.
"""

from __future__ import annotations

from types import ModuleType

from clinie_nemo.core.errors import unknown_name
from clinie_nemo.instruct.tasks import ce, re_e2e, re_pair
from clinie_nemo.instruct.tasks.base import FACTS, HEADLINE_KINDS, TaskItem, TaskOptions, missing_facts

TASKS: dict[str, ModuleType] = {"ce": ce, "re_pair": re_pair, "re_e2e": re_e2e}


def get(name: str) -> ModuleType:
    """The task module called ``name``; unknown names fail listing the valid ones."""
    if name not in TASKS:
        raise unknown_name("task", name, TASKS)
    return TASKS[name]


def headline_sources() -> dict[str, tuple[str, ...]]:
    """Headline kind -> the tasks that can supply it, first choice first (each task's ``HEADLINE`` rank;
    ties keep registry order). Evaluation takes each headline figure from the first of these it scored."""
    order = list(TASKS)
    return {kind: tuple(sorted((n for n, t in TASKS.items() if kind in t.HEADLINE),
                               key=lambda n: (TASKS[n].HEADLINE[kind], order.index(n))))
            for kind in HEADLINE_KINDS}


__all__ = ["FACTS", "TASKS", "TaskItem", "TaskOptions", "get", "headline_sources", "missing_facts"]
