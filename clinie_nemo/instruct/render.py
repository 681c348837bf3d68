"""Public render API: documents -> instruction records (+ round-trip stats and cross-chunk counts), and
the exact inverse used at evaluation (:func:`decode_record`); mixing calls :func:`render_documents` and
:func:`few_shot_pair` (a rendered record -> the (text, answer) example shown in other prompts).

    result = render_documents(docs, RenderOptions(task="ce", format="inline", dataset="n2c2_2018",
                                                  max_tokens=4096, tokenizer="models/llama/"))
    result.records          # list of dicts (clinie_nemo.instruct.records)
    result.roundtrip        # RoundTripStats (counts only)
    result.cross_chunk      # Counter: relations / event arguments split across chunks
    result.token_lengths    # prompt + target + 2 special tokens, per record
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from clinie_nemo.core.document import Document
from clinie_nemo.core.errors import ConfigError, unknown_name
from clinie_nemo.core.tokens import SPECIAL_TOKENS_PER_RECORD, TokenCounter, load_counter
from clinie_nemo.corpus.schema import TaskSchema, documents_dataset, resolve_schema, user_schema
from clinie_nemo.instruct import formats, tasks
from clinie_nemo.instruct.chunking import chunk_spans, chunk_views, view_for
from clinie_nemo.instruct.formats import DecodeError
from clinie_nemo.instruct.records import make_record, prompt_of, target_of
from clinie_nemo.instruct.roundtrip import RoundTripStats
from clinie_nemo.instruct.target import Annotations, ChunkView
from clinie_nemo.instruct.tasks import TaskOptions
from clinie_nemo.instruct.templates import Template, build_prompt, choose, templates_for

TEMPLATE_POLICIES = ("fixed", "rotate")
ESTIMATE_MARGIN = 8  # tokens the cheap chunk-size estimate may be off by; the exact check follows


@dataclass(frozen=True)
class RenderOptions:
    task: str
    format: str = "json"
    dataset: str | None = None  # registered dataset: its schema and the records' "dataset"
    schema: TaskSchema | None = None  # explicit schema (else the dataset's, else collected from docs)
    schema_file: str | None = None  # a user's brat schema YAML: its labels and definitions (records carry it)
    template: str | None = None  # a fixed template name (implies policy "fixed")
    template_policy: str = "fixed"  # fixed (first template) | rotate (hash of seed and record id)
    all_templates: bool = False  # every item once per template of the task (ids get "@<template>")
    seed: int = 13
    max_tokens: int | None = None  # None: one chunk per document
    tokenizer: str | None = None  # local tokenizer folder; None: fallback counter
    token_counter: TokenCounter | None = field(default=None, compare=False)
    few_shot: tuple[tuple[str, str], ...] = ()  # (example text, example answer) pairs put in every prompt
    messages: bool = False  # chat form {"messages": [...]} instead of input/output
    labels: tuple[str, ...] | None = None  # restrict entity labels
    task_options: TaskOptions = TaskOptions()
    check_roundtrip: bool = True


@dataclass
class RenderResult:
    records: list[dict[str, Any]]
    roundtrip: RoundTripStats
    cross_chunk: Counter[str]
    token_lengths: list[int]
    schema: TaskSchema
    chunks: int = 0
    counter_name: str = ""

    def report(self) -> dict[str, Any]:
        """Counts only: safe to print or write to a manifest."""
        return {"records": len(self.records), "chunks": self.chunks, "roundtrip": self.roundtrip.to_json(),
                "cross_chunk": dict(sorted(self.cross_chunk.items())),
                "max_tokens_seen": max(self.token_lengths, default=0)}

    def lines(self) -> list[str]:
        out = self.roundtrip.lines()
        if self.cross_chunk:
            out.append("  split across chunks (not in any record):")
            out += [f"    {cause:<44} {n:>7}" for cause, n in sorted(self.cross_chunk.items())]
        return out


def label_block(pairs: Iterable[tuple[str, str]]) -> str:
    return "\n".join(f"- {label}: {definition}" if definition else f"- {label}" for label, definition in pairs)


def relation_block(schema: TaskSchema) -> str:
    defs = dict(schema.relation_labels)
    heads_tails: dict[str, list[str]] = {}
    for rel, h, t in schema.candidate_pairs():
        heads_tails.setdefault(rel, []).append(f"{h} -> {t}")
    lines = []
    for rel in schema.relation_names:
        pairs = ", ".join(heads_tails.get(rel, []))
        text = f"- {rel}" + (f" ({pairs})" if pairs else "") + (f": {defs[rel]}" if defs.get(rel) else "")
        lines.append(text)
    return "\n".join(lines)


class _Renderer:
    def __init__(self, docs: Sequence[Document], options: RenderOptions):
        if options.template_policy not in TEMPLATE_POLICIES:
            raise unknown_name("template policy", options.template_policy, TEMPLATE_POLICIES)
        self.options = options
        self.task = tasks.get(options.task)
        self.fmt = formats.get(options.format)
        schema = options.schema if options.schema is not None else resolve_schema(  # the one resolver
            docs, options.dataset or documents_dataset(docs), options.schema_file, strict=bool(options.dataset))
        self.schema = schema.restrict_entities(options.labels) if options.labels else schema
        self.policy = "fixed" if options.template else options.template_policy
        self.templates = templates_for(options.task, options.template)
        if options.all_templates and options.template:
            raise ConfigError("all_templates renders every template of the task; do not name one template too")
        if self.policy == "fixed" and not options.all_templates:
            self.templates = self.templates[:1]
        self._overhead: int | None = None
        self._doc_tokens: tuple[str, list[int], list[int]] = ("", [], [])
        self._prompt_tokens: dict[tuple[str, str, int, int], int] = {}
        self.counter = options.token_counter or load_counter(options.tokenizer)
        self.format_text = self.task.describe(self.fmt)
        self.dataset = options.dataset or self.schema.name
        self._instructions: dict[tuple[str, tuple[str, ...]], str] = {}

    def instruction(self, template: Template, labels: tuple[str, ...]) -> str:
        key = (template.name, labels)
        if key not in self._instructions:
            defs = dict(self.schema.entity_labels)
            self._instructions[key] = template.fill(label_block((lb, defs.get(lb, "")) for lb in labels),
                                                    relation_block(self.schema), self.format_text)
        return self._instructions[key]

    def prompt(self, template: Template, labels: tuple[str, ...], text: str) -> str:
        return build_prompt(template, self.instruction(template, labels), text, self.options.few_shot)

    def _output_tokens(self, view: ChunkView) -> int:
        return self.task.longest_output(view, self.schema, self.fmt, self.options.task_options, self.counter.count)

    def _extra_tokens(self) -> int:
        """The task's prompt markers (``re_pair``): their own tokens plus one split token on each side of each."""
        return sum(self.counter.count(m) + 2 for m in self.task.MARKERS)

    def forget_document(self) -> None:
        self._prompt_tokens.clear()
        self._doc_tokens = ("", [], [])

    def prompt_tokens(self, template: Template, doc: Document, view: ChunkView, labels: tuple[str, ...],
                      text: str) -> int:
        """Tokens of a prompt, remembered per (template, chunk) when it shows the plain chunk text."""
        if text != view.text or labels != self.schema.entity_names:
            return self.counter.count(self.prompt(template, labels, text))
        key = (template.name, doc.id, view.start, view.end)
        if key not in self._prompt_tokens:
            self._prompt_tokens[key] = self.counter.count(self.prompt(template, labels, text))
        return self._prompt_tokens[key]

    def check_overhead(self) -> None:
        """The instruction alone (longest template, no text, empty target) must leave room for text."""
        if self._overhead is None:
            self._overhead = max(self.counter.count(self.prompt(t, self.schema.entity_names, ""))
                                 for t in self.templates)
        need = self._overhead + self._extra_tokens() + SPECIAL_TOKENS_PER_RECORD
        if need >= self.options.max_tokens:
            raise ConfigError(f"the {self.options.task} prompt without any text already takes {need} tokens "
                              f"({self.counter.name}); max_tokens={self.options.max_tokens} leaves no room: "
                              "raise --max-tokens or use a shorter template")

    def fits_estimate(self, doc: Document, start: int, end: int) -> bool:
        """Cheap: prompt overhead (longest template, counted once) + chunk tokens + target tokens, with a
        margin for tokens merging across the joins. :meth:`fits` decides."""
        if self._overhead is None:
            self._overhead = max(self.counter.count(self.prompt(t, self.schema.entity_names, ""))
                                 for t in self.templates)
        view = view_for(doc, start, end)
        if self._doc_tokens[0] != doc.id:
            spans = self.counter.spans(doc.text)
            self._doc_tokens = (doc.id, [a for a, _ in spans], [b for _, b in spans])
        _, starts, ends = self._doc_tokens
        text_tokens = bisect.bisect_right(ends, end) - bisect.bisect_left(starts, start)
        total = self._overhead + text_tokens + self._output_tokens(view) + self._extra_tokens()
        return total + SPECIAL_TOKENS_PER_RECORD <= self.options.max_tokens + ESTIMATE_MARGIN

    def fits(self, doc: Document, start: int, end: int) -> bool:
        """Exact: the full prompt with every template the record may get, plus the target."""
        view = view_for(doc, start, end)
        prompt_tokens = max(self.prompt_tokens(t, doc, view, self.schema.entity_names, view.text)
                            for t in self.templates)
        return prompt_tokens + self._extra_tokens() + self._output_tokens(view) + SPECIAL_TOKENS_PER_RECORD \
            <= self.options.max_tokens

    def render_doc(self, doc: Document, result: RenderResult) -> None:
        if self.options.max_tokens is None:
            spans = chunk_spans(doc, None)
        else:
            self.check_overhead()
            spans = chunk_spans(doc, lambda s, e: self.fits_estimate(doc, s, e),
                                f"max_tokens={self.options.max_tokens}", verify=lambda s, e: self.fits(doc, s, e))
        views, crossing = chunk_views(doc, spans)
        result.cross_chunk.update(crossing)
        result.chunks += len(views)
        doc_entities = doc.entity_index()
        for view in views:
            items, losses = self.task.items(view, self.schema, self.fmt, self.options.task_options)
            result.roundtrip.losses.update(losses)
            decoded = Annotations()
            for item, record_id, template in self.item_templates(doc, view, items):
                prompt = self.prompt(template, item.entity_labels, item.text)
                extras = dict(item.extras)
                if self.options.schema_file:
                    extras["schema"] = user_schema(self.options.schema_file)
                if self.options.few_shot:
                    extras["few_shot"] = len(self.options.few_shot)
                result.records.append(make_record(
                    prompt=prompt, output=item.output, record_id=record_id, dataset=self.dataset,
                    task=self.options.task, template=template.name, template_hash=template.hash,
                    fmt=self.options.format, doc_id=doc.id, chunk=(view.start, view.end), extras=extras,
                    messages=self.options.messages))
                result.token_lengths.append(self.prompt_tokens(template, doc, view, item.entity_labels, item.text)
                                            + self.counter.count(item.output) + SPECIAL_TOKENS_PER_RECORD)
                result.roundtrip.records += 1
                if self.options.check_roundtrip and (not self.options.all_templates or template == self.templates[0]):
                    decoded = _union(decoded, self.decode(item.output, view, item.extras, record_id, result))
            if self.options.check_roundtrip:
                gold = self.task.gold(view, self.schema, self.options.task_options)
                result.roundtrip.add_chunk(gold, decoded, doc_entities)

    def item_templates(self, doc: Document, view: ChunkView,
                       items: Sequence[tasks.TaskItem]) -> Iterable[tuple[tasks.TaskItem, str, Template]]:
        """(item, record id, template): one template per item by the policy, or with ``all_templates`` every
        template in file order, the id suffixed ``@<template name>`` so ids stay unique."""
        for item in items:
            record_id = f"{self.dataset}/{doc.id}/{self.options.task}/{view.index}{item.suffix}"
            if self.options.all_templates:
                for template in self.templates:
                    yield item, f"{record_id}@{template.name}", template
            else:
                yield item, record_id, choose(self.templates, self.policy, self.options.seed, record_id)

    def decode(self, output: str, view: ChunkView, extras: dict[str, Any], record_id: str,
               result: RenderResult) -> Annotations:
        try:
            ann, failures = self.task.decode(output, view, extras, self.schema, self.fmt, f"{record_id}:")
        except DecodeError as exc:
            result.roundtrip.failures[exc.cause] += 1
            return Annotations()
        result.roundtrip.failures.update(failures)
        return ann


