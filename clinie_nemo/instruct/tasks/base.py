"""What every task module shares: its knobs (:class:`TaskOptions`), the unit it renders (:class:`TaskItem`)
and the list of facts it must declare (:data:`FACTS`), which render, parse, score and report read instead
of branching on a task's name.

Imports: core only. Imported by: each task module and the registry (:mod:`clinie_nemo.instruct.tasks`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

OUTPUTS = ("target", "answer")  # how parse reads a prediction: mentions (+ relations), or one label
SCORE_KINDS = ("entities", "relations", "relations_untyped", "events")
HEADLINE_KINDS = ("entities", "relations", "events")  # the headline figures of a scores JSON, in its order


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


# fact -> (what it must be, who reads it)
FACTS: dict[str, tuple[type | str, str]] = {
    "NAME": (str, "registry key and the records' 'task'"),
    "WITH_RELATIONS": (bool, "render/parse: targets carry relations (the format's with_relations flag)"),
    "MARKERS": (tuple, "render: strings inserted into the prompt text (counted against max_tokens)"),
    "describe": ("callable", "render: describe(fmt) -> the format instruction the prompt shows"),
    "items": ("callable", "render: items(view, schema, fmt, options) -> (items, losses by cause)"),
    "longest_output": ("callable", "render: longest_output(view, schema, fmt, options, count) -> tokens"),
    "gold": ("callable", "render: gold(view, schema, options) -> what decoding the items must give back"),
    "decode": ("callable", "render: decode(output, view, extras, schema, fmt, id_prefix) -> (annotations, "
                           "failures)"),
    "record_problem": ("callable", "evaluate: record_problem(record) -> why a record cannot be scored, or None"),
    "OUTPUT": (str, f"parse: how a prediction is read, one of {OUTPUTS}"),
    "SCORES": (tuple, f"score: the kinds its predictions can say, from {SCORE_KINDS}"),
    "MERGES_EVENTS": (bool, "score: predicted trigger mentions and role relations are merged into events"),
    "HEADLINE": (dict, f"report: headline kind ({HEADLINE_KINDS}) -> rank as its source (lower first)"),
}


def missing_facts(module: ModuleType) -> list[str]:
    """The facts of :data:`FACTS` that ``module`` does not declare, or declares with the wrong kind."""
    out = []
    for name, (kind, _) in FACTS.items():
        value = getattr(module, name, None)
        ok = callable(value) if kind == "callable" else isinstance(value, kind)  # type: ignore[arg-type]
        if not ok:
            out.append(name)
    if not out:
        if module.OUTPUT not in OUTPUTS:
            out.append("OUTPUT")
        if not set(module.SCORES) <= set(SCORE_KINDS):
            out.append("SCORES")
        if not set(module.HEADLINE) <= set(HEADLINE_KINDS) or not set(module.HEADLINE) <= set(module.SCORES):
            out.append("HEADLINE")
    return out
