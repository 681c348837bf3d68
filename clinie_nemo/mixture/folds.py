"""Leave-one-dataset-out study grid: every (held-out dataset x training fraction) cell as a mixture config.

:func:`plan_folds` is the Python API (the Slurm launcher calls it); :func:`write_folds` writes one YAML per
cell, named ``heldout-<dataset>_frac-<fraction>.yaml``, plus ``folds.json``, the index the launcher reads.
Each cell is the base config with ``held_out`` and ``held_out_fraction`` replaced; everything else (seed,
tasks, few_shot_k, weights, ...) is kept, so cells differ only in the protocol knobs.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clinie_nemo import __version__
from clinie_nemo.core.errors import ConfigError, unknown_name
from clinie_nemo.core.fileio import atomic_dir
from clinie_nemo.mixture.config import MixtureConfig, dump_mixture_config

STUDY_FRACTIONS = (0.0, 0.05, 0.1, 0.2, 0.5, 1.0)


def format_fraction(fraction: float) -> str:
    """0 -> "0", 0.05 -> "0.05", 1.0 -> "1" (the form used in cell names)."""
    return f"{fraction:.6g}"


def cell_name(held_out: str, fraction: float) -> str:
    return f"heldout-{held_out}_frac-{format_fraction(fraction)}"


def plan_folds(config: MixtureConfig, fractions: Sequence[float] = STUDY_FRACTIONS,
               datasets: Sequence[str] | None = None) -> list[tuple[str, MixtureConfig]]:
    """Every (held-out dataset, fraction) cell, datasets in config order, fractions in the given order."""
    names = [d.name for d in config.datasets]
    if len(names) < 2:
        raise ConfigError("leave-one-dataset-out needs at least two datasets in the mixture")
    chosen = list(datasets) if datasets else names
    for name in chosen:
        if name not in names:
            raise unknown_name("dataset", name, names)
    for f in fractions:
        if not 0.0 <= f <= 1.0:
            raise ConfigError(f"fraction {f} out of range [0, 1]")
    if len(set(fractions)) != len(fractions):
        raise ConfigError(f"fractions repeat: {list(fractions)}")
    cells = []
    for name in chosen:
        for f in fractions:
            cell = dataclasses.replace(config, name=f"{config.name}/{cell_name(name, f)}", held_out=name,
                                       held_out_fraction=float(f))
            cells.append((cell_name(name, f), cell))
    return cells


def write_folds(config: MixtureConfig, output_dir: str | Path, fractions: Sequence[float] = STUDY_FRACTIONS,
                datasets: Sequence[str] | None = None, force: bool = False,
                base_config_path: str | None = None) -> list[dict[str, Any]]:
    """Write one YAML per cell and folds.json; returns the index rows."""
    cells = plan_folds(config, fractions, datasets)
    target = Path(output_dir)
    rows = []
    with atomic_dir(target, force=force) as tmp:
        for name, cell in cells:
            # paths relative to the final folder (tmp is its sibling, so relative paths agree)
            (tmp / f"{name}.yaml").write_text(dump_mixture_config(cell, target / f"{name}.yaml"), encoding="utf-8")
            rows.append({"name": name, "config": f"{name}.yaml", "held_out": cell.held_out,
                         "held_out_fraction": cell.held_out_fraction, "few_shot_k": cell.few_shot_k,
                         "seed": cell.seed})
        index = {"clinie_nemo_version": __version__, "kind": "folds", "base_config": base_config_path,
                 "base_name": config.name, "datasets": sorted({r["held_out"] for r in rows},
                                                              key=[d.name for d in config.datasets].index),
                 "fractions": [float(f) for f in fractions], "cells": rows}
        (tmp / "folds.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return rows
