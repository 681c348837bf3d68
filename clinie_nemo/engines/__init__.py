"""Training/generation engines behind one interface: the :class:`Engine` protocol and the engine registry.

``ENGINES`` maps an engine name to the module that implements it; :func:`get` imports it lazily
(Megatron-Bridge and NeMo exist only inside NVIDIA's containers, torch only with the ``local`` extra; the
engine modules themselves import those stacks only inside functions, so every one imports on a CPU
machine). Each engine module satisfies :class:`Engine`: tests/engines/test_engine_registry.py checks
every registered one. Adding an engine is one module implementing the protocol plus one line in
``ENGINES``; the CLI's ``--engine`` choices and the study config's valid engines come from here.

Imports: core.errors, engines.spec (types only). Imported by: every engine module (PREEMPTED_EXIT_CODE),
study, commands.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

from clinie_nemo.core.errors import unknown_name

if TYPE_CHECKING:
    from clinie_nemo.engines.spec import GenerateConfig, RunSpec

# The exit code of train/generate stopped by a signal (SIGUSR1: Slurm's time-limit warning; SIGTERM:
# preemption) after saving what it had (a checkpoint, the finished prediction batches): "requeue me, I
# resume". The one definition: engines exit with it, study.runner and study.sbatch requeue on it, and
# slurm/common.sh (CN_REQUEUE_EXIT) spells the same number in bash.
PREEMPTED_EXIT_CODE = 124

ENGINES: dict[str, str] = {
    "local": "clinie_nemo.engines.local",  # transformers + peft, CPU or one GPU
    "bridge": "clinie_nemo.engines.bridge",  # Megatron-Bridge, inside the NeMo Framework container
    "nemo": "clinie_nemo.engines.nemo",  # NeMo 1.x megatron_gpt_finetuning.py (the study's path)
}


@runtime_checkable
class Engine(Protocol):
    """What an engine module defines (module-level names; the functions take no ``self``).

    - ``NAME``: its key in :data:`ENGINES` (written to RUN/run.json and to each prediction's ``engine``).
    - ``PREEMPTED_EXIT_CODE``: what :func:`train` and :func:`generate` exit with (SystemExit) after a stop
      signal once their work so far is saved; always :data:`clinie_nemo.engines.PREEMPTED_EXIT_CODE`,
      imported, never redefined. Other exits: 0 done, 2 a ClinieError (config/input), any other code a
      failure of the engine's own launcher or scripts, passed on.
    - ``RANK_PER_GPU``: how a multi-node training job is launched: True, Slurm starts one task per GPU and
      each task is one rank (RANK/WORLD_SIZE from Slurm; the engine launches nothing itself); False, one
      task per node, each one data-parallel rank on one device.
    - :func:`plan` ``(spec, data_dir, run_dir) -> str``: the dry-run text (``train --dry-run``), no side effect.
    - :func:`train` ``(spec, data_dir, run_dir) -> dict``: trains or resumes into ``run_dir``, writes DONE
      and returns its facts (``{}`` on a rank other than 0).
    - :func:`generate` ``(run_dir, records_path, output_path, gen_config) -> int``: one prediction per
      record into ``output_path`` (resumable), returns how many were written (0 on a rank other than 0).
    """

    NAME: str
    PREEMPTED_EXIT_CODE: int
    RANK_PER_GPU: bool

    def plan(self, spec: RunSpec, data_dir: str | Path, run_dir: str | Path) -> str: ...

    def train(self, spec: RunSpec, data_dir: str | Path, run_dir: str | Path) -> dict[str, Any]: ...

    def generate(self, run_dir: str | Path, records_path: str | Path, output_path: str | Path,
                 gen_config: GenerateConfig | None = None) -> int: ...


def get(name: str) -> Engine:
    """The engine module for ``name``; an unknown name lists the valid ones."""
    if name not in ENGINES:
        raise unknown_name("engine", name, ENGINES)
    return cast(Engine, importlib.import_module(ENGINES[name]))
