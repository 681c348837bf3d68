"""The bridge engine's defects found by reading Megatron-Bridge v0.6.0 (issue 10), one test each.

bridge.py runs against a FAKE `megatron.bridge` / megatron-core / vLLM (tests/bridge_fakes.py: a stand-in,
the real library cannot be imported on CPU); bridge_plan, launch_command and the Dockerfile are tested
as they are. Each test names the upstream behaviour it relies on.
"""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import pytest

from clinie_nemo.core.errors import ConfigError
from clinie_nemo.engines import bridge, bridge_generation, bridge_plan
from clinie_nemo.engines.local.settings import LocalSettings
from clinie_nemo.engines.run_dir import prepare
from clinie_nemo.engines.spec import GenerateConfig
from clinie_nemo.engines.spec_loader import load_run_spec
from tests import bridge_fakes
from tests.engine_fixtures import write_records
from tests.local_extra import needs_local

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake(monkeypatch, tmp_path):
    calls = bridge_fakes.install(monkeypatch, tmp_path)
    bridge_fakes.run_export_in_process(monkeypatch, bridge, calls)
    return calls


def _hf(tmp_path: Path) -> Path:
    hf = tmp_path / "gatortronllama_hf"
    if not hf.is_dir():
        hf.mkdir()
        (hf / "config.json").write_text(json.dumps({"model_type": "llama", "rope_theta": 500000.0}))
        (hf / "model-00001-of-00002.safetensors").write_bytes(b"\0" * 32)
        (hf / "model-00002-of-00002.safetensors").write_bytes(b"\0" * 32)
    return hf


def _spec(tmp_path: Path, overrides: list[str] | None = None, recipe: str = "peft_lora", model: str = "gatortronllama_8b"):
    return load_run_spec(model, recipe, [f"model.checkpoint={_hf(tmp_path)}", *(overrides or [])])


def _train(tmp_path: Path, overrides: list[str] | None = None, name: str = "run", recipe: str = "peft_lora",
           data: Path | None = None):
    spec = _spec(tmp_path, overrides, recipe)
    data = data or write_records(tmp_path / "data")
    run = tmp_path / name
    prepare(spec, "bridge", data, run)
    return spec, data, run, bridge.train(spec, data, run)


# --- 1. the recipe's model provider comes from the local HF folder, not the gated Hub config -------------

def test_recipe_provider_is_built_from_the_local_folder_offline(fake, tmp_path):
    """Bridge 0.6 recipes call AutoBridge.from_hf_pretrained("meta-llama/Meta-Llama-3.1-8B") (h100/llama3.py
    :2474); offline (the fake raises like the Hub client) that failed on every rank, and online it built
    Meta's architecture for GatorTronLlama."""
    _, _, _, facts = _train(tmp_path)
    (cfg, _, env), = fake["finetune"]
    assert cfg.model.hf_path == str(_hf(tmp_path)) and cfg.model.load_weights is False
    assert bridge_fakes.HUB_ID not in fake["from_hf"][:1]  # the recipe's call went to the local folder
    assert fake["from_hf"][0] == str(_hf(tmp_path))
    assert cfg.model.seq_length == 4096  # the recipe's own settings are applied on top of that provider
    assert env["HF_HUB_OFFLINE"] == "1"
    assert facts["engine"] == "bridge"


def test_recipe_taking_hf_path_gets_it(tmp_path):
    """A later recipe signature with hf_path is called with it (no global swap)."""
    seen = {}

    def recipe(peft_scheme="lora", hf_path=None):
        seen["hf_path"], seen["peft_scheme"] = hf_path, peft_scheme
        return "cfg"

    assert bridge.run_recipe(recipe, {"peft_scheme": "lora"}, "/models/x") == "cfg"
    assert seen == {"hf_path": "/models/x", "peft_scheme": "lora"}


# --- 2. no HF import step: the HF folder is the pretrained checkpoint, never hashed -----------------------

