"""convert_dataset / `convert --dataset`: synthetic releases of all five datasets read back by the real
readers into per-split JSONL with exact offsets, schema validation with located errors, --skip-invalid."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from clinie_nemo.core import docs_jsonl
from clinie_nemo.core.document import check_offsets, fragments_text
from clinie_nemo.core.errors import InputError
from clinie_nemo.corpus.datasets import convert_dataset, get, validate
from clinie_nemo.corpus.synth import GENERATOR_NAMES, generate
from tests.cli_plugin import cli

pytest.importorskip("clinie_nemo.corpus.readers", reason="the readers (issue 2, helper corpus) are not merged yet")

N_DOCS = 10
SPLITS = {"i2b2_2010": ["test", "train"], "n2c2_2018": ["test", "train"], "n2c2_2022_sdoh": ["test", "train"],
          "radgraph": ["dev", "test", "train"], "ufhealth": ["test", "train"]}


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("conv")
    out = {}
    for name in GENERATOR_NAMES:
        generate(name, root / name / "release", N_DOCS, seed=5)
        summary = convert_dataset(name, root / name / "release", root / name / "docs", show_progress=False)
        out[name] = (root / name, summary)
    return out


def _native_entity_count(name: str, release: Path) -> int:
    if name == "i2b2_2010":
        return sum(len(p.read_text().splitlines()) for p in release.rglob("*.con"))
    if name == "radgraph":
        total = 0
        for split in ("train", "dev", "test"):
            for report in json.loads((release / f"{split}.json").read_text()).values():
                total += len(report["labeler_1"]["entities"] if split == "test" else report["entities"])
        return total
    return sum(line.startswith("T") for p in release.rglob("*.ann") for line in p.read_text().splitlines())


@pytest.mark.parametrize("name", GENERATOR_NAMES)
def test_synthetic_release_converts_exactly(name, converted):
    root, summary = converted[name]
    spec = get(name)
    assert sorted(p.name for p in (root / "docs").glob("*.jsonl")) == [f"{s}.jsonl" for s in SPLITS[name]]
    n_docs = n_entities = 0
    for split in SPLITS[name]:
        for doc in docs_jsonl.read(root / "docs" / f"{split}.jsonl"):
            n_docs += 1
            n_entities += len(doc.entities)
            assert (doc.dataset, doc.split) == (name, split)
            assert check_offsets(doc) == []
            assert validate(doc, spec) == []
            for e in doc.entities:
                assert fragments_text(doc.text, e.spans) == e.text
    assert n_docs == N_DOCS == sum(s["documents"] for s in summary["splits"].values())
    assert n_entities == _native_entity_count(name, root / "release")
    assert json.loads((root / "docs" / "summary.json").read_text())["dataset"] == name


def test_hard_cases_survive_the_readers(converted):
    docs = [d for s in ("train", "test") for d in docs_jsonl.read(converted["n2c2_2018"][0] / "docs" / f"{s}.jsonl")]
    assert sum(e.is_discontinuous for d in docs for e in d.entities) > 0
    crlf = [d for d in docs if "\r\n" in d.text]
    assert crlf and all(d.text[s:e] == ent.text for d in crlf for ent in d.entities for s, e in ent.spans[:1]
                        if not ent.is_discontinuous)
    assert any(ord(c) > 127 for d in docs for e in d.entities for c in e.text)  # "µg"
    sdoh = docs_jsonl.read(converted["n2c2_2022_sdoh"][0] / "docs" / "train.jsonl")
    values = {v for d in sdoh for e in d.entities for _, v in e.attributes}
    assert {"current", "past", "none"} <= values
    i2b2 = list(docs_jsonl.read(converted["i2b2_2010"][0] / "docs" / "train.jsonl"))
    assert {v for d in i2b2 for e in d.entities for _, v in e.attributes} >= {"present", "absent"}


def test_radgraph_test_split_reads_the_chosen_labeler(converted, tmp_path):
    root, _ = converted["radgraph"]
    first = list(docs_jsonl.read(root / "docs" / "test.jsonl"))
    convert_dataset("radgraph", root / "release", tmp_path / "l2", labeler="labeler_2", show_progress=False)
    second = list(docs_jsonl.read(tmp_path / "l2" / "test.jsonl"))
    assert [d.id for d in first] == [d.id for d in second]
    assert all(len(b.entities) == len(a.entities) - 1 for a, b in zip(first, second))


def _break_one_label(release: Path) -> tuple[Path, int]:
    ann = sorted((release / "train").glob("*.ann"))[2]
    lines = ann.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if "\tStrength " in line)
    lines[index] = lines[index].replace("\tStrength ", "\tDose ")
    ann.write_text("\n".join(lines) + "\n")
    return ann, index + 1


def test_unknown_label_exits_2_naming_file_line_and_label(tmp_path):
    generate("n2c2_2018", tmp_path / "rel", N_DOCS, seed=9)
    ann, line = _break_one_label(tmp_path / "rel")
    r = cli("convert", "--dataset", "n2c2_2018", "--input", tmp_path / "rel", "--output", tmp_path / "out")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"{ann}:{line}: unknown entity label 'Dose'" in r.stderr
    assert "valid labels: ADE, Dosage, Drug, Duration, Form, Frequency, Reason, Route, Strength" in r.stderr
    assert re.search(r"\| T\d+\tDose \d+ \d+\t", r.stderr)  # the offending .ann line, nothing of the note
    assert "not allowed between Dose and Drug" not in r.stderr and not (tmp_path / "out").exists()


def test_skip_invalid_drops_and_reports(tmp_path):
    generate("n2c2_2018", tmp_path / "rel", N_DOCS, seed=9)
    ann, line = _break_one_label(tmp_path / "rel")
    r = cli("convert", "--dataset", "n2c2_2018", "--input", tmp_path / "rel", "--output", tmp_path / "out",
            "--skip-invalid")
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "out" / "skipped.json").read_text())
    assert report["skipped"] == 1
    problem = report["problems"][0]
    assert (problem["path"], problem["line"], problem["split"]) == (str(ann), line, "train")
    docs = {d.id: d for d in docs_jsonl.read(tmp_path / "out" / "train.jsonl")}
    doc = docs[ann.stem]
    assert all(e.label != "Dose" for e in doc.entities)
    assert {r.head for r in doc.relations} <= {e.id for e in doc.entities}
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["splits"]["train"]["skipped_annotations"] == 2  # the entity and its relation


def test_layout_and_overwrite_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="n2c2_2018 release layout not found .*train: train or training_20180910"):
        convert_dataset("n2c2_2018", tmp_path / "empty", tmp_path / "out")
    generate("n2c2_2018", tmp_path / "rel", 4, seed=1)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    r = cli("convert", "--dataset", "n2c2_2018", "--input", tmp_path / "rel", "--output", tmp_path / "out")
    assert r.returncode == 2 and "--force" in r.stderr
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"
    r = cli("convert", "--dataset", "nope", "--input", tmp_path / "rel", "--output", tmp_path / "o2")
    assert r.returncode == 2 and "valid: i2b2_2010, n2c2_2018, n2c2_2022_sdoh, radgraph, ufhealth" in r.stderr


def test_user_schema_by_option_and_by_prefix(tmp_path):
    generate("ufhealth", tmp_path / "rel", 6, seed=2)
    schema = tmp_path / "rel" / "schema.yaml"
    narrow = tmp_path / "narrow.yaml"
    narrow.write_text(schema.read_text().replace("  BodySite: an anatomical location\n", "")
                      .replace("[[Problem, BodySite], [Procedure, BodySite]]", "[[Problem, Problem]]"))
    ok = convert_dataset(f"brat:{schema}", tmp_path / "rel", tmp_path / "a", show_progress=False)
    assert ok["dataset"] == "ufhealth" and ok["splits"]["train"]["documents"] > 0
    r = cli("convert", "--dataset", "ufhealth", "--schema", narrow, "--input", tmp_path / "rel",
            "--output", tmp_path / "b")
    assert r.returncode == 2 and "unknown entity label 'BodySite'" in r.stderr


def test_invalid_sdoh_value_points_at_the_attribute_line_and_skip_drops_the_event(tmp_path):
    generate("n2c2_2022_sdoh", tmp_path / "rel", 6, seed=4)
    ann = tmp_path / "rel" / "train" / "00000.ann"
    lines = ann.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if line.endswith(" current"))
    lines[index] = lines[index][: -len("current")] + "sometimes"
    ann.write_text("\n".join(lines) + "\n")
    r = cli("convert", "--dataset", "n2c2_2022_sdoh", "--input", tmp_path / "rel", "--output", tmp_path / "out")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"{ann}:{index + 1}: attribute 'StatusTimeVal'" in r.stderr and "unknown value 'sometimes'" in r.stderr
    assert "valid values: current, future, none, past" in r.stderr
    ok = convert_dataset("n2c2_2022_sdoh", tmp_path / "rel", tmp_path / "out", skip_invalid=True,
                         show_progress=False)
    assert ok["skipped"] == 1 and ok["splits"]["train"]["skipped_annotations"] == 2  # the Status and its event
    doc = next(d for d in docs_jsonl.read(tmp_path / "out" / "train.jsonl") if d.id == "00000")
    assert validate(doc, get("n2c2_2022_sdoh")) == [] and doc.events
