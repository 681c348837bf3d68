"""Local engine end to end on CPU: training lowers the loss, checkpoints resume at the right step
(SIGUSR1 in-process and SIGTERM to a real subprocess), generation writes one prediction per record and
batched greedy output equals one-prompt-at-a-time output. Real torch/transformers/peft; nothing mocked.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clinie_nemo.engines import local
from clinie_nemo.engines.local.trainer import PREEMPTED_EXIT_CODE, Preempted, run_training
from tests.cli_plugin import REPO
from tests.local_engine_fixtures import (  # noqa: F401
    read_metrics,
    records_dir,
    small_settings,
    synthetic_records,
    tiny_model_dir,
)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_model_dir, records_dir):  # noqa: F811
    """A LoRA run long enough to memorise the 16 synthetic records a little."""
    run = tmp_path_factory.mktemp("runs") / "lora"
    settings = small_settings(tiny_model_dir, max_steps=60, lr=1e-2, save_interval=20, validation_interval=30)
    facts = local.train(settings, records_dir, run)
    return run, facts


def test_lora_training_lowers_the_loss_and_writes_the_run(trained_run):
    run, facts = trained_run
    metrics = read_metrics(run)
    assert [m["step"] for m in metrics] == list(range(1, 61))
    first = sum(m["loss"] for m in metrics[:3]) / 3
    last = sum(m["loss"] for m in metrics[-3:]) / 3
    assert last < 0.5 * first, (first, last)
    assert {"step", "loss", "lr", "tokens_per_s", "step_time_s", "elapsed_s"} <= set(metrics[0])
    assert "val_loss" in metrics[29] and metrics[59]["val_loss"] < metrics[29]["val_loss"] * 1.5
    assert (run / "DONE").is_file() and facts["steps"] == 60
    assert (run / "adapter" / "adapter_config.json").is_file()
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-40", "step-60"]  # keep last 2


def test_generate_writes_one_prediction_per_record(trained_run, tmp_path):
    run, _ = trained_run
    records = synthetic_records(16) + [{"id": "extra/1", "input": "Unseen prompt", "output": ""}]
    path = tmp_path / "test.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    n = local.generate(run, path, tmp_path / "pred.jsonl", {"max_new_tokens": 12, "batch_size": 5})
    preds = [json.loads(x) for x in (tmp_path / "pred.jsonl").read_text().splitlines()]
    assert n == len(records) == len(preds)
    assert [p["id"] for p in preds] == [r["id"] for r in records]
    assert all(p["engine"] == "local" and p["finish_reason"] in ("stop", "length") for p in preds)
    assert all(p["tokens"] <= 12 for p in preds)
    # memorised a little: most training answers start with the right drug
    hits = sum(p["prediction"].startswith(r["output"].split(" | ")[0]) for p, r in zip(preds, records))
    assert hits >= 8, [p["prediction"] for p in preds]


def test_batched_greedy_equals_one_prompt_at_a_time(trained_run, tmp_path):
    run, _ = trained_run
    path = tmp_path / "test.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in synthetic_records(10, seed=5)))
    local.generate(run, path, tmp_path / "batched.jsonl", {"max_new_tokens": 10, "batch_size": 10})
    local.generate(run, path, tmp_path / "single.jsonl", {"max_new_tokens": 10, "batch_size": 1})
    batched = [json.loads(x) for x in (tmp_path / "batched.jsonl").read_text().splitlines()]
    single = [json.loads(x) for x in (tmp_path / "single.jsonl").read_text().splitlines()]
    assert batched == single


def test_full_finetuning_with_packing_writes_model(tmp_path, tiny_model_dir, records_dir):  # noqa: F811
    run = tmp_path / "full"
    settings = small_settings(tiny_model_dir, method="full", lora_r=0, packing=True, max_steps=None,
                              max_epochs=2, global_batch=2, micro_batch=1, lr=2e-3, seq_length=96)
    facts = local.train(settings, records_dir, run)
    metrics = read_metrics(run)
    assert facts["steps"] == len(metrics) >= 2 and metrics[-1]["epoch"] == 1
    assert (run / "model" / "config.json").is_file() and not (run / "adapter").exists()
    n = local.generate(run, records_dir / "validation.jsonl", tmp_path / "p.jsonl", {"max_new_tokens": 4})
    assert n == 4


def test_signal_checkpoints_and_restart_ends_like_an_uninterrupted_run(tmp_path, tiny_model_dir,  # noqa: F811
                                                                       records_dir):  # noqa: F811
    settings = small_settings(tiny_model_dir, max_steps=12, save_interval=4, lora_dropout=0.1)
    whole = run_training(settings, records_dir, tmp_path / "whole")

    def stop_at_6(step: int) -> None:
        if step == 6:
            os.kill(os.getpid(), signal.SIGUSR1)

    run = tmp_path / "cut"
    with pytest.raises(Preempted) as stopped:
        run_training(settings, records_dir, run, on_step=stop_at_6)
    assert stopped.value.code == PREEMPTED_EXIT_CODE == 124 and stopped.value.step == 6
    assert (run / "checkpoints" / "step-6").is_dir() and not (run / "DONE").exists()
    state = json.loads((run / "checkpoints" / "step-6" / "state.json").read_text())
    assert state["step"] == 6 and state["rows_consumed"] == 6 * settings.global_batch
    resumed = run_training(settings, records_dir, run)
    assert resumed["steps"] == whole["steps"] == 12
    assert [m["step"] for m in read_metrics(run)] == list(range(1, 13))
    assert resumed["final_loss"] == pytest.approx(whole["final_loss"], rel=1e-4)
    assert [m["loss"] for m in read_metrics(run)] == pytest.approx(
        [m["loss"] for m in read_metrics(tmp_path / "whole")], rel=1e-4)


def test_restart_with_changed_settings_is_refused(tmp_path, tiny_model_dir, records_dir):  # noqa: F811
    from clinie_nemo.core.errors import ConfigError

    run = tmp_path / "r"
    run_training(small_settings(tiny_model_dir, max_steps=2), records_dir, run)
    (run / "DONE").unlink()
    with pytest.raises(ConfigError, match="lr"):
        run_training(small_settings(tiny_model_dir, max_steps=2, lr=1.0), records_dir, run)


TRAIN_SCRIPT = """
import sys
from tests.local_engine_fixtures import small_settings
from clinie_nemo.engines import local
local.train(small_settings(sys.argv[1], max_steps=400, save_interval=2), sys.argv[2], sys.argv[3])
"""


def test_sigterm_to_a_real_training_process_exits_124_and_resumes(tmp_path, tiny_model_dir,  # noqa: F811
                                                                    records_dir):  # noqa: F811
    run = tmp_path / "proc"
    cmd = [sys.executable, "-c", TRAIN_SCRIPT, str(tiny_model_dir), str(records_dir), str(run)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list((run / "checkpoints").glob("step-*")) and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 124, err
    assert "Traceback" not in err and "pt given" not in err
    saved = max(int(p.name.split("-")[1]) for p in (run / "checkpoints").glob("step-*"))
    assert 0 < saved < 400 and not (run / "DONE").exists()
    assert read_metrics(run)[-1]["step"] == saved
    # the same command again resumes from the newest checkpoint and finishes all 400 steps
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert f"resuming from step-{saved}: step {saved}/400" in res.stderr
    assert [m["step"] for m in read_metrics(run)] == list(range(1, 401))
    assert json.loads((run / "DONE").read_text())["steps"] == 400


def test_plan_names_the_settings_and_the_call(tiny_model_dir):  # noqa: F811
    text = local.plan(small_settings(tiny_model_dir), "data", "runs/x")
    assert "LoRA r=8" in text and "global 8 = micro 4 x 2" in text and "exit 124" in text
    assert str(Path("runs/x") / "checkpoints") in text


def test_lora_merged_export_predicts_like_the_adapter(tmp_path, tiny_model_dir, records_dir):  # noqa: F811
    import shutil

    run = tmp_path / "merged"
    local.train(small_settings(tiny_model_dir, max_steps=6, lr=2e-2, export="merged"), records_dir, run)
    assert (run / "adapter" / "adapter_config.json").is_file() and (run / "model" / "config.json").is_file()
    gen = {"max_new_tokens": 8}
    local.generate(run, records_dir / "validation.jsonl", tmp_path / "a.jsonl", gen)
    shutil.rmtree(run / "adapter")
    local.generate(run, records_dir / "validation.jsonl", tmp_path / "m.jsonl", gen)
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "m.jsonl").read_text()


def test_sampling_is_reproducible_by_seed(trained_run, tmp_path):
    run, _ = trained_run
    path = tmp_path / "test.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in synthetic_records(6, seed=2)))
    study = {"strategy": "sample", "temperature": 0.7, "top_k": 50, "top_p": 0.9, "max_new_tokens": 10}
    outs = []
    for name, seed in (("a", 1), ("b", 1)):
        local.generate(run, path, tmp_path / f"{name}.jsonl", {**study, "seed": seed})
        outs.append([json.loads(x)["prediction"] for x in (tmp_path / f"{name}.jsonl").read_text().splitlines()])
    assert outs[0] == outs[1] and len(outs[0]) == 6
    from clinie_nemo.core.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown generation option"):
        local.generate(run, path, tmp_path / "x.jsonl", {"temprature": 0.7})
