"""Study config validation, cell expansion, content-addressed stage keys, --dry-run and the cost table
(no Slurm needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from clinie_nemo.core.errors import ConfigError
from clinie_nemo.study.config import load_study, study_from_dict
from clinie_nemo.study.cost import cost_table
from clinie_nemo.study.plan import build_plan, check_cells, expand_cells, expand_plan
from clinie_nemo.study.sbatch import time_minutes
from clinie_nemo.study.submit import submit_plan
from tests.cli_plugin import cli


def write_study(tmp: Path, **changes) -> Path:
    for name in ("a", "b", "c"):
        for split in ("train", "test"):
            path = tmp / f"{name}-{split}.jsonl"
            if not path.exists():
                path.write_text(f'{{"id": "{name}-{split}"}}\n', encoding="utf-8")
    study = {"name": "t", "engine": "local",
             "datasets": [{"name": n, "train": f"{n}-train.jsonl", "test": f"{n}-test.jsonl"} for n in "abc"],
             "held_out": ["a", "b"], "fractions": [0.0, 0.5], "seeds": [1, 2], "models": {"tiny": "tiny_local"},
             "methods": ["lora", "full"], "train_overrides": ["max_steps=4", "optim.warmup_steps=1"],
             "resources": {"train": {"gpus": 1, "cpus": 2, "time": "00:20:00"}}}
    study.update(changes)
    path = tmp / "study.yaml"
    path.write_text(yaml.safe_dump(study), encoding="utf-8")
    return path


def test_expansion_counts_and_shared_stages(tmp_path: Path) -> None:
    plan = build_plan(load_study(write_study(tmp_path)), tmp_path / "out")
    assert len(plan.cells) == 2 * 2 * 1 * 2 * 2
    # one mix per fold x fraction x seed serves both methods; the rest is per cell
    assert [len(plan.by_kind(k)) for k in ("mix", "train", "generate", "evaluate")] == [8, 16, 16, 16]
    assert all(len(s.cells) == 2 for s in plan.by_kind("mix"))
    cell = plan.cells[0]
    stages = plan.cell_stages[cell.name]
    evaluate = plan.stages[stages["evaluate"]]
    for tag in ("model=tiny", f"method={cell.method}", f"fold={cell.fold}", "fraction=0", f"seed={cell.seed}"):
        assert tag in evaluate.argv
    assert evaluate.argv[evaluate.argv.index("--json") + 1].endswith(f"evaluate-{evaluate.key}/scores.json")
    train = plan.stages[stages["train"]]
    assert "max_steps=4" in train.argv and f"seed={cell.seed}" in train.argv


def test_keys_are_content_addressed(tmp_path: Path) -> None:
    cfg_path = write_study(tmp_path)
    first = build_plan(load_study(cfg_path), tmp_path / "out")
    again = build_plan(load_study(cfg_path), tmp_path / "elsewhere")
    assert list(first.stages) == list(again.stages), "keys depend on inputs, not on the study folder"

    changed_steps = build_plan(load_study(write_study(tmp_path, train_overrides=["max_steps=5", "optim.warmup_steps=1"])), tmp_path / "o")
    assert {s.key for s in changed_steps.by_kind("mix")} == {s.key for s in first.by_kind("mix")}
    assert not {s.key for s in changed_steps.by_kind("train")} & {s.key for s in first.by_kind("train")}

    (tmp_path / "a-train.jsonl").write_text('{"id": "changed"}\n', encoding="utf-8")
    changed_data = build_plan(load_study(cfg_path), tmp_path / "out")
    assert not {s.key for s in changed_data.by_kind("mix")} & {s.key for s in first.by_kind("mix")}


def test_mixture_config_of_a_cell(tmp_path: Path) -> None:
    plan = build_plan(load_study(write_study(tmp_path)), tmp_path / "out")
    mix = plan.by_kind("mix")[0]
    data = yaml.safe_load(dict(mix.files)["mixture.yaml"])
    assert data["held_out"] == "a" and data["held_out_fraction"] == 0.0 and data["seed"] == 1
    assert [d["name"] for d in data["datasets"]] == ["a", "b", "c"]
    assert all(Path(d["train"]).is_absolute() for d in data["datasets"])


def test_interpolation_in_a_study_yaml(tmp_path: Path) -> None:
    cfg = load_study(write_study(tmp_path, name="t${seeds.1}", train_overrides=["max_steps=${seeds.1}"]))
    assert (cfg.name, cfg.train_overrides) == ("t2", ("max_steps=2",))
    with pytest.raises(ConfigError, match=r"study\.yaml: held_out\[0\]: bad interpolation: Interpolation key"):
        load_study(write_study(tmp_path, held_out=["${nope}"]))


@pytest.mark.parametrize("change, message", [
    ({"bogus": 1}, "unknown key 'bogus'; valid keys: datasets, engine"),
    ({"held_out": ["zzz"]}, "unknown dataset 'zzz'; valid: a, b, c"),
    ({"methods": ["qlora"]}, "unknown method 'qlora'; valid: lora, full"),
    ({"engine": "vllm"}, "unknown engine 'vllm'; valid: local, bridge, nemo"),
    ({"fractions": [0.0, 1.5]}, "1.5 is outside [0, 1]"),
    ({"seeds": [1, 1]}, "values repeat"),
    ({"resources": {"train": {"gpus": "two"}}}, "resources.train.gpus: expected an integer, got str 'two'"),
    ({"resources": {"tune": {}}}, "unknown stage 'tune'"),
    ({"resources": {"train": {"time": "00:02:00"}}}, "signal_seconds 120 must be shorter than time 00:02:00"),
    ({"resources": {"mix": {"time": "soon"}}}, "invalid Slurm time 'soon'"),
])
def test_invalid_configs_are_rejected(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_study(write_study(tmp_path, **change))
    assert message in str(err.value)


def test_missing_inputs_are_named(tmp_path: Path) -> None:
    cfg = load_study(write_study(tmp_path))
    (tmp_path / "b-test.jsonl").unlink()
    with pytest.raises(ConfigError, match="b-test.jsonl"):
        build_plan(cfg, tmp_path / "out")


def test_unquoted_time_is_explained() -> None:
    with pytest.raises(ConfigError, match="quote it"):
        study_from_dict({"datasets": [], "models": {}, "resources": {"train": {"time": 14400}}})


def test_dry_run_prints_the_graph_and_submits_nothing(tmp_path: Path) -> None:
    out = tmp_path / "study_out"
    proc = cli("study", write_study(tmp_path), "--output", out, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "16 cells" in proc.stdout and "8 mix, 16 train, 16 generate, 16 evaluate" in proc.stdout
    # one mix serves 2 methods: trains go out as 2 arrays of 8, task i of each waiting for mix task i only
    trains = [line for line in proc.stdout.splitlines() if line.startswith("would submit train:")]
    assert len(trains) == 2 and all("8 stage(s)" in t and "dependency=aftercorr:<mix#1>" in t for t in trains)
    assert "would submit 56 stage(s) in 7 job(s)" in proc.stdout
    assert not out.exists()


def test_cli_bad_config_exits_2_without_traceback(tmp_path: Path) -> None:
    proc = cli("study", write_study(tmp_path, engine="nope"), "--output", tmp_path / "o", "--dry-run")
    assert proc.returncode == 2 and "unknown engine 'nope'" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("status", tmp_path)
    assert proc.returncode == 2 and "not a study folder" in proc.stderr and "Traceback" not in proc.stderr


def test_dry_run_skips_finished_stages(tmp_path: Path) -> None:
    plan = build_plan(load_study(write_study(tmp_path)), tmp_path / "out")
    for stage in plan.by_kind("mix"):
        d = plan.stage_dir(stage.key)
        d.mkdir(parents=True)
        (d / "DONE").write_text("{}")
    submission = submit_plan(plan, dry_run=True)
    assert [j["kind"] for j in submission.jobs] == ["train", "generate", "evaluate"]
    assert submission.jobs[0]["dependency"] is None  # finished upstream needs no dependency
    assert sum(v == "done" for v in submission.skipped.values()) == 8


def test_time_minutes() -> None:
    assert time_minutes("00:20:00") == 20 and time_minutes("1-02:00:00") == 26 * 60
    assert time_minutes("10:30") == 11 and time_minutes("04:00:01") == 241


def test_cost_table_compares_lora_and_full_like_for_like(tmp_path: Path) -> None:
    def cost(method: str, train_hours: float, steps: int, fold: str = "a") -> dict:
        return {"gpu_hours": train_hours + 0.1, "model": "m", "method": method, "fold": fold, "fraction": "1",
                "seed": "1", "steps": steps, "stages": {"train": {"gpu_hours": train_hours}}}

    rows = [cost("lora", 1.0, 300), cost("full", 6.0, 300), cost("full", 3.0, 100, fold="b")]
    for i, row in enumerate(rows):
        d = tmp_path / "stages" / f"evaluate-{i}"
        d.mkdir(parents=True)
        (d / "cost.json").write_text(json.dumps(row))
    table = cost_table(tmp_path)
    assert "| m | a | 1 | 1 | 300 | 1.0000 | 6.0000 | 6.00x |" in table
    assert "| m | b |" not in table.split("like for like")[1], "an unpaired full run is not compared"


def test_dependency_per_cell_when_arrays_line_up(tmp_path: Path) -> None:
    from clinie_nemo.study.submit import dependency_for

    plan = build_plan(load_study(write_study(tmp_path, methods=["lora"], seeds=[1])), tmp_path / "out")
    mixes, trains = plan.by_kind("mix"), plan.by_kind("train")
    job_of = {m.key: f"77_{i}" for i, m in enumerate(mixes)}
    assert dependency_for(trains, job_of) == "aftercorr:77", "task i waits only for its own mix"
    job_of[mixes[1].key] = "78"  # one parent resubmitted on its own: no longer one aligned array
    assert dependency_for(trains, job_of) == "afterok:77_0:77_2:77_3:78"
    del job_of[mixes[0].key]  # a finished parent needs no dependency
    assert dependency_for(trains, job_of) == "afterok:77_2:77_3:78"
    assert dependency_for(plan.by_kind("mix"), {}) is None


# ---------------------------------------------------------------- issue 15: resources, cells, content keys

@pytest.mark.parametrize("resources, message", [
    ({"train": {"partition": "gpu\n#SBATCH --account=other"}}, "resources.train.partition: 'gpu\\n#SBATCH "
                                                                "--account=other' contains a control character"),
    ({"mix": {"qos": "hi\r"}}, "resources.mix.qos: 'hi\\r' contains a control character"),
    ({"train": {"mem": "16G\n"}}, "resources.train.mem: '16G\\n' contains a control character"),
    ({"train": {"qos": "two words"}}, "resources.train.qos: invalid value 'two words'; valid: a QOS name"),
    ({"train": {"constraint": "a100 h100"}}, "resources.train.constraint: invalid value 'a100 h100'; valid: node "
                                             "features"),
    ({"train": {"reservation": "r;1"}}, "resources.train.reservation: invalid value 'r;1'; valid: a reservation"),
    ({"train": {"exclusive": "sometimes"}}, "resources.train.exclusive: invalid value 'sometimes'; valid: true, "
                                            "false, user, mcs"),
    ({"train": {"exclusive": 1}}, "resources.train.exclusive: expected true or false or a string, got int 1"),
    ({"train": {"mem": "16 GB"}}, "resources.train.mem: invalid value '16 GB'; valid: megabytes, or a number"),
    ({"train": {"wckey": "a b"}}, "resources.train.wckey: invalid value 'a b'; valid: a workload"),
    ({"train": {"requeue": False}}, "unknown key 'requeue'; valid keys: account, array_parallelism, constraint, "
                                    "container"),
    ({"train": {"container_workdir": "work"}}, "resources.train.container_workdir: 'work' must be an absolute"),
])
def test_stage_resources_are_validated(tmp_path: Path, resources: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_study(write_study(tmp_path, resources=resources))
    assert message in str(err.value)


def test_new_stage_resources_are_read(tmp_path: Path) -> None:
    cfg = load_study(write_study(tmp_path, resources={"train": {
        "gpus": 1, "qos": "high", "constraint": "a100|h100", "reservation": "maint,r2", "exclusive": "user",
        "wckey": "proj1", "mem": "64G"}, "mix": {"exclusive": True}}))
    r = cfg.stage_resources("train")
    assert (r.qos, r.constraint, r.reservation, r.exclusive, r.wckey) == ("high", "a100|h100", "maint,r2", "user",
                                                                          "proj1")
    assert cfg.stage_resources("mix").exclusive is True and cfg.stage_resources("generate").exclusive is False


def test_study_name_names_slurm_jobs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="name: invalid study name 'my study'"):
        load_study(write_study(tmp_path, name="my study"))


def bad_model(tmp: Path) -> str:
    """A model YAML that loads but cannot train (4 heads are not a multiple of 3 KV heads)."""
    text = (Path(__file__).resolve().parents[2] / "nemo_configs" / "models" / "tiny_local.yaml").read_text()
    (tmp / "bad_model.yaml").write_text(text.replace("num_kv_heads: 2", "num_kv_heads: 3"), encoding="utf-8")
    return "bad_model.yaml"


def test_every_cell_is_checked_when_the_plan_is_built(tmp_path: Path) -> None:
    """Only the LAST cell is invalid (its model): building the plan raises, naming that cell, so neither a dry
    run nor a submit gets a plan; nothing is written. On the cluster:
    test_study_slurm.py::test_invalid_last_cell_submits_nothing."""
    cfg = load_study(write_study(tmp_path, held_out=["a"], fractions=[0.0], seeds=[1], methods=["lora"],
                                 models={"tiny": "tiny_local", "zbad": bad_model(tmp_path)}))
    assert expand_cells(cfg)[-1].model == "zbad"
    with pytest.raises(ConfigError) as err:
        build_plan(cfg, tmp_path / "out")
    text = str(err.value)
    assert "1 of 2 cells cannot run; nothing was submitted" in text
    assert "cell heldout-a_frac-0_zbad_lora_seed-1:" in text and "heldout-a_frac-0_tiny_lora" not in text
    assert "num_attention_heads=4 is not a multiple of model.num_kv_heads=3" in text
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("change, problem", [
    ({"method_overrides": {"full": ["lora.dim=8", "no_such_key=1"]}}, "no_such_key"),
    ({"recipes": {"lora": "peft_lora", "full": "no_such_recipe"}}, "no_such_recipe"),
])
def test_a_bad_recipe_or_override_of_the_last_cell_fails_the_dry_run(tmp_path: Path, change: dict,
                                                                       problem: str) -> None:
    """`study --dry-run`: the last cell's recipe (or its method's overrides) is invalid; the plan is refused at
    build time (exit 2) naming that cell only, and the study folder is not created."""
    study = write_study(tmp_path, held_out=["a"], fractions=[0.0], seeds=[1], methods=["lora", "full"], **change)
    cells = expand_cells(load_study(study))
    assert cells[-1].method == "full" and len(cells) == 2
    out = tmp_path / "out"
    proc = cli("study", study, "--output", out, "--dry-run")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "study t: 1 of 2 cells cannot run" in proc.stderr
    assert f"cell {cells[-1].name}:\n      train: " in proc.stderr and problem in proc.stderr
    assert cells[0].name not in proc.stderr and "would submit" not in proc.stdout
    assert not out.exists()


def test_each_stage_check_runs_once_per_shared_stage(tmp_path: Path) -> None:
    """expand_plan gives one check per stage (a mix shared by 2 methods is checked once); check_cells runs them."""
    plan, checks = expand_plan(load_study(write_study(tmp_path)), tmp_path / "out")
    assert set(checks) == set(plan.stages)
    calls = []
    wrapped = {k: (lambda k=k: calls.append(k)) for k in checks}
    check_cells(plan, wrapped)
    assert sorted(calls) == sorted(plan.stages) and len(calls) == 8 + 16 * 3
    wrapped[plan.by_kind("mix")[0].key] = lambda: "broken mixture"
    with pytest.raises(ConfigError, match="2 of 16 cells cannot run.*\n.*cells heldout-a_frac-0_tiny_lora_seed-1, "
                                          "heldout-a_frac-0_tiny_full_seed-1:\n      mix: broken mixture"):
        check_cells(plan, wrapped)


def test_every_problem_is_listed_with_its_cells(tmp_path: Path) -> None:
    study = write_study(tmp_path, models={"tiny": "tiny_local", "zbad": bad_model(tmp_path)},
                        generate_config="no_such_preset", rules="no_such_rules",
                        resources={"train": {"gpus": 1, "time": "00:20:00", "container": "docker://x/y"}})
    proc = cli("study", study, "--output", tmp_path / "o", "--submit")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    err = proc.stderr
    assert "32 of 32 cells cannot run" in err
    assert "all 32 cells:\n      resources.train: container image 'docker://x/y'" in err
    assert "cells heldout-a_frac-0_zbad_lora_seed-1, heldout-a_frac-0_zbad_lora_seed-2, " in err and "and 5 more" in err
    assert "generate: " in err and "no_such_preset" in err and "evaluate: " in err and "no_such_rules" in err
    assert not (tmp_path / "o").exists()


def test_mix_keys_do_not_depend_on_the_study_name(tmp_path: Path) -> None:
    first = build_plan(load_study(write_study(tmp_path, name="first")), tmp_path / "out")
    second = build_plan(load_study(write_study(tmp_path, name="second")), tmp_path / "out")
    assert [s.key for s in first.by_kind("mix")] == [s.key for s in second.by_kind("mix")]
    assert list(first.stages) == list(second.stages), "every stage downstream of a shared mix is shared too"
    assert dict(first.by_kind("mix")[0].files) == dict(second.by_kind("mix")[0].files)
    # the second study in the same folder finds the first one's finished mixes and does not redo them
    for stage in first.by_kind("mix"):
        d = first.stage_dir(stage.key)
        d.mkdir(parents=True)
        (d / "DONE").write_text("{}")
    sub = submit_plan(second, dry_run=True)
    assert [j["kind"] for j in sub.jobs] == ["train", "generate", "evaluate"]
    assert sum(v == "done" for v in sub.skipped.values()) == 8


def test_a_missing_checkpoint_is_found_before_submitting(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[2] / "nemo_configs" / "models" / "tiny_local.yaml").read_text()
    (tmp_path / "gone.yaml").write_text(text.replace("checkpoint: tiny_model", "checkpoint: /nonexistent/tiny"))
    (tmp_path / "here.yaml").write_text(text.replace("checkpoint: tiny_model", f"checkpoint: {tmp_path}"))
    grid = {"held_out": ["a"], "fractions": [0.0], "seeds": [1], "methods": ["lora"]}
    with pytest.raises(ConfigError, match="cell heldout-a_frac-0_gone_lora_seed-1:\n.*checkpoint /nonexistent/tiny "
                                          "not found") as err:
        build_plan(load_study(write_study(tmp_path, models={"gone": "gone.yaml", "here": "here.yaml"}, **grid)),
                   tmp_path / "out")
    assert "here_lora" not in str(err.value)
    # inside a container the job sees the image's and the mounts' paths, not this machine's: not checked here
    res = {"train": {"gpus": 1, "time": "00:20:00", "container": "/images/nemo.sqsh"}}
    plan = build_plan(load_study(write_study(tmp_path, models={"gone": "gone.yaml"}, resources=res, **grid)),
                      tmp_path / "out")
    assert submit_plan(plan, dry_run=True).submitted == 4
