"""The GPUs of the job a generation runs in (not the training run's layout): one rule for every engine.

:func:`job_allocation` reads the environment the way the nemo engine always has (see
:func:`clinie_nemo.engines.nemo_plan.generation_allocation`, which wraps it): inside a launch with one task per
GPU (WORLD_SIZE set) the step's SLURM_NTASKS_PER_NODE, else WORLD_SIZE over the step's nodes; in a Slurm
job SLURM_GPUS_ON_NODE (set for --gpus-per-node, --gres=gpu:N and typed gpu:h100:N) on SLURM_JOB_NUM_NODES;
otherwise CUDA_VISIBLE_DEVICES. A process that drives every GPU of its node itself (vLLM: one task per
node, slurm/common.sh cn_tasks_per_node bridge:generate) passes ``one_process_per_gpu=False``: the tasks of
its launch are then not GPUs and the node's GPUs count.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import NamedTuple


class Allocation(NamedTuple):
    nodes: int
    gpus_per_node: int
    source: str  # where the numbers came from, for error messages


def _number(env: Mapping[str, str], name: str) -> int | None:
    """A positive count from the environment; ``"8(x2)"`` (SLURM_NTASKS_PER_NODE's form) reads as 8."""
    text = (env.get(name) or "").strip()
    m = re.match(r"\d+", text)
    return int(m.group()) if m and int(m.group()) > 0 else None


def job_allocation(env: Mapping[str, str] | None = None, *, one_process_per_gpu: bool = True) -> Allocation | None:
    """(nodes, GPUs per node, source) of the job/launch this process runs in; None when nothing says
    (no launch, no Slurm job, no CUDA_VISIBLE_DEVICES): the caller picks its own default."""
    env = os.environ if env is None else env
    nodes = _number(env, "SLURM_NNODES") or _number(env, "SLURM_JOB_NUM_NODES") or 1
    world = _number(env, "WORLD_SIZE")
    if one_process_per_gpu and world is not None:
        gpus = _number(env, "SLURM_NTASKS_PER_NODE") or max(1, world // nodes)
        return Allocation(nodes, gpus, f"WORLD_SIZE={world} on {nodes} node(s)")
    if _number(env, "SLURM_GPUS_ON_NODE") is not None and "SLURM_JOB_ID" in env:
        return Allocation(nodes, _number(env, "SLURM_GPUS_ON_NODE") or 1, f"SLURM_GPUS_ON_NODE x {nodes} node(s)")
    if env.get("CUDA_VISIBLE_DEVICES", "").strip():
        visible = [d for d in env["CUDA_VISIBLE_DEVICES"].split(",") if d.strip()]
        return Allocation(1, len(visible), "CUDA_VISIBLE_DEVICES")
    return None
