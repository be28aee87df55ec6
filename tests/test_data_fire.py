"""FIRE-Reg-256 proxy: contract, ground truth, determinism, splits, categories, batches, sizes."""

import numpy as np
import pytest
import torch

from regkit import metrics, spatial
from regkit.data import DataNotFoundError, TensorPairs, collate_pairs, fire_reg256
from regkit.data.fire_proxy import CATEGORIES, PROXY_PARAMS, category_of, draw_scene, fire_proxy

S = 64                               # small patches keep these tests fast; lengths scale with size
CLEAN = {"noise": 0.0, "blur": 0.0, "illumination": 0.0, "vignetting": (0.0, 0.0), "gain": (1.0, 1.0),
         "bias": (0.0, 0.0), "gamma": (1.0, 1.0), "texture": 0.0}   # and no sub-pixel texture to blur twice


def test_item_contract():
    ds = fire_reg256("val", source="proxy", size=S, limit=9)
    assert ds.full_length == 978 and len(ds) == 9 and ds.source == "proxy"
    b = collate_pairs([ds[i] for i in range(9)])
    for k in ("moving", "fixed"):
        assert b[k].shape == (9, 1, S, S) and b[k].dtype == torch.float32
        assert 0 <= float(b[k].min()) and float(b[k].max()) <= 1
    assert b["disp"].shape == (9, 2, S, S) and b["landmarks_fixed"].shape == (9, PROXY_PARAMS["landmarks"], 2)
    assert b["frame"].tolist() == list(range(9)) and b["pair"].tolist() == [0] * 9
    assert b["mask_fixed"].dtype == torch.bool and b["fov_moving"].dtype == torch.bool
    assert set(b["source"]) == {"procedural"} and b["category"][0] in CATEGORIES
    assert {s: fire_reg256(s, source="proxy").full_length for s in ("train", "val", "test")} == {
        "train": 8018, "val": 978, "test": 973}


def test_batch_equals_items_and_is_order_free():
    ds = fire_reg256("test", source="proxy", seed=1, size=S, limit=30)
    pos = [20, 3, 11, 12, 0]
    batch = ds.batch(pos)
    items = collate_pairs([ds[i] for i in pos])
    assert list(batch) == list(items)
    for k, v in items.items():
        if isinstance(v, torch.Tensor) and v.is_floating_point():
            assert torch.allclose(batch[k], v, atol=1e-5), k
        else:
            assert (batch[k] == v) if not isinstance(v, torch.Tensor) else torch.equal(batch[k], v), k
    again = fire_reg256("test", source="proxy", seed=1, size=S, limit=30)
    assert torch.equal(again[11]["moving"], ds[11]["moving"])                       # same seed, same data
    assert not torch.equal(fire_reg256("test", source="proxy", seed=2, size=S)[11]["moving"], ds[11]["moving"])


def test_ground_truth_field_and_landmarks():
    # without appearance change and noise, the exact field maps moving onto fixed (S and P pairs)
    ds = fire_reg256("test", source="proxy", size=128, params=CLEAN, limit=54)
    sel = [i for i in range(54) if ds[i]["category"] != "A"][:12]
    b = ds.batch(sel)
    warped = spatial.warp(b["moving"], b["disp"])
    ok = spatial.inside_mask(b["disp"]) & b["fov_fixed"] & b["fov_moving"]
    ok[..., :6, :] = False; ok[..., -6:, :] = False; ok[..., :6] = False; ok[..., -6:] = False
    err = (warped - b["fixed"]).abs()[ok]
    assert float(err.mean()) < 0.01                      # up to interpolation, the field is exact
    assert float(metrics.ncc(warped, b["fixed"], ok).min()) > 0.99
    assert float(err.mean()) < 0.2 * float((b["moving"] - b["fixed"]).abs()[ok].mean())   # and it moved
    tre_true = metrics.tre(b["landmarks_moving"], b["landmarks_fixed"], b["disp"])
    assert float(tre_true.max()) < 1e-4
    assert float(metrics.tre(b["landmarks_moving"], b["landmarks_fixed"]).mean()) > 0.5


