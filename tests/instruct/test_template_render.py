"""Rendering the test split once per template (`render --all-templates`, mixture `test_all_templates`):
every chunk under every template, unique ids, byte-determinism, and gold-as-prediction scoring 1.0 per
template with zero spread."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from clinie_nemo.core import docs_jsonl
from clinie_nemo.core.errors import ConfigError
from clinie_nemo.instruct.render import RenderOptions, render_documents
from clinie_nemo.instruct.templates import templates_for
from clinie_nemo.mixture.build import build_mixture
from clinie_nemo.mixture.config import dump_mixture_config, load_mixture_config, mixture_config_from_dict
from tests.cli_plugin import cli
from tests.instruct_fixtures import long_document
from tests.mixture_fixtures import make_corpora, mixture_yaml

MAX_TOKENS = {"ce": 160, "re_pair": 200, "re_e2e": 260}


@pytest.mark.parametrize("task", ["ce", "re_pair", "re_e2e"])
def test_every_chunk_once_per_template(task):
    docs = [long_document(30, "l1"), long_document(12, "l2")]
    names = [t.name for t in templates_for(task)]
    every = render_documents(docs, RenderOptions(task=task, format="lines", max_tokens=MAX_TOKENS[task],
                                                 all_templates=True))
    rotated = render_documents(docs, RenderOptions(task=task, format="lines", max_tokens=MAX_TOKENS[task],
                                                   template_policy="rotate"))
    assert every.chunks > 2 and every.chunks == rotated.chunks  # the same chunk boundaries as rotate
    ids = [r["id"] for r in every.records]
    assert len(set(ids)) == len(ids) == len(names) * len(rotated.records)
    base = Counter(r["id"].rsplit("@", 1)[0] for r in every.records)
    assert set(base) == {r["id"] for r in rotated.records} and set(base.values()) == {len(names)}
    per_chunk = Counter((r["doc_id"], tuple(r["chunk"]), r["template"]) for r in every.records)
    chunks = {(d, c) for d, c, _ in per_chunk}
    for doc_id, chunk in chunks:  # every chunk under every template, with the same records under each
        counts = {per_chunk[(doc_id, chunk, name)] for name in names}
        assert len(counts) == 1 and counts != {0}
    assert all(r["id"].endswith("@" + r["template"]) for r in every.records)
    outputs = {}
    for r in every.records:  # the target does not depend on the template
        outputs.setdefault(r["id"].rsplit("@", 1)[0], set()).add(r["output"])
    assert all(len(v) == 1 for v in outputs.values())
    # the round trip decodes each item once: the same losses and failures as one template per item
    assert every.roundtrip.records == len(ids) and every.roundtrip.lines()[1:] == rotated.roundtrip.lines()[1:]


def test_all_templates_and_a_named_template_conflict():
    with pytest.raises(ConfigError):
        render_documents([long_document(3)], RenderOptions(task="ce", template="ce_extract", all_templates=True))


def test_cli_all_templates_is_byte_deterministic_and_scores_one_per_template(tmp_path):
    docs_jsonl.write(tmp_path / "docs.jsonl", [long_document(20, "l1"), long_document(9, "l2")])
    outs = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    for out in outs:
        r = cli("render", "--corpus", tmp_path / "docs.jsonl", "--task", "ce", "--format", "json",
                "--max-tokens", "200", "--all-templates", "--output", out)
        assert r.returncode == 0, r.stderr
    assert outs[0].read_bytes() == outs[1].read_bytes()
    bad = cli("render", "--corpus", tmp_path / "docs.jsonl", "--task", "ce", "--all-templates", "--rotate",
              "--output", tmp_path / "c.jsonl")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and not (tmp_path / "c.jsonl").exists()
    records = [json.loads(line) for line in outs[0].read_text().splitlines()]
    (tmp_path / "pred.jsonl").write_text("".join(json.dumps({"id": r["id"], "prediction": r["output"]}) + "\n"
                                                 for r in records))
    r = cli("evaluate", "--records", outs[0], "--predictions", tmp_path / "pred.jsonl", "--corpus",
            tmp_path / "docs.jsonl", "--json", tmp_path / "scores.json", "--bootstrap", "30")
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "scores.json").read_text())
    gold_entities = 2 * (20 + 9)
    for name in (t.name for t in templates_for("ce")):
        assert s["by_template"][name]["entities"]["strict"] == {"tp": gold_entities, "fp": 0, "fn": 0,
                                                                 "precision": 1.0, "recall": 1.0, "f1": 1.0}
    # identical answers under every template: no spread in any document resample either
    assert s["template_spread"]["entities"] == {"min": 1.0, "max": 1.0, "mean": 1.0, "sd": 0.0, "templates": 4,
                                                "sd_ci95": [0.0, 0.0]}
    assert s["bootstrap"]["unit"] == "document x template"
    # each (document, template) is its own unit: the headline sums the templates, the gold once per template
    assert s["template_coverage"] == "all" and s["by_task"]["ce"]["documents"] == 2 * 4
    assert s["entities"]["strict"]["tp"] == 4 * gold_entities and s["entities"]["strict"]["fp"] == 0
    assert "== by template" in r.stdout


def test_mixture_config_field_validated_and_round_trips(tmp_path):
    base = {"datasets": [{"name": "a", "train": "a/train.jsonl", "test": "a/test.jsonl"}]}
    assert mixture_config_from_dict(base).test_all_templates is False
    with pytest.raises(ConfigError, match=r"test_all_templates: expected true or false"):
        mixture_config_from_dict({**base, "test_all_templates": "yes"})
    with pytest.raises(ConfigError, match=r"valid keys:.*test_all_templates"):
        mixture_config_from_dict({**base, "test_all_template": True})
    config = mixture_config_from_dict({**base, "test_all_templates": True}, base_dir=tmp_path)
    path = tmp_path / "m.yaml"
    path.write_text(dump_mixture_config(config, path))
    assert load_mixture_config(path).test_all_templates is True


def test_mixture_renders_only_the_test_split_once_per_template(tmp_path):
    paths = make_corpora(tmp_path, {"n2c2_2018": (8, 3), "i2b2_2010": (8, 3)})
    plain = build_mixture(load_mixture_config(mixture_yaml(tmp_path, paths, name="p.yaml")), show_progress=False)
    every = build_mixture(load_mixture_config(mixture_yaml(tmp_path, paths, name="e.yaml", test_all_templates=True)),
                          show_progress=False)
    assert every.training == plain.training and every.validation == plain.validation
    per_task = Counter(r["task"] for r in plain.test)
    assert Counter(r["task"] for r in every.test) == {t: n * len(templates_for(t)) for t, n in per_task.items()}
    ids = [r["id"] for r in every.test]
    assert len(ids) == len(set(ids))
    assert {r["id"].rsplit("@", 1)[0] for r in every.test} == {r["id"] for r in plain.test}
