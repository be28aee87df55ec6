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
- A set that can make many items at once (``make_batch(indices, device)``, e.g. the FIRE proxy on
  a GPU) does so in :meth:`PairDataset.batch`; :meth:`PairDataset.materialize` makes a whole
  split once and holds it as tensors (:class:`TensorPairs`), for runs that read it many times.
- ``dataset.source`` says where the pairs come from (e.g. ``"proxy"`` or ``"fire"``), for the
  results files.

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

__all__ = ["PairDataset", "TensorPairs", "collate_pairs", "item_seed", "check_item", "merge_params"]


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
    make_batch : callable, optional
        ``make_batch(indices, device)`` returns the items ``indices`` (full-set indices) as one
        batch dict, equal to :func:`collate_pairs` of the single items up to float rounding.
    """

    def __init__(self, name: str, split: str, length: int, make: Callable, *, seed: int = 0,
                 limit: int | None = None, indices: Sequence[int] | None = None, info: dict | None = None,
                 make_batch: Callable | None = None):
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
        self.make_batch = make_batch

    @property
    def source(self) -> str | None:
        """Where the pairs come from (``info["source"]``), e.g. ``"proxy"``, ``"fire"``, ``"mnist"``."""
        return self.info.get("source")

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
                           indices=idx, info=self.info, make_batch=self.make_batch)

    def batch(self, positions, device=None) -> dict:
        """The items at ``positions`` (positions in this set, like ``self[i]``) as one batch dict.

        Uses ``make_batch`` when the set has one (many items made at once, on ``device``), else
        reads the items and :func:`collate_pairs` them; tensors end up on ``device`` if given.
        """
        positions = [int(i) for i in positions]
        n = len(self.indices)
        for i in positions:
            if not -n <= i < n:
                raise IndexError(f"position {i} out of range for {self.name}/{self.split} with {n} items")
        if not positions:
            raise ValueError("positions must name at least one item")
        if self.make_batch is not None:
            return self.make_batch([self.indices[i] for i in positions], device)
        out = collate_pairs([self[i] for i in positions])
        if device is not None:
            out = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in out.items()}
        return out

    def materialize(self, device=None, *, batch: int = 144, keys: Sequence[str] | None = None,
                    progress: bool | None = None) -> TensorPairs:
        """Make every item once and hold them as tensors on ``device`` (a :class:`TensorPairs`).

        Parameters
        ----------
        device : torch.device or str, optional
            Where items are made (if the set can) and kept.
        batch : int
            Items made per call of :meth:`batch`.
        keys : sequence of str, optional
            Keep only these keys (e.g. ``("moving", "fixed", "frame", "pair")`` for training).
        progress : bool, optional
            Show a progress bar (default: for more than 20 batches).
        """
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be a positive integer, got {batch!r}")
        n = len(self)
        if n == 0:
            raise ValueError(f"{self.name}/{self.split} has no items to materialize")
        starts = range(0, n, batch)
        if progress is None:
            progress = len(starts) > 20
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=f"{self.name}/{self.split}", leave=False)
        parts = []
        for s0 in starts:
            b = self.batch(range(s0, min(s0 + batch, n)), device)
            if keys is not None:
                missing = set(keys) - set(b)
                if missing:
                    raise ValueError(f"keys {sorted(missing)} are not in the items; they have {sorted(b)}")
                b = {k: b[k] for k in keys}
            parts.append(b)
        data = {}
        for k in parts[0]:
            vals = [p[k] for p in parts]
            if all(isinstance(v, torch.Tensor) for v in vals) and len({tuple(v.shape[1:]) for v in vals}) == 1:
                data[k] = torch.cat(vals)
            else:
                data[k] = [x for v in vals for x in (v.unbind(0) if isinstance(v, torch.Tensor) else v)]
        return TensorPairs(data, name=self.name, split=self.split, seed=self.seed,
                           info=dict(self.info, materialized=True))

    def __repr__(self) -> str:
        return f"PairDataset({self.name!r}, split={self.split!r}, items={len(self)}/{self.full_length}, seed={self.seed})"


class TensorPairs(Dataset):
    """A materialised split: each key a tensor ``N, ...`` (or a list of ``N`` values) on one device.

    Items and batches are views of the stored tensors, so reading is as fast as indexing.
    ``long`` tensors of shape ``(N,)`` (``frame``, ``pair``, ``index``) come back as ints in items.

    >>> t = TensorPairs({"moving": torch.zeros(4, 1, 2, 2), "fixed": torch.ones(4, 1, 2, 2),
    ...                  "frame": torch.arange(4)})
    >>> len(t), t[2]["frame"], tuple(t.batch([0, 3])["moving"].shape)
    (4, 2, (2, 1, 2, 2))
    >>> [b["frame"].tolist() for b in t.batches(3)]
    [[0, 1, 2], [3]]
    """

    def __init__(self, data: dict | None = None, *, name: str = "pairs", split: str = "", seed: int = 0,
                 info: dict | None = None, **tensors):
        if data is not None and not isinstance(data, dict):
            raise TypeError(f"data must be a dict of tensors or lists, got {type(data).__name__}")
        data = {**(data or {}), **tensors}
        if "moving" not in data or "fixed" not in data:
            raise ValueError(f"data must hold 'moving' and 'fixed', got keys {sorted(data)}")
        for key in ("moving", "fixed"):
            if not isinstance(data[key], torch.Tensor) or data[key].ndim != 4:
                raise ValueError(f"data[{key!r}] must be an N,C,H,W tensor, got {_describe(data[key])}")
        n = len(data["moving"])
        for k, v in data.items():
            if not isinstance(v, (torch.Tensor, list, tuple)) or (isinstance(v, torch.Tensor) and v.ndim == 0):
                raise TypeError(f"data[{k!r}] must be a tensor N,... or a list of N values, got {_describe(v)}")
            if len(v) != n:
                raise ValueError(f"data[{k!r}] has {len(v)} entries, expected {n} like 'moving'")
        self.data, self.name, self.split, self.seed = dict(data), name, split, seed
        self.info = dict(info or {})

    @classmethod
    def from_dataset(cls, dataset, keys=("moving", "fixed"), limit: int | None = None) -> TensorPairs:
        """Read any sequence of item dicts once into memory, keeping ``keys`` (see also
        :meth:`PairDataset.materialize`, which makes many items at once).

        >>> items = [{"moving": torch.zeros(1, 2, 2), "fixed": torch.ones(1, 2, 2), "label": 3}] * 2
        >>> TensorPairs.from_dataset(items, keys=("moving", "fixed", "label")).data["label"].tolist()
        [3, 3]
        """
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise ValueError(f"limit must be None or a non-negative integer, got {limit!r}")
        n = len(dataset) if limit is None else min(limit, len(dataset))
        if n == 0:
            raise ValueError("dataset is empty")
        items = [{k: dataset[i][k] for k in keys if k in dataset[i]} for i in range(n)]
        missing = [k for k in keys if k not in items[0]]
        if missing:
            raise ValueError(f"dataset items have no keys {missing}")
        return cls(collate_pairs(items), info=dict(getattr(dataset, "info", {}) or {}))

    @property
    def source(self) -> str | None:
        """Where the pairs come from (``info["source"]``)."""
        return self.info.get("source")

    @property
    def device(self) -> torch.device:
        return self.data["moving"].device

    def __len__(self) -> int:
        return len(self.data["moving"])

    def __getitem__(self, i: int) -> dict:
        if isinstance(i, bool) or not isinstance(i, int):
            raise TypeError(f"index must be an int, got {type(i).__name__}")
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {self.name}/{self.split} with {n} items")
        out = {}
        for k, v in self.data.items():
            x = v[i]
            if isinstance(v, torch.Tensor) and v.ndim == 1 and v.dtype == torch.long:
                x = int(x)
            out[k] = x
        return out

    def batch(self, positions, device=None) -> dict:
        """The items at ``positions`` as one batch dict (tensors indexed, lists gathered)."""
        idx = torch.as_tensor(list(positions), dtype=torch.long)
        out = {}
        for k, v in self.data.items():
            if isinstance(v, torch.Tensor):
                x = v[idx.to(v.device)]
                out[k] = x.to(device) if device is not None else x
            else:
                out[k] = [v[int(j)] for j in idx]
        return out

    def batches(self, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None,
                drop_last: bool = False, device=None):
        """Iterate over batch dicts of ``batch_size`` items (in order, or shuffled with ``generator``)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for s0 in range(0, n, batch_size):
            sel = order[s0: s0 + batch_size]
            if drop_last and len(sel) < batch_size:
                break
            yield self.batch(sel.tolist(), device)

    def subset(self, n) -> TensorPairs:
        """The first ``n`` items (an int) or the items at the given positions."""
        pos = list(range(min(n, len(self)))) if isinstance(n, int) else list(n)
        return TensorPairs(self.batch(pos), name=self.name, split=self.split, seed=self.seed, info=self.info)

    def to(self, device) -> TensorPairs:
        """The same pairs on ``device``."""
        data = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.data.items()}
        return TensorPairs(data, name=self.name, split=self.split, seed=self.seed, info=self.info)

    def __repr__(self) -> str:
        return f"TensorPairs({self.name!r}, split={self.split!r}, items={len(self)}, device={self.device})"


def _describe(v) -> str:
    return f"tensor of shape {tuple(v.shape)}" if isinstance(v, torch.Tensor) else type(v).__name__


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
