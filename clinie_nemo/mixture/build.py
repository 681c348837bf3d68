"""Build a multi-task (and leave-one-dataset-out) instruction mixture from a :class:`MixtureConfig`.

:func:`build_mixture` reads each dataset's documents JSONL, picks documents per split (validation carve,
held-out fraction, few-shot pool; rules in :mod:`clinie_nemo.mixture.select`), renders records through
:mod:`clinie_nemo.instruct.render` (one schema per dataset from :func:`clinie_nemo.corpus.schema.resolve_schema`),
applies weights/caps, and returns the three record lists plus a manifest.
:func:`write_mixture` writes training.jsonl, validation.jsonl, test.jsonl and manifest.json atomically.

Splits:
* held_out unset: training/validation from every dataset's train split (validation carved, or the explicit
  validation split), test = every dataset's test split.
* held_out = D: training/validation from the other datasets, plus ``ceil(held_out_fraction * n)`` of D's
  training documents (all in training; weight/cap of D applies); test = D's test split only, each prompt
  preceded by ``few_shot_k`` examples drawn from D's training documents.
* few_shot_k > 0 without held_out: every dataset's test prompts get examples from its own train split.

Output order: training is shuffled by seeded key of the record id (datasets interleaved); validation and
test follow config dataset order, task order, then document order. The manifest has no timestamps, so the
same config gives byte-identical files.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from clinie_nemo import __version__
from clinie_nemo.core import docs_jsonl
from clinie_nemo.core.document import Document
from clinie_nemo.core.errors import InputError, Problem
from clinie_nemo.core.fileio import atomic_dir, sha256_file, write_jsonl
from clinie_nemo.core.progress import progress, say
from clinie_nemo.core.tokens import load_counter
from clinie_nemo.corpus.schema import TaskSchema, resolve_schema
from clinie_nemo.instruct.records_stats import length_summary, record_token_lengths
from clinie_nemo.instruct.render import RenderOptions, few_shot_pair, render_documents
from clinie_nemo.mixture.config import DatasetEntry, MixtureConfig, mixture_config_to_dict
from clinie_nemo.mixture.select import (
    carve_validation,
    copy_record,
    few_shot_examples,
    nested_fraction,
    seeded_key,
    seeded_order,
    weighted_copies,
)

SPLITS = ("training", "validation", "test")
RENDERER = render_documents.__module__  # named in the manifest


@dataclass
class MixtureOutput:
    training: list[dict[str, Any]]
    validation: list[dict[str, Any]]
    test: list[dict[str, Any]]
    manifest: dict[str, Any]

    def split(self, name: str) -> list[dict[str, Any]]:
        return {"training": self.training, "validation": self.validation, "test": self.test}[name]


def _doc_id(doc: Document) -> str:
    return doc.id


class _Inputs:
    """Reads each documents file once, remembers its hash, and rejects duplicate document ids."""

    def __init__(self, config: MixtureConfig):
        self.config = config
        self.hashes: dict[str, str] = {}

    def read(self, path: str) -> list[Document]:
        resolved = self.config.resolve(path)
        docs = list(docs_jsonl.read(resolved))
        self.hashes[path] = sha256_file(resolved)
        seen: set[str] = set()
        duplicates = sorted({d.id for d in docs if d.id in seen or seen.add(d.id)})
        if duplicates:
            raise InputError(Problem(str(resolved), None, f"{len(duplicates)} duplicate document ids "
                                                          f"(first: {duplicates[0]})"))
        return docs


@dataclass
class _DatasetDocs:
    entry: DatasetEntry
    train: list[Document]
    validation: list[Document] | None
    test: list[Document]
    schema: TaskSchema  # one label schema for every split's prompts
    show_progress: bool = True


RENDER_BATCH = 32  # documents per render call (records do not depend on it; progress does)


def _read_dataset(inputs: _Inputs, entry: DatasetEntry, show_progress: bool) -> _DatasetDocs:
    train = inputs.read(entry.train)
    validation = inputs.read(entry.validation) if entry.validation is not None else None
    test = inputs.read(entry.test)
    schema_file = str(inputs.config.resolve(entry.schema)) if entry.schema else None
    schema = resolve_schema([*train, *(validation or []), *test], entry.name, schema_file)
    return _DatasetDocs(entry, train, validation, test, schema, show_progress)


def _render(config: MixtureConfig, data: _DatasetDocs, docs: Sequence[Document], reports: dict[str, Any],
            split: str, few_shot: dict[str, tuple[tuple[str, str], ...]] | None = None
            ) -> dict[str, list[dict[str, Any]]]:
    """Records per task for ``docs`` (document order kept)."""
    by_task: dict[str, list[dict[str, Any]]] = {}
    for task in config.tasks_for(data.entry):
        options = _render_options(config, data, task, split, (few_shot or {}).get(task, ()))
        key = f"{split}/{data.entry.name}/{task}"
        batches = [docs[i:i + RENDER_BATCH] for i in range(0, len(docs), RENDER_BATCH)]
        by_task[task] = []
        for batch in progress(batches, f"{split} {data.entry.name} {task}", total=len(batches), unit="batch",
                              disable=not data.show_progress or split.startswith("few_shot") or len(batches) < 2):
            result = render_documents(batch, options)
            by_task[task].extend(result.records)
            reports[key] = _merge_reports(reports.get(key), result.report())
    return by_task


def _render_options(config: MixtureConfig, data: _DatasetDocs, task: str, split: str,
                    few_shot: tuple[tuple[str, str], ...]) -> RenderOptions:
    """The config's render settings for one task of one dataset: a fixed template only with policy fixed
    (``test_all_templates`` renders the test split under every template instead)."""
    all_templates = config.test_all_templates and split == "test"
    fixed = config.template.policy == "fixed" and not all_templates
    return RenderOptions(task=task, format=config.format, dataset=data.entry.name, schema=data.schema,
                         schema_file=str(config.resolve(data.entry.schema)) if data.entry.schema else None,
                         template=config.template.name if fixed else None,
                         template_policy="fixed" if fixed else "rotate", seed=config.seed,
                         max_tokens=config.max_tokens,
                         tokenizer=str(config.resolve(config.tokenizer)) if config.tokenizer else None,
                         few_shot=few_shot, messages=config.messages, all_templates=all_templates)


def _merge_reports(old: Any, new: dict[str, Any]) -> dict[str, Any]:
    """Sum two count reports (nested dicts of numbers); non-numbers keep the latest value."""
    if old is None:
        return new
    out = dict(old)
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge_reports(out[k], v)
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and isinstance(out.get(k), (int, float)):
            out[k] = max(out[k], v) if k.startswith("max") else out[k] + v
        else:
            out[k] = v
    return out


def _counts(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    def count(key: Any) -> dict[str, int]:
        return dict(sorted(Counter(key(r) for r in records).items()))

    return {"records": len(records), "by_dataset": count(lambda r: r["dataset"]),
            "by_task": count(lambda r: r["task"]), "by_template": count(lambda r: r["template"]),
            "by_dataset_task": count(lambda r: f"{r['dataset']}/{r['task']}"),
            "documents_by_dataset": {ds: len(ids) for ds, ids in sorted(_docs_per_dataset(records).items())}}


def _docs_per_dataset(records: Sequence[dict[str, Any]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in records:
        out.setdefault(r["dataset"], set()).add(r["doc_id"])
    return out


def check_inputs_exist(config: MixtureConfig) -> None:
    """Every corpus file of the config exists (all missing ones reported at once, before any work)."""
    missing = [Problem(str(config.resolve(path)), None, f"{entry.name} {key}: documents file not found")
               for entry in config.datasets for key in ("train", "validation", "test")
               if (path := getattr(entry, key)) is not None and not config.resolve(path).is_file()]
    if missing:
        raise InputError(missing)


def build_mixture(config: MixtureConfig, show_progress: bool = True) -> MixtureOutput:
    check_inputs_exist(config)
    inputs = _Inputs(config)
    reports: dict[str, Any] = {}
    training: list[dict[str, Any]] = []
    validation: list[dict[str, Any]] = []
    test: list[dict[str, Any]] = []
    selection: dict[str, Any] = {}
    few_shot_info: dict[str, Any] = {}
    for entry in config.datasets:
        held = entry.name == config.held_out
        say(f"mix: {entry.name}{' (held out)' if held else ''}")
        data = _read_dataset(inputs, entry, show_progress)
        if held:
            chosen = nested_fraction(data.train, _doc_id, config.held_out_fraction, config.seed, entry.name)
            selection[entry.name] = {"role": "held_out", "train_documents": len(data.train),
                                     "training_documents": len(chosen), "fraction": config.held_out_fraction}
            training.extend(_weighted(config, entry, _render(config, data, chosen, reports, "training")))
            test.extend(_test_records(config, data, reports, few_shot_info))
            continue
        if data.validation is not None:
            train_docs, val_docs = data.train, data.validation
        else:
            train_docs, val_docs = carve_validation(data.train, _doc_id, config.validation_fraction, config.seed,
                                                    entry.name)
        selection[entry.name] = {"role": "train", "training_documents": len(train_docs),
                                 "validation_documents": len(val_docs)}
        training.extend(_weighted(config, entry, _render(config, data, train_docs, reports, "training")))
        for records in _render(config, data, val_docs, reports, "validation").values():
            validation.extend(records)
        if config.held_out is None:
            test.extend(_test_records(config, data, reports, few_shot_info))
    training.sort(key=lambda r: seeded_key(config.seed, "order", "", r["id"]))
    manifest = _manifest(config, inputs.hashes, training, validation, test, selection, few_shot_info, reports,
                         show_progress)
    return MixtureOutput(training, validation, test, manifest)


def _test_records(config: MixtureConfig, data: _DatasetDocs, reports: dict[str, Any],
                  few_shot_info: dict[str, Any]) -> list[dict[str, Any]]:
    """The dataset's test records; with few_shot_k, every prompt shows k examples from its train split."""
    shots: dict[str, tuple[tuple[str, str], ...]] = {}
    if config.few_shot_k > 0:
        pool = _few_shot_pool(config, data, reports)
        for task, records in pool.items():
            chosen = few_shot_examples(records, config.few_shot_k)
            few_shot_info[f"{data.entry.name}/{task}"] = [r["id"] for r in chosen]
            if len(chosen) < config.few_shot_k:
                say(f"mix: only {len(chosen)} few-shot examples for {data.entry.name}/{task} "
                    f"(asked for {config.few_shot_k})")
            shots[task] = tuple(few_shot_pair(r) for r in chosen)
    by_task = _render(config, data, data.test, reports, "test", shots)
    return [r for records in by_task.values() for r in records]


