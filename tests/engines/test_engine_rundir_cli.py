"""Run directory (spec.yaml, data manifest, resume vs refuse), train/inference parity, NeMo output
conversion, and the train/generate CLI: dry-run plans per engine, invalid specs exit 2 without traceback."""

from __future__ import annotations

import json

import pytest

from clinie_nemo.core.errors import ConfigError, InputError
from clinie_nemo.engines import nemo, nemo_plan
from clinie_nemo.engines.run_dir import check_parity, prepare
from clinie_nemo.engines.spec_loader import load_run_spec
from tests.cli_plugin import cli
from tests.engine_fixtures import write_records


def _tiny(overrides=()):
    return load_run_spec("tiny_local", "peft_lora", ["seq_length=128", *overrides])


def test_prepare_writes_spec_and_manifest_then_resumes(tmp_path):
    data, run = write_records(tmp_path / "data"), tmp_path / "run"
    assert prepare(_tiny(), "local", data, run) == "new"
    manifest = json.loads((run / "data_manifest.json").read_text())
    assert manifest["files"]["training.jsonl"]["records"] == 4
    assert len(manifest["files"]["training.jsonl"]["sha256"]) == 64
    assert manifest["templates"] == {"ce_lines_v1": "abc123"}
    assert (run / "spec.yaml").is_file() and (run / "logs").is_dir() and (run / "checkpoints").is_dir()
    assert prepare(_tiny(), "local", data, run) == "resume"
    (run / "DONE").write_text("{}")
    assert prepare(_tiny(), "local", data, run) == "done"


def test_prepare_refuses_a_different_run_unless_forced(tmp_path):
    data, run = write_records(tmp_path / "data"), tmp_path / "run"
    prepare(_tiny(), "local", data, run)
    with pytest.raises(ConfigError, match=r"train.lora.dim: 256 -> 8"):
        prepare(_tiny(["lora.dim=8"]), "local", data, run)
    with pytest.raises(ConfigError, match="engine: local -> nemo"):
        prepare(_tiny(), "nemo", data, run)
    (data / "training.jsonl").write_text((data / "training.jsonl").read_text() + "\n" + json.dumps(
        {"input": "more", "output": "y", "id": "x"}) + "\n")
    with pytest.raises(ConfigError, match="data files changed"):
        prepare(_tiny(), "local", data, run)
    assert prepare(_tiny(["lora.dim=8"]), "local", data, run, force=True) == "new"
    assert "dim: 8" in (run / "spec.yaml").read_text()


