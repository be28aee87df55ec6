"""SyN recovers known smooth diffeomorphic fields, stays invertible and agrees with ANTsPy.

Pairs: a real image (scikit-image's ``camera`` and ``brick``, 128 x 128) is the moving image, a
seeded smooth diffeomorphic field ``u`` (``random_smooth_disp``, peak about 4 px) pulls it onto
the fixed grid, ``fixed = warp(moving, u)``, so ``u`` is the ground truth of ``disp``.
"""

import numpy as np
import pytest
import torch

import regkit
from regkit import metrics, spatial
from regkit.classical.syn import inverse_consistency_error, invert_disp, syn_step, update_halves

SIZE = 128
EPE_BOUND = 0.35  # px; no registration is 0.9-1.5 px on these pairs
IC_BOUND = 0.01   # px, mean inverse-consistency error




def _image(name: str, size: int = SIZE) -> torch.Tensor:
    from skimage import color, data, transform

    img = getattr(data, name)()
    if img.ndim == 3:
        img = color.rgb2gray(img[..., :3])
    img = transform.resize(img.astype(np.float64), (size, size), anti_aliasing=True)
    img = (img - img.min()) / (img.max() - img.min())
    return torch.from_numpy(img).float()[None, None]


@pytest.fixture(scope="module")
def pairs():
    moving = torch.cat([_image("camera"), _image("brick")])
    g = torch.Generator().manual_seed(0)
    u = spatial.random_smooth_disp(2, (SIZE, SIZE), max_disp=4.0, generator=g)
    return moving, spatial.warp(moving, u), u


@pytest.fixture(scope="module")
def result(pairs):
    moving, fixed, _ = pairs
    return regkit.register(moving, fixed, method="syn")


def _epe(disp, u):
    return metrics.epe(disp, u)


def test_recovers_a_moderate_smooth_field(pairs, result):
    moving, fixed, u = pairs
    before = _epe(torch.zeros_like(u), u)
    after = _epe(result.disp, u)
    assert bool((before > 0.9).all()), before
    assert bool((after < EPE_BOUND).all()), after
    assert bool((metrics.mse(result.warped, fixed) < 0.25 * metrics.mse(moving, fixed)).all())
    assert result.disp.shape == u.shape and result.warped.shape == moving.shape


def test_inverse_consistent(pairs, result):
    moving, fixed, _ = pairs
    inverse = result.extras["inverse"]
    ic = result.extras["inverse_consistency"]
    assert ic.shape == (2,) and bool((ic < IC_BOUND).all()), ic
    assert torch.allclose(ic, inverse_consistency_error(result.disp, inverse))
    # compose(forward, inverse) vanishes away from the border, on the moving grid
    round_trip = spatial.compose(result.disp, inverse).norm(dim=1)[:, 8:-8, 8:-8]
    assert round_trip.mean() < IC_BOUND and round_trip.max() < 0.2
    # the inverse brings the fixed image back onto the moving one
    assert bool((metrics.mse(spatial.warp(fixed, inverse), moving) < 0.25 * metrics.mse(fixed, moving)).all())


def test_meets_in_the_middle(result):
    ex = result.extras
    assert ex["fixed_to_middle"].shape == ex["moving_to_middle"].shape == result.disp.shape
    # both halves carry part of the way: neither image stays put
    for half in ("fixed_to_middle", "moving_to_middle"):
        assert bool((ex[half].norm(dim=1).flatten(1).mean(1) > 0.3).all())
    assert bool((metrics.ncc(ex["middle_fixed"], ex["middle_moving"]) > 0.98).all())
    sims = ex["similarity"]
    assert [s.shape[1] for s in sims] == [40, 40, 20, 10]   # 16, 32, 64 and 128 px
    assert ex["params"]["shrink_factors"] == (8, 4, 2, 1)
    assert ex["params"]["smoothing_sigmas"] == (4.0, 2.0, 1.0, 0.0)
    assert all(bool((s[:, -1] > s[:, 0]).all()) for s in sims[1:])   # every level from 32 px up climbs
    # at 16 px brick's texture is smoothed away and the fixed-length steps wander; camera climbs
    assert float(sims[0][0, -1]) > float(sims[0][0, 0])


