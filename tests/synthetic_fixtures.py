"""The synthetic corpora of every dataset, as documents: a session fixture shared by the evaluation tests
(re-exported by tests/evaluation/conftest.py) and the BIO tests (tests/instruct/test_bio.py imports it)."""

from __future__ import annotations

import pytest

from clinie_nemo.core import docs_jsonl
from clinie_nemo.corpus import synth
from clinie_nemo.corpus.datasets.convert import convert_dataset


@pytest.fixture(scope="session")
def synthetic_corpora(tmp_path_factory):
    """``{dataset: [Document, ...]}``: 6 synthetic notes of each dataset (seed 3), converted, all splits."""
    root = tmp_path_factory.mktemp("synth")
    out = {}
    for name in synth.GENERATOR_NAMES:
        synth.generate(name, root / name, 6, seed=3)
        convert_dataset(name, root / name, root / f"{name}_docs", show_progress=False)
        out[name] = [d for split in sorted((root / f"{name}_docs").glob("*.jsonl")) for d in docs_jsonl.read(split)]
    return out
