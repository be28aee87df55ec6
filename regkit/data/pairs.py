"""A lazy, seeded ``Dataset`` of registration pairs and the collate that batches them.

Convention
----------
- An item is a dict with at least ``moving`` and ``fixed``: float32 tensors ``(1, H, W)`` in
  [0, 1]. Optional ground truth: ``disp`` ``(2, H, W)`` in pixels, the pull field on the fixed
  grid with ``spatial.warp(moving, disp) ≈ fixed``; ``landmarks_moving`` / ``landmarks_fixed``
  ``(K, 2)`` in pixels (x, y), a fixed landmark ``q`` maps to ``q + disp(q) ≈`` its moving one;
  masks ``(1, H, W)`` bool; ``label`` and ``frame`` as Python ints.
- Item ``i`` is made by ``make(i, generator)`` with a ``torch.Generator`` seeded from
  ``(name, split, seed, i)`` only, so it is the same whatever order (or worker) reads it, and
  nothing is materialised until it is read.
- :func:`collate_pairs` stacks tensors to ``N,1,H,W`` / ``N,2,H,W`` / ``N,K,2`` and keeps other
  values as lists (ints become a ``long`` tensor).

Example
-------
>>> import torch
>>> def make(i, g):
...     x = torch.rand(1, 4, 4, generator=g)
...     return {"moving": x, "fixed": x}
>>> ds = PairDataset("toy", "train", 10, make, seed=0)
>>> bool(torch.equal(ds[3]["moving"], ds[3]["moving"])), len(ds.subset(4))
(True, 4)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import torch
from torch.utils.data import Dataset

__all__ = ["PairDataset", "collate_pairs", "item_seed", "check_item", "merge_params"]


def item_seed(*keys) -> int:
    """A 63-bit seed derived from ``keys`` (stable across runs, platforms and Python versions).

    >>> item_seed("mnist", "train", 0, 5) == item_seed("mnist", "train", 0, 5)
    True
    """
    text = "\x1f".join(str(k) for k in keys).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") >> 1


def merge_params(defaults: dict, params: dict | None) -> dict:
    """A copy of ``defaults`` updated with ``params``; unknown keys raise a ``ValueError``.

    >>> merge_params({"a": 1, "b": 2}, {"b": 3})
    {'a': 1, 'b': 3}
    """
    merged = dict(defaults)
    if params:
        unknown = set(params) - set(merged)
        if unknown:
            raise ValueError(f"params has unknown keys {sorted(unknown)}; known: {sorted(merged)}")
        merged.update(params)
    return merged


def check_item(item: dict, where: str = "item") -> dict:
    """Check the pair contract: ``moving``/``fixed`` float32 ``(1, H, W)`` in [0, 1], same shape."""
    for key in ("moving", "fixed"):
        x = item.get(key)
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{where}[{key!r}] must be a tensor, got {type(x).__name__}")
        if x.dtype != torch.float32 or x.ndim != 3 or x.shape[0] != 1:
            raise ValueError(f"{where}[{key!r}] must be float32 (1, H, W), got {x.dtype} {tuple(x.shape)}")
        if not bool(torch.isfinite(x).all()) or float(x.min()) < 0 or float(x.max()) > 1:
            raise ValueError(f"{where}[{key!r}] must be finite with values in [0, 1]")
    if item["moving"].shape != item["fixed"].shape:
        raise ValueError(f"{where}: moving and fixed differ in shape")
    return item


class PairDataset(Dataset):
    """Pairs made on demand by ``make(index, generator) -> dict``.

    Parameters
    ----------
    name, split : str
        Part of every item's seed (so train and test items differ even at the same index).
    length : int
        Number of items in the full split.
    make : callable
        ``make(index, generator)`` returns one item dict (see the module's Convention).
    seed : int
        The data seed: same seed, same data.
    limit : int, optional
        Keep only the first ``limit`` items (a small run; items keep their full-set identity).
    info : dict, optional
        Facts about the set (source, sizes, parameters) shown by ``repr`` and the book.
    """

    def __init__(self, name: str, split: str, length: int, make: Callable, *, seed: int = 0,
                 limit: int | None = None, indices: Sequence[int] | None = None, info: dict | None = None):
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise ValueError(f"length must be a non-negative integer, got {length!r}")
        self.name, self.split, self.seed, self.make = name, split, seed, make
        self.full_length = length
        idx = list(range(length)) if indices is None else [int(i) for i in indices]
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
                raise ValueError(f"limit must be a non-negative integer or None, got {limit!r}")
            idx = idx[:limit]
        self.indices = idx
        self.info = dict(info or {})

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        if isinstance(i, bool) or not isinstance(i, int):
            raise TypeError(f"index must be an int, got {type(i).__name__}")
        n = len(self.indices)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {self.name}/{self.split} with {n} items")
        index = self.indices[i]
        g = torch.Generator().manual_seed(item_seed(self.name, self.split, self.seed, index))
        item = self.make(index, g)
        item.setdefault("index", index)
        return item

    def subset(self, n: int | Sequence[int]) -> PairDataset:
        """The first ``n`` items (an int) or the items at the given positions (a sequence)."""
        idx = self.indices[:n] if isinstance(n, int) else [self.indices[j] for j in n]
        return PairDataset(self.name, self.split, self.full_length, self.make, seed=self.seed,
                           indices=idx, info=self.info)

    def __repr__(self) -> str:
        return f"PairDataset({self.name!r}, split={self.split!r}, items={len(self)}/{self.full_length}, seed={self.seed})"


def collate_pairs(batch: Sequence[dict]) -> dict:
    """Stack a list of item dicts into a batch dict (``N,1,H,W`` images, ``N,2,H,W`` fields ...).

    Tensors of the same shape are stacked; ints become a ``long`` tensor; anything else stays a
    list. Keys must be the same in every item.
    """
    if len(batch) == 0:
        raise ValueError("batch must hold at least one item")
    keys = list(batch[0])
    for j, item in enumerate(batch):
        if list(item) != keys:
            raise ValueError(f"batch items differ in keys: item 0 has {keys}, item {j} has {list(item)}")
    out = {}
    for k in keys:
        vals = [item[k] for item in batch]
        if all(isinstance(v, torch.Tensor) for v in vals) and len({tuple(v.shape) for v in vals}) == 1:
            out[k] = torch.stack(vals)
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
            out[k] = torch.tensor(vals, dtype=torch.long)
        else:
            out[k] = vals
    return out
