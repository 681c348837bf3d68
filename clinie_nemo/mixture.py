"""Build a multi-task (and leave-one-dataset-out) instruction mixture from a :class:`MixtureConfig`.

:func:`build_mixture` reads each dataset's documents JSONL, picks documents per split (validation carve,
held-out fraction, few-shot pool; rules in :mod:`clinie_nemo.mixture_select`), renders records through
:mod:`clinie_nemo.render_bridge`, applies weights/caps, and returns the three record lists plus a manifest.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clinie_nemo import __version__, docs_jsonl
from clinie_nemo.document import Document
from clinie_nemo.fileio import atomic_dir, sha256_file, write_jsonl
from clinie_nemo.mixture_config import DatasetEntry, MixtureConfig, mixture_config_to_dict
from clinie_nemo.mixture_select import (
    carve_validation,
    copy_record,
    few_shot_examples,
    nested_fraction,
    seeded_key,
    seeded_order,
    weighted_copies,
)
from clinie_nemo.progress import progress, say
from clinie_nemo.records_stats import length_summary
from clinie_nemo.render_bridge import (
    RenderOptions,
    attach_few_shot,
    record_token_lengths,
    render_documents,
    token_counter,
)

SPLITS = ("training", "validation", "test")


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
    """Reads each documents file once and remembers its hash."""

    def __init__(self, config: MixtureConfig):
        self.config = config
        self.hashes: dict[str, str] = {}

    def read(self, path: str) -> list[Document]:
        resolved = self.config.resolve(path)
        docs = list(docs_jsonl.read(resolved))
        self.hashes[path] = sha256_file(resolved)
        return docs


def _render(config: MixtureConfig, entry: DatasetEntry, docs: Sequence[Document],
            reports: dict[str, Any], split: str) -> dict[str, list[dict[str, Any]]]:
    """Records per task for ``docs`` (document order kept)."""
    by_task: dict[str, list[dict[str, Any]]] = {}
    for task in config.tasks_for(entry):
        options = RenderOptions(task=task, format=config.format, template_policy=config.template.policy,
                                template_name=config.template.name, max_tokens=config.max_tokens,
                                tokenizer=str(config.resolve(config.tokenizer)) if config.tokenizer else None,
                                seed=config.seed)
        result = render_documents(docs, entry.name, options)
        by_task[task] = result.records
        reports[f"{split}/{entry.name}/{task}"] = result.report
    return by_task


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


def build_mixture(config: MixtureConfig, show_progress: bool = True) -> MixtureOutput:
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
        if held:
            need_train = config.held_out_fraction > 0 or config.few_shot_k > 0
            train_all = inputs.read(entry.train) if need_train else []
            chosen = nested_fraction(train_all, _doc_id, config.held_out_fraction, config.seed, entry.name)
            selection[entry.name] = {"role": "held_out", "train_documents": len(train_all),
                                     "training_documents": len(chosen), "fraction": config.held_out_fraction}
            weighted = _weighted(config, entry, _render(config, entry, chosen, reports, "training"))
            training.extend(weighted)
            test.extend(_test_records(config, entry, train_all, inputs, reports, few_shot_info))
            continue
        train_all = train_docs = inputs.read(entry.train)
        if entry.validation is not None:
            val_docs = inputs.read(entry.validation)
        else:
            train_docs, val_docs = carve_validation(train_docs, _doc_id, config.validation_fraction, config.seed,
                                                    entry.name)
        selection[entry.name] = {"role": "train", "training_documents": len(train_docs),
                                 "validation_documents": len(val_docs)}
        training.extend(_weighted(config, entry, _render(config, entry, train_docs, reports, "training")))
        for records in _render(config, entry, val_docs, reports, "validation").values():
            validation.extend(records)
        if config.held_out is None:
            test.extend(_test_records(config, entry, train_all, inputs, reports, few_shot_info))
    training.sort(key=lambda r: seeded_key(config.seed, "order", "", r["id"]))
    manifest = _manifest(config, inputs.hashes, training, validation, test, selection, few_shot_info, reports,
                         show_progress)
    return MixtureOutput(training, validation, test, manifest)


def _test_records(config: MixtureConfig, entry: DatasetEntry, train_all: Sequence[Document], inputs: _Inputs,
                  reports: dict[str, Any], few_shot_info: dict[str, Any]) -> list[dict[str, Any]]:
    """The dataset's test records, each prompt preceded by ``few_shot_k`` examples from its train split."""
    test_by_task = _render(config, entry, inputs.read(entry.test), reports, "test")
    if config.few_shot_k > 0:
        pool = _few_shot_pool(config, entry, train_all, reports)
        for task, records in test_by_task.items():
            shots = few_shot_examples(pool[task], config.few_shot_k)
            few_shot_info[f"{entry.name}/{task}"] = [s["id"] for s in shots]
            if len(shots) < config.few_shot_k:
                say(f"mix: only {len(shots)} few-shot examples for {entry.name}/{task} "
                    f"(asked for {config.few_shot_k})")
            test_by_task[task] = [attach_few_shot(r, shots) for r in records]
    return [r for records in test_by_task.values() for r in records]


