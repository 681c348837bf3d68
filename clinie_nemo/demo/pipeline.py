"""The demo: the study's protocol end to end on synthetic corpora, a tiny model and the local engine.

Layout of the output folder ``OUT``::

    OUT/corpora/native/<dataset>/   synthetic releases in each corpus's native format (clinie-nemo synth)
    OUT/corpora/docs/<dataset>/     documents JSONL per split (clinie-nemo convert --dataset)
    OUT/config/                     every YAML the commands read (mixtures, model, recipes, generation, study)
    OUT/data/frac-<f>/              records: training/validation/test.jsonl + manifest.json (clinie-nemo mix)
    OUT/model/tiny/                 the tiny random-init Llama and its tokenizer (clinie-nemo tiny-model)
    OUT/model/base/                 its warm-up run; model/ is the base every cell fine-tunes
    OUT/runs/frac-<f>/<method>/     run directory, predictions.jsonl, scores.json (train, generate, evaluate)
    OUT/report/                     report.md + PNG plots (clinie-nemo report), demo_table.md, DEMO_NOTE.md
    OUT/logs/                       each command's stdout
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from clinie_nemo.core.errors import ClinieError
from clinie_nemo.core.progress import say
from clinie_nemo.demo import configs, summary
from clinie_nemo.demo.runner import Runner
from clinie_nemo.demo.settings import DATASETS, DemoSettings

MARKER = ".clinie_nemo_demo"  # marks a folder the demo made, so --force only ever replaces a demo folder


@dataclass(frozen=True)
class Cell:
    fraction: float
    method: str
    data_dir: Path
    run_dir: Path

    @property
    def name(self) -> str:
        return f"fraction {self.fraction:g}, {self.method}"


def prepare_output(out: Path, force: bool) -> None:
    """Refuse a non-empty folder unless ``force``; with ``force`` replace only a previous demo folder."""
    if out.exists() and (out.is_file() or any(out.iterdir())):
        if not force:
            raise ClinieError(f"{out} already exists; pass --force to replace it")
        if out.is_file() or not (out / MARKER).is_file():
            raise ClinieError(f"{out} exists and was not written by `clinie-nemo demo`; refusing to replace it "
                              "even with --force (choose another --output)")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by clinie-nemo demo; --force may replace this folder\n", encoding="utf-8")


def rules_for(dataset: str) -> str:
    from clinie_nemo.corpus.datasets import get

    return get(dataset).scoring


def build_corpora(run: Runner, out: Path, s: DemoSettings) -> Path:
    """Steps 1-2: synthetic native releases, then documents JSONL per split. Returns the docs root."""
    native, docs = out / "corpora" / "native", out / "corpora" / "docs"
    with run.step(f"Synthesise the five corpora in their native release formats ({s.docs_per_dataset} notes each)",
                  "the real corpora need data use agreements; synthetic releases in the same file layouts "
                  "(i2b2 .con/.rel, brat .ann, RadGraph JSON) exercise the same readers your data will"):
        for i, name in enumerate(DATASETS):
            run.cli("synth", "--dataset", name, "--docs", str(s.docs_per_dataset), "--seed", str(s.seed + i),
                    "--output", str(native / name))
    with run.step("Convert each release to documents JSONL, validated against the dataset's schema",
                  "one document model (text, entities with character offsets, relations, events) for every "
                  "corpus, so everything downstream is format-independent"):
        for name in DATASETS:
            run.cli("convert", "--dataset", name, "--input", str(native / name), "--output", str(docs / name))
    return docs


def build_mixtures(run: Runner, out: Path, docs: Path, s: DemoSettings, fractions: tuple[float, ...]
                   ) -> dict[float, Path]:
    data = {}
    with run.step(f"Mix multi-task instruction data, {s.held_out} held out, at fractions "
                  f"{', '.join(f'{f:g}' for f in fractions)}",
                  f"the study's leave-one-dataset-out protocol: train on the other four corpora plus a "
                  f"fraction of {s.held_out}'s training notes (0 = zero-shot), test on {s.held_out}; "
                  f"tasks {', '.join(s.tasks)} in the `{s.format}` format, at most {s.cap} records per corpus"):
        for fraction in fractions:
            cfg = configs.mixture_config(docs, out / "config", s, fraction)
            data[fraction] = out / "data" / s.fraction_name(fraction)
            run.cli("mix", str(cfg), "--output", str(data[fraction]), "--quiet")
    return data


def build_model(run: Runner, out: Path, records: Path, s: DemoSettings) -> Path:
    m = s.model
    model_dir = out / "model" / "tiny"
    with run.step(f"Build a tiny Llama ({m.layers} layers, hidden {m.hidden}) with a tokenizer trained on the records",
                  "nothing is downloaded: a random-init model stands in for Llama 3.1 8B / GatorTronLlama so "
                  "the whole flow runs on a laptop CPU in minutes"):
        run.cli("tiny-model", "--corpus", str(records), "--output", str(model_dir), "--hidden", str(m.hidden),
                "--layers", str(m.layers), "--heads", str(m.heads), "--kv-heads", str(m.kv_heads),
                "--vocab-size", str(m.vocab_size), "--max-positions", str(m.max_positions), "--seed", str(m.seed))
    return model_dir


def build_base(run: Runner, out: Path, tiny_dir: Path, zero_shot_data: Path, s: DemoSettings) -> Path:
    """Full fine-tuning of the random-init model on the zero-shot mixture (the four other corpora only): a
    base that knows the answer format, as a pretrained LLM would. Returns the base model folder."""
    cfg = out / "config"
    tiny_yaml = configs.model_config(tiny_dir, cfg, s, "tiny")
    recipe = configs.recipe_config(cfg, s, "base")
    base_run = out / "model" / "base"
    with run.step(f"Make a base model: {s.training.base_steps} steps of full fine-tuning on the four other corpora",
                  f"LoRA on a random network learns little; the study starts from pretrained LLMs. This base "
                  f"sees no {s.held_out} data, so fraction 0 stays zero-shot"):
        run.cli("train", "--engine", "local", "--model", str(tiny_yaml), "--recipe", str(recipe),
                "--data", str(zero_shot_data), "--output", str(base_run))
    return base_run / "model"


def write_run_configs(out: Path, base_dir: Path, s: DemoSettings) -> tuple[Path, dict[str, Path], Path]:
    cfg = out / "config"
    model_yaml = configs.model_config(base_dir, cfg, s, "base")
    recipes = {m: configs.recipe_config(cfg, s, m) for m in s.methods}
    return model_yaml, recipes, configs.generate_config(cfg, s)


def prepare_models(run: Runner, out: Path, data: dict[float, Path], s: DemoSettings
                   ) -> tuple[Path, dict[str, Path], Path]:
    """Tiny model (tokenizer from every corpus's training records), base model, and the cells' YAMLs."""
    tiny_dir = build_model(run, out, data[max(data)] / "training.jsonl", s)
    base_dir = build_base(run, out, tiny_dir, data[min(data)], s)
    return write_run_configs(out, base_dir, s)


def run_local(out: Path, s: DemoSettings) -> Runner:
    """The whole demo on this machine with the local engine; returns the runner (timings)."""
    run = Runner(out, total_steps=10)
    docs = build_corpora(run, out, s)
    data = build_mixtures(run, out, docs, s, s.fractions)
    model_yaml, recipes, generate_yaml = prepare_models(run, out, data, s)
    cells = [Cell(f, m, data[f], out / "runs" / s.fraction_name(f) / m) for f in s.fractions for m in s.methods]
    t = s.training
    with run.step(f"Fine-tune {len(cells)} runs: LoRA and full fine-tuning at each fraction (local engine)",
                  f"the study compares LoRA with full fine-tuning; here {t.steps} steps of {t.batch} "
                  f"records each (recipes in {out / 'config'})"):
        for i, c in enumerate(cells, 1):
            run.cli("train", "--engine", "local", "--model", str(model_yaml), "--recipe", str(recipes[c.method]),
                    "--data", str(c.data_dir), "--output", str(c.run_dir / "run"), label=f"{i}/{len(cells)}: {c.name}")
    with run.step(f"Generate answers for the {s.held_out} test records with each run",
                  "greedy decoding, batched; predictions are kept in files, never printed (they quote notes)"):
        for i, c in enumerate(cells, 1):
            run.cli("generate", "--run", str(c.run_dir / "run"), "--records", str(c.data_dir / "test.jsonl"),
                    "--output", str(c.run_dir / "predictions.jsonl"), "--config", str(generate_yaml),
                    label=f"{i}/{len(cells)}: {c.name}")
    rules = rules_for(s.held_out)
    with run.step("Evaluate: parse each answer back to character offsets and score CE and RE, strict and lenient",
                  f"the {rules} rules reproduce the official scorer; answers that cannot be placed in the note "
                  "are counted by cause (unparseable, invalid label, mention not in text, ...)"):
        for i, c in enumerate(cells, 1):
            run.cli("evaluate", "--records", str(c.data_dir / "test.jsonl"), "--predictions",
                    str(c.run_dir / "predictions.jsonl"), "--corpus", str(docs / s.held_out / "test.jsonl"),
                    "--rules", rules, "--bootstrap", str(s.bootstrap), "--seed", str(s.seed),
                    "--json", str(c.run_dir / "scores.json"), "--tag", "model=tiny", "--tag", f"method={c.method}",
                    "--tag", f"fold={s.held_out}", "--tag", f"fraction={c.fraction:g}", "--tag", f"seed={s.seed}",
                    "--tag", "engine=local", "--tag", "few_shot_k=0", label=f"{i}/{len(cells)}: {c.name}")
    finish_report(run, out, out / "runs", s)
    return run


def finish_report(run: Runner, out: Path, runs_root: Path, s: DemoSettings) -> None:
    """Steps 8-9: `clinie-nemo report`, then the demo's own table (parse statistics) and its note."""
    report_dir = out / "report"
    with run.step("Report: one markdown table across runs and PNG plots",
                  "the study's figures: F1 against the held-out data fraction, LoRA against full fine-tuning"):
        run.cli("report", str(runs_root), "--output", str(report_dir))
    with run.step("Summarise: a row per fraction x method with strict/lenient F1 and parse statistics",
                  "a generative extractor fails in ways an encoder does not; the parse columns show how often "
                  "answers were usable at all"):
        rows = summary.collect(runs_root)
        table = summary.write(report_dir, rows, s)
        say(f"      wrote {report_dir / summary.TABLE_FILE} and {report_dir / summary.NOTE_FILE}")
    print(table)
