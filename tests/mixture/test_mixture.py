"""`mix`: determinism, weights and caps, nested held-out fractions, leave-one-dataset-out splits, few-shot
sources, validation carve, manifest, and the record fields NeMo's and Megatron-Bridge's SFT loaders read."""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest

from clinie_nemo.core import docs_jsonl
from clinie_nemo.core.fileio import sha256_file
from clinie_nemo.mixture.build import build_mixture, write_mixture
from clinie_nemo.mixture.config import load_mixture_config
from clinie_nemo.mixture.select import round_half_up
from tests.cli_plugin import cli
from tests.mixture_fixtures import FIVE_DATASETS, check_sft_loader_fields, make_corpora, mixture_yaml

N_TRAIN, N_TEST = 40, 6


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("mix")
    return root, make_corpora(root, {name: (N_TRAIN, N_TEST) for name in FIVE_DATASETS})


def _mix(corpora, name="m.yaml", **top):
    root, paths = corpora
    return build_mixture(load_mixture_config(mixture_yaml(root, paths, name=name, **top)), show_progress=False)


def _base_id(record):
    return record.get("copy_of", record["id"])


def test_same_config_same_bytes_via_cli(corpora, tmp_path):
    root, paths = corpora
    config = mixture_yaml(root, paths, name="det.yaml", held_out="radgraph", held_out_fraction=0.2, few_shot_k=1,
                          datasets_extra={"i2b2_2010": {"weight": 1.5}})
    outs = [tmp_path / "one", tmp_path / "two"]
    for out in outs:
        result = cli("mix", config, "--output", out, "--quiet")
        assert result.returncode == 0, result.stderr
        assert "training" in result.stdout
    names = sorted(p.name for p in outs[0].iterdir())
    assert names == ["manifest.json", "test.jsonl", "training.jsonl", "validation.jsonl"]
    for name in names:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    again = cli("mix", config, "--output", outs[0], "--quiet")
    assert again.returncode == 2 and "--force" in again.stderr and "Traceback" not in again.stderr
    assert cli("mix", config, "--output", outs[0], "--quiet", "--force").returncode == 0


def test_weights_and_caps_give_exact_counts(corpora):
    extra = {"i2b2_2010": {"weight": 2}, "n2c2_2018": {"weight": 0.5}, "radgraph": {"weight": 1.5},
             "ufhealth": {"cap": 7}, "n2c2_2022_sdoh": {"weight": 0}}
    root, paths = corpora
    plain = build_mixture(load_mixture_config(mixture_yaml(root, paths, name="w1.yaml")), show_progress=False)
    weighted = build_mixture(load_mixture_config(mixture_yaml(root, paths, name="w2.yaml", datasets_extra=extra)),
                             show_progress=False)
    base = Counter(r["dataset"] for r in plain.training)  # records per dataset at weight 1
    times = Counter(_base_id(r) for r in weighted.training)
    per_ds: dict[str, Counter] = {}
    for rid, n in times.items():
        per_ds.setdefault(rid.split("/")[0], Counter())[n] += 1
    assert per_ds["i2b2_2010"] == Counter({2: base["i2b2_2010"]})  # every record exactly twice
    assert per_ds["n2c2_2018"] == Counter({1: round_half_up(0.5 * base["n2c2_2018"])})  # half, once
    assert per_ds["radgraph"] == Counter({1: base["radgraph"] - round_half_up(0.5 * base["radgraph"]),
                                          2: round_half_up(0.5 * base["radgraph"])})
    assert per_ds["ufhealth"] == Counter({1: 7})
    assert "n2c2_2022_sdoh" not in per_ds
    ids = [r["id"] for r in weighted.training]
    assert len(ids) == len(set(ids)), "record ids stay unique (copies are <id>#<k>)"
    copies = [r for r in weighted.training if "copy_of" in r]
    assert copies and all(r["id"] == f"{r['copy_of']}#1" for r in copies)


def test_nested_fractions_and_held_out_document_counts(corpora):
    chosen = {}
    for f in (0.0, 0.05, 0.1, 0.2, 0.5, 1.0):
        out = _mix(corpora, name=f"f{f}.yaml", held_out="n2c2_2018", held_out_fraction=f)
        docs = {r["doc_id"] for r in out.training if r["dataset"] == "n2c2_2018"}
        assert len(docs) == math.ceil(f * N_TRAIN - 1e-9)
        assert out.manifest["selection"]["n2c2_2018"]["training_documents"] == len(docs)
        assert {r["dataset"] for r in out.test} == {"n2c2_2018"}
        assert "n2c2_2018" not in {r["dataset"] for r in out.validation}
        chosen[f] = docs
    assert chosen[0.0] == set()  # zero-shot: the held-out dataset is absent from training
    fractions = sorted(chosen)
    for small, large in zip(fractions, fractions[1:]):
        assert chosen[small] < chosen[large], (small, large)
    assert chosen[1.0] == {f"train-{i:04d}" for i in range(N_TRAIN)}


def test_other_datasets_unchanged_across_fractions(corpora):
    a = _mix(corpora, name="o1.yaml", held_out="radgraph", held_out_fraction=0.0)
    b = _mix(corpora, name="o2.yaml", held_out="radgraph", held_out_fraction=0.5)
    others_a = sorted(r["id"] for r in a.training if r["dataset"] != "radgraph")
    others_b = sorted(r["id"] for r in b.training if r["dataset"] != "radgraph")
    assert others_a == others_b and [r["id"] for r in a.validation] == [r["id"] for r in b.validation]


def _shot_ids(out, dataset, task):
    return out.manifest["few_shot_examples"][f"{dataset}/{task}"]


