"""Contract test: the nemo engine's training overrides through the REAL NeMo 2.4.0 start-up path on CPU.

The engine's rendered overrides (``train_command``, product code) go to a subprocess (tests/nemo_contract_probe.py)
that runs NeMo's own ``hydra_runner`` (Hydra's override grammar and struct-mode composition of the example YAML),
``MegatronLMPPTrainerBuilder(cfg).create_trainer()`` (the Lightning 2.4.0 Trainer from ``**cfg.trainer``) and
``exp_manager(trainer, cfg.exp_manager)`` (error_checks, check_resume, check_explicit_log_dir,
configure_checkpointing with the ``max_epochs < check_val_every_n_epoch`` comparison): megatron_gpt_finetuning.py
v2.4.0 :54-60, everything it runs before restoring the .nemo model. A subprocess so that NeMo's pinned Lightning,
Hydra and omegaconf (tools/contract_env.sh nemo -> .nemo-contract/site) never reach the pytest process.

The example YAML: NeMo ships it in neither wheel nor sdist and CI reaches no other source, so the probe composes
tests/fixtures/nemo/megatron_gpt_finetuning_config.yaml, a key manifest derived from the real file
(tools/nemo_config_keys.py: every key path; the values NeMo's start-up path reads). With CLINIE_NEMO_ROOT (a NeMo
v2.2.1-2.4.x checkout, or /opt/NeMo in the container) the manifest is regenerated from the real file and compared,
and the presets also run on the real YAML.

The engine's own pre-launch check (clinie_nemo/engines/nemo_overrides.py, run by train()/generate() in the
container) is tested here too, with the site's Hydra and the manifest as the container's YAML.

Not mocked: NeMo, Lightning, Hydra, omegaconf, megatron-core. Only differences from a cluster: trainer.accelerator=cpu
and NeMo's HAVE_APEX flag (apex is GPU-only; see the probe). Without the site the test skips with that reason
locally; with CLINIE_REQUIRE_NEMO_CONTRACT=1 (set by .ci/run) it fails instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from clinie_nemo.core.errors import ConfigError
from clinie_nemo.engines import nemo
from clinie_nemo.engines.nemo_overrides import check_overrides
from clinie_nemo.engines.spec_loader import load_generate_config, load_nemo_script_config, load_run_spec
from tests.contract_site import require_or_skip

pytestmark = pytest.mark.nemo_contract

ROOT = Path(__file__).resolve().parents[2]
SITE = Path(os.environ.get("CLINIE_NEMO_CONTRACT_SITE", ROOT / ".nemo-contract" / "site"))
REQUIRE_ENV = "CLINIE_REQUIRE_NEMO_CONTRACT"
MANIFEST = ROOT / "tests" / "fixtures" / "nemo" / "megatron_gpt_finetuning_config.yaml"
GENERATE_MANIFEST = MANIFEST.with_name("megatron_gpt_generate_config.yaml")
NEMO_ROOT = os.environ.get("CLINIE_NEMO_ROOT", "")
PRESETS = {
    "lora": ("gatortrongpt_5b", "peft_lora", []),
    "full-tp2": ("gatortrongpt_5b", "full_sft", ["parallel.tensor=2", "parallel.gpus_per_node=2"]),
    "lora-2x8": ("gatortrongpt_20b", "peft_lora", ["parallel.nodes=2", "parallel.gpus_per_node=8"]),
    "lora-fp32-tp2": ("gatortrongpt_20b", "peft_lora", ["precision=32", "parallel.tensor=2",
                                                         "parallel.gpus_per_node=2"]),
    "full-short": ("gatortrongpt_5b", "full_sft", ["max_steps=20", "optim.warmup_steps=5",
                                                   "data.validation_interval=0"]),
}


def overrides(preset: str, run: Path) -> list[str]:
    model, recipe, extra = PRESETS[preset]
    cmd = nemo.train_command(load_run_spec(model, recipe, ["seq_length=2048", *extra]), "/data/records", run)
    first = next(i for i, c in enumerate(cmd) if c.startswith("--config-name=")) + 1
    return cmd[first:]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, dict]:
    if not (SITE / "nemo" / "utils" / "exp_manager.py").is_file():
        require_or_skip(REQUIRE_ENV, f"real nemo_toolkit not installed in {SITE}: run tools/contract_env.sh nemo")
    work = tmp_path_factory.mktemp("nemo_contract")
    conf = work / "conf"
    conf.mkdir()
    shutil.copy(MANIFEST, conf / MANIFEST.name)
    lora = overrides("lora", work / "runs" / "typos")
    cells = [{"id": p, "overrides": overrides(p, work / "runs" / p)} for p in PRESETS]
    cells += [
        # what main rendered before the fix: the real exp_manager must reject it, or this test proves nothing
        {"id": "old-max-epochs", "overrides": [*overrides("lora", work / "runs" / "old"), "trainer.max_epochs=9999"]},
        {"id": "misspelt-change", "overrides": [*lora, "trainer.max_epoch=3"]},
        {"id": "misspelt-model-key", "overrides": [*lora, "model.data.train_ds.prompt_templat=x"]},
        {"id": "add-existing", "overrides": [*lora, "+trainer.max_steps=5"]},
        {"id": "force-add-existing", "overrides": [*lora, "++trainer.max_steps=5"]},
    ]
    if NEMO_ROOT:
        real = work / "real"
        real.mkdir()
        shutil.copy(Path(NEMO_ROOT) / "examples/nlp/language_modeling/tuning/conf" / MANIFEST.name, real)
        cells += [{"id": f"real-yaml-{p}", "config_dir": str(real), "overrides": overrides(p, work / "real-runs" / p)}
                  for p in PRESETS]
    (work / "cells.json").write_text(json.dumps(cells))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "SLURM_JOB_ID", "SLURM_NTASKS", "MASTER_PORT"):
        env.pop(var, None)
    proc = subprocess.run([sys.executable, "-m", "tests.nemo_contract_probe", str(SITE), str(conf),
                           str(work / "cells.json"), str(work / "results.jsonl")], cwd=work, env=env,
                          capture_output=True, text=True, timeout=900)
    lines = (work / "results.jsonl").read_text().splitlines() if (work / "results.jsonl").is_file() else []
    assert proc.returncode == 0 and lines, f"probe failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}"
    rows = [json.loads(line) for line in lines]
    return {"head": rows[0], "work": work, **{r["id"]: r for r in rows[1:]}}


def test_the_probe_ran_the_pinned_nemo_and_lightning(results):
    head = results["head"]
    assert (head["nemo"], head["lightning"]) == ("2.4.0", "2.4.0")
    assert Path(head["nemo_file"]).is_relative_to(SITE)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_rendered_overrides_pass_nemos_hydra_trainer_and_exp_manager(results, preset):
    row = results[preset]
    assert row["ok"], row.get("error", "") + "\n" + row.get("trace", "")
    assert row["missing"] == []  # every mandatory ??? key of the YAML is set
    assert row["force_added_existing"] == []  # every ++key is new to the YAML
    assert row["max_epochs"] == -1 and row["check_val_every_n_epoch"] is None
    assert row["max_steps"] == int(dict(o.split("=", 1) for o in overrides(preset, Path("/r")))["trainer.max_steps"])
    assert "NeMoModelCheckpoint" in row["callbacks"]  # exp_manager got through configure_checkpointing
    assert Path(row["log_dir"]) == results["work"] / "runs" / preset  # exp_manager.explicit_log_dir


def test_the_old_max_epochs_9999_raises_in_nemos_exp_manager(results):
    row = results["old-max-epochs"]
    assert not row["ok"]
    assert row["error"] == "TypeError: '<' not supported between instances of 'int' and 'NoneType'"
    assert "exp_manager.py" in row["trace"] and "max_epochs < trainer.check_val_every_n_epoch" in row["trace"]


@pytest.mark.parametrize("cell, message", [
    ("misspelt-change", "Could not override 'trainer.max_epoch'"),
    ("misspelt-model-key", "Could not override 'model.data.train_ds.prompt_templat'"),
    ("add-existing", "Could not append to config. An item is already at 'trainer.max_steps'"),
])
def test_hydra_refuses_a_key_the_yaml_lacks_and_an_add_of_one_it_has(results, cell, message):
    row = results[cell]
    assert not row["ok"] and row["error"].startswith("ConfigCompositionException") and message in row["error"]


def test_a_force_add_of_an_existing_key_is_reported(results):
    """Hydra accepts ``++key`` either way; the probe's check names the ones that are not new."""
    assert results["force-add-existing"]["force_added_existing"] == ["trainer.max_steps"]


