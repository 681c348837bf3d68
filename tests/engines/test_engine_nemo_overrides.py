"""Engine nemo (NeMo 1.x): the Hydra overrides, launch lines and validation that decide whether NeMo starts.

NeMo cannot run here (no GPU, no container): these tests check the command lines the engine renders and the
spec validation, against the NeMo v2.4.0 / Lightning 2.4.0 behaviour cited in clinie_nemo/engines/nemo.py and nemo_plan.py.
"""

from __future__ import annotations

import pytest

from clinie_nemo.core.errors import ConfigError
from clinie_nemo.engines import nemo, nemo_plan
from clinie_nemo.engines.spec_loader import CONFIG_ROOT, load_generate_config, load_run_spec
from clinie_nemo.engines.validate import check_for_engine

DATA, RUN = "/data/records", "/runs/r"
SLURM_VARS = ("WORLD_SIZE", "SLURM_JOB_ID", "SLURM_NNODES", "SLURM_JOB_NUM_NODES", "SLURM_GPUS_ON_NODE",
              "SLURM_NTASKS_PER_NODE", "CUDA_VISIBLE_DEVICES", "MASTER_PORT")


@pytest.fixture(autouse=True)
def _outside_any_job(monkeypatch):
    for var in SLURM_VARS:
        monkeypatch.delenv(var, raising=False)


def _spec(*overrides: str, model: str = "gatortrongpt_20b", recipe: str = "peft_lora"):
    return load_run_spec(model, recipe, ["seq_length=2048", *overrides])


def _args(cmd: list[str]) -> dict[str, str]:
    return dict(a.split("=", 1) for a in cmd if "=" in a and not a.startswith("--"))


# ---------------------------------------------------------------- item 1: concat_sampling_probabilities

def test_train_sets_concat_sampling_probabilities_for_its_one_training_file():
    args = _args(nemo.train_command(_spec(), DATA, RUN))
    assert args["model.data.train_ds.file_names"] == f"[{DATA}/training.jsonl]"
    assert args["model.data.train_ds.concat_sampling_probabilities"] == "[1.0]"


def test_sampling_probabilities_are_normalised_weights():
    assert nemo_plan.concat_sampling_probabilities([2, 1, 1]) == [0.5, 0.25, 0.25]
    assert nemo_plan.concat_sampling_probabilities([0.3, 0.3]) == [0.5, 0.5]
    for bad in ([], [0, 0], [1, -1]):
        with pytest.raises(ConfigError, match="sampling weights"):
            nemo_plan.concat_sampling_probabilities(bad)


# ---------------------------------------------------------------- item 3: generation allocation

def test_generate_uses_the_generation_jobs_gpus_not_the_training_runs(monkeypatch):
    spec = _spec("parallel.tensor=2", "parallel.gpus_per_node=8", "parallel.nodes=2")
    gen = load_generate_config("greedy")
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_JOB_NUM_NODES", "1")
    monkeypatch.setenv("SLURM_GPUS_ON_NODE", "2")
    cmd = nemo.generate_command(spec, RUN, "/d/test.jsonl", f"{RUN}/generate/p", gen)
    args = _args(cmd)
    assert (args["trainer.devices"], args["trainer.num_nodes"]) == ("2", "1")
    assert args["model.tensor_model_parallel_size"] == "2"  # the trained layout stays
    assert args["model.data.test_ds.global_batch_size"] == str(gen.batch_size)  # data parallel 1
    assert cmd[:2] == ["torchrun", "--standalone"] and "--nproc-per-node=2" in cmd


def test_generate_inside_a_launch_counts_the_steps_tasks(monkeypatch):
    spec = _spec("parallel.tensor=2", "parallel.gpus_per_node=8", "parallel.nodes=2")
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("SLURM_NNODES", "2")
    monkeypatch.setenv("SLURM_GPUS_ON_NODE", "8")  # the node has 8, the step runs 4 tasks per node
    monkeypatch.setenv("SLURM_JOB_ID", "78")
    args = _args(nemo.generate_command(spec, RUN, "/d/t.jsonl", "/p", load_generate_config("greedy")))
    assert (args["trainer.devices"], args["trainer.num_nodes"]) == ("4", "2")
    assert args["model.data.test_ds.global_batch_size"] == str(16 * 4)
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "2(x2)")  # what Lightning compares trainer.devices with
    monkeypatch.setenv("WORLD_SIZE", "4")
    args = _args(nemo.generate_command(spec, RUN, "/d/t.jsonl", "/p", load_generate_config("greedy")))
    assert (args["trainer.devices"], args["trainer.num_nodes"]) == ("2", "2")


