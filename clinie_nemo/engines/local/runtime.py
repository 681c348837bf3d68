"""Device, threads, precision and model loading for the local engine (torch imported lazily)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from clinie_nemo.core.errors import ConfigError

ENGINE_FILE = "local_engine.json"  # in the run dir: base model path, method, prompt settings


def configure_threads() -> int | None:
    """Use SLURM_CPUS_PER_TASK, else OMP_NUM_THREADS, as torch's thread count when set."""
    import torch

    for var in ("SLURM_CPUS_PER_TASK", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            torch.set_num_threads(int(value))
            return int(value)
    return None


def quiet_transformers() -> None:
    """No download attempts, no loading bars from transformers (we print our own progress)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import warnings

    from transformers.utils import logging as hf_logging

    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|peft)\.")

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def device_and_dtype(precision: str = "bf16-mixed") -> tuple[Any, Any]:
    """(device, autocast dtype or None): cuda with bf16/fp16 autocast when available, else cpu in fp32."""
    import torch

    if torch.cuda.is_available():
        amp = {"bf16-mixed": torch.bfloat16, "fp16-mixed": torch.float16}.get(precision)
        return torch.device("cuda"), amp
    return torch.device("cpu"), None


def load_tokenizer(path: str | Path) -> Any:
    from transformers import AutoTokenizer

    if not Path(path).is_dir():
        raise ConfigError(f"tokenizer folder {path} not found (the local engine loads local HF folders only)")
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(path: str | Path, dtype: Any = None) -> Any:
    from transformers import AutoModelForCausalLM

    if not (Path(path) / "config.json").is_file():
        raise ConfigError(f"model folder {path} has no config.json (the local engine loads local HF folders)")
    kwargs = {"local_files_only": True}
    if dtype is not None:
        kwargs["dtype"] = dtype
    return AutoModelForCausalLM.from_pretrained(str(path), **kwargs)


def write_engine_file(run_dir: Path, facts: dict[str, Any]) -> None:
    from clinie_nemo.core.fileio import atomic_write

    with atomic_write(run_dir / ENGINE_FILE) as fh:
        json.dump(facts, fh, indent=2, sort_keys=True)


def read_engine_file(run_dir: Path) -> dict[str, Any]:
    path = run_dir / ENGINE_FILE
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))
