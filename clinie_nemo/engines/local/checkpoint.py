"""Training checkpoints of the local engine: ``<run>/checkpoints/step-<n>/``, written atomically, last K kept.

A checkpoint holds the trainable weights (LoRA adapter weights, or all weights for full fine-tuning)
``trainable.pt``, the optimiser state ``optimizer.pt``, the RNG states ``rng.pt`` and ``state.json``
(step, rows consumed = data position, learning-rate schedule facts). The learning rate is a pure function
of the step (:func:`.settings.lr_at`), so the step restores the scheduler. A folder is complete when it carries
its final name: it is built as ``.step-<n>.tmp`` and renamed.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

STEP_DIR = re.compile(r"^step-(\d+)$")


def checkpoint_dirs(run_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, oldest first."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = STEP_DIR.match(p.name)
        if m and (p / "state.json").is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> Path | None:
    dirs = checkpoint_dirs(run_dir)
    return dirs[-1][1] if dirs else None


def trainable_state(model: Any) -> dict[str, Any]:
    return {n: p.detach().to("cpu").clone() for n, p in model.named_parameters() if p.requires_grad}


def rng_state() -> dict[str, Any]:
    import torch

    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import torch

    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: Path, step: int, model: Any, optimizer: Any, state: dict[str, Any],
                    keep_last: int) -> Path:
    """Write step-<step> atomically, then delete all but the newest ``keep_last`` checkpoints."""
    import torch

    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step}"
    tmp = root / f".step-{step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    torch.save(trainable_state(model), tmp / "trainable.pt")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(rng_state(), tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, **state}, indent=2, sort_keys=True))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for _, old in checkpoint_dirs(run_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(path: Path, model: Any, optimizer: Any) -> dict[str, Any]:
    """Restore weights, optimiser and RNG from ``path``; returns its state.json."""
    import torch

    weights = torch.load(path / "trainable.pt", map_location="cpu", weights_only=True)
    expected = {n for n, p in model.named_parameters() if p.requires_grad}
    if set(weights) != expected:
        from clinie_nemo.core.errors import ConfigError

        raise ConfigError(f"checkpoint {path} does not match this run's trainable parameters "
                          f"({len(weights)} saved, {len(expected)} expected); was the method or LoRA changed?")
    model.load_state_dict(weights, strict=False)
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True))
    set_rng_state(torch.load(path / "rng.pt", weights_only=False))
    return json.loads((path / "state.json").read_text())