def test_jacobian_stays_positive(result):
    det = spatial.jacobian_determinant(result.disp)
    assert float(det.min()) > 0.2
    assert metrics.folding_fraction(result.disp).tolist() == [0.0, 0.0]


def test_batched_equals_one_by_one(pairs):
    moving, fixed, _ = pairs
    small = dict(iterations=(10, 5), shrink_factors=(2, 1), smoothing_sigmas=(1.0, 0.0))
    both = regkit.register(moving[:, :, ::2, ::2], fixed[:, :, ::2, ::2], method="syn", **small).disp
    one = regkit.register(moving[1:, :, ::2, ::2], fixed[1:, :, ::2, ::2], method="syn", **small).disp
    assert torch.allclose(both[1:], one, atol=1e-4)


def test_identity_pair_mse_metric_and_colour():
    x = _image("camera", 64)
    res = regkit.register(x, x, method="syn", iterations=(10, 5), shrink_factors=(2, 1), smoothing_sigmas=(1.0, 0.0))
    assert float(res.disp.abs().max()) < 0.05
    g = torch.Generator().manual_seed(1)
    u = spatial.random_smooth_disp(1, (64, 64), max_disp=2.0, generator=g)
    rgb = torch.cat([x, x.flip(-1), x.flip(-2)], 1)
    res = regkit.register(rgb, spatial.warp(rgb, u), method="syn", metric="mse")
    assert res.warped.shape == rgb.shape
    assert float(_epe(res.disp, u)) < 0.5 * float(_epe(torch.zeros_like(u), u))


def test_invert_disp_inverts_a_smooth_field():
    g = torch.Generator().manual_seed(2)
    u = spatial.random_smooth_disp(1, (48, 48), max_disp=3.0, generator=g)
    v = invert_disp(u)
    assert spatial.compose(u, v)[..., 6:-6, 6:-6].norm(dim=1).max() < 0.05


@pytest.mark.filterwarnings("ignore")
def test_agrees_with_antspy(pairs, result):
    pytest.importorskip("ants")
    moving, fixed, u = pairs
    ref = regkit.register(moving[1:], fixed[1:], method="ants_syn")
    ours_epe, ref_epe = float(_epe(result.disp[1:], u[1:])), float(_epe(ref.disp, u[1:]))
    # at least as accurate as ANTsPy SyNOnly (its default Mattes metric) within 10%, on the same pair
    assert ours_epe <= 1.1 * ref_epe, (ours_epe, ref_epe)
    # and the two fields agree: mean difference well under a pixel, same sign everywhere that matters
    assert float(_epe(result.disp[1:], ref.disp)) < 0.6
    assert float(metrics.folding_fraction(ref.disp)) == 0.0


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"flow_sigma": -1.0}, ValueError, "flow_sigma must be non-negative"),
        ({"total_sigma": float("nan")}, ValueError, "total_sigma"),
        ({"iterations": (0, 0, 0)}, ValueError, "at least one iteration"),
        ({"iterations": (10, -1, 5)}, ValueError, "iterations"),
        ({"iterations": (10, 5), "shrink_factors": (4, 2, 1)}, ValueError, "one entry per level"),
        ({"flow_sigma": float("inf")}, ValueError, "flow_sigma"),
        ({"total_sigma": float("inf")}, ValueError, "total_sigma"),
        ({"smoothing_sigmas": (float("inf"), 0.0)}, ValueError, "smoothing_sigmas"),
        ({"grad_step": float("inf")}, ValueError, "grad_step"),
        ({"shrink_factors": (4, 2, 0)}, ValueError, "shrink_factors"),
        ({"shrink_factors": (4, 2.5, 1)}, TypeError, "shrink_factors"),
        ({"smoothing_sigmas": (2.0, -1.0, 0.0)}, ValueError, "smoothing_sigmas"),
        ({"metric": "mattes"}, ValueError, "metric must be one of"),
        ({"radius": 0}, ValueError, "radius must be positive"),
        ({"grad_step": 0.0}, ValueError, "grad_step must be positive"),
        ({"inverse_iterations": 0}, ValueError, "inverse_iterations"),
        ({"cc_eps": 0.0}, ValueError, "cc_eps"),
        ({"iterations": "many"}, TypeError, "iterations"),
    ],
)
def test_bad_parameters_raise_clear_errors(kwargs, error, match):
    x = torch.rand(1, 1, 16, 16)
    with pytest.raises(error, match=match):
        regkit.register(x, x, method="syn", **kwargs)


