"""The BioCreative V CDR kit's BioC files as released (tests/data/bc5cdr_kit): read without error, to the
same documents as their PubTator twins, the kit's passage-offset layout re-placed with one warning per
document, and the one IndividualMention whose location disagrees left out with a located warning."""

from __future__ import annotations

import re

import pytest

from clinie_nemo.core.errors import InputError
from clinie_nemo.corpus.readers import bioc, pubtator
from tests.bc5cdr_kit import (
    CID_BIOC,
    CID_PT,
    DNER_BIOC,
    GOLD_BIOC,
    GOLD_PT,
    REPLACED_PMIDS,
    kit_file,
)

QUIET = {"on_warning": lambda _w: None}


def _read(reader, path, **options):
    warnings: list = []
    return list(reader.read(path, on_warning=warnings.append, **options)), warnings


def test_gold_bioc_reads_to_the_pubtator_documents(tmp_path):
    docs, warnings = _read(bioc, kit_file(GOLD_BIOC, tmp_path))
    twins = {d.id: d for d in pubtator.read(kit_file(GOLD_PT, tmp_path))}
    assert [d.id for d in docs] == list(twins)
    for doc in docs:
        twin = twins[doc.id]
        assert doc.text == twin.text, doc.id
        composite_parts = [e for e in doc.entities if e.attrs.get("CompositeRole") == "IndividualMention"]
        kept = sorted((e.label, e.spans) for e in doc.entities if e not in composite_parts)
        assert kept == sorted((e.label, e.spans) for e in twin.entities), doc.id
        for e in doc.entities:
            assert " ".join(doc.text[s:t] for s, t in e.spans) == e.text
        rows = {tuple(r[:3]) for r in doc.metadata.get("relations", [])}
        assert rows == {tuple(r[:3]) for r in twin.metadata.get("relations", [])}, doc.id
    replaced = [w for w in warnings if "re-placed" in w.message]
    assert sorted(w.message.split(":")[0] for w in replaced) == sorted(f"document {p}" for p in REPLACED_PMIDS)
    assert all(w.path.endswith(GOLD_BIOC) and w.line for w in replaced)
    moved = {w.message.split(":")[0]: int(w.message.split("re-placed, ")[1].split()[0]) for w in replaced}
    assert moved["document 2224762"] == 25 and min(moved.values()) > 0


def test_gold_off_by_one_individual_mention_is_left_out_with_a_located_warning(tmp_path):
    docs, warnings = _read(bioc, kit_file(GOLD_BIOC, tmp_path))
    left_out = [w for w in warnings if "IndividualMention" in w.message]
    assert len(left_out) == 1
    w = left_out[0]
    assert w.message.startswith("document 11587867: annotation 7 ") and "left out" in w.message
    assert w.line == 3800 and 'location offset="478"' in w.quote
    doc = next(d for d in docs if d.id == "11587867")
    ids = {e.id for e in doc.entities}
    assert "7" not in ids and {"8", "9", "12", "13"} <= ids  # the other parts stay


def test_the_warning_channel_defaults_to_stderr(tmp_path, capsys):
    list(bioc.read(kit_file(GOLD_BIOC, tmp_path)))
    err = capsys.readouterr().err
    assert err.count("warning: ") == 6 and "document 19803309" in err


@pytest.mark.parametrize("name", [DNER_BIOC, CID_BIOC])
def test_prediction_files_read_with_the_same_layout(tmp_path, name):
    docs, warnings = _read(bioc, kit_file(name, tmp_path), system=True)
    assert len(docs) == 50
    replaced = {w.message.split(":")[0] for w in warnings if "re-placed" in w.message}
    assert replaced == {f"document {p}" for p in REPLACED_PMIDS}
    assert not [w for w in warnings if "re-placed" not in w.message]  # nothing else tolerated


def test_a_gold_annotation_that_disagrees_is_still_an_error(tmp_path):
    src = kit_file(GOLD_BIOC, tmp_path).read_text(encoding="utf-8")
    bad = tmp_path / "bad.xml"
    bad.write_text(src.replace("<text>Pirarubicin</text>", "<text>Pirarubicine</text>", 1), encoding="utf-8")
    with pytest.raises(InputError) as err:
        list(bioc.read(bad, on_warning=lambda _w: None))
    assert "document 2224762: annotation 2 text disagrees with the note" in str(err.value)


def test_pubtator_twin_of_the_cid_predictions_reads(tmp_path):
    docs, warnings = _read(pubtator, kit_file(CID_PT, tmp_path), system=True)
    assert len(docs) == 50 and not warnings


def test_cid_infons_read_by_key_whatever_their_order(tmp_path):
    src = kit_file(CID_BIOC, tmp_path).read_text(encoding="utf-8")
    swapped = tmp_path / "swapped.xml"
    swapped.write_text(re.sub(r'(<infon key="Chemical">[^<]*</infon>\n)(<infon key="Disease">[^<]*</infon>\n)',
                              r"\2\1", src), encoding="utf-8")
    assert swapped.read_text(encoding="utf-8") != src
    rows = [d.metadata.get("relations") for d in bioc.read(kit_file(CID_BIOC, tmp_path), system=True, **QUIET)]
    assert rows == [d.metadata.get("relations") for d in bioc.read(swapped, system=True, **QUIET)]
