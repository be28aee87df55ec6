"""HPatches-Reg-256: affine pairs with exact ground truth, both variants."""

import pytest
import torch

from regkit import metrics, spatial
from regkit.data import appearance, collate_pairs, hpatches_reg256


def test_contract_and_sizes():
    assert {s: hpatches_reg256(s).full_length for s in ("train", "val", "test")} == {"train": 8000, "val": 500, "test": 500}
    b = collate_pairs([hpatches_reg256("train", limit=2)[i] for i in range(2)])
    assert b["moving"].shape == (2, 1, 256, 256) and b["moving"].dtype == torch.float32
    assert 0 <= float(b["moving"].min()) and float(b["fixed"].max()) <= 1
    assert b["disp"].shape == (2, 2, 256, 256) and b["theta"].shape == (2, 2, 3)


@pytest.mark.parametrize("variant", ["synthetic", "textures"])
def test_ground_truth_reproduces_fixed(variant):
    ds = hpatches_reg256("test", variant=variant, params={"noise": 0.0}, limit=2)
    b = collate_pairs([ds[0], ds[1]])
    warped = spatial.warp(b["moving"], b["disp"])
    inside = spatial.inside_mask(b["disp"])
    undone = torch.stack([appearance.invert(warped[i], b["appearance"][i]) for i in range(2)])
    err = (undone - b["fixed"]).abs()[inside]
    # two bilinear resamplings blur the real textures' fine detail a little more
    assert float(err.mean()) < (0.01 if variant == "synthetic" else 0.03)
    assert float(metrics.ncc(warped, b["fixed"], inside).min()) > 0.98
    assert float(metrics.tre(b["landmarks_moving"], b["landmarks_fixed"], b["disp"]).max()) < 1e-3
    assert torch.allclose(spatial.affine_to_disp(b["theta"], (256, 256)), b["disp"])


def test_determinism_and_bad_input():
    a, b = hpatches_reg256("val", seed=5), hpatches_reg256("val", seed=5)
    assert torch.equal(a[3]["moving"], b[3]["moving"]) and torch.equal(a[3]["theta"], b[3]["theta"])
    assert not torch.equal(a[3]["moving"], hpatches_reg256("val", seed=6)[3]["moving"])
    assert not torch.equal(a[3]["moving"], hpatches_reg256("test", seed=5)[3]["moving"])
    with pytest.raises(ValueError, match="variant"):
        hpatches_reg256("test", variant="real")
    with pytest.raises(ValueError, match="split"):
        hpatches_reg256("dev")
