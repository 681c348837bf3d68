"""`clinie-nemo stats --bio-ceiling`: the table per dataset/split on the synthetic corpora, its --json form,
--scheme, --tokenizer, and the errors (a records file, a missing tokenizer folder)."""

from __future__ import annotations

import json

import pytest

from clinie_nemo.core import docs_jsonl
from clinie_nemo.instruct.bio import encode
from clinie_nemo.instruct.bio_ceiling import CEILING_CAUSES, word_offsets
from tests.cli_plugin import cli
from tests.local_extra import require_local
from tests.synthetic_fixtures import synthetic_corpora  # noqa: F401 - a fixture


@pytest.fixture(scope="module")
def all_docs(synthetic_corpora, tmp_path_factory):  # noqa: F811 - the fixture
    path = tmp_path_factory.mktemp("stats") / "all.jsonl"
    docs = [d for name in sorted(synthetic_corpora) for d in synthetic_corpora[name]]
    docs_jsonl.write(path, docs)
    return path, docs


def expected_lost(docs, dataset, split, scheme):
    """Lost counts per cause, summed over encode() of each document: what the table must show."""
    lost = {c: 0 for c in CEILING_CAUSES}
    for d in docs:
        if (d.dataset, d.split) == (dataset, split):
            enc = encode(d.entities, word_offsets(d.text), sorted({e.label for e in d.entities}), scheme)
            for cause, n in enc.lost.items():
                lost[cause] += n
    return lost


@pytest.mark.parametrize("scheme", ["BIO", "BIOES"])
def test_table_and_json_on_the_synthetic_corpora(all_docs, tmp_path, scheme):
    path, docs = all_docs
    out = cli("stats", path, "--bio-ceiling", "--scheme", scheme, "--json", tmp_path / "s.json")
    assert out.returncode == 0, out.stderr
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["documents"] == len(docs)  # the ordinary counts are still there
    ceiling = s["bio_ceiling"]
    assert ceiling["scheme"] == scheme and ceiling["tokenizer"] == "fallback:words+punct"
    keys = sorted({(d.dataset, d.split) for d in docs})
    assert sorted((r["dataset"], r["split"]) for r in ceiling["rows"]) == keys
    lines = out.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{scheme} ceiling"))
    table = lines[start + 3:]
    assert len(table) == len(keys) + 1 and table[-1].split()[:2] == ["all", "all"]
    for row, line in zip(ceiling["rows"], table):
        subset = [d for d in docs if (d.dataset, d.split) == (row["dataset"], row["split"])]
        assert row["entities"] == sum(len(d.entities) for d in subset)
        assert row["lost"] == expected_lost(docs, row["dataset"], row["split"], scheme)
        assert row["lost_share"] == pytest.approx(row["lost_total"] / row["entities"])
        assert row["tp"] + row["fn"] == len({(d.id, e.label, e.spans) for d in subset for e in d.entities})
        cells = line.split()
        assert cells[:3] == [row["dataset"], row["split"], str(row["entities"])]
        assert cells[3:8] == [str(row["lost"][c]) for c in CEILING_CAUSES] and cells[8] == str(row["lost_total"])
        assert float(cells[-1]) == pytest.approx(100 * row["f1"], abs=0.006)
    lost = {r["dataset"]: r["lost_total"] for r in ceiling["rows"]}
    assert lost["n2c2_2018"] > 0 and lost["i2b2_2010"] == 0  # discontinuous/nested corpora lose, i2b2 does not


def test_without_the_flag_nothing_changes(all_docs, tmp_path):
    path, _ = all_docs
    out = cli("stats", path, "--json", tmp_path / "s.json")
    assert out.returncode == 0 and "ceiling" not in out.stdout
    assert "bio_ceiling" not in json.loads((tmp_path / "s.json").read_text())


def test_tokenizer_folder(all_docs, tmp_path):
    require_local()
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    path, docs = all_docs
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator([d.text for d in docs], trainers.WordPieceTrainer(vocab_size=150, show_progress=False,
                                                                             special_tokens=["[UNK]"]))
    (tmp_path / "tok").mkdir()
    tok.save(str(tmp_path / "tok" / "tokenizer.json"))
    words = cli("stats", path, "--bio-ceiling", "--json", tmp_path / "w.json")
    pieces = cli("stats", path, "--bio-ceiling", "--tokenizer", tmp_path / "tok", "--json", tmp_path / "p.json")
    assert words.returncode == pieces.returncode == 0, pieces.stderr
    w, p = (json.loads((tmp_path / f).read_text())["bio_ceiling"] for f in ("w.json", "p.json"))
    assert str(tmp_path / "tok") in p["tokenizer"]
    assert p["rows"] == w["rows"]  # the synthetic entities are whole words: sub-word tokens lose nothing more


def test_errors(all_docs, tmp_path):
    path, _ = all_docs
    records = tmp_path / "records.jsonl"
    records.write_text(json.dumps({"input": "a", "output": "b"}) + "\n")
    out = cli("stats", records, "--bio-ceiling")
    assert out.returncode == 2 and "--bio-ceiling needs a documents JSONL" in out.stderr
    assert "Traceback" not in out.stderr
    out = cli("stats", path, "--bio-ceiling", "--tokenizer", tmp_path / "missing")
    assert out.returncode == 2 and "tokenizer folder" in out.stderr and "Traceback" not in out.stderr
    out = cli("stats", path, "--bio-ceiling", "--scheme", "IO")
    assert out.returncode == 2 and "invalid choice" in out.stderr
