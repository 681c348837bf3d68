"""Contract test: our Bridge plan against the REAL megatron.bridge 0.6.2 / megatron-core 0.19.0 on CPU.

For the golden grid (LoRA and full SFT, TP 1/2/4/8 on 1 and 2 nodes of 8 GPUs) plus PP, CP, sequence
parallel and packing cells, a subprocess (tests/bridge_contract_probe.py) builds the recipe's ConfigContainer
with clinie_nemo.engines.bridge.build_config, applies the plan, and runs Bridge's own
runtime_config_update() (training/config.py:1853, run by pretrain.py:74 before setup: mixed precision, DP size, then ConfigContainer.validate() at config.py:1136). A subprocess
because test_engine_bridge_mock.py puts a FAKE megatron.bridge into sys.modules, and because the shims
(typing.override, import-only transformer_engine / nvidia_resiliency_ext stand-ins in
tests/bridge_contract_shims) must never reach the pytest process or product code.

The subprocesses run in tests/bridge_contract_sandbox.py's import world: the pinned site, the standard library and
the venv's torch (with torch's own requirements), nothing else of the venv; test_no_unpinned_venv_package_*
checks that from the modules the subprocesses really imported.

The runtime tests (tests/bridge_contract_runtime.py, one more subprocess) go past the config: (A) our engine
builds the provider from a local HF folder (tiny Llama with weights and tokenizer) offline, the recipe's Hub
id redirected by clinie_nemo.engines.bridge.run_recipe alone; (B) Bridge builds its SFT dataset from what
`clinie-nemo render` writes, and the loss mask covers exactly the answer tokens; (C) the megatron-core model
from that provider, HF weights loaded by Bridge and our LoRA applied by Bridge, gives the HF model's logits.

Needs tools/contract_env.sh bridge (installs into .bridge-contract/site). Without it the test skips with that
reason locally; with CLINIE_REQUIRE_BRIDGE_CONTRACT=1 (set by .ci/run) it fails instead.
Not mocked: Bridge, megatron-core, the recipes, validation, Bridge's dataset, tokenizer, conversion and LoRA.
Stand-ins only for what cannot run on CPU: Transformer Engine and nvidia-resiliency-ext (import-only), and
the Hub (HF_HUB_OFFLINE=1, an empty HF_HOME: the model is a tiny local HF folder written by the probes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.bridge_contract_sandbox import SHARED_DISTS
from tests.cli_plugin import cli
from tests.contract_site import require_or_skip

pytestmark = pytest.mark.bridge_contract

ROOT = Path(__file__).resolve().parents[2]
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


def _require_site() -> None:
    if not (SITE / "megatron" / "bridge").is_dir():
        require_or_skip(REQUIRE_ENV, f"real megatron.bridge not installed in {SITE}: run tools/contract_env.sh bridge")


def _probe_env(work: Path) -> dict[str, str]:
    hf_home = work / "hf_home"  # an empty Hub cache: a Hub id could only be served by the network
    hf_home.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_HOME": str(hf_home)}
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    return env


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, dict]:
    _require_site()
    work = tmp_path_factory.mktemp("contract")
    (work / "cells.json").write_text(json.dumps(CELLS))
    proc = subprocess.run([sys.executable, "-m", "tests.bridge_contract_probe", str(SITE), str(work / "cells.json"),
                           str(work / "results.jsonl")], cwd=ROOT, env=_probe_env(work), capture_output=True,
                          text=True, timeout=600)
    lines = (work / "results.jsonl").read_text().splitlines() if (work / "results.jsonl").is_file() else []
    assert proc.returncode == 0 and lines, f"probe failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}"
    head, tail = json.loads(lines[0]), json.loads(lines[-1])
    by_id = {_ids(r["cell"]): r for r in map(json.loads, lines[1:-1])}
    return {"head": head, "imports": tail, **by_id}


def _render_records(work: Path) -> Path:
    """What `clinie-nemo render` writes for a synthetic n2c2 2018 release (the README's steps)."""
    steps = [["synth", "--dataset", "n2c2_2018", "--docs", "2", "--seed", "1", "--output", str(work / "release")],
             ["convert", "--dataset", "n2c2_2018", "--input", str(work / "release"), "--output", str(work / "docs")],
             ["render", "--corpus", str(work / "docs" / "train.jsonl"), "--task", "ce", "--format", "json",
              "--max-tokens", "512", "--output", str(work / "records.jsonl")]]
    for step in steps:
        proc = cli(*step, cwd=ROOT)
        assert proc.returncode == 0, f"{step[0]} failed:\n{proc.stderr[-2000:]}"
    return work / "records.jsonl"


@pytest.fixture(scope="module")
def runtime(tmp_path_factory) -> dict:
    _require_site()
    work = tmp_path_factory.mktemp("contract_runtime")
    records = _render_records(work)
    out = work / "runtime.json"
    proc = subprocess.run([sys.executable, "-m", "tests.bridge_contract_runtime", str(SITE), str(records), str(out)],
                          cwd=ROOT, env=_probe_env(work), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and out.is_file(), f"runtime probe failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}"
    data = json.loads(out.read_text())
    data["records"] = [json.loads(line) for line in records.read_text().splitlines()]
    return data


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
    # the plan's pretrained checkpoint is the model's HF folder itself (loaded by Bridge at setup), and the
    # recipe's Hub id reached AutoBridge only as that folder: redirected by our run_recipe, not by the probe
    assert f["pretrained_checkpoint"] == f["tokenizer_model"] == r["from_hf_pretrained"][0], r
    assert r["from_hf_pretrained"] and all(Path(p).is_dir() for p in r["from_hf_pretrained"]), r


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


def _leaks(modules: dict[str, list[str]], shared: dict[str, str]) -> dict[str, list[str]]:
    """Top-level modules loaded from anywhere but the site, this repo's clinie_nemo/tests, the standard
    library, or the venv's files of an allowed (SHARED_DISTS) distribution."""
    purelib = Path(sysconfig.get_paths()["purelib"]).resolve()
    stdlib = {Path(sysconfig.get_paths()[k]).resolve() for k in ("stdlib", "platstdlib")}
    ours = [SITE.resolve(), (ROOT / "clinie_nemo").resolve(), (ROOT / "tests").resolve(), *stdlib]
    leaks: dict[str, list[str]] = {}
    for top, dirs in modules.items():
        for d in map(Path, dirs):
            if any(d.is_relative_to(root) for root in ours) and not d.is_relative_to(purelib):
                continue
            if d.is_relative_to(purelib) and d != purelib and shared.get(d.relative_to(purelib).parts[0].split(".")[0]):
                continue
            leaks.setdefault(top, []).append(str(d))
    return leaks


def test_no_unpinned_venv_package_reaches_the_config_probe(results):
    """kernels 0.19 in the venv broke transformers 5.12.1's import; peft, accelerate, PIL ... change what the
    pinned stack does just by being importable. Only the site, the stdlib and torch (+ its requirements)."""
    imports = results["imports"]
    assert set(imports["shared"].values()) == set(SHARED_DISTS)
    assert _leaks(imports["modules"], imports["shared"]) == {}
    assert all(Path(d).is_relative_to(SITE.resolve()) for d in imports["modules"]["kernels"]), imports["modules"]["kernels"]


def test_no_unpinned_venv_package_reaches_the_runtime_probe(runtime):
    assert _leaks(runtime["modules"], runtime["shared"]) == {}


def test_provider_from_local_hf_folder_offline(runtime):
    """(A) No Hub id reached AutoBridge: the recipe's meta-llama/Meta-Llama-3.1-8B was turned into the local
    folder by clinie_nemo.engines.bridge.run_recipe (the probe only records the calls)."""
    assert "error" not in runtime, runtime.get("traceback")
    p, hf = runtime["provider"], runtime["hf_dir"]
    assert p["from_hf_pretrained"] == [hf], p
    assert p["provider"] == "GPTModelProvider" and p["peft"] == "LoRA"
    # the provider has the local folder's architecture (tests/bridge_contract_probe.TINY_LLAMA)
    assert (p["num_layers"], p["hidden_size"], p["ffn_hidden_size"]) == (4, 64, 128), p
    assert (p["num_attention_heads"], p["num_query_groups"], p["vocab_size"]) == (8, 4, 320), p
    # the HF folder is what Bridge loads at setup (training/utils/checkpoint_utils.py is_hf_checkpoint_dir)
    assert p["pretrained_checkpoint"] == p["tokenizer_model"] == hf and p["pretrained_is_hf_dir"], p
    assert p["params_dtype"] == "torch.float32", p  # precision=32 after runtime_config_update


def test_bridge_sft_dataset_masks_exactly_the_answer(runtime):
    """(B) Bridge's GPTSFTDatasetBuilder on our rendered JSONL: context = BOS + prompt, loss only on the
    answer tokens (separator + output + EOS), one contiguous span, for every record."""
    assert "error" not in runtime or "dataset" in runtime, runtime.get("traceback")
    d = runtime["dataset"]
    assert d["n_records"] == d["n_dataset"] == len(runtime["records"]) > 0
    for row in d["rows"]:
        assert row["masked_labels_are_answer"] and row["mask_is_one_span_from_answer_start"], row
        assert row["input_is_context_then_answer"] and row["n_mask_on"] == row["n_answer_tokens"] > 1, row


def test_megatron_lora_model_matches_hf_logits(runtime):
    """(C) megatron-core GPT from the provider (gloo, CPU, local spec), HF weights loaded by Bridge, Bridge's
    LoRA applied (B = 0 at init): the logits are the HF model's."""
    assert "error" not in runtime, runtime.get("traceback")
    g = runtime["logits"]
    # our plan's LoRA (peft_lora.yaml: linear_qkv) wrapped its targets in each of the 4 layers, and the
    # adapters are in the forward path (a non-zero B moves the logits)
    targets = runtime["provider"]["lora_target_modules"]
    assert g["lora_targets"] == sorted(targets) and g["lora_linear_count"] == 4 * len(targets), g
    assert g["logits_moved_by_lora_b"] > 1e-3, g
    assert g["megatron_shape"][:2] == g["hf_shape"][:2], g
    assert g["max_abs_logit"] > 1e-3, g  # not a vacuous comparison of zeros
    assert g["max_abs_diff"] < 1e-4, g
