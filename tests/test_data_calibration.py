"""The synthetic sets against the paper: unregistered rows within 10%, a reachable ceiling, FIRE-like
displacements, and NCC not carried by the field-of-view border."""

import pytest

from regkit.data import fire_reg256, hpatches_reg256
from regkit.data.calibration import (DISPLACEMENT_TARGET, PAPER_BEST, PAPER_UNREGISTERED, TOLERANCE, measure,
                                     relative_error, summarise, true_field_row, unregistered_row)


@pytest.fixture(scope="module")
def fire_test():
    # 27 image pairs (243 patches): a scene's 9 patches share its appearance, so fewer pairs scatter more
    return summarise(measure(fire_reg256("test", source="proxy"), n=243), PAPER_UNREGISTERED["fire_reg256"])


def test_fire_proxy_row_matches_paper(fire_test):
    assert all(abs(e) <= TOLERANCE for e in fire_test["relative_error"].values()), fire_test


def test_fire_proxy_true_field_reaches_the_papers_best_rows(fire_test):
    best = PAPER_BEST["fire_reg256"]
    assert fire_test["true_field"]["ssim"] > 0.9
    assert fire_test["true_field"]["ssim"] > best["VoxelMorph"]["ssim"]
    assert fire_test["true_field"]["ncc"] > best["GPEReg-Net"]["ncc"]


def test_fire_proxy_displacement_is_fire_like(fire_test):
    lo, hi = DISPLACEMENT_TARGET["fire_reg256"]["mean_px"]
    d = fire_test["displacement"]
    assert lo <= d["mean_px"] <= hi and d["mean_p95_px"] <= DISPLACEMENT_TARGET["fire_reg256"]["p95_px_max"]
    assert 0.1 < d["mean_nonaffine_px"] < d["mean_px"]          # smooth local deformation, mostly locally affine
    # a 35 px shift destroys the correlation: NCC is carried by the anatomy, not by a shared border
    assert fire_test["shift_ncc_35px"] < fire_test["ours"]["ncc"] - 0.2


def test_hpatches_row_matches_paper():
    ds = hpatches_reg256("test")
    row = unregistered_row(ds, n=64)
    errors = relative_error(row, PAPER_UNREGISTERED["hpatches_reg256"])
    assert all(abs(e) <= TOLERANCE for e in errors.values()), (row, errors)
    ceiling = true_field_row(ds, n=16)
    assert ceiling["ncc"] > PAPER_BEST["hpatches_reg256"]["GPEReg-Net"]["ncc"]
    assert ceiling["psnr"] > PAPER_BEST["hpatches_reg256"]["TransMorph"]["psnr"]