def test_few_shot_examples_come_from_held_out_train_split(corpora):
    k = 3
    root, paths = corpora
    out = _mix(corpora, name="fs.yaml", held_out="ufhealth", held_out_fraction=0.0, few_shot_k=k, max_tokens=2048)
    assert out.test and all(r["dataset"] == "ufhealth" for r in out.test)
    train_ids = {d.id for d in docs_jsonl.read(paths["ufhealth"]["train"])}
    texts = {d.id: d.text for d in docs_jsonl.read(paths["ufhealth"]["train"])}
    for task in ("ce", "re_pair"):
        shots = _shot_ids(out, "ufhealth", task)
        assert len(shots) == k
        for shot in shots:
            dataset, doc_id, shot_task = shot.split("/")[:3]
            assert dataset == "ufhealth" and doc_id in train_ids and shot_task == task
    ce_shot_docs = [s.split("/")[1] for s in _shot_ids(out, "ufhealth", "ce")]
    for record in out.test:
        assert record["few_shot"] == k
        if record["task"] == "ce":  # the example notes (train split) are shown in every test prompt
            assert all(texts[d] in record["input"] for d in ce_shot_docs)
    # the k shots are the first documents of the nested fraction order: inside the 10% set (4 docs)
    tenth = _mix(corpora, name="fs10.yaml", held_out="ufhealth", held_out_fraction=0.1)
    tenth_docs = {r["doc_id"] for r in tenth.training if r["dataset"] == "ufhealth"}
    assert set(ce_shot_docs) <= tenth_docs
    assert all("few_shot" not in r for r in out.training + out.validation)


def test_few_shot_without_held_out_uses_each_datasets_own_train_split(corpora):
    out = _mix(corpora, name="fs_all.yaml", few_shot_k=2)
    assert {r["dataset"] for r in out.test} == set(FIVE_DATASETS)
    for name in FIVE_DATASETS:
        assert all(s.startswith(f"{name}/train-") for s in _shot_ids(out, name, "ce"))
    assert all(r["few_shot"] == 2 for r in out.test)
    assert all("few_shot" not in r for r in out.training + out.validation)


def test_validation_carved_by_seed_and_disjoint(corpora):
    out = _mix(corpora, name="v.yaml", validation_fraction=0.25)
    for name in FIVE_DATASETS:
        train_docs = {r["doc_id"] for r in out.training if r["dataset"] == name}
        val_docs = {r["doc_id"] for r in out.validation if r["dataset"] == name}
        assert len(val_docs) == round_half_up(0.25 * N_TRAIN) and not train_docs & val_docs
        assert len(train_docs | val_docs) == N_TRAIN
    assert {r["dataset"] for r in out.test} == set(FIVE_DATASETS)  # no held_out: every test split
    other_seed = _mix(corpora, name="v2.yaml", validation_fraction=0.25, seed=8)
    assert {r["doc_id"] for r in other_seed.validation} != {r["doc_id"] for r in out.validation}


def test_manifest_hashes_counts_and_token_stats(corpora, tmp_path):
    root, paths = corpora
    config = load_mixture_config(mixture_yaml(root, paths, name="man.yaml", held_out="radgraph",
                                              held_out_fraction=0.1))
    out = write_mixture(config, tmp_path / "out", show_progress=False)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest == out.manifest
    for rel, info in manifest["inputs"].items():
        assert info["sha256"] == sha256_file(root / rel)
    # every file read is hashed: test splits too (one label schema per dataset covers all its splits)
    assert sorted(manifest["inputs"]) == sorted(f"{ds}/{split}.jsonl" for ds in FIVE_DATASETS
                                                for split in ("train", "test"))
    for split in ("training", "validation", "test"):
        lines = (tmp_path / "out" / f"{split}.jsonl").read_text().splitlines()
        s = manifest["splits"][split]
        assert s["records"] == len(lines) == sum(s["by_dataset"].values()) == sum(s["by_task"].values())
        t = s["tokens"]
        assert t["min"] <= t["p50"] <= t["p95"] <= t["max"] and t["min"] <= t["mean"] <= t["max"]
    assert manifest["seed"] == 7 and manifest["clinie_nemo_version"] and manifest["config"]["held_out"] == "radgraph"


def test_records_match_nemo_and_bridge_sft_loaders(corpora, tmp_path):
    root, paths = corpora
    config = load_mixture_config(mixture_yaml(root, paths, name="nemo.yaml", held_out="i2b2_2010",
                                              held_out_fraction=0.05, few_shot_k=1))
    write_mixture(config, tmp_path / "out", show_progress=False)
    for split in ("training", "validation", "test"):
        check_sft_loader_fields(tmp_path / "out" / f"{split}.jsonl")


def test_bad_corpus_exits_2_without_output(tmp_path):
    corpora = make_corpora(tmp_path / "c", {"a": (4, 2), "b": (4, 2)})
    train = corpora["a"]["train"]
    lines = train.read_text().splitlines()
    train.write_text("\n".join([*lines, lines[0]]) + "\n")  # a document id twice
    config = mixture_yaml(tmp_path, corpora)
    result = cli("mix", config, "--output", tmp_path / "out", "--quiet")
    assert result.returncode == 2 and "duplicate document ids (first: train-0000)" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()
    corpora["b"]["test"].unlink()
    corpora["a"]["test"].unlink()
    train.write_text("\n".join(lines) + "\n")
    result = cli("mix", config, "--output", tmp_path / "out", "--quiet")
    assert result.returncode == 2 and not (tmp_path / "out").exists()
    assert "a test: documents file not found" in result.stderr and "b test: documents file not found" in result.stderr