def test_prepare_needs_training_records(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no training.jsonl"):
        prepare(_tiny(), "local", tmp_path / "empty", tmp_path / "run")


def test_parity_warns_or_refuses(tmp_path, capsys):
    data, run = write_records(tmp_path / "data"), tmp_path / "run"
    prepare(_tiny(), "local", data, run)
    assert check_parity(run, data / "test.jsonl") == []
    other = write_records(tmp_path / "other", template="ce_json_v2", digest="fff")
    issues = check_parity(run, other / "test.jsonl")
    assert issues and "template 'ce_json_v2' was not in the training data" in issues[0]
    assert "warning: template 'ce_json_v2'" in capsys.readouterr().err
    changed = write_records(tmp_path / "changed", digest="zzz")
    with pytest.raises(ConfigError, match="differs from training"):
        check_parity(run, changed / "test.jsonl", strict=True)


def test_parity_notices_a_changed_tokenizer(tmp_path):
    tok = tmp_path / "tok"
    tok.mkdir()
    (tok / "tokenizer_config.json").write_text('{"chat_template": "A"}')
    data, run = write_records(tmp_path / "data"), tmp_path / "run"
    prepare(_tiny([f"model.checkpoint={tok}"]), "local", data, run)
    (tok / "tokenizer_config.json").write_text('{"chat_template": "B"}')
    with pytest.raises(ConfigError, match="tokenizer/chat template .* changed"):
        check_parity(run, data / "test.jsonl", strict=True)


def test_nemo_output_conversion(tmp_path):
    data = write_records(tmp_path / "data")
    out_prefix = tmp_path / "gen" / "preds"
    out_prefix.parent.mkdir()
    rows = [{"input": "ignored", "pred": f"Y{i}", "label": "x", "id": f"toy/test/{i}"} for i in (2, 0, 1, 3, 0)]
    nemo.output_file(out_prefix).write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert nemo.output_file(out_prefix).name == "preds_test_test_inputs_preds_labels.jsonl"
    n = nemo.convert_predictions(nemo.output_file(out_prefix), data / "test.jsonl", tmp_path / "p.jsonl", "g20")
    got = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert n == 4 and [g["id"] for g in got] == [f"toy/test/{i}" for i in range(4)]
    assert [g["prediction"] for g in got] == ["Y0", "Y1", "Y2", "Y3"] and got[0]["engine"] == "nemo"
    nemo.output_file(out_prefix).write_text(json.dumps(rows[0]) + "\n")
    with pytest.raises(InputError, match="3 record\\(s\\) have no prediction"):
        nemo.convert_predictions(nemo.output_file(out_prefix), data / "test.jsonl", tmp_path / "q.jsonl")


def test_hydra_values_are_quoted():
    assert nemo_plan.hydra_value("{input} {output}") == "'{input} {output}'"
    assert nemo_plan.hydra_value("it's") == "'it\\'s'"
    assert nemo_plan.hydra_value(["/a/b.jsonl"]) == "[/a/b.jsonl]"
    assert nemo_plan.hydra_value(None) == "null" and nemo_plan.hydra_value(True) == "true"
    assert nemo_plan.hydra_value("true") == "'true'"


@pytest.mark.parametrize("engine, model, extra, expect", [
    ("bridge", "llama31_8b", ["parallel.gpus_per_node=8", "parallel.tensor=2"],
     "model.tensor_model_parallel_size: 2"),
    ("nemo", "gatortrongpt_5b", ["seq_length=2048"], "megatron_gpt_finetuning.py"),
])
def test_train_dry_run_prints_spec_and_plan(tmp_path, engine, model, extra, expect):
    out = cli("train", "--engine", engine, "--model", model, "--recipe", "peft_lora", "--data", tmp_path,
              "--output", tmp_path / "run", *extra, "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "# resolved spec" in out.stdout and f"name: {model}" in out.stdout and expect in out.stdout
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, message", [
    (["--model", "llama31_8b", "--recipe", "peft_lora", "parallel.tensor=3"], "does not divide"),
    (["--model", "llama31_8b", "--recipe", "peft_lora", "lora.dmi=3"], "valid keys: alpha, dim"),
    (["--model", "llama", "--recipe", "peft_lora"], "unknown models preset 'llama'"),
    (["--model", "llama31_8b"], "--model and --recipe are required"),
    (["--model", "gatortrongpt_5b", "--recipe", "peft_lora", "seq_length=2048"], "engine bridge imports HF"),
])
def test_train_rejects_invalid_specs_with_exit_2(tmp_path, args, message):
    out = cli("train", "--engine", "bridge", "--data", tmp_path, "--output", tmp_path / "run", *args, "--dry-run")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert message in out.stderr


def test_generate_refuses_unfinished_runs_and_strict_parity(tmp_path):
    data, run = write_records(tmp_path / "data"), tmp_path / "run"
    prepare(_tiny(), "local", data, run)
    out = cli("generate", "--run", run, "--records", data / "test.jsonl", "--output", tmp_path / "p.jsonl")
    assert out.returncode == 2 and "has not finished training" in out.stderr
    (run / "DONE").write_text("{}")
    other = write_records(tmp_path / "other", template="re_pair_v3", digest="999")
    out = cli("generate", "--run", run, "--records", other / "test.jsonl", "--output", tmp_path / "p.jsonl",
              "--strict-parity")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "parity check failed" in out.stderr and not (tmp_path / "p.jsonl").exists()
    out = cli("generate", "--run", run, "--records", data / "test.jsonl", "--output", tmp_path / "p.jsonl",
              "--config", "greedy", "temperature=0.3")
    assert out.returncode == 2 and "greedy ignores temperature" in out.stderr


def test_other_ranks_leave_the_run_directory_to_rank_0(tmp_path, monkeypatch):
    data, run = write_records(tmp_path / "data"), tmp_path / "run"
    prepare(_tiny(), "bridge", data, run)  # rank 0
    monkeypatch.setenv("RANK", "3")
    (run / "spec.yaml").write_text((run / "spec.yaml").read_text())  # present: rank 3 goes on at once
    assert prepare(_tiny(["lora.dim=8"]), "bridge", data, run) == "resume"  # rank 0 alone judges the spec
    assert "dim: 256" in (run / "spec.yaml").read_text()
