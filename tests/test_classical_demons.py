"""Demons: recovers a smooth synthetic field, agrees with SimpleITK's demons, is batched, checks input."""

import pytest
import torch

import regkit
from regkit import metrics, spatial
from regkit.classical.demons import demons_step

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
        ({"iterations": (10, 10), "levels": 3}, "one count per level"),
        ({"sigma_diffusion": float("inf")}, "sigma_diffusion"),
        ({"sigma_fluid": float("inf")}, "sigma_fluid"),
        ({"max_step": float("inf")}, "max_step"),
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


@pytest.mark.parametrize("force,expected", [("symmetric", -0.22295), ("fixed", -0.11604), ("moving", -0.31385)])
def test_one_step_matches_the_hand_computed_update(force, expected):
    """fixed = x/10, moving = 0.3 x + 0.05: at x = 4, d = F - W = -0.85; the gradient G is
    0.1 + 0.3 (symmetric), 2 * 0.1 (fixed) or 2 * 0.3 (moving), and with s = 0.5 the update is
    2 d G / (G^2 + d^2 / s^2), e.g. 2 (-0.85)(0.4) / (0.16 + 2.89) = -0.22295 px."""
    x = torch.arange(9.0).repeat(9, 1)[None, None]
    u = demons_step(0.3 * x + 0.05, 0.1 * x, torch.zeros(1, 2, 9, 9), force=force, sigma_diffusion=0.0)
    assert abs(float(u[0, 0, 4, 4]) - expected) < 1e-5 and abs(float(u[0, 1, 4, 4])) < 1e-7


def test_differences_below_float32_noise_give_no_force():
    x = torch.arange(9.0).repeat(9, 1)[None, None] * 1e-6   # a nearly flat image
    u = demons_step(x + 5e-6, x, torch.zeros(1, 2, 9, 9), sigma_diffusion=0.0)
    assert float(u.abs().max()) == 0.0


def test_a_difference_of_exactly_the_matched_level_still_pushes(monkeypatch):
    """Differences *below* ``MATCHED`` count as matched; one equal to it does not. With the level
    set to 0.25 (exact in binary) and the moving image the ramp 0.25 brighter, d = -0.25 and the
    hand-computed update of the symmetric force is 2 d G / (G^2 + d^2 / s^2) with G = 0.5:
    -0.25 / (0.25 + 0.25) = -0.5 px; a level of 0.25 + eps removes it."""
    import regkit.classical.demons as demons_module

    x = torch.arange(9.0).repeat(9, 1)[None, None] / 4
    monkeypatch.setattr(demons_module, "MATCHED", 0.25)
    u = demons_step(x + 0.25, x, torch.zeros(1, 2, 9, 9), sigma_diffusion=0.0)
    assert float(u[0, 0, 4, 4]) == pytest.approx(-0.5, abs=1e-6)
    monkeypatch.setattr(demons_module, "MATCHED", 0.2500001)
    u = demons_step(x + 0.25, x, torch.zeros(1, 2, 9, 9), sigma_diffusion=0.0)
    assert float(u.abs().max()) == 0.0


def test_recovers_a_translation_of_a_tenth_of_the_width(smooth_pair):
    """12.5 px at 128 px: the pyramid chosen from the size (down to 16 px) follows it."""
    moving = smooth_pair[0]
    true = torch.zeros(2, 2, *SIZE)
    true[:, 0], true[:, 1] = 11.0, -6.0
    res = regkit.register(moving, spatial.warp(moving, true), method="demons")
    assert res.extras["sizes"][0] == (16, 16)
    assert (epe(res.disp, true) < 0.5).all(), epe(res.disp, true)


def test_levels_dropped_by_a_small_image_pass_their_iterations_on():
    """(10, 0, 0) on 3 levels of a 32 px image: the 8 px level is dropped and its 10 iterations
    run on 16 px instead of vanishing with it (which left a zero field)."""
    from skimage import data

    img = spatial.resize_image(torch.from_numpy(data.camera()).float()[None, None] / 255, (32, 32), antialias=True)
    true = torch.zeros(1, 2, 32, 32)
    true[:, 0] = 1.5
    res = regkit.register(img, spatial.warp(img, true), method="demons", iterations=(10, 0, 0), levels=3)
    assert res.extras["sizes"] == [(16, 16), (32, 32)] and res.extras["iterations"] == [10, 0]
    assert float(res.disp[0, 0, 8:-8, 8:-8].mean()) > 0.5


@pytest.mark.parametrize("size", [(1, 1), (3, 8), (8, 2)])
def test_images_below_the_minimum_size_are_refused(size):
    x = torch.rand(1, 1, *size)
    with pytest.raises(ValueError, match="demons needs images of at least 4 x 4 pixels"):
        regkit.register(x, x, method="demons")


def test_cpu_chunks_of_pairs_give_the_same_field(smooth_pair, monkeypatch):
    import regkit.classical.demons as D

    moving, fixed, _ = smooth_pair
    whole = regkit.register(moving, fixed, method="demons", iterations=5).disp
    monkeypatch.setattr(D, "_CPU_CHUNK_PIXELS", 1)   # one pair per chunk
    assert torch.equal(regkit.register(moving, fixed, method="demons", iterations=5).disp, whole)