def _union(a: Annotations, b: Annotations) -> Annotations:
    return Annotations(a.entities + b.entities, a.relations + b.relations, a.events + b.events)


def render_documents(docs: Iterable[Document], options: RenderOptions) -> RenderResult:
    """Records for ``docs`` (in document order, chunks in text order), with the round-trip check."""
    docs = list(docs)
    renderer = _Renderer(docs, options)
    result = RenderResult([], RoundTripStats(), Counter(), [], renderer.schema, counter_name=renderer.counter.name)
    for doc in docs:
        renderer.render_doc(doc, result)
        renderer.forget_document()
    if options.max_tokens is not None:
        too_long = [r["id"] for r, n in zip(result.records, result.token_lengths) if n > options.max_tokens]
        if too_long:
            raise ConfigError(f"{len(too_long)} records exceed max_tokens={options.max_tokens} "
                              f"(first: {too_long[0]}); raise --max-tokens")
    return result


def few_shot_pair(record: dict[str, Any]) -> tuple[str, str]:
    """(text, answer) of a record (either form) rendered without examples: the text between the template's
    text header and the closing answer header of its prompt (pair markers of re_pair included)."""
    template = next(t for t in templates_for(record["task"]) if t.name == record["template"])
    prompt, opening, closing = prompt_of(record), f"\n\n{template.text_header}\n", f"\n{template.answer_header}"
    start = prompt.index(opening) + len(opening)
    assert prompt.endswith(closing), "prompt layout changed: text header ... answer header"
    return prompt[start:len(prompt) - len(closing)], target_of(record)


def decode_record(record: dict[str, Any], prediction: str, document: Document,
                  schema: TaskSchema | None = None) -> tuple[Annotations, Counter[str]]:
    """Exact inverse for one record: a prediction -> annotations with document offsets, and failures by
    cause (an unreadable prediction gives no annotations and one failure). ``schema`` defaults to the
    record's registered dataset, else the labels of ``document``."""
    task = tasks.get(record["task"])
    fmt = formats.get(record["format"])
    if schema is None:  # a user's schema file, else the dataset
        schema = resolve_schema([document], record.get("schema") or record.get("dataset", ""))
    start, end = record["chunk"]
    view = ChunkView(document, 0, int(start), int(end))
    extras = {k: v for k, v in record.items() if k in ("pair", "label")}
    try:
        return task.decode(prediction, view, extras, schema, fmt, f"{record['id']}:")
    except DecodeError as exc:
        return Annotations(), Counter({exc.cause: 1})