def test_hf_folder_is_the_pretrained_checkpoint_without_import_or_hash(fake, tmp_path, monkeypatch):
    """Bridge 0.6 loads an HF directory as checkpoint.pretrained_checkpoint (checkpointing.py:2598, inside
    the training's process group). The old import_ckpt on rank 0 opened its own NCCL world with the
    launcher's WORLD_SIZE while the other ranks polled (deadlock), and every rank hashed every weight file
    on every requeue. Here rank 1 of 2 trains without waiting for anyone and nothing is hashed."""
    def no_hashing(*_a, **_k):
        raise AssertionError("the HF folder must not be hashed")

    monkeypatch.setattr(bridge, "sha256_file", no_hashing, raising=False)
    monkeypatch.setattr(bridge, "folder_hash", no_hashing, raising=False)
    spec = _spec(tmp_path, ["parallel.gpus_per_node=2"])
    data, run = write_records(tmp_path / "data"), tmp_path / "run"
    prepare(spec, "bridge", data, run)  # as rank 0 (the other ranks wait for spec.yaml)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    facts = bridge.train(spec, data, run)
    (cfg, _, _), = fake["finetune"]
    assert cfg.checkpoint.pretrained_checkpoint == str(_hf(tmp_path))
    assert facts == {} and fake["export_adapter"] == []  # rank 1: trains, exports nothing
    assert not (tmp_path / "cache").exists()


def test_a_folder_without_weights_is_a_clear_error(fake, tmp_path):
    """Bridge's is_hf_checkpoint_dir (checkpoint_utils.py:211) wants config.json plus weights; without them
    every rank would raise 'Invalid pretrained checkpoint directory' mid-setup."""
    hf = _hf(tmp_path)
    for f in hf.glob("*.safetensors"):
        f.unlink()
    with pytest.raises(ConfigError, match="has no HF weights"):
        _train(tmp_path)
    assert fake["finetune"] == []


# --- 3. preemption: SystemExit(0) after the checkpoint -> 124; the exit signal is SIGTERM ------------------

def test_signal_stop_sys_exit_0_becomes_124(fake, tmp_path):
    """finetune() raises SystemExit(0) after its signal checkpoint (train.py:805): that used to end the
    job with 0 (not requeued, no DONE, no adapter)."""
    fake["stop_at"] = 120
    with pytest.raises(SystemExit) as stop:
        _train(tmp_path)
    assert stop.value.code == 124
    assert fake["export_adapter"] == [] and not (tmp_path / "run" / "DONE").exists()


def test_signal_at_the_last_step_finishes_the_run(fake, tmp_path):
    fake["stop_at"] = 300  # the signal came with the final checkpoint: nothing left to train
    _, _, run, facts = _train(tmp_path)
    assert facts["iteration"] == 300 and (run / "DONE").is_file()
    assert fake["export_adapter"] == [(str(run / "checkpoints" / "iter_0000300"), str(run / "adapter"))]


def test_a_real_failure_exit_code_propagates(fake, tmp_path):
    fake["exit_code"] = 16  # e.g. the rerun state machine's exit (train.py:928)
    with pytest.raises(SystemExit) as stop:
        _train(tmp_path)
    assert stop.value.code == 16


def test_exit_signal_is_sigterm_and_usr1_is_forwarded(fake, tmp_path):
    """Slurm sends SIGTERM to every task at preemption; Bridge listens on train.exit_signal only
    (training/state.py:467-468). A SIGUSR1 forwarded by the batch shell becomes SIGTERM."""
    _train(tmp_path)
    (cfg, _, _), = fake["finetune"]
    assert cfg.train.exit_signal is signal.SIGTERM and cfg.train.exit_signal_handler is True
    assert bridge_plan.plan_dict(_spec(tmp_path), "/d", "/r")["set"]["train.exit_signal"] == "SIGTERM"
    assert signal.SIGUSR1 in fake["signal_handlers"]


