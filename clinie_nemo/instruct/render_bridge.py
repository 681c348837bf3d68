"""The one place where mixing calls into rendering (task kinds, templates, chunking, target formats).

Mixing, ``stats`` on records and the benchmarks call only these:

* :func:`render_documents` (documents of one dataset -> records of one task kind, plus a count report),
* :func:`dataset_schema` (one label schema per dataset, so every split's prompts list the same labels),
* :func:`few_shot_pair` (a rendered record -> the (text, answer) example shown in other prompts),
* :func:`token_counter` / :func:`record_token_lengths` (the renderer's own counter: a local tokenizer
  folder or the fallback; a record is prompt + target + BOS + EOS).

Behind them is the instruction renderer :mod:`clinie_nemo.instruct.render` and its counters :mod:`clinie_nemo.core.tokens`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from clinie_nemo.core.document import Document

RENDERER = "clinie_nemo.instruct.render"


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
    messages: bool = False  # chat form {"messages": [user, assistant]} instead of input/output
    all_templates: bool = False  # every item once per template (test split of `test_all_templates`)
    schema: Any = field(default=None, compare=False)  # from dataset_schema(); None: the renderer decides
    schema_file: str | None = None  # the user's brat schema the schema came from (records name it)


@dataclass
class BridgeResult:
    records: list[dict[str, Any]]
    report: dict[str, Any]  # counts only (round-trip losses by cause, relations split across chunks)


def token_counter(tokenizer: str | None = None) -> Any:
    """The counter rendering uses (``.count``, ``.count_many``, ``.name``), cached per tokenizer."""
    from clinie_nemo.core.tokens import load_counter

    return load_counter(tokenizer)


def special_tokens_per_record() -> int:
    from clinie_nemo.core.tokens import SPECIAL_TOKENS_PER_RECORD

    return SPECIAL_TOKENS_PER_RECORD


def dataset_schema(docs: Sequence[Document], dataset: str, schema_file: str | None = None) -> Any:
    """The label schema of ``dataset``: a user's brat schema file when given (labels with definitions), else
    the registered one, each merged with labels seen in ``docs``; for a dataset the registry does not know
    and no schema file, the labels collected from ``docs``."""
    from clinie_nemo.corpus.schema import schema_from_documents
    from clinie_nemo.instruct.render import RenderOptions, resolve_schema

    if schema_file:
        return resolve_schema(docs, RenderOptions(task="ce", schema_file=schema_file))

    try:
        from clinie_nemo.corpus.datasets import DATASETS
    except ImportError:
        DATASETS = {}  # noqa: N806
    if dataset in DATASETS:
        return resolve_schema(docs, RenderOptions(task="ce", dataset=dataset))
    return schema_from_documents(docs, dataset)


def render_documents(docs: Sequence[Document], dataset: str, settings: RenderSettings) -> BridgeResult:
    """Records for ``docs`` (all of one dataset) and one task kind, in document order."""
    from clinie_nemo.instruct.render import RenderOptions
    from clinie_nemo.instruct.render import render_documents as render

    fixed = settings.template_policy == "fixed" and not settings.all_templates
    options = RenderOptions(task=settings.task, format=settings.format, dataset=dataset, schema=settings.schema,
                            schema_file=settings.schema_file,
                            template=settings.template_name if fixed else None,
                            template_policy="fixed" if fixed else "rotate", seed=settings.seed,
                            max_tokens=settings.max_tokens, tokenizer=settings.tokenizer,
                            few_shot=settings.few_shot, messages=settings.messages,
                            all_templates=settings.all_templates)
    result = render(docs, options)
    return BridgeResult(result.records, result.report())


def few_shot_pair(record: dict[str, Any]) -> tuple[str, str]:
    """(text, answer) of a record (either form) rendered without examples: the text between the template's text
    header and the closing answer header of its prompt (pair markers of re_pair included)."""
    from clinie_nemo.instruct.templates import templates_for

    template = next(t for t in templates_for(record["task"]) if t.name == record["template"])
    text_header, answer_header = template.text_header, template.answer_header
    from clinie_nemo.instruct.records import prompt_of, target_of

    prompt, opening, closing = prompt_of(record), f"\n\n{text_header}\n", f"\n{answer_header}"
    start = prompt.index(opening) + len(opening)
    assert prompt.endswith(closing), "prompt layout changed: text header ... answer header"
    return prompt[start:len(prompt) - len(closing)], target_of(record)


def record_token_lengths(records: Sequence[dict[str, Any]], counter: Any,
                         progress_wrap: Callable[[Iterable[Any]], Iterable[Any]] | None = None) -> list[int]:
    """Tokens per record as the SFT loaders build it: prompt + target + BOS + EOS (either record form)."""
    from clinie_nemo.instruct.records import prompt_of, target_of

    batch = 256
    special = special_tokens_per_record()
    lengths: list[int] = []
    starts: Iterable[int] = range(0, len(records), batch)
    if progress_wrap is not None:
        starts = progress_wrap(starts)
    for start in starts:
        chunk = records[start:start + batch]
        ins = counter.count_many([prompt_of(r) for r in chunk])
        outs = counter.count_many([target_of(r) for r in chunk])
        lengths.extend(a + b + special for a, b in zip(ins, outs))
    return lengths