def test_no_scene_or_photograph_in_two_splits():
    # every split draws its scenes from its own seeds: no two scenes coincide across splits
    keys = {}
    for split in ("train", "val", "test"):
        for pair in range(12):
            s = draw_scene(split, 0, pair, size=S)
            key = (round(float(s["disc"][0] + s["origin"][0]), 3), round(float(s["base"]), 6))
            assert key not in keys, (split, pair, keys.get(key))
            keys[key] = (split, pair)
    # and their pictures differ: the central frames of train pairs never match a test pair's
    tr = fire_proxy("train", size=S).batch([9 * j + 4 for j in range(6)])["fixed"].flatten(1)
    te = fire_proxy("test", size=S).batch([9 * j + 4 for j in range(6)])["fixed"].flatten(1)
    tr, te = tr - tr.mean(1, keepdim=True), te - te.mean(1, keepdim=True)
    corr = (tr / tr.norm(dim=1, keepdim=True)) @ (te / te.norm(dim=1, keepdim=True)).T
    assert float(corr.max()) < 0.9
    assert set(fire_proxy("train", size=S, limit=27).batch(range(27))["source"]) == {"procedural"}


def test_categories_in_fire_proportions():
    for split in ("train", "test"):
        cats = [category_of(split, 0, j) for j in range(134)]
        counts = {c: cats.count(c) for c in "SPA"}
        assert all(abs(counts[c] - CATEGORIES[c]) <= 3 for c in "SPA"), counts
    # P pairs: the moving camera's field of view is further off
    s = [draw_scene("test", 0, j, size=S) for j in range(40)]
    off = {c: [np.hypot(*x["offset"]) for x in s if x["category"] == c] for c in "SP"}
    assert min(off["P"]) > max(off["S"]) - 1e-6
    a = [x for x in s if x["category"] == "A"]
    assert a and all(len(x["lesions"]) >= PROXY_PARAMS["lesions"][0] for x in a)


def test_frames_lie_inside_both_fields_of_view():
    b = fire_proxy("test", size=S, limit=90).batch(range(90))
    cover = (b["fov_fixed"] & b["fov_moving"]).float().mean((1, 2, 3))
    assert float(cover.min()) >= PROXY_PARAMS["min_coverage"] - 0.03      # coverage checked on an 8 x 8 grid


def test_size_scales_the_geometry():
    big = fire_proxy("test", size=256, limit=9).batch(range(9))["disp"]
    small = fire_proxy("test", size=S, limit=9).batch(range(9))["disp"]
    ratio = float(small.norm(dim=1).mean() / big.norm(dim=1).mean())
    assert abs(ratio - S / 256) < 0.1 * S / 256


def test_materialize():
    ds = fire_proxy("test", size=S, limit=20)
    mat = ds.materialize(keys=("moving", "fixed", "disp", "frame", "pair", "category"))
    assert isinstance(mat, TensorPairs) and len(mat) == 20 and mat.source == "proxy"
    assert torch.allclose(mat[13]["moving"], ds[13]["moving"], atol=1e-5) and mat[13]["frame"] == 4
    assert mat[13]["category"] == ds[13]["category"]
    sizes = [len(b["moving"]) for b in mat.batches(8, shuffle=True, generator=torch.Generator().manual_seed(0))]
    assert sizes == [8, 8, 4]
    with pytest.raises(ValueError, match="keys"):
        ds.materialize(keys=("moving", "nope"))


def test_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        fire_reg256("valid", source="proxy")
    with pytest.raises(ValueError, match="source"):
        fire_reg256("test", source="real")
    with pytest.raises(ValueError, match="unknown keys"):
        fire_reg256("test", source="proxy", params={"rotaton": 3})
    with pytest.raises(ValueError, match="size"):
        fire_reg256("test", source="proxy", size=33)
    with pytest.raises(ValueError, match="prealign"):
        fire_reg256("test", source="proxy", prealign="affine")
    with pytest.raises(DataNotFoundError, match="download_fire"):
        fire_reg256("test", source="fire")
    with pytest.raises(DataNotFoundError, match="no FIRE layout"):
        fire_reg256("test", source="fire", root="does-not-exist")
    with pytest.raises(IndexError):
        fire_proxy("test", size=S, limit=3).batch([3])