def test_usr1_handler_raises_sigterm(monkeypatch):
    got = []
    old_term, old_usr1 = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGUSR1)
    try:
        signal.signal(signal.SIGTERM, lambda *_: got.append("TERM"))
        bridge.forward_usr1_as_term()
        os.kill(os.getpid(), signal.SIGUSR1)
        assert got == ["TERM"]
    finally:
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGUSR1, old_usr1)


# --- 4. exports read the iter_NNNNNNN folder, in a one-process run ----------------------------------------

def test_adapter_export_reads_the_iteration_folder_in_a_clean_process(fake, tmp_path, monkeypatch):
    """export_adapter_ckpt loads run_config.yaml and dist_checkpointing.load() from the path it gets
    (auto_bridge.py:1534-1591): checkpoints/ has neither (the fake raises like the real one)."""
    monkeypatch.setenv("MASTER_PORT", "29511")
    monkeypatch.setenv("MASTER_ADDR", "node1")
    _, _, run, _ = _train(tmp_path, ["max_steps=40", "optim.warmup_steps=5"])
    assert fake["export_adapter"] == [(str(run / "checkpoints" / "iter_0000040"), str(run / "adapter"))]
    (cmd, env), = fake["subprocess"]
    assert cmd[-1] == str(run) and not {"RANK", "WORLD_SIZE", "MASTER_PORT", "MASTER_ADDR"} & set(env)


def test_latest_iteration_prefers_the_tracker_file(tmp_path):
    ck = tmp_path / "checkpoints"
    (ck / "iter_0000200").mkdir(parents=True)
    (ck / "iter_0000300").mkdir()  # a save interrupted before the tracker was written
    (ck / "latest_checkpointed_iteration.txt").write_text("200")
    assert bridge.latest_iteration(ck) == 200
    assert bridge.iteration_dir(ck, 200) == ck / "iter_0000200"


# --- 5. CP, precision, braces, BOS parity, top_k/top_p, packing without validation, mcore init -----------

def test_context_parallel_sets_per_token_loss():
    """training/config.py:1443-1451: SFT with CP > 1 asserts calculate_per_token_loss and
    not ddp.average_in_collective."""
    spec = load_run_spec("llama31_8b", "peft_lora", ["parallel.context=2", "parallel.gpus_per_node=2"])
    s = bridge_plan.plan_dict(spec, "/d", "/r")["set"]
    assert s["model.calculate_per_token_loss"] is True and s["ddp.average_in_collective"] is False
    s1 = bridge_plan.plan_dict(load_run_spec("llama31_8b", "peft_lora"), "/d", "/r")["set"]
    assert "model.calculate_per_token_loss" not in s1


@needs_local
def test_precision_32_trains_in_fp32(fake, tmp_path):
    """mixed_precision=None applies nothing (training/config.py:1868): the provider keeps the HF config's
    bfloat16. "32" must give an fp32 MixedPrecisionConfig."""
    import torch

    _train(tmp_path, ["precision=32"])
    (cfg, _, _), = fake["finetune"]
    mp = cfg.mixed_precision
    assert type(mp).__name__ == "MixedPrecisionConfig"
    assert (mp.bf16, mp.fp16, mp.params_dtype, mp.pipeline_dtype) == (False, False, torch.float32, torch.float32)
    assert cfg.optimizer.bf16 is False and cfg.optimizer.fp16 is False


def test_literal_braces_survive_the_template():
    """Bridge renders prompt_template.format(prompt=...) (sft_processing.py:381) and validates that
    {prompt} is its only field (:104-116); our templates' other braces are literal text, as the local
    engine renders them."""
    template = 'Schema {"entities": [{"label": "X"}]}\n{input}\nJSON {output}'
    prompt, sep = bridge_plan.split_prompt_template(template)
    rendered = prompt.format(prompt="note {a}") + sep
    assert rendered == LocalSettings(model_path="/m", prompt_template=template).prompt_of("note {a}")
    assert rendered == 'Schema {"entities": [{"label": "X"}]}\nnote {a}\nJSON '
    assert sep == "\nJSON "
    import string

    fields = [f for _, f, _, _ in string.Formatter().parse(prompt) if f is not None]
    assert fields == ["prompt"]