def test_generate_refuses_an_allocation_that_cannot_hold_the_model(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "79")
    monkeypatch.setenv("SLURM_GPUS_ON_NODE", "3")
    with pytest.raises(ConfigError, match=r"1 node\(s\) x 3 GPU\(s\).*tensor x pipeline = 2 x 1"):
        nemo.generate_command(_spec("parallel.tensor=2", "parallel.gpus_per_node=8"), RUN, "/d/t.jsonl", "/p",
                              load_generate_config("greedy"))


def test_generation_allocation_without_slurm():
    assert nemo_plan.generation_allocation(2, 1, {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}) == (1, 4)
    assert nemo_plan.generation_allocation(4, 2, {}) == (1, 8)
    assert nemo_plan.generation_allocation(1, 1, {"SLURM_JOB_ID": "5", "SLURM_GPUS_ON_NODE": "4",
                                             "SLURM_JOB_NUM_NODES": "2"}) == (2, 4)


# ---------------------------------------------------------------- item 4: max_steps and val_check_interval

def test_nemo_engine_requires_max_steps():
    spec = _spec("max_steps=null", "max_epochs=3")
    with pytest.raises(ConfigError, match="engine nemo needs train.max_steps"):
        check_for_engine(spec, "nemo")
    with pytest.raises(ConfigError, match="engine nemo needs train.max_steps"):
        nemo.train_command(spec, DATA, RUN)


@pytest.mark.parametrize("overrides, expected", [
    (["max_steps=40", "optim.warmup_steps=5"], "40"),  # validation_interval 75 > 40 steps: clamped
    (["max_steps=300", "data.validation_interval=20"], "20"),
    (["max_steps=30", "optim.warmup_steps=5", "data.validation_interval=0", "checkpoint.save_interval=500"], "30"),
])
def test_val_check_interval_never_exceeds_max_steps(overrides, expected):
    args = _args(nemo.train_command(_spec(*overrides), DATA, RUN))
    assert args["trainer.val_check_interval"] == expected
    assert int(args["trainer.val_check_interval"]) <= int(args["trainer.max_steps"])
    # Lightning checks the interval against the batches left only when check_val_every_n_epoch is set
    assert args["++trainer.check_val_every_n_epoch"] == "null"  # a key the NeMo config lacks: "++" adds it


@pytest.mark.parametrize("recipe", ["peft_lora", "full_sft"])
def test_max_epochs_is_minus_one_so_exp_manager_never_compares_it_with_null(recipe):
    """NeMo v2.4.0 exp_manager.py:1365-1370 runs `max_epochs < check_val_every_n_epoch` unless max_epochs is None
    or -1; with check_val_every_n_epoch=null any other integer (the old 9999) raised TypeError before training.
    The real NeMo runs this in tests/engines/test_nemo_contract.py; here the rendered pair itself."""
    extra = ["parallel.tensor=2", "parallel.gpus_per_node=2"] if recipe == "full_sft" else []
    args = _args(nemo.train_command(_spec(*extra, recipe=recipe), DATA, RUN))
    assert args["++trainer.check_val_every_n_epoch"] == "null"
    assert args["trainer.max_epochs"] == "-1"


def test_override_check_outside_a_nemo_container_says_it_did_not_check(tmp_path, capsys):
    """The real check (Hydra composing the YAML) runs in tests/engines/test_nemo_contract.py; without the YAML it must
    say so, not pretend to have checked."""
    from dataclasses import replace

    from clinie_nemo.engines.nemo_overrides import check_overrides, script_overrides
    from clinie_nemo.engines.spec_loader import load_nemo_script_config

    script = replace(load_nemo_script_config("finetune"), nemo_root=str(tmp_path / "no-nemo"))
    cmd = nemo.train_command(_spec(), DATA, RUN)
    assert check_overrides(script, cmd, python="/nonexistent/python") is False
    assert "overrides not checked" in capsys.readouterr().err
    assert script_overrides(cmd)[0] == "name=clinie_nemo_run" and script_overrides(cmd)[-1].startswith("model.")


# ---------------------------------------------------------------- launch line: no fixed MASTER_PORT

def test_one_node_uses_torchrun_standalone_and_no_fixed_port():
    cmd = nemo.train_command(_spec("parallel.gpus_per_node=8"), DATA, RUN)
    assert cmd[:2] == ["torchrun", "--standalone"]
    assert not any("29500" in c or "master" in c.lower() or "rdzv-endpoint" in c for c in cmd)


