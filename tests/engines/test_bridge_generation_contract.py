"""Contract test: the REAL Megatron-Bridge 0.6.2 / megatron-core 0.19.0 (CPU) with the bridge engine's data
and generation paths (issue 15 items 2 and 5). The work runs in tests/bridge_generation_probe.py, a
subprocess (the pytest process may hold tests/bridge_fakes.py's FAKE megatron.bridge; the import-only shims
must never reach it), on a tiny Llama config with a real BPE tokenizer whose BOS is ``<s>``.

- item 5: our plan, built by bridge.build_config, given to Bridge's own GPTSFTDatasetBuilder with offline
  packing, on a READ-ONLY data folder: every artefact (packed parquet, metadata, JSONL .idx) lands under the
  run, nothing in the data folder.
- item 2: for the same record, the context ids of Bridge's training item (GPTSFTDataset, loss mask 0), the
  ids our megatron-core path feeds (megatron-core's own tokenize_prompt with add_BOS, Bridge's inference
  tokenizer) and the ids our vLLM path feeds are identical, with add_bos on and off; and a real legacy
  StaticInferenceEngine shows why the requests carry the ids: generate(prompts, add_BOS=True) queues no BOS.

Needs tools/contract_env.sh bridge, like tests/engines/test_bridge_contract.py: skips without it, fails under
CLINIE_REQUIRE_BRIDGE_CONTRACT=1 (CI).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.contract_site import require_or_skip

pytestmark = pytest.mark.bridge_contract

ROOT = Path(__file__).resolve().parents[2]
SITE = Path(os.environ.get("CLINIE_BRIDGE_CONTRACT_SITE", ROOT / ".bridge-contract" / "site"))  # as test_bridge_contract
REQUIRE_ENV = "CLINIE_REQUIRE_BRIDGE_CONTRACT"


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> dict:
    if not (SITE / "megatron" / "bridge").is_dir():
        require_or_skip(REQUIRE_ENV, f"real megatron.bridge not installed in {SITE}: run tools/contract_env.sh bridge")
    work = tmp_path_factory.mktemp("bridge_generation")
    result = work / "result.json"
    (work / "hf_home").mkdir()  # an empty Hub cache (as test_bridge_contract._probe_env)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": str(work / "hf_home"),
           "PYTHONPATH": str(ROOT)}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    proc = subprocess.run([sys.executable, "-m", "tests.bridge_generation_probe", str(SITE), str(work / "w"),
                           str(result)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and result.is_file(), f"probe failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}"
    out = json.loads(result.read_text())
    assert Path(out["bridge_file"]).is_relative_to(SITE), out["bridge_file"]
    return out


def test_packing_writes_under_the_run_never_into_the_read_only_data_folder(probe):
    d = probe["dataset"]
    assert d["ok"], f"{d['error']}\n{d.get('traceback', '')}"
    assert d["data_after"] == d["data_before"] == ["test.jsonl", "training.jsonl", "validation.jsonl"]
    assert d["dataset_root"] == str(Path(d["run"]) / "dataset")
    files = d["run_files"]
    assert all(f == "dataset" or f.startswith("dataset/") for f in files), files
    assert any(f.endswith("/training_64.idx.parquet") for f in files), files  # Bridge's packed training split
    assert any(f.endswith("/validation_64.idx.parquet") for f in files), files
    assert any(f.endswith("_metadata.jsonl") for f in files), files
    assert "dataset/training.jsonl.idx.npy" in files  # the JSONL index, next to the run's link
    assert d["built"][:2] == ["GPTSFTPackedParquetDataset", "GPTSFTPackedParquetDataset"]


@pytest.mark.parametrize("add_bos", ["true", "false"])
def test_training_mcore_and_vllm_feed_the_same_ids(probe, add_bos):
    p = probe["parity"]
    assert p["ok"], f"{p['error']}\n{p.get('traceback', '')}"
    ids = p[add_bos]
    assert ids["training"] == ids["mcore"] == ids["vllm"] == ids["engine_with_our_requests"], ids
    bos = ids["bos_id"]
    assert (ids["training"][0] == bos) is (add_bos == "true")
    assert ids["training"].count(bos) == (1 if add_bos == "true" else 0)


def test_the_real_legacy_engine_drops_add_bos(probe):
    """Why the mcore path passes tokenized requests: megatron-core 0.19.0's legacy static engine ignores
    generate(add_BOS=True) (static_engine.py:281-292)."""
    ids = probe["parity"]["true"]
    assert ids["legacy_engine_prompts"] == ids["training"][1:]


def test_activation_recompute_passes_bridge_validation(probe):
    """The plan's recompute keys survive the recipe, runtime_config_update and TransformerConfig's checks
    (item 6: the memory check counts what they keep)."""
    r = probe["recompute"]
    assert r["ok"], f"{r['error']}\n{r.get('traceback', '')}"
    assert r["none"][:3] == [None, None, None]  # (recompute_modules then defaults to ["core_attn"], unused)
    assert r["selective"][:3] == ["selective", None, None] and r["selective"][3] == ["core_attn"]
    assert r["full"][:3] == ["full", "uniform", 1]
