"""HPatches-Reg-256: affine pairs with exact ground truth, both variants, batches, splits."""

import pytest
import torch

from regkit import metrics, spatial
from regkit.data import appearance, collate_pairs, hpatches_reg256
from regkit.data.hpatches import TEXTURE_SPLITS


def test_contract_and_sizes():
    assert {s: hpatches_reg256(s).full_length for s in ("train", "val", "test")} == {"train": 8000, "val": 500, "test": 500}
    ds = hpatches_reg256("train", limit=2)
    b = collate_pairs([ds[i] for i in range(2)])
    assert b["moving"].shape == (2, 1, 256, 256) and b["moving"].dtype == torch.float32
    assert 0 <= float(b["moving"].min()) and float(b["fixed"].max()) <= 1
    assert b["disp"].shape == (2, 2, 256, 256) and b["theta"].shape == (2, 2, 3)
    assert ds.source == "synthetic" and hpatches_reg256("test", variant="textures").source == "textures"


@pytest.mark.parametrize("variant", ["synthetic", "textures"])
def test_ground_truth_reproduces_fixed(variant):
    ds = hpatches_reg256("test", variant=variant, params={"noise": 0.0}, limit=2)
    b = collate_pairs([ds[0], ds[1]])
    warped = spatial.warp(b["moving"], b["disp"])
    inside = spatial.inside_mask(b["disp"])
    undone = appearance.invert(warped, b["appearance"])
    err = (undone - b["fixed"]).abs()[inside]
    # two bilinear resamplings blur the real textures' fine detail a little more
    assert float(err.mean()) < (0.01 if variant == "synthetic" else 0.03)
    assert float(metrics.ncc(warped, b["fixed"], inside).min()) > 0.98
    assert float(metrics.tre(b["landmarks_moving"], b["landmarks_fixed"], b["disp"]).max()) < 1e-3
    assert torch.allclose(spatial.affine_to_disp(b["theta"], (256, 256)), b["disp"])


def test_batch_equals_items_and_sizes_scale():
    ds = hpatches_reg256("val", seed=3, size=64, limit=6)
    batch, items = ds.batch([4, 1]), collate_pairs([ds[4], ds[1]])
    assert list(batch) == list(items) and batch["texture"] == items["texture"]
    for k in ("moving", "fixed", "disp", "theta", "landmarks_moving"):
        assert torch.allclose(batch[k], items[k], atol=1e-5), k
    assert batch["index"].tolist() == [4, 1]
    big = hpatches_reg256("val", seed=3, limit=2).batch([0, 1])["theta"]
    # same affine at 256 and 64 px: rotation/scale/shear identical, translation scaled by 64/256
    assert torch.allclose(batch["theta"][1, :, :2], big[1, :, :2], atol=1e-5)
    assert torch.allclose(ds.batch([1])["theta"][0, :, :2], big[1, :, :2], atol=1e-5)


def test_no_texture_in_two_splits():
    names = {s: set(TEXTURE_SPLITS[s]) for s in ("train", "val", "test")}
    assert not (names["train"] & names["test"]) and not (names["train"] & names["val"]) and not (names["val"] & names["test"])
    for split in ("train", "test"):
        ds = hpatches_reg256(split, variant="textures", size=64, limit=16)
        assert set(ds.batch(range(16))["texture"]) <= names[split]
    # synthetic canvases come from split-specific seeds: no train canvas matches a test canvas
    tr = hpatches_reg256("train", size=64, params={"noise": 0.0}, limit=8).batch(range(8))["fixed"].flatten(1)
    te = hpatches_reg256("test", size=64, params={"noise": 0.0}, limit=8).batch(range(8))["fixed"].flatten(1)
    tr, te = tr - tr.mean(1, keepdim=True), te - te.mean(1, keepdim=True)
    corr = (tr / tr.norm(dim=1, keepdim=True)) @ (te / te.norm(dim=1, keepdim=True)).T
    assert float(corr.abs().max()) < 0.8


def test_determinism_and_bad_input():
    a, b = hpatches_reg256("val", seed=5), hpatches_reg256("val", seed=5)
    assert torch.equal(a[3]["moving"], b[3]["moving"]) and torch.equal(a[3]["theta"], b[3]["theta"])
    assert not torch.equal(a[3]["moving"], hpatches_reg256("val", seed=6)[3]["moving"])
    assert not torch.equal(a[3]["moving"], hpatches_reg256("test", seed=5)[3]["moving"])
    with pytest.raises(ValueError, match="variant"):
        hpatches_reg256("test", variant="real")
    with pytest.raises(ValueError, match="split"):
        hpatches_reg256("dev")
    with pytest.raises(ValueError, match="size"):
        hpatches_reg256("test", size=20)