def test_several_nodes_take_master_port_from_the_environment(monkeypatch):
    monkeypatch.setenv("MASTER_PORT", "41234")
    cmd = nemo.train_command(_spec("parallel.gpus_per_node=8", "parallel.nodes=2", "parallel.tensor=8"), DATA, RUN)
    assert cmd[0] == "srun" and not any("29500" in c or "master" in c.lower() for c in cmd)


# ---------------------------------------------------------------- item 6: 20B weights per GPU

def test_20b_in_fp32_on_tensor_1_fails_validation_with_the_arithmetic():
    with pytest.raises(ConfigError) as e:
        check_for_engine(_spec("precision=32"), "nemo")
    msg = str(e.value)
    assert "20.3B parameters in fp32" in msg and "81.0 GB of weights per GPU" in msg
    assert "parallel.tensor" in msg and "precision=bf16-mixed" in msg


def test_20b_fits_with_tensor_2_or_bf16_weights():
    check_for_engine(_spec("precision=32", "parallel.tensor=2", "parallel.gpus_per_node=2"), "nemo")
    spec = _spec()  # the preset: bf16-mixed on tensor 1 -> megatron_amp_O2 keeps bf16 weights (40.5 GB)
    check_for_engine(spec, "nemo")
    assert _args(nemo.train_command(spec, DATA, RUN))["model.megatron_amp_O2"] == "true"
    full = _spec(recipe="full_sft")
    check_for_engine(full, "nemo")


def test_precision_32_turns_megatron_amp_o2_off_in_train_and_generate():
    spec = _spec("precision=32", "parallel.tensor=2", "parallel.gpus_per_node=2")
    assert _args(nemo.train_command(spec, DATA, RUN))["model.megatron_amp_O2"] == "false"
    gen = nemo.generate_command(spec, RUN, "/d/t.jsonl", "/p", load_generate_config("greedy"), allocation=(1, 2))
    assert _args(gen)["model.megatron_amp_O2"] == "false"


def test_5b_in_fp32_on_tensor_1_is_fine():
    check_for_engine(_spec("precision=32", model="gatortrongpt_5b"), "nemo")


# ---------------------------------------------------------------- item 7: the study's settings

@pytest.mark.parametrize("recipe", ["peft_lora", "full_sft"])
def test_presets_carry_the_study_settings(recipe):
    extra = ["parallel.tensor=2", "parallel.gpus_per_node=2"] if recipe == "full_sft" else []
    spec = _spec(*extra, recipe=recipe)
    args = _args(nemo.train_command(spec, DATA, RUN))
    assert args["model.optim.sched.warmup_steps"] == "50"
    assert spec.train.max_steps == 300
    assert args["trainer.val_check_interval"] == str(spec.train.max_steps // 4)  # 0.25 epoch
    text = (CONFIG_ROOT / "train" / f"{recipe}.yaml").read_text()
    assert "Deliberate differences" in text and "0.25 epoch" in text


def test_generation_carries_the_study_decoding_settings():
    cmd = nemo.generate_command(_spec(), RUN, "/d/t.jsonl", "/p", load_generate_config("study_sampling"),
                                allocation=(1, 1))
    args = _args(cmd)
    assert args["inference.repetition_penalty"] == "1.1"
    assert args["inference.min_tokens_to_generate"] == "1"
    assert (args["inference.temperature"], args["inference.top_k"], args["inference.top_p"]) == ("0.7", "50", "0.9")
    assert "repetition_penalty 1.1" in (CONFIG_ROOT / "generate" / "study_sampling.yaml").read_text()


def test_the_one_task_of_a_multi_gpu_job_launches_the_ranks(monkeypatch):
    """A rendered script's srun exports WORLD_SIZE=$SLURM_NTASKS: with ONE task for a 1-node x 4-GPU run the
    engine must start torchrun for 4 ranks, not train as a single process (before: plain python, 1 GPU)."""
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert nemo_plan._launcher(1, 4) == ["torchrun", "--standalone", "--nnodes=1", "--nproc-per-node=4"]
    assert nemo_plan._launcher(1, 1) == [nemo.PYTHON]  # one GPU: this process is the run
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert nemo_plan._launcher(1, 4) == [nemo.PYTHON]  # one of 4 tasks: never launch inside a launch
    monkeypatch.setenv("WORLD_SIZE", "1")
    with pytest.raises(ConfigError, match="only task"):
        nemo_plan._launcher(2, 4)
