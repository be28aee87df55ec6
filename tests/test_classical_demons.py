"""Demons: recovers a smooth synthetic field, agrees with SimpleITK's demons, is batched, checks input."""

import pytest
import torch

import regkit
from regkit import metrics, spatial

SIZE = (128, 128)  # the size of the conftest pair
#: mean end-point error bound (pixels) on the valid region, for fields of at most 4 px
#: (measured: about 0.11 px; the unregistered error is 0.9-1.5 px)
EPE_BOUND = 0.25


def epe(disp, true):
    return metrics.epe(disp, true, spatial.inside_mask(true))


@pytest.mark.parametrize("diffeomorphic", [False, True])
def test_recovers_smooth_field(smooth_pair, diffeomorphic):
    moving, fixed, true = smooth_pair
    res = regkit.register(moving, fixed, method="demons", diffeomorphic=diffeomorphic)
    assert res.disp.shape == true.shape and res.warped.shape == moving.shape
    assert (epe(res.disp, true) < EPE_BOUND).all(), epe(res.disp, true)
    assert (metrics.folding_fraction(res.disp) == 0).all()
    valid = spatial.inside_mask(true)
    assert (metrics.mse(res.warped, fixed, valid) < 0.25 * metrics.mse(moving, fixed, valid)).all()


def test_agrees_with_simpleitk(smooth_pair):
    """Ours is at least as accurate as SimpleITK's FastSymmetricForces demons (100 iterations),
    within 10%, and both fields agree to well under a pixel."""
    moving, fixed, true = smooth_pair
    ours = regkit.register(moving, fixed, method="demons")
    ref = regkit.register(moving, fixed, method="sitk_demons")
    assert (epe(ours.disp, true) <= 1.1 * epe(ref.disp, true)).all()
    assert (epe(ours.disp, ref.disp) < 0.5).all()


def test_batched_equals_one_by_one(smooth_pair):
    moving, fixed, _ = smooth_pair
    both = regkit.register(moving, fixed, method="demons", iterations=(5, 5, 5))
    one = regkit.register(moving[1:], fixed[1:], method="demons", iterations=(5, 5, 5))
    assert torch.allclose(both.disp[1:], one.disp, atol=1e-4)


def test_identity_pair_stays_still(smooth_pair):
    moving = smooth_pair[0]
    res = regkit.register(moving, moving, method="demons")
    assert float(res.disp.abs().max()) < 1e-4


def test_history_and_levels(smooth_pair):
    moving, fixed, _ = smooth_pair
    res = regkit.register(moving[:1], fixed[:1], method="demons", iterations=(4, 4, 4), history=4)
    its = [i for i, _ in res.extras["history"]]
    assert its == [4, 8, 12]
    assert all(d.shape == (1, 2, *SIZE) for _, d in res.extras["history"])
    assert torch.equal(res.extras["history"][-1][1], res.disp)
    assert res.extras["sizes"] == [(32, 32), (64, 64), (128, 128)]


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"sigma_diffusion": -1.0}, "sigma_diffusion"),
        ({"sigma_fluid": -0.5}, "sigma_fluid"),
        ({"iterations": 0}, "iterations"),
        ({"iterations": (0, 0, 0)}, "iterations"),
        ({"iterations": (10, 10)}, "one count per level"),
        ({"levels": 0}, "levels"),
        ({"max_step": 0.0}, "max_step"),
        ({"force": "gradient"}, "force"),
        ({"diffeomorphic": "yes"}, "diffeomorphic"),
    ],
)
def test_bad_parameters(smooth_pair, kwargs, match):
    moving, fixed, _ = smooth_pair
    with pytest.raises((ValueError, TypeError), match=match):
        regkit.register(moving, fixed, method="demons", **kwargs)


def test_mismatched_shapes(smooth_pair):
    moving, fixed, _ = smooth_pair
    with pytest.raises(ValueError, match="same shape"):
        regkit.register(moving, fixed[:, :, :64], method="demons")
