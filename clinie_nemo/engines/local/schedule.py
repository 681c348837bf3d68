"""Learning rate as a pure function of the optimiser step: linear warmup, then cosine/linear/constant decay.

Being a function of the step, it needs no state of its own in a checkpoint.
"""

from __future__ import annotations

import math


def lr_at(step: int, total_steps: int, lr: float, min_lr: float = 0.0, warmup_steps: int = 0,
          schedule: str = "cosine") -> float:
    """The learning rate for optimiser step ``step`` (0-based) of ``total_steps``."""
    if warmup_steps > 0 and step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return lr
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    if schedule == "linear":
        return min_lr + (lr - min_lr) * (1.0 - progress)
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
