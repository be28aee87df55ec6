"""Distributed data parallel helpers: process info, the process group, DDP wrapping, reductions.

The Trainer runs unchanged under ``torchrun``: it reads ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``,
starts a process group if none is running (gloo on the CPU, NCCL on CUDA), wraps model and
objective together in DistributedDataParallel, and averages logs and metrics over processes.
Without ``torchrun`` every helper is a no-op for one process.

Convention
----------
Ranks are ``0 .. world_size - 1``; rank 0 is the *main* process (it writes checkpoints and logs).

>>> distributed_info() if "RANK" not in os.environ else (0, 1, 0)
(0, 1, 0)
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["distributed_info", "init_process_group", "end_process_group", "ModelAndObjective", "wrap_ddp",
           "reduce_mean", "barrier"]


def distributed_info() -> tuple[int, int, int]:
    """This process's place in a distributed run.

    Returns
    -------
    (rank, world_size, local_rank) : tuple of int
        From the running process group, else from ``torchrun``'s environment; ``(0, 1, 0)``
        without either.
    """
    local = int(os.environ.get("LOCAL_RANK", 0))
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), local
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), local


def init_process_group(device: torch.device) -> bool:
    """Start the default process group for a multi-process run if none is running.

    Parameters
    ----------
    device : torch.device
        NCCL for CUDA devices, gloo otherwise.

    Returns
    -------
    bool
        True if this call started the group (the caller then ends it with
        :func:`end_process_group`).
    """
    world = distributed_info()[1]
    if world > 1 and dist.is_available() and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        return True
    return False


def end_process_group() -> None:
    """Wait for every process, then destroy the default process group (if one is running)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every process (no-op without a process group)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


class ModelAndObjective(nn.Module):
    """Model and objective as one module, so that DDP synchronises both sets of gradients.

    Parameters
    ----------
    model : nn.Module
    objective : callable
        ``objective(model, batch) -> (loss, logs[, result])``.
    """

    def __init__(self, model: nn.Module, objective):
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, batch):
        return self.objective(self.model, batch)


def wrap_ddp(module: nn.Module, device: torch.device, find_unused_parameters: bool = False) -> nn.Module:
    """Wrap ``module`` in DistributedDataParallel when more than one process runs, else return it.

    Parameters
    ----------
    module : nn.Module
    device : torch.device
        The process's device (its index is DDP's ``device_ids`` on CUDA).
    find_unused_parameters : bool

    Returns
    -------
    nn.Module
    """
    if distributed_info()[1] <= 1 or not dist.is_initialized():
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused_parameters)


def reduce_mean(sums: dict[str, float], count: float, device: torch.device) -> dict[str, float]:
    """Means ``sums[k] / count`` over all processes (sums and count added over processes first).

    Parameters
    ----------
    sums : dict of str to float
        Per-process sums (every process must hold the same keys).
    count : float
        Per-process number of samples.
    device : torch.device
        The process's device (used for the reduction with NCCL).

    Returns
    -------
    dict of str to float

    >>> reduce_mean({"loss": 6.0}, 3, torch.device("cpu"))
    {'loss': 2.0}
    """
    keys = sorted(sums)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        comm = device if dist.get_backend() == "nccl" else torch.device("cpu")
        t = torch.tensor([sums[k] for k in keys] + [count], dtype=torch.float64, device=comm)
        dist.all_reduce(t)
        vals, count = t[:-1].tolist(), float(t[-1])
    else:
        vals = [sums[k] for k in keys]
    return {k: v / max(count, 1) for k, v in zip(keys, vals)}
