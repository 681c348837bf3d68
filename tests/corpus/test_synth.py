"""Synthetic corpora: native files with exact offsets, schema-valid labels, deterministic bytes, and the
hard cases present. Checked straight from the native files (tests/datasets_fixtures.py); the round trip
through the project's readers is in tests/corpus/test_convert_dataset.py."""

from __future__ import annotations

import pytest

from clinie_nemo.core.errors import ConfigError
from clinie_nemo.corpus.synth import GENERATOR_NAMES, generate
from tests.cli_plugin import cli
from tests.datasets_fixtures import (
    check_brat_release,
    check_i2b2_release,
    check_radgraph_release,
    tree_digest,
)

N_DOCS = 12


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    return {name: generate(name, root / name, N_DOCS, seed=11) and root / name for name in GENERATOR_NAMES}


@pytest.mark.parametrize("name", GENERATOR_NAMES)
def test_same_seed_same_bytes_other_seed_other_bytes(name, releases, tmp_path):
    generate(name, tmp_path / "again", N_DOCS, seed=11)
    generate(name, tmp_path / "other", N_DOCS, seed=12)
    assert tree_digest(tmp_path / "again") == tree_digest(releases[name])
    assert tree_digest(tmp_path / "other") != tree_digest(releases[name])


@pytest.mark.parametrize("name", ["n2c2_2018", "n2c2_2022_sdoh", "ufhealth"])
def test_brat_releases_exact_valid_and_hard(name, releases):
    root = releases[name]
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["test", "train"]
    assert len(list((root / "test").glob("*.ann"))) == N_DOCS // 5
    c = check_brat_release(root, name)
    assert c["documents"] == N_DOCS
    for case in ("crlf_files", "crlf_ann_files", "unicode_files", "repeated_strings", "cross_sentence",
                 "overlapping", "entities_at_line_end" if name != "n2c2_2022_sdoh" else "documents"):
        assert c[case] > 0, (name, case, c)
    if name == "n2c2_2018":
        assert c["discontinuous"] > 0 and c["relations"] > 0
    if name == "ufhealth":
        assert c["discontinuous"] > 0 and c["attributes"] > 0
        assert (root / "schema.yaml").is_file()
    if name == "n2c2_2022_sdoh":
        assert c["events"] > 0 and c["attributes"] > 0 and c["trigger_shares_status_span"] > 0


def test_i2b2_release_exact_valid_and_hard(releases):
    root = releases["i2b2_2010"]
    for split in ("train", "test"):
        assert sorted(p.name for p in (root / split).iterdir()) == ["ast", "concept", "rel", "txt"]
    c = check_i2b2_release(root)
    assert c["documents"] == N_DOCS
    for case in ("relations", "assertions", "repeated_strings", "entities_at_line_end", "unicode_files",
                 "blank_lines"):
        assert c[case] > 0, (case, c)


def test_radgraph_release_exact_valid_and_hard(releases):
    root = releases["radgraph"]
    assert sorted(p.name for p in root.iterdir()) == ["dev.json", "test.json", "train.json"]
    c = check_radgraph_release(root)
    assert c["train_reports"] + c["dev_reports"] + c["test_reports"] == N_DOCS
    assert min(c["dev_reports"], c["test_reports"]) >= 1
    for case in ("relations", "multi_token", "cross_sentence", "repeated_strings", "labeler_disagreements"):
        assert c[case] > 0, (case, c)


def test_n2c2_length_mode_gives_realistic_notes(tmp_path):
    summary = generate("n2c2_2018", tmp_path / "long", 20, seed=3, length="n2c2")
    sizes = [p.stat().st_size for p in (tmp_path / "long").rglob("*.txt")]
    assert min(sizes) >= 3000 and max(sizes) <= 7500, sizes
    assert summary["documents"] == 20
    check_brat_release(tmp_path / "long", "n2c2_2018")


def test_unknown_dataset_and_bad_length_fail_cleanly(tmp_path):
    with pytest.raises(ConfigError, match="valid: i2b2_2010, n2c2_2018"):
        generate("mimic", tmp_path / "x", 3, seed=1)
    with pytest.raises(ConfigError, match="valid: short, n2c2"):
        generate("n2c2_2018", tmp_path / "y", 3, seed=1, length="huge")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_synth_cli_writes_refuses_overwrite_and_forces(tmp_path):
    out = tmp_path / "sdoh"
    r = cli("synth", "--dataset", "n2c2_2022_sdoh", "--docs", "6", "--seed", "2", "--output", out)
    assert r.returncode == 0, r.stderr
    assert len(list(out.rglob("*.ann"))) == 6
    digest = tree_digest(out)
    again = cli("synth", "--dataset", "n2c2_2022_sdoh", "--docs", "6", "--seed", "3", "--output", out)
    assert again.returncode == 2 and "--force" in again.stderr and "Traceback" not in again.stderr
    assert tree_digest(out) == digest
    forced = cli("synth", "--dataset", "n2c2_2022_sdoh", "--docs", "6", "--seed", "3", "--output", out, "--force")
    assert forced.returncode == 0 and tree_digest(out) != digest
    bad = cli("synth", "--dataset", "nope", "--docs", "2", "--output", tmp_path / "nope")
    assert bad.returncode == 2 and "n2c2_2018" in bad.stderr and "Traceback" not in bad.stderr
