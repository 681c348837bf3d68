"""`clinie-nemo render`: one documents JSONL -> instruction records JSONL (no mixture), with the
round-trip check printed as counts."""

from __future__ import annotations

import argparse

NAME = "render"
HELP = "Render a documents JSONL into instruction records (task x target format x template), checking the round trip."
EXAMPLES = """
  clinie-nemo render --corpus docs.jsonl --task ce --format inline --output ce.jsonl
  clinie-nemo render --corpus docs.jsonl --task re_e2e --format json --dataset n2c2_2018 --max-tokens 4096 --tokenizer models/llama/ --output re.jsonl
  clinie-nemo render --corpus test_docs.jsonl --task ce --format json --all-templates --output test_all_templates.jsonl
  clinie-nemo render --corpus docs.jsonl --task re_pair --format lines --template re_pair_question --negative-ratio 2 --output pairs.jsonl
  clinie-nemo render --corpus site/test.jsonl --task ce --format json --dataset brat:site_schema.yaml --output test.jsonl
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", required=True, help="documents JSONL (clinie-nemo convert writes it)")
    from clinie_nemo.instruct.tasks import TASKS

    p.add_argument("--task", required=True, help=" | ".join(TASKS))  # checked by the registry, listing its names
    p.add_argument("--format", default="json", help="target format: lines | json | inline (default json)")
    p.add_argument("--template", help="a fixed template name (default: the task's first, or --rotate)")
    p.add_argument("--rotate", action="store_true", help="rotate the task's templates per record, by --seed")
    p.add_argument("--all-templates", action="store_true", help="every chunk once per template of the task "
                   "(record ids get '@<template>'): test data for measuring template variance")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--max-tokens", type=int, help="token budget for prompt + target; chunks documents to fit")
    p.add_argument("--tokenizer", help="local tokenizer folder (offline); default: the word+punctuation counter")
    p.add_argument("--dataset", help="registered dataset whose schema to use, or brat:PATH for a user's brat schema "
                   "YAML (its labels and definitions go into the prompts; default: the documents' own)")
    p.add_argument("--labels", help="comma-separated entity labels to keep (default: all)")
    p.add_argument("--per-label", action="store_true", help="ce: one record per label (MRC-style)")
    p.add_argument("--no-attributes", action="store_true", help="leave attribute values out of targets")
    p.add_argument("--pair-window-chars", type=int, help="re_pair: max characters between the two mentions")
    p.add_argument("--pair-window-sentences", type=int, help="re_pair: max sentence distance")
    p.add_argument("--negative-ratio", type=float, help="re_pair: negatives kept per positive (default: all)")
    p.add_argument("--messages", action="store_true", help="write the chat form {\"messages\": [...]}")
    p.add_argument("--output", required=True, help="records JSONL to write")
    p.add_argument("--report", help="also write the counts (round trip, losses by cause, split relations) as JSON")
    p.add_argument("--force", action="store_true", help="replace an existing output file")


def run(args: argparse.Namespace) -> int:
    from clinie_nemo.core import docs_jsonl
    from clinie_nemo.core.fileio import check_output, write_jsonl
    from clinie_nemo.core.progress import progress, say
    from clinie_nemo.instruct import formats, tasks
    from clinie_nemo.instruct.render import RenderOptions, render_documents
    from clinie_nemo.instruct.tasks import TaskOptions
    from clinie_nemo.instruct.templates import templates_for

    check_output(args.output, args.force, kind="file", inputs=[args.corpus])
    if args.report:
        check_output(args.report, args.force, kind="file", inputs=[args.corpus, args.output])
    tasks.get(args.task)
    formats.get(args.format)
    templates_for(args.task, args.template)
    if args.all_templates and (args.template or args.rotate):
        from clinie_nemo.core.errors import ConfigError

        raise ConfigError("--all-templates renders every template; it excludes --template and --rotate")
    if args.dataset:
        from clinie_nemo.corpus.schema import schema_for_dataset

        schema_for_dataset(args.dataset)  # an unknown dataset fails before any document is read
    docs = list(progress(docs_jsonl.read(args.corpus), desc="reading documents", unit="doc"))
    from clinie_nemo.corpus.datasets import USER_BRAT_PREFIX

    user = bool(args.dataset) and args.dataset.startswith(USER_BRAT_PREFIX)  # a user's schema: brat:my_schema.yaml
    options = RenderOptions(
        task=args.task, format=args.format, dataset=None if user else args.dataset,
        schema_file=args.dataset if user else None, template=args.template,
        template_policy="rotate" if args.rotate else "fixed", all_templates=args.all_templates, seed=args.seed, max_tokens=args.max_tokens,
        tokenizer=args.tokenizer, messages=args.messages,
        labels=tuple(x.strip() for x in args.labels.split(",") if x.strip()) if args.labels else None,
        task_options=TaskOptions(per_label=args.per_label, attributes=not args.no_attributes,
                                 pair_window_chars=args.pair_window_chars,
                                 pair_window_sentences=args.pair_window_sentences,
                                 negative_ratio=args.negative_ratio, seed=args.seed))
    say(f"rendering {len(docs)} documents: task {args.task}, format {args.format}")
    result = render_documents(docs, options)
    n = write_jsonl(args.output, result.records)
    print(f"wrote {n} records ({result.chunks} chunks) to {args.output}")
    for line in result.lines():
        print(line)
    if args.report:
        import json

        from clinie_nemo.core.fileio import atomic_write

        with atomic_write(args.report) as fh:
            json.dump({**result.report(), "tokens": result.counter_name}, fh, indent=2)
    return 0
