"""Training data: a dict of batch tensors as a data set, epoch-seeded samplers, worker seeding.

Convention
----------
A data set yields one dict per sample with at least ``moving`` and ``fixed`` (``C,H,W`` float in
[0, 1]) and any other keys (``disp``, ``label``, ``frame``, masks, ...), collated to ``N,...``
batches by the DataLoader. :class:`TensorPairs` wraps a dict of batch tensors (``N,C,H,W``
each) as such a data set. (It is not :class:`regkit.data.PairDataset`, which makes pairs on
demand from a seed.)

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

__all__ = ["TensorPairs", "as_dataset", "EpochShuffleSampler", "StridedSampler", "seed_worker"]


class TensorPairs(Dataset):
    """A dict of batch tensors (``moving=N,C,H,W``, ``fixed=...``, any other ``N,...`` keys) as a data set.

    Parameters
    ----------
    data : mapping of str to Tensor, optional
        Tensors sharing their first dimension ``N``; ``moving`` and ``fixed`` are required and
        must be ``N,C,H,W``.
    **tensors : Tensor
        More entries (they override ``data``'s).

    Raises
    ------
    ValueError
        Without ``moving``/``fixed``, or when lengths or ranks differ (naming the key).
    TypeError
        When a value is not a tensor.

    >>> ds = TensorPairs({"moving": torch.zeros(2, 1, 4, 4), "fixed": torch.zeros(2, 1, 4, 4)})
    >>> len(ds)
    2
    """

    def __init__(self, data: Mapping[str, Tensor] | None = None, **tensors: Tensor):
        if data is not None and not isinstance(data, Mapping):
            raise TypeError(f"data must be a mapping of tensors, got {type(data).__name__}")
        tensors = {**(dict(data) if data is not None else {}), **tensors}
        for key in ("moving", "fixed"):
            if key not in tensors:
                raise ValueError(f"TensorPairs needs a {key!r} tensor, got keys {sorted(tensors)}")
        n = None
        for key, value in tensors.items():
            if not isinstance(value, Tensor):
                raise TypeError(f"{key} must be a torch.Tensor, got {type(value).__name__}")
            if n is None:
                n = value.shape[0]
            if value.ndim == 0 or value.shape[0] != n:
                raise ValueError(
                    f"all tensors must have the same length, got {key} with shape {tuple(value.shape)}, N={n}")
        for key in ("moving", "fixed"):
            if tensors[key].ndim != 4:
                raise ValueError(f"{key} must be N,C,H,W, got shape {tuple(tensors[key].shape)}")
        self.tensors = tensors

    @classmethod
    def from_dataset(cls, dataset, keys=("moving", "fixed"), limit: int | None = None) -> "TensorPairs":
        """Read ``dataset`` (items are dicts of tensors) once into memory, keeping ``keys``.

        Lazy data sets that synthesise every item on access (the FIRE and HPatches proxies) are
        then generated once instead of once per epoch.

        Parameters
        ----------
        dataset : sequence of item dicts
        keys : sequence of str
        limit : int, optional
            Read only the first ``limit`` items.

        Returns
        -------
        TensorPairs
        """
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise ValueError(f"limit must be None or a non-negative integer, got {limit!r}")
        n = len(dataset) if limit is None else min(limit, len(dataset))
        if n == 0:
            raise ValueError("dataset is empty")
        items = [dataset[i] for i in range(n)]
        missing = [k for k in keys if k not in items[0]]
        if missing:
            raise ValueError(f"dataset items have no keys {missing}; they have {sorted(items[0])}")
        return cls({k: torch.stack([item[k] for item in items]) for k in keys})

    def __len__(self) -> int:
        return self.tensors["moving"].shape[0]

    def __getitem__(self, i):
        return {k: v[i] for k, v in self.tensors.items()}


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
        """Choose the epoch whose permutation :meth:`__iter__` yields."""
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
