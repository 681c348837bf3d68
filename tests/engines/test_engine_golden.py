"""Golden tests: the resolved Megatron-Bridge settings dict and the NeMo 1.x command lines for LoRA and
full fine-tuning, tensor parallel 1/2/4/8, on 1 and 2 nodes of 8 GPUs. A change in these files changes
what runs on the cluster: review the diff, then UPDATE_GOLDEN=1 to accept it."""

from __future__ import annotations

import json
import shlex

import pytest

from clinie_nemo.engines import bridge_plan, nemo
from clinie_nemo.engines.spec_loader import load_generate_config, load_run_spec
from clinie_nemo.engines.validate import check_for_engine
from tests.engine_fixtures import check_golden

DATA, RUN = "/data/records", "/runs/r"


@pytest.fixture(autouse=True)
def _not_inside_a_launch(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)


GRID = [(method, tp, nodes) for method in ("lora", "full") for tp in (1, 2, 4, 8) for nodes in (1, 2)]


def _spec(model: str, method: str, tp: int, nodes: int, extra: list[str] | None = None):
    recipe = "peft_lora" if method == "lora" else "full_sft"
    return load_run_spec(model, recipe, [f"parallel.tensor={tp}", "parallel.gpus_per_node=8",
                                         f"parallel.nodes={nodes}", *(extra or [])])


@pytest.mark.parametrize("method, tp, nodes", GRID)
def test_bridge_config_golden(method, tp, nodes):
    spec = _spec("llama31_8b", method, tp, nodes, ["model.checkpoint=/models/Llama-3.1-8B"])
    check_for_engine(spec, "bridge")
    plan = bridge_plan.plan_dict(spec, DATA, RUN)
    s = plan["set"]
    # the facts the golden file must hold, asserted independently of it
    assert s["model.tensor_model_parallel_size"] == tp
    assert plan["world"]["data_parallel"] == 8 * nodes // tp
    assert s["train.global_batch_size"] == 64 and s["train.micro_batch_size"] == 1 and s["train.train_iters"] == 300
    assert s["optimizer.lr"] == 1e-4
    assert plan["recipe"].endswith("llama31_8b_peft_config" if method == "lora" else "llama31_8b_sft_config")
    if method == "lora":
        assert (plan["peft"]["dim"], plan["peft"]["dropout"]) == (256, 0.2)
    else:
        assert plan["peft"] is None
    pre = plan["dataset"]["preprocessing"]
    assert (pre["prompt_template"], pre["separator"], pre["loss_mode"], pre["add_eos"]) == ("{prompt}", " ",
                                                                                           "completion", True)
    launch = bridge_plan.launch_command(spec, ["train", "--spec", f"{RUN}/spec.yaml"])
    text = json.dumps({"plan": plan, "launch": bridge_plan.shell_line(launch)}, indent=2, sort_keys=True) + "\n"
    check_golden(f"bridge_{method}_tp{tp}_n{nodes}.json", text)


@pytest.mark.parametrize("method, tp, nodes", GRID)
def test_nemo_command_golden(method, tp, nodes):
    spec = _spec("gatortrongpt_20b", method, tp, nodes, ["seq_length=2048"])
    check_for_engine(spec, "nemo")
    cmd = nemo.train_command(spec, DATA, RUN)
    args = dict(a.split("=", 1) for a in cmd if "=" in a and not a.startswith("--"))
    assert args["model.tensor_model_parallel_size"] == str(tp)
    assert args["trainer.num_nodes"] == str(nodes) and args["trainer.devices"] == "8"
    assert args["model.global_batch_size"] == "64" and args["model.micro_batch_size"] == "1"
    assert args["trainer.max_steps"] == "300" and args["model.optim.lr"] == "0.0001"
    assert args["model.data.train_ds.prompt_template"] == "'{input} {output}'"
    assert args["model.peft.peft_scheme"] == ("lora" if method == "lora" else "none")
    if method == "lora":
        assert args["model.peft.lora_tuning.adapter_dim"] == "256"
        assert args["model.peft.lora_tuning.adapter_dropout"] == "0.2"
    else:
        assert not any(k.startswith("model.peft.lora_tuning") for k in args)
    assert cmd[0] == ("srun" if nodes > 1 else "torchrun")
    check_golden(f"nemo_{method}_tp{tp}_n{nodes}.txt", " \\\n  ".join(shlex.quote(c) for c in cmd) + "\n")


@pytest.mark.parametrize("method", ["lora", "full"])
def test_nemo_generate_golden(method):
    spec = _spec("gatortrongpt_20b", method, 8, 1, ["seq_length=2048"])
    gen = load_generate_config("study_sampling")
    cmd = nemo.generate_command(spec, RUN, "/data/records/test.jsonl", f"{RUN}/generate/preds", gen,
                                allocation=(1, 8))  # the generation job's nodes x GPUs, not the environment's
    args = dict(a.split("=", 1) for a in cmd if "=" in a and not a.startswith("--"))
    assert args["inference.greedy"] == "false" and args["inference.temperature"] == "0.7"
    assert args["inference.top_k"] == "50" and args["inference.top_p"] == "0.9"
    assert args["model.data.test_ds.tokens_to_generate"] == "128"
    if method == "lora":
        assert args["model.peft.restore_from_path"] == f"{RUN}/adapter/clinie_nemo_run.nemo"
    else:
        assert args["model.restore_from_path"] == f"{RUN}/model/clinie_nemo_run.nemo"
    check_golden(f"nemo_generate_{method}.txt", " \\\n  ".join(shlex.quote(c) for c in cmd) + "\n")


def test_nemo_runs_the_script_directly_inside_a_slurm_launch(monkeypatch):
    """The Slurm scripts start one task per GPU (RANK/WORLD_SIZE set): no torchrun/srun inside that."""
    monkeypatch.setenv("WORLD_SIZE", "16")
    cmd = nemo.train_command(_spec("gatortrongpt_20b", "lora", 8, 2, ["seq_length=2048"]), DATA, RUN)
    assert cmd[:2] == ["python", "/opt/NeMo/examples/nlp/language_modeling/tuning/megatron_gpt_finetuning.py"]