def _few_shot_pool(config: MixtureConfig, entry: DatasetEntry, train_docs: Sequence[Document],
                   reports: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Records of the held-out training documents in the seeded fraction order, rendered a few documents
    at a time until every task has ``few_shot_k`` of them (or the documents run out)."""
    ordered = seeded_order(train_docs, _doc_id, config.seed, "fraction", entry.name)
    pool: dict[str, list[dict[str, Any]]] = {task: [] for task in config.tasks_for(entry)}
    step = max(1, config.few_shot_k)
    for start in range(0, len(ordered), step):
        for task, records in _render(config, entry, ordered[start:start + step], reports, "few_shot").items():
            pool[task].extend(records)
        if all(len(v) >= config.few_shot_k for v in pool.values()):
            break
    return pool


def _weighted(config: MixtureConfig, entry: DatasetEntry,
              by_task: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    records = [r for task_records in by_task.values() for r in task_records]
    return [copy_record(r, k) for r, k in weighted_copies(records, entry.weight, entry.cap, config.seed, entry.name)]


def _manifest(config: MixtureConfig, hashes: dict[str, str], training: list[dict[str, Any]],
              validation: list[dict[str, Any]], test: list[dict[str, Any]], selection: dict[str, Any],
              few_shot_info: dict[str, Any], reports: dict[str, Any], show_progress: bool) -> dict[str, Any]:
    counter = token_counter(config.resolve(config.tokenizer) if config.tokenizer else None)
    splits = {}
    for name, records in (("training", training), ("validation", validation), ("test", test)):
        batches = -(-len(records) // 256)
        lengths = record_token_lengths(records, counter, lambda it, n=name, b=batches: progress(
            it, f"tokens {n}", total=b, unit="batch", disable=not show_progress))
        splits[name] = {**_counts(records), "tokens": length_summary(lengths)}
    return {
        "clinie_nemo_version": __version__,
        "kind": "mixture",
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
        "render": reports,
        "config": mixture_config_to_dict(config, relative_to=config.base_dir),
    }


def write_mixture(config: MixtureConfig, output_dir: str | Path, force: bool = False,
                  show_progress: bool = True) -> MixtureOutput:
    """Build and write the mixture into ``output_dir`` (atomic: all four files or nothing)."""
    from clinie_nemo.fileio import check_output

    check_output(output_dir, force)
    result = build_mixture(config, show_progress=show_progress)
    with atomic_dir(output_dir, force=force) as tmp:
        for name in SPLITS:
            write_jsonl(tmp / f"{name}.jsonl", result.split(name))
        (tmp / "manifest.json").write_text(json.dumps(result.manifest, indent=2, ensure_ascii=False) + "\n",
                                           encoding="utf-8")
    return result
