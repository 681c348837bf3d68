"""Engine ``bridge``, the folders Megatron-Bridge reads and writes: the HF model folder it loads, the
``iter_NNNNNNN`` checkpoints and tracker file it saves, and the run's dataset folder of links to the data.

Plain file-system facts, no Bridge call (those live in :mod:`clinie_nemo.engines.bridge`, the only module
importing ``megatron.bridge``). File:line citations: Megatron-Bridge v0.6.0 as in
:mod:`clinie_nemo.engines.bridge_plan`.

Imports: core.errors, engines.spec. Imported by: engines.bridge.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from clinie_nemo.core.errors import ConfigError
from clinie_nemo.engines.spec import RunSpec

# HF weight files Bridge accepts in a pretrained HF folder (training/utils/checkpoint_utils.py:170-181,
# is_hf_checkpoint_dir :211: config.json plus one of these)
HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
              "pytorch_model.bin.index.json")
HF_WEIGHT_GLOBS = ("model-*-of-*.safetensors", "pytorch_model-*-of-*.bin")


def check_hf_folder(spec: RunSpec) -> Path:
    """The model's checkpoint must be a local HF folder Bridge can load (config.json + weights)."""
    hf = Path(spec.model.checkpoint)
    if not hf.is_dir():
        raise ConfigError(f"engine bridge: model.checkpoint {hf} is not an HF folder on this machine "
                          "(a Hub id is not downloaded: point model.checkpoint at a local folder)")
    if not (hf / "config.json").is_file():
        raise ConfigError(f"engine bridge: {hf / 'config.json'} not found (model.checkpoint must be an HF folder)")
    if not any((hf / n).is_file() for n in HF_WEIGHTS) and not any(any(hf.glob(g)) for g in HF_WEIGHT_GLOBS):
        raise ConfigError(f"engine bridge: {hf} has no HF weights (model.safetensors, model-*-of-*.safetensors "
                          "or pytorch_model*.bin)")
    return hf


def latest_iteration(checkpoints: Path) -> int:
    """The last iteration Bridge saved: its tracker file ``latest_checkpointed_iteration.txt``
    (training/checkpointing.py:1464-1466 writes it after each save; checkpoint_utils.py:143), else the
    highest ``iter_NNNNNNN`` folder (checkpoint_utils.py:91 get_checkpoint_name); 0 when none."""
    tracker = checkpoints / "latest_checkpointed_iteration.txt"
    if tracker.is_file():
        text = tracker.read_text().strip()
        if text.isdigit():
            return int(text)
    iters = [int(p.name[5:]) for p in checkpoints.glob("iter_*") if p.name[5:].isdigit()]
    return max(iters, default=0)


def iteration_dir(checkpoints: Path, iteration: int) -> Path:
    """``checkpoints/iter_0000300`` (checkpoint_utils.py:107 ``"iter_{:07d}".format(iteration)``)."""
    return checkpoints / f"iter_{iteration:07d}"


def stage_dataset(files: dict[str, Any]) -> Path:
    """Fill the run's dataset_root with symlinks to the data folder's split files (plan "dataset_files"),
    so Bridge's packed files and JSONL indexes are written under the run, never into the (shared, maybe
    read-only) data folder. Every rank may call it: each link is made under a temporary name and renamed
    over the old one, so concurrent ranks and a resumed run all end with the same links."""
    source, root = Path(files["source"]).resolve(), Path(files["root"])
    root.mkdir(parents=True, exist_ok=True)
    for name in files["files"]:
        src, link = source / name, root / name
        if not src.is_file():
            continue
        if link.is_symlink() and Path(os.readlink(link)) == src:
            continue
        tmp = root / f".{name}.{socket.gethostname()}.{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(src)
        os.replace(tmp, link)
    return root
