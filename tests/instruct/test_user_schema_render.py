"""A user's brat schema (``--dataset brat:my.yaml``) in render and mix: its label definitions reach the
prompts, every split lists the same labels (not only those seen in that split), and evaluation reads the
schema back from the records."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from clinie_nemo.corpus.datasets import EXAMPLE_SCHEMA
from tests.cli_plugin import cli

SENTINEL = "a medication name (SITE GUIDELINE 4.2)"


def _site(tmp_path: Path) -> tuple[Path, Path]:
    schema = yaml.safe_load(Path(EXAMPLE_SCHEMA).read_text(encoding="utf-8"))
    schema["name"] = "mysite"
    schema["entity_labels"]["Drug"] = SENTINEL
    schema["entity_labels"]["Allergen"] = "a substance the patient is allergic to (never annotated in these notes)"
    path = tmp_path / "my_schema.yaml"
    path.write_text(yaml.safe_dump(schema, sort_keys=False), encoding="utf-8")
    assert cli("synth", "--dataset", "ufhealth", "--docs", "12", "--seed", "4", "--output",
               tmp_path / "release").returncode == 0
    r = cli("convert", "--dataset", f"brat:{path}", "--input", tmp_path / "release", "--output", tmp_path / "docs")
    assert r.returncode == 0, r.stderr
    return path, tmp_path / "docs"


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_render_each_split_with_the_user_schema(tmp_path: Path) -> None:
    schema, docs = _site(tmp_path)
    prompts = {}
    for split in ("train", "test"):
        out = tmp_path / f"{split}.jsonl"
        r = cli("render", "--corpus", docs / f"{split}.jsonl", "--task", "ce", "--format", "json",
                "--dataset", f"brat:{schema}", "--output", out)
        assert r.returncode == 0, r.stderr
        records = _records(out)
        assert records and all(rec["dataset"] == "mysite" for rec in records)
        assert all(rec["schema"] == f"brat:{schema.resolve()}" for rec in records)
        prompts[split] = records[0]["input"]
    for prompt in prompts.values():
        assert SENTINEL in prompt and "Allergen" in prompt  # definitions, and a label no note has
    labels = [{line.split(":")[0].strip("- ") for line in p.splitlines() if "Allergen" in line or "Drug" in line}
              for p in prompts.values()]
    assert labels[0] == labels[1]
    # evaluation reads the schema back from the records: the gold as a prediction scores 1.0
    test = _records(tmp_path / "test.jsonl")
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps({"id": rec["id"], "prediction": rec["output"]}) + "\n" for rec in test),
                     encoding="utf-8")
    r = cli("evaluate", "--records", tmp_path / "test.jsonl", "--predictions", preds, "--corpus",
            docs / "test.jsonl", "--json", tmp_path / "scores.json")
    assert r.returncode == 0, r.stderr
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["entities"]["strict"]["f1"] == 1.0 and scores["entities"]["strict"]["fp"] == 0


def test_mixture_entry_with_a_user_schema(tmp_path: Path) -> None:
    schema, docs = _site(tmp_path)
    config = {"name": "site", "tasks": ["ce"], "format": "json", "max_tokens": 1024, "seed": 1,
              "validation_fraction": 0.2,
              "datasets": [{"name": "mysite", "train": str(docs / "train.jsonl"), "test": str(docs / "test.jsonl"),
                            "schema": str(schema)}]}
    (tmp_path / "mix.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    r = cli("mix", tmp_path / "mix.yaml", "--output", tmp_path / "mix")
    assert r.returncode == 0, r.stderr
    for split in ("training", "test"):
        records = _records(tmp_path / "mix" / f"{split}.jsonl")
        assert records and all(SENTINEL in rec["input"] and "Allergen" in rec["input"] for rec in records)
        assert all(rec["dataset"] == "mysite" and rec["schema"] == f"brat:{schema.resolve()}" for rec in records)