def test_bad_inputs_raise_clear_errors():
    from regkit.classical.syn import syn

    x = torch.rand(1, 1, 16, 16)
    with pytest.raises(ValueError, match="same shape"):
        regkit.register(x, torch.rand(1, 1, 16, 18), method="syn")
    with pytest.raises(ValueError, match="same shape"):
        syn(x, torch.rand(2, 1, 16, 16))
    with pytest.raises(ValueError, match="NaN"):
        syn(x, torch.full_like(x, float("nan")))
    with pytest.raises(ValueError, match="init must match"):
        invert_disp(torch.zeros(1, 2, 8, 8), init=torch.zeros(1, 2, 8, 9))


def test_one_update_matches_the_hand_computed_step():
    """F = x/10, M = F + 0.1, MSE, no smoothing: both forces are constant, (M - F) dF/dx = +0.01
    for the fixed half and -0.01 for the moving one, each scaled to grad_step = 0.25 px."""
    f = torch.arange(8.0).repeat(8, 1)[None, None] / 10
    zero = torch.zeros(2, 2, 8, 8)
    halves, inverses, sim = syn_step(torch.cat((f, f + 0.1)), zero, zero, metric="mse", flow_sigma=0.0,
                                     total_sigma=0.0, grad_step=0.25)
    assert torch.allclose(halves[0, 0], torch.full((8, 8), 0.25)) and torch.allclose(halves[1, 0], torch.full((8, 8), -0.25))
    assert float(halves[:, 1].abs().max()) == 0.0
    assert torch.allclose(inverses, -halves, atol=1e-6)   # constant fields: the inverse is the negative
    assert torch.allclose(sim, torch.tensor([-0.01]))


def test_the_step_is_composed_after_the_half_field():
    """(id + u) o (id + d): with u_x = x/10 and a 1 px step, u_x becomes 1 + (x + 1)/10 (the step
    acts first, on the middle grid); composing it before would give x/10 + 1."""
    u = torch.zeros(1, 2, 10, 10)
    u[:, 0] = torch.arange(10.0) / 10
    d = torch.zeros(1, 2, 10, 10)
    d[:, 0] = 1.0
    new, inverse = update_halves(u, spatial.compose(-u, -u), d, 0.0, 5)
    x = torch.arange(9.0)   # the last column reads outside (border padding)
    assert torch.allclose(new[0, 0, 5, :9], 1 + (x + 1) / 10, atol=1e-5)
    assert float(new[0, 1].abs().max()) == 0.0
    # and the inverse follows: compose(new, inverse) ~ 0 away from the border
    assert spatial.compose(new, inverse)[..., 2:-3, 2:-3].abs().max() < 0.05


def test_recovers_a_translation_of_a_tenth_of_the_width():
    moving = torch.cat([_image("camera"), _image("retina")])   # (brick's period is about 12 px)
    true = torch.zeros(2, 2, SIZE, SIZE)
    true[:, 0], true[:, 1] = 11.0, -6.0   # 12.5 px at 128 px
    res = regkit.register(moving, spatial.warp(moving, true), method="syn")
    assert res.extras["params"]["shrink_factors"] == (8, 4, 2, 1)
    err = metrics.epe(res.disp, true, spatial.inside_mask(true))
    assert bool((err < 0.5).all()), err


@pytest.mark.parametrize("size", [(1, 1), (3, 3)])
def test_images_below_the_minimum_size_are_refused(size):
    x = torch.rand(1, 1, *size)
    with pytest.raises(ValueError, match="syn needs images of at least 4 x 4 pixels"):
        regkit.register(x, x, method="syn")