def test_manifest_matches_the_real_example_yaml(results):
    if not NEMO_ROOT:
        pytest.skip("CLINIE_NEMO_ROOT not set (a NeMo checkout or /opt/NeMo): the manifest is checked against "
                    "the real megatron_gpt_finetuning_config.yaml only where one is at hand")
    for manifest in (MANIFEST, GENERATE_MANIFEST):
        regenerated = subprocess.run([sys.executable, str(ROOT / "tools" / "nemo_config_keys.py"), NEMO_ROOT,
                                      manifest.stem], capture_output=True, text=True, check=True).stdout
        assert regenerated == manifest.read_text(encoding="utf-8"), manifest.name
    for preset in PRESETS:
        real, ours = results[f"real-yaml-{preset}"], results[preset]
        assert real["ok"], real.get("error")
        for key in ("missing", "force_added_existing", "max_epochs", "max_steps", "check_val_every_n_epoch",
                    "val_check_interval", "callbacks"):
            assert real[key] == ours[key], (preset, key)


# ---------------------------------------------------------------- the engine's own check (run before launch)

@pytest.fixture
def checker(tmp_path):
    """check_overrides as train() runs it in the container: Hydra/omegaconf of the pinned site, a NeMo root
    holding the example YAML (the manifest)."""
    if not (SITE / "hydra").is_dir():
        require_or_skip(REQUIRE_ENV, f"hydra-core not installed in {SITE}: run tools/contract_env.sh nemo")
    script = replace(load_nemo_script_config("finetune"), nemo_root=str(tmp_path / "NeMo"))
    conf = tmp_path / "NeMo" / script.config_path
    conf.mkdir(parents=True)
    shutil.copy(MANIFEST, conf / f"{script.config_name}.yaml")
    env = {**os.environ, "PYTHONPATH": str(SITE)}
    cmd = nemo.train_command(load_run_spec("gatortrongpt_5b", "peft_lora", ["seq_length=2048"]), "/d", "/r")
    return lambda extra=(): check_overrides(script, [*cmd, *extra], sys.executable, env)


