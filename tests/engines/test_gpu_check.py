"""tools/gpu_check.{sh,py}: the parts that run without a GPU (argument checks, parameter and FLOPs formulas,
peak lookup, markdown rendering, the clean exit without CUDA, shellcheck). The measurement itself needs a
CUDA GPU and is not run here."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.cli_plugin import REPO
from tests.local_extra import needs_local

sys.path.insert(0, str(REPO / "tools"))
import gpu_check  # noqa: E402


def test_defaults_are_the_issue_settings():
    args = gpu_check.parse_args([])
    assert (args.seq, args.lora_r) == (4096, 256)
    shape = gpu_check.ModelShape(args.hidden, args.layers, args.heads, args.kv_heads, args.ffn, args.vocab)
    assert 0.5e9 <= gpu_check.llama_params(shape)["total"] <= 1.0e9


@pytest.mark.parametrize("bad", [["--heads", "7"], ["--global-batch", "3"], ["--steps", "1"]])
def test_impossible_arguments_are_refused(bad):
    with pytest.raises(SystemExit) as exc:
        gpu_check.parse_args(bad)
    assert exc.value.code == 2


@needs_local
def test_parameter_formulas_match_a_real_llama_and_peft():
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    shape = gpu_check.ModelShape(hidden=64, layers=3, heads=8, kv_heads=2, ffn=176, vocab=500)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=500, hidden_size=64, intermediate_size=176,
                                         num_hidden_layers=3, num_attention_heads=8, num_key_value_heads=2,
                                         tie_word_embeddings=False))
    counts = gpu_check.llama_params(shape)
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    assert counts["non_embedding"] == counts["total"] - model.model.embed_tokens.weight.numel()
    lora = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                                                 "gate_proj", "up_proj", "down_proj"]))
    assert gpu_check.lora_params(shape, 4) == sum(p.numel() for p in lora.parameters() if p.requires_grad)


def test_mfu_formula_and_peaks():
    # 1B params at 100k tokens/s = 6e14 FLOP/s = 60.7% of 989 TFLOPS
    assert gpu_check.mfu(100_000, 1_000_000_000, 989.0) == pytest.approx(6e14 / 989e12)
    assert gpu_check.peak_for("NVIDIA H200")[0] == 989.0
    assert gpu_check.peak_for("NVIDIA H100 PCIe")[0] == 756.0
    assert gpu_check.peak_for("NVIDIA H100 80GB HBM3")[0] == 989.0
    assert gpu_check.peak_for("Tesla T4") == (0.0, "")


def test_markdown_snippet_lists_both_batchings():
    run = {"tokens_per_s": 50_000.0, "step_time_s": 0.6, "mfu": 0.25, "peak_mem_gib": 40.0}
    text = gpu_check.render({"date": "d", "device": "NVIDIA H200", "torch": "2.11", "peak": "H200 989",
                             "shape": "s", "params_non_embedding": 820_000_000, "lora_params": 153_000_000,
                             "lora_r": 256, "seq": 4096, "global_batch": 8, "micro_batch": 2,
                             "runs": {"packed": run, "padded": {**run, "mfu": 0.1}}})
    assert "| packed | 50,000 | 0.600 | 25.0% | 40.0 |" in text and "| padded |" in text and "0.82B" in text


@needs_local
def test_without_cuda_it_exits_3_cleanly():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the no-GPU path does not apply")
    res = subprocess.run([sys.executable, str(REPO / "tools" / "gpu_check.py"), "--out", "/dev/null"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == gpu_check.NO_GPU_EXIT and "no CUDA GPU" in res.stderr
    assert "Traceback" not in res.stderr


def test_shell_script_is_shellcheck_clean():
    assert shutil.which("shellcheck"), "shellcheck is installed on this machine (Debian package)"
    res = subprocess.run(["shellcheck", str(REPO / "tools" / "gpu_check.sh")], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout
