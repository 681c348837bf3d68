"""Contract test: our Bridge plan against the REAL megatron.bridge 0.6.2 / megatron-core 0.19.0 on CPU.

For the golden grid (LoRA and full SFT, TP 1/2/4/8 on 1 and 2 nodes of 8 GPUs) plus PP, CP, sequence
parallel and packing cells, a subprocess (tests/bridge_contract_probe.py) builds the recipe's ConfigContainer
with clinie_nemo.engines.bridge.build_config, applies the plan, and runs Bridge's own
runtime_config_update() (training/config.py:1853, run by pretrain.py:74 before setup: mixed precision, DP size, then ConfigContainer.validate() at config.py:1136). A subprocess
because test_engine_bridge_mock.py puts a FAKE megatron.bridge into sys.modules, and because the shims
(typing.override, import-only transformer_engine / nvidia_resiliency_ext stand-ins in
tests/bridge_contract_shims) must never reach the pytest process or product code.

Needs tools/bridge_contract_env.sh (installs into .bridge-contract/site). Without it the test skips with that
reason locally; with CLINIE_REQUIRE_BRIDGE_CONTRACT=1 (set by .ci/run) it fails instead.
Not mocked: Bridge, megatron-core, the recipes, validation. Stand-ins only for what cannot run on CPU: Transformer
Engine and nvidia-resiliency-ext (import-only; the config path never executes them) and the Hub (the recipe's
meta-llama/Meta-Llama-3.1-8B config is replaced by a tiny local config.json).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.bridge_contract

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(os.environ.get("CLINIE_BRIDGE_CONTRACT_SITE", ROOT / ".bridge-contract" / "site"))
REQUIRE_ENV = "CLINIE_REQUIRE_BRIDGE_CONTRACT"


def _cell(method: str, tp: int, nodes: int, *extra: str, pp: int = 1, cp: int = 1, gpus: int = 8) -> dict:
    return {"model": "llama31_8b", "recipe": "peft_lora" if method == "lora" else "full_sft",
            "overrides": [f"parallel.tensor={tp}", f"parallel.pipeline={pp}", f"parallel.context={cp}",
                          f"parallel.gpus_per_node={gpus}", f"parallel.nodes={nodes}", *extra],
            "world_size": gpus * nodes, "tp": tp, "pp": pp, "cp": cp}


GOLDEN = [_cell(m, tp, n) for m in ("lora", "full") for tp in (1, 2, 4, 8) for n in (1, 2)]
EXTRA = [
    _cell("lora", 1, 1, "packing=true"),
    _cell("full", 2, 1, "packing=true"),
    _cell("lora", 2, 1, "parallel.sequence_parallel=true"),
    _cell("full", 2, 2, pp=2),
    _cell("lora", 2, 1, cp=2),
    _cell("full", 2, 1, "packing=true", cp=2),
    _cell("lora", 1, 1, "packing=true", "data.validation_interval=0"),
    _cell("lora", 1, 1, "precision=32"),
]
CELLS = GOLDEN + EXTRA


def _ids(cell: dict) -> str:
    return f"{cell['recipe']}-tp{cell['tp']}-pp{cell['pp']}-cp{cell['cp']}-w{cell['world_size']}-" + "-".join(
        o for o in cell["overrides"] if not o.startswith("parallel.") or "sequence" in o)


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, dict]:
    if not (SITE / "megatron" / "bridge").is_dir():
        reason = f"real megatron.bridge not installed in {SITE}: run tools/bridge_contract_env.sh"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but {reason}")
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("contract")
    (work / "cells.json").write_text(json.dumps(CELLS))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("WORLD_SIZE", None)
    proc = subprocess.run([sys.executable, "-m", "tests.bridge_contract_probe", str(SITE), str(work / "cells.json"),
                           str(work / "results.jsonl")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    lines = (work / "results.jsonl").read_text().splitlines() if (work / "results.jsonl").is_file() else []
    assert proc.returncode == 0 and lines, f"probe failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}"
    head = json.loads(lines[0])
    by_id = {_ids(r["cell"]): r for r in map(json.loads, lines[1:])}
    return {"head": head, **by_id}


def test_probe_used_the_real_bridge(results):
    assert Path(results["head"]["bridge_file"]).is_relative_to(SITE), results["head"]


@pytest.mark.parametrize("cell", CELLS, ids=_ids)
def test_plan_passes_bridge_validation(results, cell):
    r = results[_ids(cell)]
    assert r["ok"], f"{r['error']}\n{r.get('traceback', '')}"
    f = r["facts"]
    # what we planned survived the recipe and validate()
    assert (f["tp"], f["pp"], f["cp"]) == (cell["tp"], cell["pp"], cell["cp"])
    assert f["data_parallel_size"] == cell["world_size"] // (cell["tp"] * cell["pp"] * cell["cp"])
    assert f["global_batch_size"] == 64 and f["micro_batch_size"] == 1 and f["train_iters"] == 300
    assert f["dataset"] == "GPTSFTDatasetConfig"
    assert f["peft"] == ("LoRA" if cell["recipe"] == "peft_lora" else None)
    # the model provider has the tiny local config's architecture (tests/bridge_contract_probe.TINY_LLAMA), not
    # Meta's 8B one from the Hub (32 layers, hidden 4096): built offline from the local HF folder
    assert (f["num_layers"], f["hidden_size"]) == (4, 64), f


@pytest.mark.parametrize("cell", [c for c in CELLS if c["cp"] > 1], ids=_ids)
def test_context_parallel_uses_per_token_loss(results, cell):
    # Bridge: CP > 1 averages the loss per token across CP ranks only with calculate_per_token_loss
    r = results[_ids(cell)]
    assert r["ok"], r["error"]
    assert r["facts"]["calculate_per_token_loss"] is True


def test_precision_32_does_not_train_in_bf16(results):
    r = results[_ids(EXTRA[-1])]
    assert r["ok"], r["error"]
    f = r["facts"]
    # however the plan says it (mixed_precision None + model dtypes, or an fp32 MixedPrecisionConfig),
    # after runtime_config_update the model must hold float32 parameters and no bf16/fp16 flag
    assert not f["bf16"] and not f["fp16"], f
    assert not f["optimizer_bf16"] and "float32" in f["params_dtype"], f


@pytest.mark.parametrize("cell", [c for c in CELLS if "packing=true" in c["overrides"]], ids=_ids)
def test_packing_survives(results, cell):
    r = results[_ids(cell)]
    assert r["ok"], r["error"]
    assert r["facts"]["packing"] is True
    assert r["facts"]["do_validation"] is ("data.validation_interval=0" not in cell["overrides"])


def test_shims_are_import_only_and_stay_out_of_this_process():
    """The stand-ins import but refuse to run, and only the probe's interpreter ever sees them."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import bridge_contract_shim as s; s.install()\n"
            "import typing, transformer_engine.pytorch as te, nvidia_resiliency_ext.inprocess as nvrx\n"
            "import transformer_engine\nassert typing.override and transformer_engine.__version__ and nvrx.CallWrapper\n"
            "try:\n    te.Linear(4, 4)\nexcept s.StandInUsed:\n    print('refused')\n")
    shims = ROOT / "tests" / "bridge_contract_shims"
    out = subprocess.run([sys.executable, "-c", code, str(shims)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "refused", out.stderr
    assert "transformer_engine" not in sys.modules and "bridge_contract_shim" not in sys.modules
    product = [p for p in (ROOT / "clinie_nemo").rglob("*.py") if "bridge_contract_shim" in p.read_text()]
    assert product == [], "product code must not use the contract test's shims"
