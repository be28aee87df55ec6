"""Training data: epoch-seeded samplers, worker seeding, and dicts of tensors as data sets.

Convention
----------
A data set yields one dict per sample with at least ``moving`` and ``fixed`` (``C,H,W`` float in
[0, 1]) and any other keys (``disp``, ``label``, ``frame``, masks, ...), collated to ``N,...``
batches by the DataLoader. A dict of batch tensors (``N,C,H,W`` each) becomes such a data set
as a :class:`regkit.data.TensorPairs` (:func:`as_dataset`).

Shuffling depends on ``(seed, epoch)`` only, so an epoch's batches do not depend on what ran
before (the key to exact resume); under DDP each process takes a strided share of the same
permutation.

>>> ds = TensorPairs(moving=torch.zeros(3, 1, 8, 8), fixed=torch.ones(3, 1, 8, 8))
>>> len(ds), sorted(ds[0]), tuple(ds[0]["moving"].shape)
(3, ['fixed', 'moving'], (1, 8, 8))
"""

from __future__ import annotations

import math
import random
from typing import Mapping

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from ..data.pairs import TensorPairs

__all__ = ["TensorPairs", "as_dataset", "EpochShuffleSampler", "StridedSampler", "seed_worker"]


def as_dataset(data, name: str) -> Dataset:
    """``data`` as a data set: a dict of batch tensors becomes :class:`TensorPairs`.

    Parameters
    ----------
    data : Dataset, sequence of item dicts, or mapping of batch tensors
    name : str
        The argument's name, for the error message.

    Returns
    -------
    Dataset (or the sequence itself)
    """
    if isinstance(data, Mapping):
        return TensorPairs(data)
    if isinstance(data, Dataset) or (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        return data
    raise TypeError(f"{name} must be a Dataset of dict samples or a dict of batch tensors, got {type(data).__name__}")


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed NumPy and Python from the seed torch gave the worker.

    torch seeds each worker from the loader's generator; this derives the other two from it.

    Parameters
    ----------
    worker_id : int
        Unused (the worker's torch seed already differs per worker).
    """
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


class StridedSampler(Sampler):
    """Indices ``rank, rank + world, ...`` in order: every sample exactly once over all ranks.

    Parameters
    ----------
    n : int
        Data set length.
    rank, world : int
        This process and the number of processes.

    >>> list(StridedSampler(5, 1, 2))
    [1, 3]
    """

    def __init__(self, n: int, rank: int = 0, world: int = 1):
        self.indices = list(range(rank, n, world))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self):
        return len(self.indices)


class EpochShuffleSampler(Sampler):
    """Shuffled (or ordered) indices for one process; the permutation depends on (seed, epoch) only.

    Under DDP each rank takes a strided share of one permutation (padded by wrapping, like
    ``DistributedSampler``, so that all ranks run the same number of steps).

    Parameters
    ----------
    n : int
        Data set length.
    seed : int
    shuffle : bool
    rank, world : int
        This process and the number of processes.

    >>> s = EpochShuffleSampler(4, seed=0, shuffle=False, rank=0, world=2); list(s)
    [0, 2]
    """

    def __init__(self, n: int, seed: int, shuffle: bool, rank: int = 0, world: int = 1):
        self.n, self.seed, self.shuffle, self.rank, self.world = n, seed, shuffle, rank, world
        self.epoch = 0
        self.per_rank = math.ceil(n / world)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose permutation iterating yields."""
        self.epoch = epoch

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        total = self.per_rank * self.world
        order = (order * math.ceil(total / self.n))[:total]
        return iter(order[self.rank : total : self.world])

    def __len__(self):
        return self.per_rank
