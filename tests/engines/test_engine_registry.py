"""The engine registry and the Engine protocol: every registered engine module implements it, one PREEMPTED
exit code for the whole package, and the CLI's --engine choices are the registry's names.

Every engine module imports on a CPU machine without its GPU stack (torch, Megatron-Bridge, NeMo, vLLM are
imported inside functions only), so the modules are checked by importing them, not by reading their source.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

from clinie_nemo import engines
from clinie_nemo.core.errors import ConfigError
from clinie_nemo.engines import ENGINES, PREEMPTED_EXIT_CODE, Engine

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "clinie_nemo"
GPU_STACKS = ("torch", "transformers", "peft", "megatron", "nemo", "vllm")


def _protocol_parameters(name: str) -> list[str]:
    return [p for p in inspect.signature(getattr(Engine, name)).parameters if p != "self"]


@pytest.mark.parametrize("name", list(ENGINES))
def test_every_registered_engine_implements_the_protocol(name: str) -> None:
    module = engines.get(name)
    assert isinstance(module, Engine), f"engine {name}: {ENGINES[name]} lacks part of the Engine protocol"
    assert name == module.NAME
    assert module.PREEMPTED_EXIT_CODE == PREEMPTED_EXIT_CODE  # imported, not redefined: see the AST test below
    assert isinstance(module.RANK_PER_GPU, bool)
    for function in ("plan", "train", "generate"):
        params = list(inspect.signature(getattr(module, function)).parameters)
        assert params == _protocol_parameters(function), f"engine {name}: {function}{tuple(params)}"
    default = inspect.signature(module.generate).parameters["gen_config"].default
    assert default is None, f"engine {name}: generate's gen_config must default to None (the preset greedy)"


def test_the_protocol_names_every_fact_an_engine_module_declares() -> None:
    members = {"NAME", "PREEMPTED_EXIT_CODE", "RANK_PER_GPU", "plan", "train", "generate"}
    assert members <= set(dir(Engine)) | set(Engine.__annotations__)


def test_engine_modules_import_without_their_gpu_stack() -> None:
    """Importing every engine module loads none of torch/transformers/peft/Megatron/NeMo/vLLM (a fresh process:
    this one may have imported torch for other tests)."""
    code = ("import sys; from clinie_nemo import engines\n"
            "for n in engines.ENGINES: engines.get(n)\n"
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({GPU_STACKS!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_an_unknown_engine_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="unknown engine .megatron.; valid: bridge, local, nemo"):
        engines.get("megatron")


def test_one_preempted_exit_code_in_the_package() -> None:
    """124 is assigned once (clinie_nemo/engines/__init__.py); every other module imports the name."""
    definitions = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Constant) \
                    and node.value.value == PREEMPTED_EXIT_CODE:
                definitions.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert definitions == ["clinie_nemo/engines/__init__.py:" + str(_line_of("PREEMPTED_EXIT_CODE = 124"))]


def _line_of(text: str) -> int:
    lines = (PACKAGE / "engines" / "__init__.py").read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.startswith(text))


def test_the_slurm_scripts_requeue_on_the_same_code() -> None:
    common = (REPO / "slurm" / "common.sh").read_text(encoding="utf-8")
    match = re.search(r"^CN_REQUEUE_EXIT=(\d+)\s", common, re.M)
    assert match and int(match.group(1)) == PREEMPTED_EXIT_CODE


@pytest.mark.parametrize("command", ["train", "generate"])
def test_cli_engine_choices_come_from_the_registry(command: str) -> None:
    from clinie_nemo.commands import generate, train

    module = {"train": train, "generate": generate}[command]
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    action = next(a for a in parser._actions if "--engine" in a.option_strings)
    assert list(action.choices) == list(ENGINES)


@pytest.mark.parametrize("name", list(ENGINES))
def test_rank_per_gpu_is_how_slurm_and_the_study_launch_a_multi_node_train(name: str) -> None:
    """RANK_PER_GPU says what slurm/common.sh's cn_tasks_per_node (bash) and study.executor.tasks_per_node do for
    a training step: one task per GPU, or one per node."""
    from clinie_nemo.study.config import StageResources
    from clinie_nemo.study.executor import tasks_per_node

    gpus = 8
    expected = gpus if engines.get(name).RANK_PER_GPU else 1
    assert tasks_per_node(name, "train", StageResources(nodes=2, gpus=gpus)) == expected
    proc = subprocess.run(["bash", "-c", f'source slurm/common.sh; cn_tasks_per_node {name} {gpus} train'],
                          capture_output=True, text=True, cwd=REPO, env={"PATH": "/usr/bin:/bin"}, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == str(expected), proc.stderr


def test_every_engine_has_its_run_spec_checks() -> None:
    """check_for_engine asks ENGINE_PROBLEMS: an engine without an entry would pass every spec unchecked."""
    from clinie_nemo.engines.validate import ENGINE_PROBLEMS

    assert list(ENGINE_PROBLEMS) == list(ENGINES)
