"""Packing statistics: hand-computed fractions, FFD against a plain reference, `stats` on records files
with the fallback counter and with a real (offline-trained) fast tokenizer."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clinie_nemo.core.tokens import SPECIAL_TOKENS_PER_RECORD
from clinie_nemo.instruct.packing import first_fit_decreasing, packing_stats
from tests.cli_plugin import cli
from tests.hypothesis_profiles import examples
from tests.mixture_fixtures import build_tokenizer_folder


def test_hand_computed_fractions():
    # seq 10, lengths 6 5 4 3 2 (20 real tokens)
    # FFD: 6 -> bin0 (4 free), 5 -> bin1 (5 free), 4 -> bin0 (full), 3 -> bin1 (2 free), 2 -> bin1 (full)
    s = packing_stats([6, 5, 4, 3, 2], seq_length=10, micro_batch=2)
    assert s.packed_sequences == 2 and s.packed == pytest.approx(20 / 20)
    assert s.pad_to_max == pytest.approx(20 / 50)
    # micro-batches [6,5] [4,3] [2] padded to 6, 4, 2 -> 12 + 8 + 2 = 22 slots
    assert s.pad_to_longest == pytest.approx(20 / 22)
    # rounded up to multiples of 4: 8*2 + 4*2 + 4*1 = 28 slots
    assert packing_stats([6, 5, 4, 3, 2], 10, 2, pad_multiple=4).pad_to_longest == pytest.approx(20 / 28)
    # an overlong record counts as seq_length tokens; padding never exceeds seq_length
    s = packing_stats([12, 3], seq_length=10, micro_batch=2, pad_multiple=16)
    assert (s.overlong, s.real_tokens, s.packed_sequences) == (1, 13, 2)
    assert s.pad_to_longest == pytest.approx(13 / 20) and s.packed == pytest.approx(13 / 20)


def test_first_fit_is_first_not_best():
    # seq 10: 7 -> b0 (3), 6 -> b1 (4), 3 -> b0 (0), 3 -> b1 (1), 1 -> b1 (0)
    bins = first_fit_decreasing([3, 7, 1, 6, 3], 10)
    assert [sorted([3, 7, 1, 6, 3][i] for i in b) for b in bins] == [[3, 7], [1, 3, 6]]


def _reference_ffd(lengths, capacity):
    free, bins = [], []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for j, room in enumerate(free):
            if room >= lengths[i]:
                free[j] -= lengths[i]
                bins[j].append(i)
                break
        else:
            free.append(capacity - lengths[i])
            bins.append([i])
    return bins


@settings(max_examples=examples(200))
@given(st.lists(st.integers(1, 50), max_size=60), st.integers(50, 120))
def test_ffd_matches_plain_reference(lengths, capacity):
    assert first_fit_decreasing(lengths, capacity) == _reference_ffd(lengths, capacity)


def _records_file(path, n=30):
    rows = [{"input": "Extract concepts. Patient given aspirin " * (1 + i % 5), "output": "Drug | aspirin",
             "id": f"d/{i}/ce/0", "dataset": "d", "task": "ce", "template": "t", "template_hash": "h",
             "format": "lines", "doc_id": str(i), "chunk": [0, 1]} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def test_stats_cli_on_records_with_fallback_counter(tmp_path):
    rows = _records_file(tmp_path / "training.jsonl")
    result = cli("stats", tmp_path / "training.jsonl", "--seq-length", "256", "--micro-batch", "4",
                 "--json", tmp_path / "s.json")
    assert result.returncode == 0, result.stderr
    assert "packed FFD (256)" in result.stdout and "pad to max (256)" in result.stdout
    s = json.loads((tmp_path / "s.json").read_text())
    import re  # the fallback counter: one token per word or punctuation character
    special = SPECIAL_TOKENS_PER_RECORD  # BOS + EOS
    expected = [len(re.findall(r"\w+|[^\w\s]", r["input"])) + len(re.findall(r"\w+|[^\w\s]", r["output"]))
                + special for r in rows]
    assert s["tokens"]["max"] == max(expected) and s["packing"]["real_tokens"] == sum(expected)
    assert s["packing"]["pad_to_max"] == pytest.approx(sum(expected) / (len(rows) * 256))
    assert s["packing"]["packed"] > s["packing"]["pad_to_longest"] > s["packing"]["pad_to_max"]


def test_stats_records_with_real_tokenizer_and_documents_unchanged(tmp_path):
    rows = _records_file(tmp_path / "r.jsonl", n=12)
    folder = build_tokenizer_folder(tmp_path / "tok", [r["input"] + " " + r["output"] for r in rows] * 5)
    result = cli("stats", tmp_path / "r.jsonl", "--tokenizer", folder, "--json", tmp_path / "s.json")
    assert result.returncode == 0, result.stderr
    from tokenizers import Tokenizer

    raw = Tokenizer.from_file(str(folder / "tokenizer.json"))
    expected = [len(raw.encode(r["input"], add_special_tokens=False).ids)
                + len(raw.encode(r["output"], add_special_tokens=False).ids) + SPECIAL_TOKENS_PER_RECORD for r in rows]
    s = json.loads((tmp_path / "s.json").read_text())
    assert str(folder) in s["tokenizer"] and s["packing"]["real_tokens"] == sum(expected)
    docs = tmp_path / "docs.jsonl"
    docs.write_text(json.dumps({"id": "a", "text": "x y", "entities": [{"id": "T1", "label": "L", "spans": [[0, 1]],
                                                                       "text": "x"}]}) + "\n")
    doc_result = cli("stats", docs)
    assert doc_result.returncode == 0 and "documents: 1" in doc_result.stdout and "packed" not in doc_result.stdout
    bad = cli("stats", tmp_path / "r.jsonl", "--tokenizer", tmp_path / "missing")
    assert bad.returncode == 2 and "tokenizer folder" in bad.stderr and "Traceback" not in bad.stderr


def test_stats_reads_the_chat_messages_form(tmp_path):
    rows = _records_file(tmp_path / "plain.jsonl", n=8)
    chat = [{"messages": [{"role": "user", "content": r["input"]}, {"role": "assistant", "content": r["output"]}],
             "id": r["id"]} for r in rows]
    (tmp_path / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in chat))
    outs = []
    for name in ("plain", "chat"):
        result = cli("stats", tmp_path / f"{name}.jsonl", "--seq-length", "128", "--json", tmp_path / f"{name}.s.json")
        assert result.returncode == 0, result.stderr
        outs.append(json.loads((tmp_path / f"{name}.s.json").read_text())["packing"])
    assert outs[0] == outs[1]
    (tmp_path / "bad.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": 3}]}) + "\n")
    bad = cli("stats", tmp_path / "bad.jsonl")
    assert bad.returncode == 2 and "bad.jsonl:1: not a record" in bad.stderr and "Traceback" not in bad.stderr
