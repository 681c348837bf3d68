"""`clinie-nemo convert` and `clinie-nemo export` end to end through the real CLI."""

from __future__ import annotations

import json

import pytest

from clinie_nemo.core import docs_jsonl
from clinie_nemo.corpus.readers import READERS
from clinie_nemo.corpus.writers import WRITERS
from tests.cli_plugin import cli
from tests.corpus_fixtures import FIXTURES

INPUTS = {"brat": FIXTURES / "brat", "i2b2": FIXTURES / "i2b2", "radgraph": FIXTURES / "radgraph/train.json",
          "pubtator": FIXTURES / "pubtator", "bioc": FIXTURES / "bioc/cdr_sample.xml"}


def test_convert_brat_entity_count_equals_t_lines(tmp_path):
    out = tmp_path / "docs.jsonl"
    res = cli("convert", "--format", "brat", "--input", FIXTURES / "brat", "--output", out, "--name", "demo")
    assert res.returncode == 0, res.stderr
    t_lines = sum(1 for ann in (FIXTURES / "brat").rglob("*.ann")
                  for line in ann.read_text(encoding="utf-8-sig").splitlines() if line.startswith("T"))
    docs = list(docs_jsonl.read(out))  # validates every offset and reference
    assert sum(len(d.entities) for d in docs) == t_lines == 24
    assert {d.dataset for d in docs} == {"demo"}
    assert f"{len(docs)} documents, {t_lines} entities" in res.stderr


@pytest.mark.parametrize("fmt", sorted(INPUTS))
def test_convert_every_format_matches_the_library(tmp_path, fmt):
    out = tmp_path / "docs.jsonl"
    res = cli("convert", "--format", fmt, "--input", INPUTS[fmt], "--output", out)
    assert res.returncode == 0, res.stderr
    assert list(docs_jsonl.read(out)) == list(READERS[fmt].read(INPUTS[fmt]))


def test_convert_radgraph_labeler_and_brat_notes_flags(tmp_path):
    out = tmp_path / "rg.jsonl"
    assert cli("convert", "--format", "radgraph", "--input", FIXTURES / "radgraph/test.json", "--output", out,
               "--labeler", "labeler_2").returncode == 0
    assert [d.metadata["labeler"] for d in docs_jsonl.read(out)] == ["labeler_2"]
    out = tmp_path / "brat.jsonl"
    assert cli("convert", "--format", "brat", "--input", FIXTURES / "brat", "--output", out,
               "--drop-notes").returncode == 0
    assert all("notes" not in d.metadata for d in docs_jsonl.read(out))


def test_format_and_dataset_are_mutually_exclusive(tmp_path):
    res = cli("convert", "--format", "brat", "--dataset", "n2c2_2018", "--input", "x", "--output", "y")
    assert res.returncode == 2 and "not allowed with" in res.stderr
    res = cli("convert", "--format", "nope", "--input", "x", "--output", "y")
    assert res.returncode == 2 and "brat" in res.stderr


def test_export_brat_then_convert_back_is_identical(tmp_path):
    docs = list(READERS["brat"].read(FIXTURES / "brat"))
    src = tmp_path / "docs.jsonl"
    docs_jsonl.write(src, docs)
    res = cli("export", "--format", "brat", "--input", src, "--output", tmp_path / "view")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "view/sdoh/note1.ann").is_file()
    assert (tmp_path / "view/sdoh/note1.txt").read_bytes() == (FIXTURES / "brat/sdoh/note1.txt").read_bytes()
    assert list(READERS["brat"].read(tmp_path / "view")) == docs
    again = cli("export", "--format", "brat", "--input", src, "--output", tmp_path / "view")
    assert again.returncode == 2 and "--force" in again.stderr
    assert cli("export", "--format", "brat", "--input", src, "--output", tmp_path / "view",
               "--force").returncode == 0


def test_export_renumbers_ids_brat_cannot_parse(tmp_path):
    docs = list(READERS["radgraph"].read(FIXTURES / "radgraph/train.json"))  # entity ids "1", "2", ...
    WRITERS["brat"].write(docs, tmp_path / "view")
    back = list(READERS["brat"].read(tmp_path / "view"))
    assert [e.id for e in back[0].entities][:2] == ["T1", "T2"]
    assert [(e.label, e.spans) for e in back[0].entities] == [(e.label, e.spans) for e in docs[0].entities]
    assert len(back[0].relations) == len(docs[0].relations)


def test_export_pubtator_round_trips_through_the_reader(tmp_path):
    docs = list(READERS["pubtator"].read(FIXTURES / "pubtator"))
    src = tmp_path / "docs.jsonl"
    docs_jsonl.write(src, docs)
    out = tmp_path / "out.pubtator"
    res = cli("export", "--format", "pubtator", "--input", src, "--output", out)
    assert res.returncode == 0, res.stderr
    assert list(READERS["pubtator"].read(out)) == docs


def test_export_jsonl_and_skip_report_json_shape(tmp_path):
    src = tmp_path / "docs.jsonl"
    docs_jsonl.write(src, READERS["bioc"].read(FIXTURES / "bioc"))
    assert cli("export", "--format", "jsonl", "--input", src, "--output", tmp_path / "copy.jsonl").returncode == 0
    assert (tmp_path / "copy.jsonl").read_text() == src.read_text()
    out = tmp_path / "ok.jsonl"
    assert cli("convert", "--format", "bioc", "--input", FIXTURES / "bioc", "--output", out,
               "--skip-invalid").returncode == 0
    assert json.loads((tmp_path / "ok.skipped.json").read_text()) == {"skipped": 0, "problems": []}