def test_engine_check_accepts_the_rendered_overrides(checker):
    assert checker() is True


@pytest.mark.parametrize("extra, message", [
    (["trainer.max_epoch=3"], "Could not override 'trainer.max_epoch'"),
    (["model.peft.lora_tuning.adapter_dimm=8"], "Could not override 'model.peft.lora_tuning.adapter_dimm'"),
    (["+trainer.max_steps=5"], "Could not append to config. An item is already at 'trainer.max_steps'"),
    (["++trainer.max_steps=5"], "++trainer.max_steps: the YAML already has this key"),
    (["model.restore_from_path=???"], "mandatory key(s) left at ??? by the overrides: model.restore_from_path"),
])
def test_engine_check_names_a_misspelt_or_misused_key(checker, extra, message):
    with pytest.raises(ConfigError, match="the overrides do not fit .*megatron_gpt_finetuning_config.yaml") as e:
        checker(extra)
    assert message in str(e.value)


def test_engine_check_accepts_the_rendered_generation_overrides(checker, tmp_path):
    script = replace(load_nemo_script_config("generate"), nemo_root=str(tmp_path / "NeMo"))
    shutil.copy(GENERATE_MANIFEST, tmp_path / "NeMo" / script.config_path / GENERATE_MANIFEST.name)
    env = {**os.environ, "PYTHONPATH": str(SITE)}
    for recipe in ("peft_lora", "full_sft"):
        spec = load_run_spec("gatortrongpt_5b", recipe, ["seq_length=2048"])
        cmd = nemo.generate_command(spec, "/runs/r", "/d/test.jsonl", "/runs/r/generate/p",
                                    load_generate_config("study_sampling"), allocation=(1, 1))
        assert check_overrides(script, cmd, sys.executable, env) is True
        with pytest.raises(ConfigError, match="Could not override 'inference.temprature'"):
            check_overrides(script, [*cmd, "inference.temprature=0.5"], sys.executable, env)