def _prompt_overhead(config: MixtureConfig, data: _DatasetDocs, docs: Sequence[Document], task: str,
                     reports: dict[str, Any]) -> int | None:
    """Tokens of a record that are neither its chunk text nor its target (instruction, label list, headers,
    BOS/EOS): the largest over the records of the first document that renders; None when none does."""
    counter = load_counter(str(config.resolve(config.tokenizer)) if config.tokenizer else None)
    for doc in docs:
        try:
            records = _render(config, data, [doc], reports, "few_shot_probe")[task]
        except InputError:
            continue
        if records:
            lengths = record_token_lengths(records, counter)
            return max(n - sum(counter.count_many(few_shot_pair(r))) for r, n in zip(records, lengths))
    return None


FEW_SHOT_HEADER_TOKENS = 16  # "Example k", the text and answer headers around each example


def few_shot_budget(max_tokens: int, k: int, overhead: int) -> int:
    """Token limit of one example record: its overhead plus a (k + 1)-th of the room the overhead leaves
    (less the example's own headers), so k examples (text + answer) and the test chunk with its target share
    one test prompt."""
    return overhead + (max_tokens - overhead) // (k + 1) - FEW_SHOT_HEADER_TOKENS


def _few_shot_pool(config: MixtureConfig, data: _DatasetDocs,
                   reports: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Per task, the first ``few_shot_k`` records of the training documents in the seeded fraction order,
    rendered with chunks small enough (:func:`few_shot_budget`) for k of them and a test chunk to share one
    prompt. A document with a sentence too long for that budget is skipped (counted in the manifest under
    ``render["few_shot/<dataset>/<task>"]["skipped_documents"]``)."""
    ordered = seeded_order(data.train, _doc_id, config.seed, "fraction", data.entry.name)
    task_data = replace(data, entry=replace(data.entry, tasks=None))
    pool: dict[str, list[dict[str, Any]]] = {}
    for task in config.tasks_for(data.entry):
        pool[task] = []
        one_task = replace(config, tasks=(task,))
        overhead = _prompt_overhead(one_task, task_data, ordered, task, reports)
        if overhead is None:
            continue
        budget = replace(one_task, max_tokens=few_shot_budget(config.max_tokens, config.few_shot_k, overhead))
        key = f"few_shot/{data.entry.name}/{task}"
        for doc in ordered:
            if len(pool[task]) >= config.few_shot_k:
                break
            try:
                pool[task].extend(_render(budget, task_data, [doc], reports, "few_shot")[task])
            except InputError:
                reports.setdefault(key, {})
                reports[key]["skipped_documents"] = reports[key].get("skipped_documents", 0) + 1
    return pool


def _weighted(config: MixtureConfig, entry: DatasetEntry,
              by_task: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    records = [r for task_records in by_task.values() for r in task_records]
    return [copy_record(r, k) for r, k in weighted_copies(records, entry.weight, entry.cap, config.seed, entry.name)]


def _manifest(config: MixtureConfig, hashes: dict[str, str], training: list[dict[str, Any]],
              validation: list[dict[str, Any]], test: list[dict[str, Any]], selection: dict[str, Any],
              few_shot_info: dict[str, Any], reports: dict[str, Any], show_progress: bool) -> dict[str, Any]:
    counter = load_counter(str(config.resolve(config.tokenizer)) if config.tokenizer else None)
    splits = {}
    for name, records in (("training", training), ("validation", validation), ("test", test)):
        batches = -(-len(records) // 256)
        lengths = record_token_lengths(records, counter, lambda it, n=name, b=batches: progress(
            it, f"tokens {n}", total=b, unit="batch", disable=not show_progress))
        splits[name] = {**_counts(records), "tokens": length_summary(lengths)}
    return {
        "clinie_nemo_version": __version__,
        "kind": "mixture",
        "renderer": RENDERER,
        "name": config.name,
        "seed": config.seed,
        "held_out": config.held_out,
        "held_out_fraction": config.held_out_fraction,
        "few_shot_k": config.few_shot_k,
        "few_shot_examples": few_shot_info,
        "tokenizer": counter.name if config.tokenizer is None else config.tokenizer,
        "inputs": {path: {"sha256": digest} for path, digest in sorted(hashes.items())},
        "selection": selection,
        "splits": splits,
        "roundtrip": _total(reports, "roundtrip"),
        "cross_chunk": _total(reports, "cross_chunk"),
        "render": reports,
        "config": mixture_config_to_dict(config, relative_to=config.base_dir),
    }


def _total(reports: dict[str, Any], key: str) -> dict[str, Any]:
    """One count report summed over every (split, dataset, task) render (few-shot pools excluded)."""
    total: dict[str, Any] | None = None
    for name, report in sorted(reports.items()):
        if not name.startswith("few_shot") and isinstance(report.get(key), dict):
            total = _merge_reports(total, report[key])
    return total or {}


def roundtrip_lines(manifest: dict[str, Any]) -> list[str]:
    """Round-trip and cross-chunk counts for people (no text)."""
    rt = manifest.get("roundtrip", {})
    lines = []
    for kind in ("entities", "relations", "events"):
        c = rt.get(kind) or {}
        if c.get("gold") or c.get("spurious"):
            lines.append(f"round trip {kind:<10} {c['recovered']}/{c['gold']} recovered, {c['spurious']} spurious")
    lines += [f"round trip loss {cause}: {n}" for cause, n in sorted(rt.get("losses", {}).items())]
    lines += [f"round trip failure {cause}: {n}" for cause, n in sorted(rt.get("failures", {}).items())]
    lines += [f"split across chunks {cause}: {n}" for cause, n in sorted(manifest.get("cross_chunk", {}).items())]
    return lines


def write_mixture(config: MixtureConfig, output_dir: str | Path, force: bool = False,
                  show_progress: bool = True) -> MixtureOutput:
    """Build and write the mixture into ``output_dir`` (atomic: all four files or nothing)."""
    from clinie_nemo.core.fileio import check_output

    check_output(output_dir, force)
    result = build_mixture(config, show_progress=show_progress)
    with atomic_dir(output_dir, force=force) as tmp:
        for name in SPLITS:
            write_jsonl(tmp / f"{name}.jsonl", result.split(name))
        (tmp / "manifest.json").write_text(json.dumps(result.manifest, indent=2, ensure_ascii=False) + "\n",
                                           encoding="utf-8")
    return result