def test_bos_parity_training_vllm(fake, tmp_path, monkeypatch):
    """Training: [BOS if add_bos] + encode(prompt, add_special_tokens=False) (sft_processing.py:295-301,
    :393, :440). vLLM tokenized text prompts with the tokenizer's defaults (Llama 3: BOS added), so it
    saw a BOS training never had; now it gets the training's ids."""
    tok = bridge_fakes.FakeTokenizer()
    for add_bos in (False, True):
        seen = bridge_fakes.install_vllm(monkeypatch)
        _, data, run, _ = _train(tmp_path, [f"data.add_bos={str(add_bos).lower()}"], name=f"bos{add_bos}")
        bridge.generate(run, data / "test.jsonl", tmp_path / f"p{add_bos}.jsonl", GenerateConfig())
        context = [tok.bos_token_id] * add_bos + tok.encode("Extract from: item 0", add_special_tokens=False)
        assert seen["token_ids"][0] == context


@needs_local
def test_bos_parity_mcore_and_init(fake, tmp_path, monkeypatch):
    """megatron-core: HFTokenizerAdapter encodes without special tokens (inference/_tokenizer.py:67) and
    the engine adds BOS only with add_BOS. torch.distributed must be initialised before the model
    (scripts/inference/text_generation.py:194); a plain `generate` has no launcher env."""
    monkeypatch.setitem(__import__("sys").modules, "vllm", None)  # no vLLM: megatron-core path
    monkeypatch.setattr(bridge, "merge_adapter", lambda base, adapter, out, *_: out.mkdir())  # peft merge: not here
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        # generate writes a one-process world into os.environ: undone after the test (setenv records the
        # original state), so later tests and the sbatch jobs they submit never inherit it
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)
    _, data, run, _ = _train(tmp_path, ["data.add_bos=true", "checkpoint.export=merged"])
    assert (run / "model").is_dir()
    out = tmp_path / "m.jsonl"
    gen = GenerateConfig(strategy="sample", temperature=0.7, top_k=50, top_p=1.0)
    assert bridge.generate(run, data / "test.jsonl", out, gen) == 4
    m = fake["mcore"]
    tok = bridge_fakes.FakeTokenizer()
    assert m["prompts"][0] == "Extract from: item 0"
    assert m["prompt_tokens"][0] == [tok.bos_token_id] + tok.encode("Extract from: item 0", add_special_tokens=False)
    assert m["dist_env"]["WORLD_SIZE"] == "1" and m["dist_env"]["MASTER_PORT"] not in (None, "29500")
    p = m["params"]
    assert (p.top_k, p.top_p, p.termination_id) == (50, 0.0, 2)  # top_p=1.0 -> mcore's "off"
    assert json.loads(out.read_text().splitlines()[0])["prediction"] == "M0"


def test_top_k_with_top_p_one_is_accepted_by_both_backends():
    gen = GenerateConfig(strategy="sample", temperature=0.7, top_k=50, top_p=1.0)
    assert bridge_generation.mcore_sampling(gen) == {"temperature": 0.7, "top_k": 50, "top_p": 0.0}
    vllm = bridge_generation.vllm_sampling(gen)
    assert vllm["top_k"] == 50 and vllm["top_p"] == 1.0
    greedy = bridge_generation.vllm_sampling(GenerateConfig(top_k=50))
    assert greedy["temperature"] == 0.0 and greedy["top_k"] == -1
    with pytest.raises(ConfigError, match="top_k and top_p"):
        bridge_generation.mcore_sampling(GenerateConfig(strategy="sample", top_k=50, top_p=0.9))


