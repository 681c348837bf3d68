"""`clinie-nemo evaluate`: parse generated predictions, merge chunks, score against the corpus."""

from __future__ import annotations

import argparse

NAME = "evaluate"
HELP = "Parse generated predictions of test records, merge them into documents and score them."
EXAMPLES = """
  clinie-nemo evaluate --records data/test.jsonl --predictions run/predictions.jsonl --corpus docs/test.jsonl
  clinie-nemo evaluate --records test.jsonl --predictions pred.jsonl --corpus docs.jsonl --rules n2c2_2018 \\
      --bootstrap 1000 --json run/scores.json --tag model=llama3-8b --tag method=lora --tag fold=n2c2_2018
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from clinie_nemo.evaluation.scoring.rules import rules_help

    p.add_argument("--records", required=True, help="test records JSONL (from `clinie-nemo mix` or `render`)")
    p.add_argument("--predictions", required=True, help="predictions JSONL ({\"id\", \"prediction\"} per line)")
    p.add_argument("--corpus", required=True, help="gold documents JSONL the records were rendered from")
    p.add_argument("--rules", default="auto", help=rules_help())
    p.add_argument("--bootstrap", type=int, default=0, metavar="N", help="document bootstrap replicates for 95%% CIs")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--compare", metavar="PRED_B", help="a second predictions JSONL for the same records: paired "
                   "bootstrap of --predictions (A) against it (B) per task (--bootstrap N, default 1000)")
    p.add_argument("--json", help="write the scores as JSON (e.g. RUN_DIR/scores.json)")
    p.add_argument("--brat-out", help="also write the predicted documents as brat folders (one per task)")
    p.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                   help="run metadata for reports (model, method, fold, fraction, seed, engine, few_shot_k)")
    p.add_argument("--allow-missing", action="store_true", help="score records without a prediction as empty")
    p.add_argument("--force", action="store_true", help="replace existing outputs")


def parse_tags(tags: list[str]) -> dict[str, str]:
    from clinie_nemo.core.errors import ConfigError

    meta = {}
    for tag in tags:
        key, sep, value = tag.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--tag {tag!r}: expected KEY=VALUE")
        meta[key.strip()] = value.strip()
    return meta


def run(args: argparse.Namespace) -> int:
    import json

    from clinie_nemo.core import docs_jsonl
    from clinie_nemo.core.fileio import atomic_write, check_output
    from clinie_nemo.core.progress import say
    from clinie_nemo.engines.predictions import read_predictions, read_records
    from clinie_nemo.evaluation.evaluate import evaluate_predictions
    from clinie_nemo.evaluation.scoring.rules import check_rules_name, rules_for
    from clinie_nemo.evaluation.scoring.table import parse_table, summary_table

    check_rules_name(args.rules)
    meta = parse_tags(args.tag)
    if args.json:
        check_output(args.json, args.force)
    if args.brat_out:
        check_output(args.brat_out, args.force)
    records = read_records(args.records)
    predictions = read_predictions(args.predictions, {r["id"] for r in records}, args.allow_missing)
    corpus = list(docs_jsonl.read(args.corpus))
    rules = rules_for(args.rules, corpus)
    say(f"{len(records)} records, {len(predictions)} predictions, {len(corpus)} documents; rules {rules.name!r}")
    evaluation = evaluate_predictions(records, predictions, corpus, rules, args.bootstrap, args.seed)
    result, predicted = evaluation.result, evaluation.predicted
    if result["template_coverage"] == "all":
        say(f"every chunk under each of {len(result['by_template'])} templates: each (document, template) is "
            "scored as its own unit; the headline sums the templates")
    result["meta"] = meta
    for task, block in result["by_task"].items():
        print(f"== task {task}")
        print(summary_table(block, by_label=True))
    if len(result["by_template"]) > 1:
        from clinie_nemo.evaluation.template_scores import spread_lines, template_table

        print("== by template (each template's records against the gold they cover)")
        print(template_table(result["by_template"]))
        print("\n".join(spread_lines(result["template_spread"])))
    print("== parse")
    print(parse_table(result["parse"]))
    if args.compare:
        from clinie_nemo.evaluation.scoring.bootstrap import compare_systems, comparison_lines

        other = evaluate_predictions(records, read_predictions(args.compare, {r["id"] for r in records},
                                                               args.allow_missing), corpus, rules,
                                     per_template=False)
        result["comparison"] = {"a": args.predictions, "b": args.compare}
        for task, scores in evaluation.scores.items():
            result["comparison"][task] = compare_systems(scores, other.scores[task], args.bootstrap or 1000, args.seed)
            print(f"== task {task}: A = {args.predictions} vs B = {args.compare}")
            print("\n".join(comparison_lines(result["comparison"][task])))
    if args.brat_out:
        write_brat(args.brat_out, predicted, args.force)
    if args.json:
        with atomic_write(args.json) as fh:
            json.dump(result, fh, indent=2)
    return 0


def write_brat(out_dir: str, predicted: dict, force: bool) -> None:
    from clinie_nemo.core.fileio import atomic_dir
    from clinie_nemo.corpus.writers import WRITERS

    writer = WRITERS["brat"]
    with atomic_dir(out_dir, force) as tmp:
        for task, docs in predicted.items():
            writer.write(docs, tmp / task)
