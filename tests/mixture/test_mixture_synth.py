"""`mix` end to end on synthetic releases of the five datasets (clinie_nemo.corpus.synth -> convert_dataset ->
documents JSONL -> mix): files whose fields are what NeMo's and Megatron-Bridge's SFT JSONL loaders read,
a leave-one-dataset-out test split, and a complete round trip in the json format."""

from __future__ import annotations

import json
import math

import pytest

from clinie_nemo.corpus import synth
from clinie_nemo.corpus.datasets.convert import convert_dataset
from tests.cli_plugin import cli
from tests.mixture_fixtures import check_sft_loader_fields

FIVE = ("i2b2_2010", "n2c2_2018", "n2c2_2022_sdoh", "radgraph", "ufhealth")


@pytest.fixture(scope="module")
def synthetic_docs(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth_mix")
    for name in FIVE:
        synth.generate(name, root / "native" / name, 8, seed=5)
        convert_dataset(name, root / "native" / name, root / "docs" / name, show_progress=False)
    return root


def _config(root, **top):
    datasets = []
    for name in FIVE:
        entry = {"name": name, "train": f"docs/{name}/train.jsonl", "test": f"docs/{name}/test.jsonl"}
        if (root / "docs" / name / "dev.jsonl").exists():
            entry["validation"] = f"docs/{name}/dev.jsonl"  # RadGraph ships a dev split
        datasets.append(entry)
    data = {"name": "synth", "seed": 3, "datasets": datasets, "tasks": ["ce", "re_pair", "re_e2e"],
            "format": "json", "max_tokens": 1536, "validation_fraction": 0.2, **top}
    path = root / f"mix-{len(list(root.glob('mix-*.yaml')))}.yaml"
    path.write_text(json.dumps(data))  # JSON is YAML
    return path


def test_mix_synthetic_five_datasets_loader_fields(synthetic_docs, tmp_path):
    config = _config(synthetic_docs, held_out="radgraph", held_out_fraction=0.25, few_shot_k=1)
    result = cli("mix", config, "--output", tmp_path / "out", "--quiet")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    for split in ("training", "validation", "test"):
        check_sft_loader_fields(out / f"{split}.jsonl")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["renderer"] == "clinie_nemo.instruct.render"
    assert set(manifest["splits"]["training"]["by_dataset"]) == set(FIVE)  # radgraph: its 25%
    n_train = len((synthetic_docs / "docs" / "radgraph" / "train.jsonl").read_text().splitlines())
    assert manifest["selection"]["radgraph"]["training_documents"] == math.ceil(0.25 * n_train)
    assert set(manifest["splits"]["test"]["by_dataset"]) == {"radgraph"}
    assert "radgraph" not in manifest["splits"]["validation"]["by_dataset"]
    assert set(manifest["splits"]["training"]["by_task"]) == {"ce", "re_pair", "re_e2e"}
    rt = manifest["roundtrip"]
    assert rt["entities"]["gold"] > 0 and rt["entities"]["recovered"] == rt["entities"]["gold"]
    assert rt["relations"]["recovered"] == rt["relations"]["gold"] and not rt["failures"]
    assert "round trip entities" in result.stderr
    assert all(r["few_shot"] == 1 for r in map(json.loads, (out / "test.jsonl").read_text().splitlines()))


def test_zero_shot_fold_has_no_held_out_training(synthetic_docs, tmp_path):
    config = _config(synthetic_docs, held_out="n2c2_2022_sdoh", held_out_fraction=0.0, tasks=["ce"])
    result = cli("mix", config, "--output", tmp_path / "out", "--quiet")
    assert result.returncode == 0, result.stderr
    training = [json.loads(line) for line in (tmp_path / "out" / "training.jsonl").read_text().splitlines()]
    assert training and "n2c2_2022_sdoh" not in {r["dataset"] for r in training}
    test = [json.loads(line) for line in (tmp_path / "out" / "test.jsonl").read_text().splitlines()]
    assert {r["dataset"] for r in test} == {"n2c2_2022_sdoh"}


def test_chat_messages_form_for_bridge_chat_dataset(synthetic_docs, tmp_path):
    """messages: true writes the form Megatron-Bridge's GPTSFTChatDataset reads with
    use_hf_tokenizer_chat_template (src/megatron/bridge/data/datasets/sft.py @ 355cef457010f70533a5c83f1ed97899d0e0af43:
    {"messages": [{"role", "content"}...]}, every other key kept as metadata)."""
    config = _config(synthetic_docs, held_out="ufhealth", held_out_fraction=0.5, few_shot_k=1, tasks=["ce"],
                     messages=True)
    result = cli("mix", config, "--output", tmp_path / "out", "--quiet")
    assert result.returncode == 0, result.stderr
    for split in ("training", "validation", "test"):
        for line in (tmp_path / "out" / f"{split}.jsonl").read_text().splitlines():
            example = json.loads(line)
            assert "input" not in example and "output" not in example
            roles = [m["role"] for m in example["messages"]]
            assert roles == ["user", "assistant"] and all(isinstance(m["content"], str) for m in example["messages"])
            metadata = {k: v for k, v in example.items() if k not in ("conversations", "messages")}
            assert {"id", "dataset", "task", "doc_id", "chunk"} <= set(metadata)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["splits"]["test"]["tokens"]["min"] > 0
    stats = cli("stats", tmp_path / "out" / "training.jsonl", "--seq-length", "4096")
    assert stats.returncode == 0 and "packed FFD (4096)" in stats.stdout


def test_few_shot_examples_leave_room_for_long_notes(tmp_path):
    """Discharge-summary-length notes: without a smaller chunk budget for the examples, one example chunk
    would fill max_tokens and no test prompt could fit."""
    root = tmp_path
    for name, length in (("n2c2_2018", "n2c2"), ("radgraph", "short")):
        synth.generate(name, root / "native" / name, 6, seed=2, length=length)
        convert_dataset(name, root / "native" / name, root / "docs" / name, show_progress=False)
    data = {"datasets": [{"name": n, "train": f"docs/{n}/train.jsonl", "test": f"docs/{n}/test.jsonl"}
                         for n in ("n2c2_2018", "radgraph")],
            "tasks": ["ce"], "max_tokens": 1536, "held_out": "n2c2_2018", "few_shot_k": 2}
    (root / "m.yaml").write_text(json.dumps(data))
    result = cli("mix", root / "m.yaml", "--output", root / "out", "--quiet")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((root / "out" / "manifest.json").read_text())
    assert len(manifest["few_shot_examples"]["n2c2_2018/ce"]) == 2
    assert 0 < manifest["splits"]["test"]["tokens"]["max"] <= 1536
    test = [json.loads(line) for line in (root / "out" / "test.jsonl").read_text().splitlines()]
    assert test and all(r["few_shot"] == 2 for r in test)
