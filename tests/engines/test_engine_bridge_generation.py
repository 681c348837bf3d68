"""The bridge engine's generation/plan defects of issue 15 (items 1-5), one test or more each.

bridge.py runs against the FAKE megatron.bridge / megatron-core / vLLM of tests/bridge_fakes.py (the real
libraries do not import on CPU in this process; the stand-ins copy the upstream lines they cite). What the
REAL Bridge 0.6.2 / megatron-core 0.19 do with the same plan (dataset build on a read-only data folder, the
token ids of training, megatron-core and vLLM) is tested in tests/engines/test_bridge_generation_contract.py.
Tokenizers, peft merges and the tiny HF model here are real (transformers, tokenizers, peft on CPU).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from clinie_nemo import cli
from clinie_nemo.core.errors import ConfigError
from clinie_nemo.engines import bridge, nemo, nemo_plan
from clinie_nemo.engines.run_dir import prepare
from clinie_nemo.engines.spec import GenerateConfig
from clinie_nemo.engines.spec_loader import load_run_spec
from clinie_nemo.engines.validate import check_for_engine
from tests import bridge_fakes
from tests.engine_fixtures import write_records
from tests.instruct_fixtures import train_tokenizer
from tests.local_engine_fixtures import records_dir, tiny_model_dir  # noqa: F401  (pytest fixtures)

LAUNCH = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "SLURM_JOB_ID", "SLURM_GPUS_ON_NODE",
          "SLURM_NTASKS_PER_NODE", "SLURM_NNODES", "SLURM_JOB_NUM_NODES", "CUDA_VISIBLE_DEVICES", "SLURM_PROCID")


@pytest.fixture
def fake(monkeypatch, tmp_path):
    for key in LAUNCH:  # a clean allocation; generate's one-process world is undone after each test
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)
    calls = bridge_fakes.install(monkeypatch, tmp_path)
    bridge_fakes.run_export_in_process(monkeypatch, bridge, calls)
    return calls


def _hf(tmp_path: Path) -> Path:
    hf = tmp_path / "hf"
    if not hf.is_dir():
        hf.mkdir()
        (hf / "config.json").write_text(json.dumps({"model_type": "llama"}))
        (hf / "model.safetensors").write_bytes(b"\0" * 64)
    return hf


def _train(tmp_path: Path, overrides: list[str], recipe: str = "peft_lora", hf: Path | None = None,
           name: str = "run", data: Path | None = None):
    spec = load_run_spec("llama31_8b", recipe, [f"model.checkpoint={hf or _hf(tmp_path)}", *overrides])
    data = data or write_records(tmp_path / "data")
    run = tmp_path / name
    prepare(spec, "bridge", data, run)
    with pytest.MonkeyPatch.context() as mp:
        if spec.train.parallel.world_size > 1:  # rank 0 of the launch (no torchrun here)
            mp.setenv("WORLD_SIZE", str(spec.train.parallel.world_size))
            mp.setenv("RANK", "0")
        bridge.train(spec, data, run)
    return spec, data, run


def _no_vllm(monkeypatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "vllm", None)  # import vllm -> ImportError: megatron-core path


# --- item 1: vLLM's tensor_parallel_size is the generate job's GPUs ----------------------------------------

def _slurm_generate_step(monkeypatch, gpus_on_node: str) -> None:
    """What slurm/generate.sh's step sees: one task per node (cn_tasks_per_node bridge:generate = 1) that
    maps its ids onto RANK/WORLD_SIZE (slurm/common.sh cn_launch), on a node with ``gpus_on_node`` GPUs."""
    for key, value in {"SLURM_JOB_ID": "77", "SLURM_GPUS_ON_NODE": gpus_on_node, "SLURM_NTASKS_PER_NODE": "1",
                       "SLURM_JOB_NUM_NODES": "1", "WORLD_SIZE": "1", "RANK": "0"}.items():
        monkeypatch.setenv(key, value)


def test_vllm_uses_the_generate_jobs_gpus_not_the_training_tensor_size(fake, tmp_path, monkeypatch):
    """Trained with TP=2; generated in a job with 4 GPUs: vLLM got tensor_parallel_size=2 (the TRAINING
    plan's) and left half the GPUs idle; in the default 1-GPU generate job it asked for 2 GPUs and failed."""
    _, data, run = _train(tmp_path, ["parallel.tensor=2", "parallel.gpus_per_node=2"])
    seen = bridge_fakes.install_vllm(monkeypatch)
    _slurm_generate_step(monkeypatch, "4")
    bridge.generate(run, data / "test.jsonl", tmp_path / "p.jsonl", GenerateConfig())
    assert seen["llm"]["tensor_parallel_size"] == 4


def test_a_tp1_run_generates_in_the_default_one_gpu_job(fake, tmp_path, monkeypatch):
    _, data, run = _train(tmp_path, [])
    seen = bridge_fakes.install_vllm(monkeypatch)
    _slurm_generate_step(monkeypatch, "1")
    assert bridge.generate(run, data / "test.jsonl", tmp_path / "p.jsonl", GenerateConfig()) == 4
    assert seen["llm"]["tensor_parallel_size"] == 1


def test_a_job_whose_gpus_the_tensor_size_does_not_divide_exits_2(fake, tmp_path, monkeypatch, capsys):
    _, data, run = _train(tmp_path, ["parallel.tensor=2", "parallel.gpus_per_node=2"])
    seen = bridge_fakes.install_vllm(monkeypatch)
    _slurm_generate_step(monkeypatch, "1")  # generate.sh's default: --gpus-per-node=1
    out = tmp_path / "p.jsonl"
    rc = cli.main(["generate", "--run", str(run), "--records", str(data / "test.jsonl"), "--output", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "llm" not in seen and not out.exists()
    assert "1 GPU(s) per node (SLURM_GPUS_ON_NODE x 1 node(s))" in err and "tensor parallel size 2" in err
    assert "Traceback" not in err


def test_vllm_tensor_size_must_divide_the_heads(fake, tmp_path, monkeypatch):
    """vLLM refuses a tensor_parallel_size that does not divide the attention heads (ModelConfig.
    verify_with_parallel_config); llama31_8b has 8 KV heads, so 6 GPUs is a clear error before vLLM starts."""
    _, data, run = _train(tmp_path, ["parallel.tensor=2", "parallel.gpus_per_node=2"])
    seen = bridge_fakes.install_vllm(monkeypatch)
    _slurm_generate_step(monkeypatch, "6")
    with pytest.raises(ConfigError, match=r"all 6 GPU\(s\).*32 attention / 8 KV heads"):
        bridge.generate(run, data / "test.jsonl", tmp_path / "p.jsonl", GenerateConfig())
    assert "llm" not in seen


def test_one_allocation_rule_for_both_engines():
    """The nemo engine's generation (one task per GPU) and vLLM (one process per node) read the same
    variables through engines/allocation.py; only the meaning of a launch's tasks differs."""
    from clinie_nemo.engines.allocation import job_allocation

    step = {"SLURM_JOB_ID": "5", "SLURM_GPUS_ON_NODE": "8", "SLURM_NTASKS_PER_NODE": "1", "WORLD_SIZE": "1"}
    assert job_allocation(step)[:2] == (1, 1) == nemo_plan.generation_allocation(1, 1, step)
    assert job_allocation(step, one_process_per_gpu=False)[:2] == (1, 8)
    assert job_allocation({"CUDA_VISIBLE_DEVICES": "0,1"}, one_process_per_gpu=False)[:2] == (1, 2)
    assert job_allocation({}) is None and nemo_plan.generation_allocation(2, 2, {}) == (1, 4)


# --- item 2: BOS parity between training, megatron-core and vLLM (real tiny HF tokenizer with <s>) ---------

def test_mcore_and_vllm_feed_the_training_context_ids_with_bos(fake, tmp_path, monkeypatch):
    """megatron-core 0.19's legacy StaticInferenceEngine.generate(prompts, add_BOS=True) drops add_BOS
    (static_engine.py:281-292; the fake copies it): with data.add_bos=true the mcore path fed no BOS while
    training and vLLM had one. Both paths must feed [BOS] + encode(prompt, add_special_tokens=False), the
    training's context (sft_processing.py:393-440; the real Bridge's ids are compared in the contract test)."""
    tok_dir = train_tokenizer(tmp_path / "tok")
    from transformers import AutoTokenizer

    hf_tok = AutoTokenizer.from_pretrained(str(tok_dir))
    assert hf_tok.bos_token == "<s>" and hf_tok.bos_token_id is not None
    fake["hf_tokenizer"] = hf_tok  # what Bridge's inference build_tokenizer wraps (HFTokenizerAdapter)
    monkeypatch.setattr(bridge, "merge_adapter", lambda *a, **k: None)
    _, data, run = _train(tmp_path, ["data.add_bos=true", "checkpoint.export=merged"])
    (run / "model").mkdir(exist_ok=True)  # the merged export (peft, not run here)
    prompt = "Extract from: item 0"
    context = [hf_tok.bos_token_id] + hf_tok.encode(prompt, add_special_tokens=False)

    seen = bridge_fakes.install_vllm(monkeypatch, tokenizer=hf_tok)
    bridge.generate(run, data / "test.jsonl", tmp_path / "v.jsonl", GenerateConfig())
    _no_vllm(monkeypatch)
    bridge.generate(run, data / "test.jsonl", tmp_path / "m.jsonl", GenerateConfig())
    mcore = fake["mcore"]["prompt_tokens"]
    assert seen["token_ids"][0] == context == mcore[0]
    assert seen["token_ids"] == mcore  # every record, both paths
    assert all(ids[0] == hf_tok.bos_token_id and ids.count(hf_tok.bos_token_id) == 1 for ids in mcore)


def test_without_add_bos_no_path_adds_one(fake, tmp_path, monkeypatch):
    tok_dir = train_tokenizer(tmp_path / "tok")
    from transformers import AutoTokenizer

    hf_tok = AutoTokenizer.from_pretrained(str(tok_dir))
    fake["hf_tokenizer"] = hf_tok
    monkeypatch.setattr(bridge, "merge_adapter", lambda *a, **k: None)
    _, data, run = _train(tmp_path, ["data.add_bos=false", "checkpoint.export=merged"])
    (run / "model").mkdir(exist_ok=True)
    seen = bridge_fakes.install_vllm(monkeypatch, tokenizer=hf_tok)
    bridge.generate(run, data / "test.jsonl", tmp_path / "v.jsonl", GenerateConfig())
    _no_vllm(monkeypatch)
    bridge.generate(run, data / "test.jsonl", tmp_path / "m.jsonl", GenerateConfig())
    assert seen["token_ids"][0] == hf_tok.encode("Extract from: item 0", add_special_tokens=False)
    assert fake["mcore"]["prompt_tokens"] == seen["token_ids"]


# --- item 3: megatron-core generation of a LoRA run exported as an HF adapter -------------------------------

def _real_adapter(base: Path, out: Path) -> None:
    """A real HF PEFT LoRA adapter on the tiny model (non-zero B, so merging changes the weights)."""
    import peft
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(str(base))
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    shutil.rmtree(out, ignore_errors=True)
    peft.get_peft_model(model, config).save_pretrained(str(out))


def test_mcore_merges_the_lora_adapter_before_loading(fake, tmp_path, monkeypatch, tiny_model_dir):  # noqa: F811
    """export=adapter (the default) writes an HF PEFT adapter, which only vLLM serves: without vLLM,
    generation stopped with 'needs merged weights'. It now merges the adapter into <run>/model (peft
    merge_and_unload of the adapter Bridge exported) and megatron-core loads the merged weights."""
    import torch
    import transformers

    fake["hf_tokenizer"] = transformers.AutoTokenizer.from_pretrained(str(tiny_model_dir))
    _, data, run = _train(tmp_path, [], hf=tiny_model_dir)
    _real_adapter(tiny_model_dir, run / "adapter")
    assert not (run / "model").exists()
    _no_vllm(monkeypatch)
    assert bridge.generate(run, data / "test.jsonl", tmp_path / "m.jsonl", GenerateConfig()) == 4
    m = fake["mcore"]
    assert m["load"]["hf_model_path"] == str(run / "model") and m["tokenizer_path"] == str(run / "model")
    merged = transformers.AutoModelForCausalLM.from_pretrained(str(run / "model"))
    base = transformers.AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    import peft

    expected = peft.PeftModel.from_pretrained(base, str(run / "adapter")).merge_and_unload()
    name = "model.layers.0.self_attn.q_proj.weight"
    got, want = merged.state_dict()[name], expected.state_dict()[name]
    assert torch.allclose(got, want, atol=1e-6)
    plain = transformers.AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)).state_dict()[name]
    assert not torch.allclose(got, plain)  # the trained weights, not the base ones
    assert not list(run.glob("model.partial-*"))
    # a second generation reuses the merge
    mtime = (run / "model" / "config.json").stat().st_mtime_ns
    bridge.generate(run, data / "test.jsonl", tmp_path / "m2.jsonl", GenerateConfig())
    assert (run / "model" / "config.json").stat().st_mtime_ns == mtime


# --- item 4: never generate from the base model --------------------------------------------------------------

def test_lora_with_export_none_is_refused_before_training(tmp_path, capsys):
    """export=none with LoRA left no adapter: vLLM then loaded the BASE model (no LoRA request) and wrote
    its output as the run's predictions. Refused at validation (plan/dry-run included), exit 2."""
    spec = load_run_spec("llama31_8b", "peft_lora", ["checkpoint.export=none"])
    with pytest.raises(ConfigError, match="export=none with method=lora leaves nothing to generate from"):
        check_for_engine(spec, "bridge")
    data, out = write_records(tmp_path / "data"), tmp_path / "run"
    rc = cli.main(["train", "--engine", "bridge", "--model", "llama31_8b", "--recipe", "peft_lora", "--data",
                   str(data), "--output", str(out), "checkpoint.export=none", "--dry-run"])
    err = capsys.readouterr().err
    assert rc == 2 and "export=none with method=lora" in err and "Traceback" not in err and not out.exists()
    check_for_engine(load_run_spec("llama31_8b", "peft_lora"), "bridge")  # the preset (export=adapter) passes


@pytest.mark.parametrize("recipe, overrides", [("peft_lora", []),
                                               ("full_sft", ["checkpoint.export=none"])])
def test_a_run_without_exported_weights_never_generates_from_the_base(fake, tmp_path, monkeypatch, recipe,
                                                                      overrides):
    """A LoRA run whose adapter is missing (trained before the rule, or export deleted) and a full run with
    export=none: vLLM got model=<base checkpoint> and no adapter. Now a clear error naming the export step."""
    _, data, run = _train(tmp_path, overrides, recipe=recipe)
    shutil.rmtree(run / "adapter", ignore_errors=True)
    seen = bridge_fakes.install_vllm(monkeypatch)
    with pytest.raises(ConfigError, match=r"no exported weights .*base model.*clinie_nemo.engines.bridge export"):
        bridge.generate(run, data / "test.jsonl", tmp_path / "p.jsonl", GenerateConfig())
    assert "llm" not in seen
    _no_vllm(monkeypatch)
    with pytest.raises(ConfigError, match="no exported weights"):
        bridge.generate(run, data / "test.jsonl", tmp_path / "p.jsonl", GenerateConfig())
    assert "load" not in fake["mcore"]


# --- item 5: packing artefacts under the run, never in the data folder ---------------------------------------

def test_dataset_root_is_under_the_run_and_the_data_folder_stays_untouched(fake, tmp_path):
    """GPTSFTDatasetBuilder writes packed parquet + metadata under dataset_root/packed/ and .idx files next
    to each JSONL (gpt_sft.py:733-822, datasets/utils.py:1288-1328): dataset_root was the shared DATA
    folder. Now <run>/dataset holds symlinks to the splits; the data folder is read-only here."""
    data = write_records(tmp_path / "data")
    for f in data.iterdir():
        f.chmod(0o444)
    data.chmod(0o555)
    before = sorted(p.name for p in data.iterdir())
    try:
        _, _, run = _train(tmp_path, ["packing=true"], data=data)
        (cfg, _, _), = fake["finetune"]
        root = run / "dataset"
        assert cfg.dataset.dataset_root == str(root)
        for name in ("training.jsonl", "validation.jsonl", "test.jsonl"):
            assert (root / name).is_symlink() and (root / name).resolve() == (data / name).resolve()
        assert sorted(p.name for p in data.iterdir()) == before
        # a resumed run (every rank restages) keeps the same links
        bridge.stage_dataset({"source": str(data), "root": str(root), "files": ["training.jsonl"]})
        assert (root / "training.jsonl").resolve() == (data / "training.jsonl").resolve()
        assert not list(root.glob(".*.tmp"))
    finally:
        data.chmod(0o755)


# --- item 6: activation memory in the memory check ------------------------------------------------------------

def _act_gb(model: str, overrides: list[str], fused: bool) -> float:
    from clinie_nemo.engines.validate import activation_memory

    return activation_memory(load_run_spec(model, "peft_lora", overrides), fused)[0] / 1e9


def test_activation_memory_follows_korthikanti_table_2():
    """Per layer, 16-bit: sbh(10 + 24/t + 5as/(ht)) without recompute or sequence parallel, sbh(34 +
    5as/h)/t with sequence parallel, the same minus the 5as/h term with selective recompute (or fused
    attention), 2sbh (/t) with full recompute; CP splits s; PP does not reduce the first stage's share."""
    s, b, h, a, L = 2048, 1, 6144, 48, 44  # GatorTronGPT 20B
    g20 = ["seq_length=2048"]
    sbh = s * b * h
    assert _act_gb("gatortrongpt_20b", [*g20, "activation_recompute=none"], False) == pytest.approx(
        L * sbh * (34 + 5 * a * s / h) / 1e9)  # 63.1 GB: 34*s*b*h + 5*a*s^2*b per layer
    assert _act_gb("gatortrongpt_20b", [*g20, "activation_recompute=none"], True) == pytest.approx(
        L * sbh * 34 / 1e9)  # fused attention keeps no s x s scores
    tp4 = [*g20, "parallel.tensor=4", "parallel.gpus_per_node=4", "activation_recompute=none"]
    assert _act_gb("gatortrongpt_20b", tp4, False) == pytest.approx(L * sbh * (10 + 24 / 4 + 5 * a * s / (h * 4)) / 1e9)
    assert _act_gb("gatortrongpt_20b", [*tp4, "parallel.sequence_parallel=true"], False) == pytest.approx(
        L * sbh * (34 + 5 * a * s / h) / 4 / 1e9)
    assert _act_gb("gatortrongpt_20b", g20, False) == pytest.approx(L * sbh * 34 / 1e9)  # selective: 18.8 GB
    assert _act_gb("gatortrongpt_20b", [*g20, "activation_recompute=full"], False) == pytest.approx(L * sbh * 2 / 1e9)
    cp2 = [*g20, "parallel.context=2", "parallel.gpus_per_node=2"]
    assert _act_gb("gatortrongpt_20b", cp2, False) == pytest.approx(L * sbh / 2 * 34 / 1e9)
    pp2 = [*g20, "parallel.pipeline=2", "parallel.gpus_per_node=2"]
    assert _act_gb("gatortrongpt_20b", pp2, False) == _act_gb("gatortrongpt_20b", g20, False)
    assert _act_gb("gatortrongpt_20b", [*g20, "batch.micro_batch_size=4"], False) == pytest.approx(
        4 * L * sbh * 34 / 1e9)


def test_20b_activations_that_do_not_fit_are_refused_with_the_arithmetic():
    """The old rule counted weights only: 20B bf16 on tensor 1 (40.5 GB) passed with any micro batch.
    Micro batch 4 keeps 75.3 GB of activations even with selective recompute: 115.8 GB per GPU."""
    spec = load_run_spec("gatortrongpt_20b", "peft_lora", ["seq_length=2048", "batch.micro_batch_size=4"])
    with pytest.raises(ConfigError) as err:
        check_for_engine(spec, "nemo")
    msg = str(err.value)
    assert "needs 115.8 GB per GPU" in msg and "= 40.5 GB + activations 44 layers x micro_batch 4 x seq 2048" in msg
    assert "x hidden 6144 x (10 + 24/tensor = 34.0) B" in msg and "= 75.3 GB" in msg and "= 72 GB" in msg
    assert "Korthikanti et al. 2022" in msg and "activation_recompute=full" in msg
    check_for_engine(load_run_spec("gatortrongpt_20b", "peft_lora", ["seq_length=2048", "batch.micro_batch_size=4",
                                                                     "activation_recompute=full"]), "nemo")


def test_20b_without_recompute_counts_the_attention_scores():
    spec = load_run_spec("gatortrongpt_20b", "full_sft", ["seq_length=2048", "activation_recompute=none",
                                                          "parallel.tensor=1", "parallel.gpus_per_node=1"])
    with pytest.raises(ConfigError, match=r"needs 103\.6 GB.*5\*a\*s/\(h\*tensor\) = 114\.0\) B.*= 63\.1 GB"):
        check_for_engine(spec, "nemo")
    tp2 = load_run_spec("gatortrongpt_20b", "full_sft", ["seq_length=2048", "activation_recompute=none"])
    check_for_engine(tp2, "nemo")  # tensor 2: 20.3 + 34.3 GB


def test_bridge_checks_activations_too():
    """A long context on one GPU: Llama 3.1 8B at seq 16384 keeps 73 GB of activations (selective)."""
    spec = load_run_spec("llama31_8b", "peft_lora", ["seq_length=16384"])
    with pytest.raises(ConfigError, match=r"engine bridge: model llama31_8b needs 89\.1 GB per GPU"):
        check_for_engine(spec, "bridge")
    check_for_engine(load_run_spec("llama31_8b", "peft_lora", ["seq_length=16384", "activation_recompute=full"]),
                     "bridge")
    check_for_engine(load_run_spec("llama31_8b", "peft_lora", ["seq_length=16384", "parallel.context=2",
                                                               "parallel.gpus_per_node=2"]), "bridge")


@pytest.mark.parametrize("mode, bridge_keys, nemo_keys", [
    ("none", (None, None, None, None), ("null", "null", "null")),
    ("selective", ("selective", None, None, ["core_attn"]), ("selective", "null", "null")),
    ("full", ("full", "uniform", 1, None), ("full", "uniform", "1")),
])
def test_recompute_reaches_both_engines(mode, bridge_keys, nemo_keys):
    from clinie_nemo.engines import bridge_plan

    spec = load_run_spec("llama31_8b", "peft_lora", [f"activation_recompute={mode}"])
    s = bridge_plan.plan_dict(spec, "/d", "/r")["set"]
    assert (s["model.recompute_granularity"], s["model.recompute_method"], s["model.recompute_num_layers"],
            s["model.recompute_modules"]) == bridge_keys
    g = load_run_spec("gatortrongpt_20b", "peft_lora", ["seq_length=2048", f"activation_recompute={mode}"])
    args = dict(a.split("=", 1) for a in nemo.train_command(g, "/d", "/r") if "=" in a and not a.startswith("--"))
    assert (args["model.activations_checkpoint_granularity"], args["model.activations_checkpoint_method"],
            args["model.activations_checkpoint_num_layers"]) == nemo_keys
