"""Shared fixtures for the local engine tests: synthetic records, a tiny model, small settings.

Everything is real (tokenizers, transformers, peft, torch on CPU); sizes are tiny so tests take seconds.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tests.local_extra import require_local

DRUGS = ("aspirin", "metformin", "lisinopril", "warfarin", "insulin", "heparin", "atenolol", "digoxin")


def synthetic_records(n: int, seed: int = 0) -> list[dict]:
    """A memorisable extraction task: the output repeats the drug and dose named in the input."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        drug, dose = rng.choice(DRUGS), rng.randint(1, 99)
        rows.append({"id": f"synth/doc{i}/ce/0", "input": f"List the drugs. Note: pt given {drug} {dose} mg.",
                     "output": f"{drug} | {dose} mg", "dataset": "synth", "task": "ce"})
    return rows


def write_records(folder: Path, train: list[dict], validation: list[dict] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "training.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    (folder / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (validation or train[:4])))
    return folder


@pytest.fixture(scope="session")
def records_dir(tmp_path_factory) -> Path:
    return write_records(tmp_path_factory.mktemp("records"), synthetic_records(16))


@pytest.fixture(scope="session")
def tiny_model_dir(records_dir, tmp_path_factory) -> Path:
    require_local()
    from clinie_nemo.engines.local.runtime import quiet_transformers
    from clinie_nemo.engines.local.tiny_model import TinyModelConfig, build_tiny_model

    quiet_transformers()
    out = tmp_path_factory.mktemp("models") / "tiny"
    build_tiny_model(records_dir, out, TinyModelConfig(vocab_size=320, hidden_size=64, num_layers=2,
                                                       num_heads=4, num_kv_heads=2, seed=0))
    return out


def small_settings(model_dir: Path, **overrides):
    from clinie_nemo.engines.local.settings import LocalSettings

    base = dict(model_path=str(model_dir), method="lora", lora_r=8, lora_alpha=16, lora_dropout=0.0,
                lora_targets=("linear_qkv", "linear_proj", "linear_fc1", "linear_fc2"), lr=5e-3,
                warmup_steps=2, global_batch=8, micro_batch=4, max_steps=10, seq_length=96,
                save_interval=5, keep_last=2, log_interval=5, seed=7)
    base.update(overrides)
    return LocalSettings(**base)


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
