"""Write the key manifest of a NeMo example config (megatron_gpt_finetuning_config / megatron_gpt_generate_config).

NeMo's example configs ship in neither the nemo_toolkit wheel nor its sdist (both hold only an empty
examples/__init__.py: checked for 2.4.0), and CI reaches no other source of them, so the project keeps a
manifest DERIVED from the real file instead of a copy of it: every key path of the file (what Hydra checks
``key=`` / ``+key`` / ``++key`` overrides against), with values only where NeMo's start-up path reads them
(the trainer and exp_manager sections, ``name`` and the few model keys in :data:`MODEL_VALUES`); ``???``
(mandatory) stays ``???``; every other value becomes null. tests/engines/test_nemo_contract.py checks the manifest
against the real file whenever one is at hand (CLINIE_NEMO_ROOT: a NeMo checkout or /opt/NeMo in the container).

Usage: python tools/nemo_config_keys.py NEMO_ROOT [CONFIG_NAME] > tests/fixtures/nemo/CONFIG_NAME.yaml
(CONFIG_NAME defaults to megatron_gpt_finetuning_config)
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import yaml

CONF_DIR = "examples/nlp/language_modeling/tuning/conf"
KEEP_SECTIONS = ("name", "trainer", "exp_manager")
# model keys NeMo v2.4.0 reads before it restores the .nemo (megatron_trainer_builder.py:65-203 fsdp, optim.name,
# megatron_amp_O2, gradient_as_bucket_view, tensor_model_parallel_size; perf_metrics.py:71 global_batch_size)
# or that the kept sections interpolate (name -> peft.peft_scheme; checkpoint monitor -> validation metric name;
# model_parallel_size -> tensor_model_parallel_size)
MODEL_VALUES = ("fsdp", "megatron_amp_O2", "gradient_as_bucket_view", "tensor_model_parallel_size",
                "global_batch_size", "micro_batch_size", "optim.name", "peft.peft_scheme",
                "data.validation_ds.metric.name")


def strip(node: Any, path: str) -> Any:
    if isinstance(node, dict):
        return {k: strip(v, f"{path}.{k}" if path else k) for k, v in node.items()}
    top = path.split(".")[0]
    if top in KEEP_SECTIONS or (top == "model" and path.split(".", 1)[1] in MODEL_VALUES) or node == "???":
        return node
    return None


def manifest(root: Path, name: str = "megatron_gpt_finetuning_config") -> str:
    source = root / CONF_DIR / f"{name}.yaml"
    text = source.read_text(encoding="utf-8")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    body = yaml.safe_dump(strip(yaml.safe_load(text), ""), sort_keys=False, width=120)
    return (f"# Key manifest DERIVED from NeMo's {CONF_DIR}/{name}.yaml\n"
            f"# (sha256 {digest}), written by tools/nemo_config_keys.py:\n"
            "# all key paths; values only where NeMo's start-up path reads them, else null (??? kept). Not NeMo's file.\n"
            + body)


if __name__ == "__main__":
    sys.stdout.write(manifest(Path(sys.argv[1]), *sys.argv[2:3]))
