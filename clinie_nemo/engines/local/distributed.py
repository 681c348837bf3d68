"""Data parallelism for the local engine: torch.distributed (gloo on CPU, nccl on CUDA) across the ranks of a
launcher (srun tasks through slurm/common.sh's cn_launch, or torchrun), one device per rank.

:func:`from_env` reads the rank layout: torch's env:// variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
MASTER_PORT, set by torchrun and by cn_launch), else Slurm's task ids (SLURM_PROCID, SLURM_STEP_NUM_TASKS,
SLURM_LOCALID) inside an srun step (never in the batch script, which has no SLURM_STEP_ID); MASTER_ADDR then defaults to the job's first node and MASTER_PORT to a port
derived from the job id (two jobs on one node never share it). WORLD_SIZE 1 (or no launcher) is the plain
one-process run and initialises nothing.

The trainer splits every global batch across the ranks (rank r takes rows r, r + world, ...: what
torch.utils.data.DistributedSampler does to a dataset, applied to each step's rows, so resuming from a
checkpoint's data position needs no sampler state), sums the gradients with one all_reduce per step (DDP's
reduction with no_sync over the accumulation micro batches) and agrees on a stop request with a MAX
all_reduce, so every rank stops after the same step. Only rank 0 writes files.
"""

from __future__ import annotations

import datetime
import os
import subprocess
from dataclasses import dataclass
from typing import Any

from clinie_nemo.core.errors import ConfigError

PORT_BASE, PORT_SPAN = 15000, 15000  # no MASTER_PORT from the launcher: 15000 + job id % 15000 (below
# Linux's ephemeral ports, 32768+)
TIMEOUT_S = 600  # a rank that never arrives fails the collective instead of hanging the job forever


@dataclass(frozen=True)
class Layout:
    """Where this process sits among the launcher's ranks."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    master_addr: str = ""
    master_port: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _int(env: dict[str, str], *names: str) -> int | None:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            if not value.isdigit():
                raise ConfigError(f"environment variable {name}={value!r} is not a non-negative integer")
            return int(value)
    return None


def first_node(nodelist: str) -> str:
    """The first host of a Slurm node list ("vm,vm-n2", "gpu[01-04]"), via `scontrol show hostnames`."""
    if not nodelist:
        return ""
    try:
        out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    names = out.split()
    if names:
        return names[0]
    return nodelist.split(",")[0] if "[" not in nodelist else ""


def from_env(env: dict[str, str] | None = None) -> Layout:
    """The rank layout of this process (see the module docstring)."""
    env = dict(os.environ if env is None else env)
    in_step = bool(env.get("SLURM_STEP_ID") or env.get("SLURM_STEPID"))
    world = _int(env, "WORLD_SIZE") or (_int(env, "SLURM_STEP_NUM_TASKS", "SLURM_NTASKS") if in_step else None) or 1
    if world <= 1:
        return Layout()
    rank = _int(env, "RANK")
    if rank is None and in_step:
        rank = _int(env, "SLURM_PROCID")
    local_rank = _int(env, "LOCAL_RANK") or (_int(env, "SLURM_LOCALID") if in_step else None) or 0
    if rank is None:
        raise ConfigError(f"WORLD_SIZE={world} but no RANK (nor SLURM_PROCID inside a Slurm step) is set")
    if rank >= world:
        raise ConfigError(f"RANK {rank} is not below WORLD_SIZE {world}")
    addr = env.get("MASTER_ADDR", "").strip() or first_node(env.get("SLURM_JOB_NODELIST", "")) or "127.0.0.1"
    port = _int(env, "MASTER_PORT")
    if port is None:
        job = _int(env, "SLURM_JOB_ID")
        if job is None:
            raise ConfigError(f"WORLD_SIZE={world} needs MASTER_PORT (or SLURM_JOB_ID to derive it from)")
        port = PORT_BASE + job % PORT_SPAN
    return Layout(rank=rank, world_size=world, local_rank=local_rank, master_addr=addr, master_port=port)


def init(layout: Layout) -> None:
    """Join the process group (env:// rendezvous at MASTER_ADDR:MASTER_PORT); nothing for one process."""
    if not layout.distributed:
        return
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    os.environ.update(RANK=str(layout.rank), WORLD_SIZE=str(layout.world_size),
                      LOCAL_RANK=str(layout.local_rank), MASTER_ADDR=layout.master_addr,
                      MASTER_PORT=str(layout.master_port))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(layout.local_rank % torch.cuda.device_count())
    dist.init_process_group(backend=backend, init_method="env://", rank=layout.rank,
                            world_size=layout.world_size, timeout=datetime.timedelta(seconds=TIMEOUT_S))


def handshake(layout: Layout) -> dict[str, Any]:
    """Prove the group works: all_reduce each rank's rank + 1 (must be world * (world + 1) / 2) and report
    where this rank runs (written to ``<run>/logs/rank-<r>.json`` by the trainer)."""
    import socket

    expected = layout.world_size * (layout.world_size + 1) // 2
    got = int(all_sum(layout, [layout.rank + 1], _device())[0])
    if got != expected:
        raise RuntimeError(f"torch.distributed all_reduce gave {got}, expected {expected}")
    backend = ""
    if layout.distributed:
        import torch.distributed as dist

        backend = str(dist.get_backend())
    return {"rank": layout.rank, "world_size": layout.world_size, "local_rank": layout.local_rank,
            "node": os.environ.get("SLURMD_NODENAME") or socket.gethostname(),
            "slurm_node_id": os.environ.get("SLURM_NODEID"), "master": f"{layout.master_addr}:{layout.master_port}",
            "backend": backend, "all_reduce_sum": got, "pid": os.getpid()}


def _device() -> Any:
    import torch

    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def shutdown(layout: Layout) -> None:
    if not layout.distributed:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(layout: Layout) -> None:
    if layout.distributed:
        import torch.distributed as dist

        dist.barrier()


def all_sum(layout: Layout, values: list[float], device: Any) -> list[float]:
    """Element-wise sum over the ranks (the values themselves for one process)."""
    if not layout.distributed:
        return list(values)
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return [float(v) for v in t.tolist()]


def any_rank(layout: Layout, flag: int, device: Any) -> int:
    """The largest ``flag`` over the ranks: a stop signal seen by any rank stops them all at the same step."""
    if not layout.distributed:
        return flag
    import torch
    import torch.distributed as dist

    t = torch.tensor([flag], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def sum_gradients(layout: Layout, params: list[Any]) -> None:
    """Sum the gradients of ``params`` over the ranks in one flat all_reduce (each rank's loss is already
    divided by the global token count, so the sum is the gradient of the global batch)."""
    if not layout.distributed:
        return
    import torch
    import torch.distributed as dist

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset:offset + n].view_as(g).clone()
        offset += n


def shard(rows: list[Any], layout: Layout) -> list[Any]:
    """This rank's rows of a global batch (rank r: rows r, r + world, ...)."""
    return rows[layout.rank::layout.world_size] if layout.distributed else rows
