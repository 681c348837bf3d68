"""Training/generation engines behind one interface (CONTRACT item 7).

``ENGINES`` maps an engine name to the module path that implements it; :func:`get` imports it lazily
(Megatron-Bridge and NeMo exist only inside NVIDIA's containers, torch only with the ``local`` extra).
Each engine module defines ``train(spec, data_dir, run_dir)``, ``generate(run_dir, records_path,
output_path, gen_config)`` and ``plan(spec, data_dir, run_dir) -> str`` (the dry-run text).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from clinie_nemo.core.errors import unknown_name

ENGINES: dict[str, str] = {
    "local": "clinie_nemo.engines.local",  # transformers + peft, CPU or one GPU
    "bridge": "clinie_nemo.engines.bridge",  # Megatron-Bridge, inside the NeMo Framework container
    "nemo": "clinie_nemo.engines.nemo",  # NeMo 1.x megatron_gpt_finetuning.py (the study's path)
}


def get(name: str) -> ModuleType:
    """The engine module for ``name``; an unknown name lists the valid ones."""
    if name not in ENGINES:
        raise unknown_name("engine", name, ENGINES)
    return importlib.import_module(ENGINES[name])