def test_packing_without_validation_file(fake, tmp_path):
    """GPTSFTDatasetBuilder packs validation.jsonl whenever do_validation (gpt_sft.py:628-635) and
    reads it (:763, :890): without the file, no validation and no packed validation set."""
    data = write_records(tmp_path / "data")
    (data / "validation.jsonl").unlink()
    _train(tmp_path, ["packing=true"], data=data)
    (cfg, _, _), = fake["finetune"]
    assert cfg.dataset.do_validation is False and cfg.dataset.enable_offline_packing is True
    assert cfg.validation.eval_iters == 0 and cfg.validation.eval_interval is None


# --- 6. the Bridge version window and the container tag -----------------------------------------------------

@pytest.mark.parametrize("version, ok", [("0.6.0", True), ("0.6.2", True), ("0.6.1rc1", True),
                                         ("0.4.0", False), ("0.5.1", False), ("0.7.0", False)])
def test_bridge_version_window(version, ok):
    if ok:
        bridge_plan.check_bridge_version(version)
    else:
        with pytest.raises(ConfigError, match=r">=0\.6\.0,<0\.7\.0.*nemo:26\.08"):
            bridge_plan.check_bridge_version(version)


def test_train_refuses_an_unsupported_bridge(monkeypatch, tmp_path, capsys):
    calls = bridge_fakes.install(monkeypatch, tmp_path, version="0.4.0")
    with pytest.raises(ConfigError, match="this environment has 0.4.0"):
        _train(tmp_path)
    assert calls["finetune"] == []
    assert bridge.main(["check-version"]) == 2 and "0.4.0" in capsys.readouterr().err


def test_dockerfile_pins_the_bridge_container_and_checks_the_version():
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(rf"^ARG NEMO_TAG={re.escape(bridge_plan.CONTAINER_TAG)}$", text, re.M)
    run = [line for line in text.splitlines() if line.startswith("RUN") and "check-version" in line]
    assert run and "python -m clinie_nemo.engines.bridge check-version" in run[0]
    for preset in ("llama31_8b", "gatortronllama_8b"):
        head = (REPO / "nemo_configs/models" / f"{preset}.yaml").read_text()
        assert "0.6.x" in head and f"nemo:{bridge_plan.CONTAINER_TAG}" in head


# --- launch: no fixed port ------------------------------------------------------------------------------------

def test_launch_has_no_fixed_port():
    one = bridge_plan.launch_command(load_run_spec("llama31_8b", "peft_lora", ["parallel.gpus_per_node=8"]),
                                     ["train"])
    assert "--standalone" in one and not any("29500" in c or "rdzv-endpoint" in c for c in one)
    two = bridge_plan.launch_command(load_run_spec("llama31_8b", "peft_lora", ["parallel.gpus_per_node=8",
                                                                               "parallel.nodes=2"]), ["train"])
    assert "--rdzv-endpoint=$MASTER_ADDR:$MASTER_PORT" in two and not any("29500" in c for c in two)


def test_multi_node_launch_by_hand_needs_master_port(fake, tmp_path, monkeypatch):
    spec = _spec(tmp_path, ["parallel.gpus_per_node=8", "parallel.nodes=2"])
    data, run = write_records(tmp_path / "data"), tmp_path / "run"
    prepare(spec, "bridge", data, run)
    launched = []
    monkeypatch.setattr(bridge.launch, "run", lambda cmd, **kw: launched.append(cmd) or (0, False))
    monkeypatch.setenv("MASTER_ADDR", "node1")
    with pytest.raises(ConfigError, match="MASTER_PORT"):
        bridge.train(spec, data, run)
    monkeypatch.setenv("MASTER_PORT", "41234")
    bridge.train(spec, data, run)
    assert "--rdzv-endpoint=$MASTER_ADDR:$MASTER_PORT" in launched[0]  # launch.run expands it
