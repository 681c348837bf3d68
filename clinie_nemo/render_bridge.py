"""The one place where mixing calls into rendering (task kinds, templates, chunking, target formats).

Mixing, ``stats`` on records and the benchmarks call only these:

* :func:`render_documents` (documents of one dataset -> records of one task kind, plus a count report),
* :func:`dataset_schema` (one label schema per dataset, so every split's prompts list the same labels),
* :func:`few_shot_pair` (a rendered record -> the (text, answer) example shown in other prompts),
* :func:`token_counter` / :func:`record_token_lengths` (the renderer's own counter: a local tokenizer
  folder or the fallback; a record is prompt + target + BOS + EOS).

Behind them is the instruction renderer :mod:`clinie_nemo.render` (helper "instruct") when this checkout
has it, else the stand-in :mod:`clinie_nemo.render_interim`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from clinie_nemo.document import Document

HAVE_RENDERER = importlib.util.find_spec("clinie_nemo.render") is not None
RENDERER = "clinie_nemo.render" if HAVE_RENDERER else "clinie_nemo.render_interim"


@dataclass(frozen=True)
class RenderSettings:
    task: str
    format: str = "json"
    template_policy: str = "rotate"  # fixed | rotate
    template_name: str | None = None  # the fixed template (policy fixed)
    max_tokens: int = 2048
    tokenizer: str | None = None  # local tokenizer folder; None = fallback counter
    seed: int = 13
    few_shot: tuple[tuple[str, str], ...] = ()  # (example text, example answer) shown in every prompt
    schema: Any = field(default=None, compare=False)  # from dataset_schema(); None: the renderer decides


@dataclass
class BridgeResult:
    records: list[dict[str, Any]]
    report: dict[str, Any]  # counts only (round-trip losses by cause, relations split across chunks)


def token_counter(tokenizer: str | None = None) -> Any:
    """The counter rendering uses (``.count``, ``.count_many``, ``.name``), cached per tokenizer."""
    if HAVE_RENDERER:
        from clinie_nemo.tokens import load_counter

        return load_counter(tokenizer)
    from clinie_nemo.render_interim import token_counter as interim_counter

    return interim_counter(tokenizer)


def special_tokens_per_record() -> int:
    if HAVE_RENDERER:
        from clinie_nemo.tokens import SPECIAL_TOKENS_PER_RECORD
    else:
        from clinie_nemo.render_interim import SPECIAL_TOKENS_PER_RECORD
    return SPECIAL_TOKENS_PER_RECORD


def dataset_schema(docs: Sequence[Document], dataset: str) -> Any:
    """The label schema of ``dataset``: the registered one merged with labels seen in ``docs``, or, for a
    dataset the registry does not know (a user's own corpus), the labels collected from ``docs``."""
    if not HAVE_RENDERER:
        return None
    from clinie_nemo.render import RenderOptions, resolve_schema
    from clinie_nemo.schema import schema_from_documents

    try:
        from clinie_nemo.datasets import DATASETS
    except ImportError:
        DATASETS = {}  # noqa: N806
    if dataset in DATASETS:
        return resolve_schema(docs, RenderOptions(task="ce", dataset=dataset))
    return schema_from_documents(docs, dataset)


def render_documents(docs: Sequence[Document], dataset: str, settings: RenderSettings) -> BridgeResult:
    """Records for ``docs`` (all of one dataset) and one task kind, in document order."""
    if not HAVE_RENDERER:
        from clinie_nemo.render_interim import interim_render

        result = interim_render(docs, dataset, settings)
        return BridgeResult(result.records, result.report)
    from clinie_nemo.render import RenderOptions
    from clinie_nemo.render import render_documents as render

    fixed = settings.template_policy == "fixed"
    options = RenderOptions(task=settings.task, format=settings.format, dataset=dataset, schema=settings.schema,
                            template=settings.template_name if fixed else None,
                            template_policy="fixed" if fixed else "rotate", seed=settings.seed,
                            max_tokens=settings.max_tokens, tokenizer=settings.tokenizer,
                            few_shot=settings.few_shot)
    result = render(docs, options)
    return BridgeResult(result.records, result.report())


def few_shot_pair(record: dict[str, Any]) -> tuple[str, str]:
    """(text, answer) of a record rendered without examples: the text between the template's text
    header and the closing answer header of its prompt (pair markers of re_pair included)."""
    if HAVE_RENDERER:
        from clinie_nemo.templates import templates_for

        template = next(t for t in templates_for(record["task"]) if t.name == record["template"])
        text_header, answer_header = template.text_header, template.answer_header
    else:
        from clinie_nemo.render_interim import ANSWER_HEADER as answer_header
        from clinie_nemo.render_interim import TEXT_HEADER as text_header
    prompt, opening, closing = record["input"], f"\n\n{text_header}\n", f"\n{answer_header}"
    start = prompt.index(opening) + len(opening)
    assert prompt.endswith(closing), "prompt layout changed: text header ... answer header"
    return prompt[start:len(prompt) - len(closing)], record["output"]


def record_token_lengths(records: Sequence[dict[str, Any]], counter: Any,
                         progress_wrap: Callable[[Iterable[Any]], Iterable[Any]] | None = None) -> list[int]:
    """Tokens per record as the SFT loaders build it: prompt + target + BOS + EOS."""
    batch = 256
    special = special_tokens_per_record()
    lengths: list[int] = []
    starts: Iterable[int] = range(0, len(records), batch)
    if progress_wrap is not None:
        starts = progress_wrap(starts)
    for start in starts:
        chunk = records[start:start + batch]
        ins = counter.count_many([r["input"] for r in chunk])
        outs = counter.count_many([r["output"] for r in chunk])
        lengths.extend(a + b + special for a, b in zip(ins, outs))
    return lengths
