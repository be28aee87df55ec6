"""regkit.classical: exact messages for bad input and exact values of the shared helpers (pyramids,
schedules) and of the methods' settings on small cases. Tolerances are stated per test."""

import pytest
import torch

from regkit import spatial
from regkit.classical import _common as C
from regkit.classical.demons import demons
from regkit.classical.optical_flow import horn_schunck
from regkit.classical.sift_ransac import sift_ransac
from regkit.classical.syn import syn

X = torch.linspace(0, 1, 256).view(1, 1, 16, 16)
X2D = X[0, 0]
SMALL = torch.zeros(1, 1, 3, 16)


class _NotASequence:
    def __repr__(self):
        return "<thing>"

ERRORS = {
    "top": (lambda: C.auto_levels((64, 64), top=0), ValueError, "top must be positive, got 0"),
    "top float": (lambda: C.auto_levels((64, 64), top=16.0), TypeError, "top must be an integer, got 16.0"),
    "levels": (lambda: C.pyramid_sizes((64, 64), 0), ValueError, "levels must be positive, got 0"),
    "levels float": (lambda: C.pyramid_sizes((64, 64), 2.0), TypeError, "levels must be an integer, got 2.0"),
    "schedule levels": (lambda: C.check_levels_iterations(0, 5), ValueError, "levels must be positive, got 0"),
    "schedule levels float": (lambda: C.check_levels_iterations(1.0, 5), TypeError, "levels must be an integer, got 1.0"),
    "iterations 0": (lambda: C.check_levels_iterations(2, 0), ValueError, "iterations must be positive, got 0"),
    "iterations str": (lambda: C.check_levels_iterations(2, "5"), TypeError,
                       "iterations must be an int or a sequence of ints, got '5'"),
    "iterations bytes": (lambda: C.check_levels_iterations(2, b"5"), TypeError,
                         "iterations must be an int or a sequence of ints, got b'5'"),
    "iterations float": (lambda: C.check_levels_iterations(2, 5.0), TypeError,
                         "iterations must be an int or a sequence of ints, got 5.0"),
    "iterations bool": (lambda: C.check_levels_iterations(2, True), TypeError,
                        "iterations must be an int or a sequence of ints, got True"),
    "iterations empty": (lambda: C.check_levels_iterations(None, ()), ValueError,
                         "iterations must give at least one level, got ()"),
    "iterations count": (lambda: C.check_levels_iterations(3, (1, 2)), ValueError,
                         "iterations must give one count per level (3), got [1, 2]"),
    "iterations negative": (lambda: C.check_levels_iterations(2, (1, -2)), ValueError,
                            "iterations must be non-negative, got -2"),
    "iterations float entry": (lambda: C.check_levels_iterations(2, (1, 2.0)), TypeError,
                               "iterations must be an integer, got 2.0"),
    "iterations all zero": (lambda: C.check_levels_iterations(2, (0, 0)), ValueError,
                            "iterations must not all be zero, got [0, 0]"),
    "min size": (lambda: C.check_min_size("demons", torch.zeros(1, 1, 3, 9)), ValueError,
                 "demons needs images of at least 4 x 4 pixels, got 3 x 9"),
    "min size wide": (lambda: C.check_min_size("syn", torch.zeros(1, 1, 9, 5), 6), ValueError,
                      "syn needs images of at least 6 x 6 pixels, got 9 x 5"),
    **{f"{name} moving": ((lambda fn=fn: fn(X2D, X)), ValueError, "moving must have 4 dimensions, got shape (16, 16)")
       for name, fn in (("demons", demons), ("horn_schunck", horn_schunck), ("syn", syn), ("sift_ransac", sift_ransac))},
    **{f"{name} fixed": ((lambda fn=fn: fn(X, X2D)), ValueError, "fixed must have 4 dimensions, got shape (16, 16)")
       for name, fn in (("demons", demons), ("horn_schunck", horn_schunck), ("syn", syn), ("sift_ransac", sift_ransac))},
    **{f"{name} small": ((lambda fn=fn: fn(SMALL, SMALL)), ValueError,
                         f"{name} needs images of at least 4 x 4 pixels, got 3 x 16")
       for name, fn in (("demons", demons), ("horn_schunck", horn_schunck), ("syn", syn))},
    "sift_ransac small": (lambda: sift_ransac(SMALL, SMALL), ValueError,
                          "sift_ransac needs moving and fixed images of at least 16 x 16 pixels (one SIFT descriptor), "
                          "got 3 x 16"),
    "demons sigma_diffusion": (lambda: demons(X, X, sigma_diffusion=-1.0), ValueError,
                               "sigma_diffusion must be non-negative, got -1.0"),
    "demons sigma_fluid": (lambda: demons(X, X, sigma_fluid=-1.0), ValueError, "sigma_fluid must be non-negative, got -1.0"),
    "demons max_step": (lambda: demons(X, X, max_step=0.0), ValueError, "max_step must be positive, got 0.0"),
    "demons history": (lambda: demons(X, X, history=-1), ValueError, "history must be non-negative, got -1"),
    "demons history float": (lambda: demons(X, X, history=1.0), TypeError, "history must be an integer, got 1.0"),
    "demons force": (lambda: demons(X, X, force="both"), ValueError,
                     "force must be one of ('symmetric', 'fixed', 'moving'), got 'both'"),
    "demons diffeomorphic": (lambda: demons(X, X, diffeomorphic=1), TypeError, "diffeomorphic must be a bool, got 1"),
    "demons iterations": (lambda: demons(X, X, iterations=0), ValueError, "iterations must be positive, got 0"),
    "demons levels": (lambda: demons(X, X, levels=0), ValueError, "levels must be positive, got 0"),
    "horn_schunck alpha": (lambda: horn_schunck(X, X, alpha=0.0), ValueError, "alpha must be positive, got 0.0"),
    "horn_schunck warps": (lambda: horn_schunck(X, X, warps=0), ValueError, "warps must be positive, got 0"),
    "horn_schunck warps float": (lambda: horn_schunck(X, X, warps=1.0), TypeError, "warps must be an integer, got 1.0"),
    "horn_schunck sigma": (lambda: horn_schunck(X, X, sigma=-1.0), ValueError, "sigma must be non-negative, got -1.0"),
    "horn_schunck median": (lambda: horn_schunck(X, X, median=0), ValueError, "median must be positive, got 0"),
    "horn_schunck median float": (lambda: horn_schunck(X, X, median=3.0), TypeError, "median must be an integer, got 3.0"),
    "horn_schunck median even": (lambda: horn_schunck(X, X, median=4), ValueError,
                                 "median must be an odd window size, got 4"),
    "horn_schunck history": (lambda: horn_schunck(X, X, history=-1), ValueError, "history must be non-negative, got -1"),
    "horn_schunck history float": (lambda: horn_schunck(X, X, history=2.0), TypeError,
                                   "history must be an integer, got 2.0"),
    "horn_schunck iterations": (lambda: horn_schunck(X, X, iterations=0), ValueError, "iterations must be positive, got 0"),
    "horn_schunck levels": (lambda: horn_schunck(X, X, levels=0), ValueError, "levels must be positive, got 0"),
    "syn metric": (lambda: syn(X, X, metric="mi"), ValueError, "metric must be one of ('cc', 'mse'), got 'mi'"),
    "syn metric type": (lambda: syn(X, X, metric=3), ValueError, "metric must be one of ('cc', 'mse'), got 3"),
    "syn radius": (lambda: syn(X, X, radius=0), ValueError, "radius must be positive, got 0"),
    "syn radius float": (lambda: syn(X, X, radius=2.0), TypeError, "radius must be an integer, got 2.0"),
    "syn grad_step": (lambda: syn(X, X, grad_step=0.0), ValueError, "grad_step must be positive, got 0.0"),
    "syn flow_sigma": (lambda: syn(X, X, flow_sigma=-1.0), ValueError, "flow_sigma must be non-negative, got -1.0"),
    "syn total_sigma": (lambda: syn(X, X, total_sigma=-1.0), ValueError, "total_sigma must be non-negative, got -1.0"),
    "syn inverse_iterations": (lambda: syn(X, X, inverse_iterations=0), ValueError,
                               "inverse_iterations must be positive, got 0"),
    "syn inverse_iterations float": (lambda: syn(X, X, inverse_iterations=1.0), TypeError,
                                     "inverse_iterations must be an integer, got 1.0"),
    "syn cc_eps": (lambda: syn(X, X, cc_eps=0.0), ValueError, "cc_eps must be positive, got 0.0"),
    "syn iterations str": (lambda: syn(X, X, iterations="10"), TypeError,
                           "iterations must be a sequence of numbers (one per level), got '10'"),
    "syn shrink_factors bytes": (lambda: syn(X, X, shrink_factors=b"1"), TypeError,
                                 "shrink_factors must be a sequence of numbers (one per level), got b'1'"),
    "syn smoothing_sigmas object": (lambda: syn(X, X, smoothing_sigmas=_NotASequence()), TypeError,
                                    "smoothing_sigmas must be a sequence of numbers (one per level), got <thing>"),
    "syn no level": (lambda: syn(X, X, iterations=()), ValueError,
                     "iterations, shrink_factors and smoothing_sigmas must name at least one level, got ()"),
    "syn no shrink level": (lambda: syn(X, X, shrink_factors=[]), ValueError,
                            "iterations, shrink_factors and smoothing_sigmas must name at least one level, got ()"),
    "syn lengths": (lambda: syn(X, X, iterations=(1, 2), shrink_factors=(1,)), ValueError,
                    "iterations, shrink_factors and smoothing_sigmas must have one entry per level, got lengths 2, 1, None"),
    "syn lengths sigmas": (lambda: syn(X, X, iterations=(1, 2), smoothing_sigmas=(1.0,)), ValueError,
                           "iterations, shrink_factors and smoothing_sigmas must have one entry per level, got lengths "
                           "2, None, 1"),
    "syn iterations negative": (lambda: syn(X, X, iterations=(1, -1)), ValueError,
                                "iterations (each level) must be non-negative, got -1"),
    "syn iterations float": (lambda: syn(X, X, iterations=(1, 2.0)), TypeError,
                             "iterations (each level) must be an integer, got 2.0"),
    "syn iterations zero": (lambda: syn(X, X, iterations=(0, 0)), ValueError,
                            "iterations must run at least one iteration in total, got (0, 0)"),
    "syn shrink 0": (lambda: syn(X, X, shrink_factors=(0,)), ValueError, "shrink_factors (each level) must be positive, got 0"),
    "syn shrink float": (lambda: syn(X, X, shrink_factors=(1.5,)), TypeError,
                         "shrink_factors (each level) must be an integer, got 1.5"),
    "syn sigma negative": (lambda: syn(X, X, smoothing_sigmas=(-1.0,)), ValueError,
                           "smoothing_sigmas (each level) must be non-negative, got -1.0"),
    "sift ratio 0": (lambda: sift_ransac(X, X, ratio=0.0), ValueError, "ratio must be in (0, 1], got 0.0"),
    "sift ratio above 1": (lambda: sift_ransac(X, X, ratio=1.5), ValueError, "ratio must be in (0, 1], got 1.5"),
    "sift threshold": (lambda: sift_ransac(X, X, threshold=0.0), ValueError, "threshold must be positive, got 0.0"),
    "sift hypotheses": (lambda: sift_ransac(X, X, hypotheses=0), ValueError, "hypotheses must be positive, got 0"),
    "sift hypotheses float": (lambda: sift_ransac(X, X, hypotheses=10.0), TypeError, "hypotheses must be an integer, got 10.0"),
    "sift n_features": (lambda: sift_ransac(X, X, n_features=-1), ValueError, "n_features must be non-negative, got -1"),
    "sift n_features float": (lambda: sift_ransac(X, X, n_features=1.0), TypeError, "n_features must be an integer, got 1.0"),
    "sift seed": (lambda: sift_ransac(X, X, seed=-1), ValueError, "seed must be non-negative, got -1"),
    "sift seed float": (lambda: sift_ransac(X, X, seed=0.0), TypeError, "seed must be an integer, got 0.0"),
    "sift range": (lambda: sift_ransac(X * 2, X), ValueError,
                   "moving must have intensities in [0, 1], got values in [0, 2]; rescale it first (x / 255 for 8-bit "
                   "data, or (x - x.min()) / (x.max() - x.min()))"),
    "sift range fixed": (lambda: sift_ransac(X, X * 2), ValueError,
                         "fixed must have intensities in [0, 1], got values in [0, 2]; rescale it first (x / 255 for 8-bit "
                         "data, or (x - x.min()) / (x.max() - x.min()))"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_bad_input_message(case):
    call, error, message = ERRORS[case]
    with pytest.raises(error) as info:
        call()
    assert str(info.value) == message


def test_grey_is_the_float32_channel_mean():
    x = torch.tensor([[0.0, 0.25], [1.0, 0.5]], dtype=torch.float64).view(1, 2, 1, 2)
    g = C.grey(x)
    assert g.dtype == torch.float32 and g.shape == (1, 1, 1, 2)
    assert g.flatten().tolist() == [0.5, 0.375]


def test_auto_levels_boundaries():
    """The shorter side is halved, rounding up, while it is at least ``2 top``: 31 px -> 1 level,
    32 -> 2, 62 -> 31 = 2 levels, 63 -> 32 -> 16 = 3 levels (rounding down would stop at 31 and
    give 2; adding 2 before halving would take 62 to 32 and give 3)."""
    assert [C.auto_levels((s, 1000)) for s in (16, 31, 32, 62, 63, 64, 65)] == [1, 1, 2, 2, 3, 3, 3]
    assert C.auto_levels((1000, 40)) == 2
    assert C.auto_levels((64, 64), top=8) == 4          # 64 -> 32 -> 16 -> 8
    assert C.auto_levels((64, 64), top=32) == 2
    assert C.auto_levels((40, 40)) == 2 and C.auto_levels((40, 40), 16) == 2


def test_pyramid_sizes_round_up_and_stop_at_the_minimum():
    assert C.pyramid_sizes((33, 65), 3) == [(17, 33), (33, 65)]             # (9, 17) is below 16
    assert C.pyramid_sizes((33, 65), 3, min_size=8) == [(9, 17), (17, 33), (33, 65)]
    assert C.pyramid_sizes((65, 33), 4, min_size=9) == [(17, 9), (33, 17), (65, 33)]
    assert C.pyramid_sizes((64, 64), 1) == [(64, 64)]
    assert C.pyramid_sizes((32, 32), 2) == [(16, 16), (32, 32)]            # 16 itself is kept


def test_image_pyramid_resizes_with_antialiasing_and_keeps_the_full_image():
    x = torch.rand(1, 1, 32, 24, generator=torch.Generator().manual_seed(0))
    levels = C.image_pyramid(x, [(8, 6), (16, 12), (32, 24)])
    assert levels[2] is x
    for lvl, size in zip(levels[:2], [(8, 6), (16, 12)]):
        assert torch.equal(lvl, spatial.resize_image(x, size, antialias=True))
        assert not torch.allclose(lvl, spatial.resize_image(x, size), atol=1e-3)


def test_check_levels_iterations_returns_levels_and_counts():
    assert C.check_levels_iterations(3, 20) == (3, [20, 20, 20])
    assert C.check_levels_iterations(None, 20) == (None, [20])
    assert C.check_levels_iterations(None, (10, 5)) == (2, [10, 5])
    assert C.check_levels_iterations(2, [0, 5]) == (2, [0, 5])
    assert C.check_levels_iterations(2, iter((3, 4))) == (2, [3, 4])


def test_level_schedule_moves_the_iterations_of_dropped_levels():
    """A 32 px image asked for 4 levels keeps 16 and 32 px: the iterations of the 4 and 8 px levels
    (5 and 7) go to 16 px, which then does 5 + 7 + 11."""
    assert C.level_schedule((32, 32), 4, [5, 7, 11, 13]) == ([(16, 16), (32, 32)], [23, 13])
    sizes, per = C.level_schedule((64, 48), None, [9])
    assert sizes == [(32, 24), (64, 48)] and per == [9, 9]                  # auto_levels((64, 48)) = 2
    assert C.level_schedule((128, 128), 3, [4, 3, 2]) == ([(32, 32), (64, 64), (128, 128)], [4, 3, 2])
    assert C.level_schedule((128, 128), 2, [6, 1]) == ([(64, 64), (128, 128)], [6, 1])


def test_check_min_size_accepts_the_minimum():
    C.check_min_size("demons", torch.zeros(1, 1, 4, 4))
    C.check_min_size("syn", torch.zeros(1, 1, 6, 6), 6)
    assert C.MIN_SIZE == 4 and C.TOP_SIZE == 16


# ------------------------------------------------------------------------------------------------
# Demons and Horn-Schunck: defaults, the settings reaching every step, history, chunks
# ------------------------------------------------------------------------------------------------

def _pair(n=1, size=32, seed=0, max_disp=2.0):
    g = torch.Generator().manual_seed(seed)
    fixed = spatial.resize_image(torch.rand(n, 1, 6, 6, generator=g), (size, size), mode="bicubic").clamp(0, 1)
    u = spatial.random_smooth_disp(n, (size, size), max_disp=max_disp, generator=g)
    return spatial.warp(fixed, u), fixed


def test_demons_defaults_are_the_documented_ones():
    from regkit.classical.demons import demons_step

    m, f = _pair()
    ref = demons(m, f)
    explicit = demons(m, f, iterations=30, levels=None, sigma_diffusion=1.5, sigma_fluid=0.0, max_step=0.5,
                      force="symmetric", diffeomorphic=False, history=0)
    assert torch.equal(ref.disp, explicit.disp) and torch.equal(ref.warped, explicit.warped)
    assert ref.extras == {"iterations": [30, 30], "sizes": [(16, 16), (32, 32)]}
    assert not torch.equal(ref.disp, demons(m, f, iterations=31).disp)
    u = torch.zeros(1, 2, 32, 32)
    assert torch.equal(demons_step(m, f, u), demons_step(m, f, u, force="symmetric", max_step=0.5, sigma_fluid=0.0,
                                                         sigma_diffusion=1.0, diffeomorphic=False))


def _demons_by_hand(m, f, its, **kw):
    from regkit.classical.demons import demons_step

    u = torch.zeros(m.shape[0], 2, *m.shape[-2:])
    for _ in range(its):
        u = demons_step(C.grey(m), C.grey(f), u, **kw)
    return u


@pytest.mark.parametrize("kw", [
    dict(force="fixed", max_step=0.8, sigma_fluid=0.7, sigma_diffusion=0.3, diffeomorphic=True),
    dict(force="moving", max_step=0.3, sigma_fluid=0.0, sigma_diffusion=0.0, diffeomorphic=False),
])
def test_demons_passes_every_setting_to_each_step(kw):
    m, f = _pair(2)
    res = demons(m, f, levels=1, iterations=3, **kw)
    u = _demons_by_hand(m, f, 3, **kw)
    assert torch.allclose(res.disp, u, atol=1e-6)
    assert torch.allclose(res.warped, spatial.warp(m, u), atol=1e-6)
    assert res.extras["iterations"] == [3] and res.extras["sizes"] == [(32, 32)]


def test_demons_step_diffeomorphic_update_is_the_exponential_of_the_additive_one():
    """From a zero field, the diffeomorphic step is ``exp(du)`` with 4 squarings, ``du`` being the
    additive step (fluid and diffusion off)."""
    from regkit.classical.demons import demons_step

    m, f = _pair(size=16)
    zero = torch.zeros(1, 2, 16, 16)
    du = demons_step(m, f, zero, sigma_diffusion=0.0)
    expo = demons_step(m, f, zero, sigma_diffusion=0.0, diffeomorphic=True)
    assert float(du.abs().max()) > 0.1
    assert torch.allclose(expo, spatial.integrate_velocity(du, 4), atol=1e-6)
    assert not torch.allclose(expo, spatial.integrate_velocity(du, 5), atol=1e-4)


def test_demons_step_ignores_matched_intensities_and_flat_regions():
    """A difference below 1e-5 gives no force; where gradient and difference vanish the update is 0."""
    from regkit.classical.demons import MATCHED, demons_step

    x = torch.arange(8.0).repeat(8, 1)[None, None] / 10
    zero = torch.zeros(1, 2, 8, 8)
    assert MATCHED == 1e-5
    assert float(demons_step(x + 0.9e-5, x, zero, sigma_diffusion=0.0).abs().max()) == 0.0
    assert float(demons_step(x + 2e-5, x, zero, sigma_diffusion=0.0).abs().max()) > 0
    flat = torch.full((1, 1, 8, 8), 0.5)
    assert float(demons_step(flat, flat, zero, sigma_diffusion=0.0).abs().max()) == 0.0


def test_demons_history_and_the_coarse_snapshots():
    """Every 4th iteration of 2 levels of 5 (16 and 32 px): snapshots at 4 and 8 (on the full grid,
    the coarse one resized) and the last one, 10, which is the result."""
    m, f = _pair()
    res = demons(m, f, iterations=5, history=4)
    steps = [k for k, _ in res.extras["history"]]
    assert steps == [4, 8, 10]
    assert all(d.shape == (1, 2, 32, 32) for _, d in res.extras["history"])
    assert torch.equal(res.extras["history"][-1][1], res.disp)
    plain = demons(m, f, iterations=5)
    assert torch.equal(plain.disp, res.disp) and "history" not in plain.extras
    coarse = demons(m, f, iterations=(4, 1), history=4)
    (k, snap), (k2, last) = coarse.extras["history"]
    assert (k, k2) == (4, 5) and snap.shape == (1, 2, 32, 32) and not torch.equal(snap, last)


def test_demons_and_horn_schunck_give_each_pair_the_same_field_in_cpu_chunks():
    """33 pairs of 64 x 64 px are iterated in chunks of 32 on the CPU: pair 32 gets the field it
    gets alone."""
    m, f = _pair(33, size=64, seed=1)
    for fn, kw in ((demons, dict(levels=1, iterations=2)), (horn_schunck, dict(levels=1, iterations=3, warps=1))):
        many = fn(m, f, **kw).disp
        alone = fn(m[32:], f[32:], **kw).disp
        assert torch.allclose(many[32:], alone, atol=1e-6), fn.__name__
        assert torch.allclose(many[:1], fn(m[:1], f[:1], **kw).disp, atol=1e-6), fn.__name__


def test_horn_schunck_defaults_are_the_documented_ones():
    m, f = _pair()
    ref = horn_schunck(m, f)
    explicit = horn_schunck(m, f, alpha=0.04, iterations=100, warps=2, levels=None, sigma=1.0, median=5, history=0)
    assert torch.equal(ref.disp, explicit.disp)
    assert ref.extras["iterations"] == [100, 100] and ref.extras["warps"] == 2 and ref.extras["sizes"] == [(16, 16), (32, 32)]
    assert "history" not in ref.extras


def test_horn_schunck_one_level_by_hand():
    """One level, two warps: blur both images, then per warp the averaged gradient, the
    linearised residual constant, the Jacobi iterations and the median filter."""
    from regkit.classical.optical_flow import horn_schunck_step, median_filter
    from regkit.filters import gaussian_blur, image_gradient

    m, f = _pair(2, size=24, seed=3)
    alpha, sigma, its, median = 0.07, 0.8, 7, 3
    res = horn_schunck(m, f, alpha=alpha, iterations=its, warps=2, levels=1, sigma=sigma, median=median)
    mb, fb = gaussian_blur(C.grey(m), sigma), gaussian_blur(C.grey(f), sigma)
    u = torch.zeros(2, 2, 24, 24)
    for _ in range(2):
        w = spatial.warp(mb, u)
        g = 0.5 * (image_gradient(fb) + image_gradient(w))
        c = w - fb - (g * u).sum(1, keepdim=True)
        scale = g / (alpha**2 + (g * g).sum(1, keepdim=True))
        for _ in range(its):
            u = horn_schunck_step(u, g, c, scale)
        u = median_filter(u, median)
    assert torch.allclose(res.disp, u, atol=1e-5)
    assert torch.allclose(res.warped, spatial.warp(m, u), atol=1e-5)
    assert res.extras == {"iterations": [its], "warps": 2, "sizes": [(24, 24)]}


def test_horn_schunck_history():
    m, f = _pair()
    res = horn_schunck(m, f, iterations=5, warps=3, history=2)
    assert [k for k, _ in res.extras["history"]] == [2, 4, 6]
    assert all(d.shape == (1, 2, 32, 32) for _, d in res.extras["history"])
    assert torch.equal(res.extras["history"][-1][1], res.disp)
    assert not torch.equal(res.extras["history"][0][1], res.disp)
    assert [k for k, _ in horn_schunck(m, f, iterations=5, warps=3, history=4).extras["history"]] == [4, 6]


def test_neighbour_average_and_median_filters_by_value():
    """The Horn-Schunck average is ``[[1, 2, 1], [2, 0, 2], [1, 2, 1]] / 12`` with replicate
    padding; the separable median is the median of each row window, then of each column window."""
    import numpy as np

    from regkit.classical.optical_flow import _median_of, median_filter, neighbour_average

    u = torch.rand(2, 2, 5, 7, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    k = torch.tensor([[1.0, 2, 1], [2, 0, 2], [1, 2, 1]], dtype=torch.float64) / 12
    p = torch.nn.functional.pad(u, (1, 1, 1, 1), mode="replicate")
    want = sum(k[i, j] * p[..., i: i + 5, j: j + 7] for i in range(3) for j in range(3))
    assert torch.allclose(neighbour_average(u), want, atol=1e-12)
    for size in (1, 3, 5, 7):
        r = size // 2
        x = np.pad(u.numpy(), ((0, 0), (0, 0), (0, 0), (r, r)), mode="edge")
        rows = np.median(np.stack([x[..., i: i + 7] for i in range(size)]), 0)
        y = np.pad(rows, ((0, 0), (0, 0), (r, r), (0, 0)), mode="edge")
        want = np.median(np.stack([y[..., i: i + 5, :] for i in range(size)]), 0)
        assert np.allclose(median_filter(u, size).numpy(), want, atol=1e-12), size
    assert median_filter(u, 1) is u
    vals = [torch.rand(50, generator=torch.Generator().manual_seed(s)) for s in range(5)]
    for n in (3, 5):
        assert torch.equal(_median_of(vals[:n]), torch.stack(vals[:n]).median(0).values)


# ------------------------------------------------------------------------------------------------
# SyN: helpers by value, defaults, one level by hand
# ------------------------------------------------------------------------------------------------

def test_syn_box_mean_counts_only_inside_pixels():
    from regkit.classical.syn import _box_count, _box_mean

    x = torch.rand(2, 3, 7, 10, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    for r in (1, 2, 3):
        want = torch.nn.functional.avg_pool2d(x, 2 * r + 1, stride=1, padding=r, count_include_pad=False)
        assert torch.allclose(_box_mean(x, r), want, atol=1e-12), r
    # pixels of a 3-radius box inside a 7 x 10 image: rows 4..7 (clipped) times columns 4..7
    assert _box_count(7, 10, 3, torch.device("cpu"))[0].tolist() == [16.0, 20.0, 24.0, 28.0, 28.0, 28.0, 28.0, 24.0,
                                                                      20.0, 16.0]


def test_syn_forces_by_value():
    """MSE: ``(M - F) grad F`` and ``(F - M) grad M``, similarity ``-mean (F - M)^2``. CC of a
    linear function of the same image is 1 with no force."""
    from regkit.classical.syn import _forces
    from regkit.filters import image_gradient

    g = torch.Generator().manual_seed(7)
    f, m = torch.rand(2, 1, 9, 8, generator=g), torch.rand(2, 1, 9, 8, generator=g)
    d_f, d_m, sim = _forces(f, m, "mse", 2, 1e-4)
    assert torch.allclose(d_f, (m - f) * image_gradient(f)) and torch.allclose(d_m, (f - m) * image_gradient(m))
    assert torch.allclose(sim, -((f - m) ** 2).flatten(1).mean(1))
    d_f, d_m, sim = _forces(f, 0.5 * f + 0.2, "cc", 2, 1e-6)
    assert torch.allclose(sim, torch.ones(2), atol=1e-4)
    assert float(d_f.abs().max()) < 1e-3 and float(d_m.abs().max()) < 1e-3
    d_f, _, sim = _forces(f, m, "cc", 1, 1e-4)
    assert float(d_f.abs().max()) > 0.01 and bool((sim > 0).all()) and bool((sim < 1).all())


def test_syn_scaled_step_and_level_sizes():
    from regkit.classical.syn import _default_iterations, _level_size, _scaled_step

    force = torch.zeros(2, 2, 6, 6)
    force[0, 0, 2, 3], force[0, 1, 2, 3] = 3.0, 4.0          # |.| = 5 at one pixel
    force[0, 0, 4, 4] = 1.0
    step = _scaled_step(force, 0.0, 0.25)
    assert float(step[0].norm(dim=0).max()) == pytest.approx(0.25) and float(step[0, 0, 4, 4]) == pytest.approx(0.05)
    assert float(step[1].abs().max()) == 0.0                     # no force, no step (and no NaN)
    blurred = _scaled_step(force, 1.0, 0.5)
    assert float(blurred[0].norm(dim=0).max()) == pytest.approx(0.5, abs=1e-6)
    assert [_level_size(33, 17, k) for k in (1, 2, 4, 16, 64)] == [(33, 17), (17, 9), (9, 5), (3, 2), (2, 2)]
    assert [_default_iterations(k) for k in (1, 2, 4, 8)] == [10, 20, 40, 40]


def test_syn_inverse_helpers():
    from regkit.classical.syn import inverse_consistency_error, invert_disp

    u = torch.zeros(1, 2, 8, 8)
    u[:, 0] = 0.5
    assert torch.equal(invert_disp(u, iterations=0), -u)
    init = torch.full((1, 2, 8, 8), 0.1)
    assert torch.equal(invert_disp(u, init=init, iterations=0), init)
    assert torch.allclose(invert_disp(u, init=init, iterations=1), -u)
    with pytest.raises(ValueError, match="^init must match the image batch and size"):
        invert_disp(u, init=torch.zeros(1, 2, 8, 7))
    with pytest.raises(TypeError, match="^iterations must be an integer, got 1.5$"):
        invert_disp(u, iterations=1.5)
    with pytest.raises(ValueError, match="^disp must have 2 channels"):
        invert_disp(u[:, :1])
    # forward 0.5 px in x, inverse 0: both round trips miss by 0.5 px wherever they read inside
    assert inverse_consistency_error(u, torch.zeros_like(u)).tolist() == pytest.approx([0.5])
    assert inverse_consistency_error(u, -u).tolist() == pytest.approx([0.0], abs=1e-6)
    with pytest.raises(ValueError, match="^inverse must match the image batch and size"):
        inverse_consistency_error(u, torch.zeros(2, 2, 8, 8))
    with pytest.raises(ValueError, match="^forward must have 2 channels"):
        inverse_consistency_error(u[:, :1], u[:, :1])


def test_syn_default_pyramid():
    """64 px: three levels (shrink 4, 2, 1), iterations 40, 20, 10, smoothing 2, 1, 0 px; with
    only iterations given, one level per entry, halving."""
    m, f = _pair(size=64)
    p = syn(m, f, iterations=(1, 1, 1)).extras["params"]
    assert p["shrink_factors"] == (4, 2, 1) and p["smoothing_sigmas"] == (2.0, 1.0, 0.0)
    p = syn(m, f, shrink_factors=(2, 1), iterations=(1, 0)).extras["params"]
    assert p["iterations"] == (1, 0) and p["smoothing_sigmas"] == (1.0, 0.0)
    from regkit.classical.syn import _check_params

    assert _check_params((64, 64), None, None, None, "CC", 2, 0.25, 3.0, 1.0, 2) == ((40, 20, 10), (4, 2, 1),
                                                                                      (2.0, 1.0, 0.0), "cc")
    assert _check_params((64, 64), 5, None, None, "mse", 2, 0.25, 3.0, 1.0, 2)[:3] == ((5,), (1,), (0.0,))
    assert _check_params((64, 64), None, (8, 3), None, "cc", 2, 0.25, 3.0, 1.0, 2)[:3] == ((40, 40), (8, 3), (4.0, 1.5))
    assert _check_params((64, 64), None, None, (1.0, 0.5), "cc", 2, 0.25, 3.0, 1.0, 2)[:3] == ((20, 10), (2, 1), (1.0, 0.5))


def test_syn_one_level_by_hand():
    """One level at full size, 3 iterations: every setting reaches syn_step, then the final
    inverses get 10 more refinements, ``disp = compose(u_m, v_f)`` and
    ``inverse = compose(u_f, v_m)``."""
    from regkit.classical.syn import _invert, inverse_consistency_error, syn_step
    from regkit.filters import gaussian_blur

    m, f = _pair(2, size=20, seed=4)
    kw = dict(metric="cc", radius=1, cc_eps=1e-3, flow_sigma=1.5, grad_step=0.4, total_sigma=0.5, inverse_iterations=3)
    res = syn(m, f, iterations=(3,), shrink_factors=(1,), smoothing_sigmas=(0.7,), **kw)
    images = gaussian_blur(torch.cat((C.grey(f), C.grey(m))), 0.7)
    halves = inverses = torch.zeros(4, 2, 20, 20)
    sims = []
    for _ in range(3):
        halves, inverses, sim = syn_step(images, halves, inverses, **kw)
        sims.append(sim)
    inverses = _invert(halves, inverses, 10)
    disp = spatial.compose(halves[2:], inverses[:2])
    inverse = spatial.compose(halves[:2], inverses[2:])
    assert torch.allclose(res.disp, disp, atol=1e-6) and torch.allclose(res.extras["inverse"], inverse, atol=1e-6)
    assert torch.allclose(res.warped, spatial.warp(m, disp), atol=1e-6)
    assert torch.allclose(res.extras["fixed_to_middle"], halves[:2]) and torch.allclose(res.extras["moving_to_middle"],
                                                                                         halves[2:])
    assert torch.allclose(res.extras["middle_fixed"], spatial.warp(f, halves[:2]), atol=1e-6)
    assert torch.allclose(res.extras["middle_moving"], spatial.warp(m, halves[2:]), atol=1e-6)
    assert torch.allclose(res.extras["inverse_consistency"], inverse_consistency_error(disp, inverse), atol=1e-6)
    assert len(res.extras["similarity"]) == 1 and torch.allclose(res.extras["similarity"][0], torch.stack(sims).T)
    assert res.extras["params"] == {**kw, "iterations": (3,), "shrink_factors": (1,), "smoothing_sigmas": (0.7,)}
    assert res.params is None
    mse = syn(m, f, iterations=(2,), shrink_factors=(1,), smoothing_sigmas=(0.0,), metric="MSE")
    assert mse.extras["params"]["metric"] == "mse" and not torch.allclose(mse.disp, syn(
        m, f, iterations=(2,), shrink_factors=(1,), smoothing_sigmas=(0.0,)).disp, atol=1e-4)


def test_syn_levels_without_iterations_still_carry_the_fields():
    m, f = _pair(size=32, seed=5)
    res = syn(m, f, iterations=(3, 0), shrink_factors=(2, 1), smoothing_sigmas=(0.0, 0.0))
    assert res.extras["similarity"][1].shape == (1, 0) and res.extras["similarity"][0].shape == (1, 3)
    assert float(res.disp.abs().max()) > 0.05


# ------------------------------------------------------------------------------------------------
# SIFT + RANSAC: messages, matching and RANSAC by value
# ------------------------------------------------------------------------------------------------

R3 = torch.rand(3, 2, generator=torch.Generator().manual_seed(8))
SIFT_ERRORS = {
    "detect image": ("detect", (torch.rand(16, 16),), ValueError, "image must have 4 dimensions, got shape (16, 16)"),
    "detect range": ("detect", (torch.full((1, 1, 16, 16), 2.0),), ValueError,
                     "image must have intensities in [0, 1], got values in [2, 2]; rescale it first (x / 255 for 8-bit "
                     "data, or (x - x.min()) / (x.max() - x.min()))"),
    "detect n_features": ("detect", (X, -1), ValueError, "n_features must be non-negative, got -1"),
    "detect contrast": ("detect", (X, 0, 0.0), ValueError, "contrast_threshold must be positive, got 0.0"),
    "match a": ("match", (torch.rand(3), torch.rand(3, 4)), ValueError, "desc_a must have 2 dimensions, got shape (3,)"),
    "match b": ("match", (torch.rand(3, 4), torch.rand(3)), ValueError, "desc_b must have 2 dimensions, got shape (3,)"),
    "match lengths": ("match", (torch.rand(3, 4), torch.rand(3, 5)), ValueError,
                      "desc_a and desc_b must have the same length, got 4 and 5"),
    "match ratio": ("match", (torch.rand(3, 4), torch.rand(3, 4), 0.0), ValueError, "ratio must be in (0, 1], got 0.0"),
    "ransac src": ("ransac_affine", (torch.rand(3), R3), ValueError, "src must have 2 dimensions, got shape (3,)"),
    "ransac dst": ("ransac_affine", (R3, torch.rand(3)), ValueError, "dst must have 2 dimensions, got shape (3,)"),
    "ransac shapes": ("ransac_affine", (R3, torch.rand(4, 2)), ValueError,
                      "src and dst must both have shape (M, 2), got (3, 2) and (4, 2)"),
    "ransac xyz": ("ransac_affine", (torch.rand(3, 3), torch.rand(3, 3)), ValueError,
                   "src and dst must both have shape (M, 2), got (3, 3) and (3, 3)"),
    "ransac few": ("ransac_affine", (R3[:2], R3[:2]), ValueError, "ransac_affine needs at least 3 matches, got 2"),
    "ransac threshold": ("ransac_affine", (R3, R3, 0), ValueError, "threshold must be positive, got 0"),
    "ransac hypotheses": ("ransac_affine", (R3, R3, 3.0, 0), ValueError, "hypotheses must be positive, got 0"),
    "ransac refine": ("ransac_affine", (R3, R3, 3.0, 10, -1), ValueError, "refine must be non-negative, got -1"),
    "ransac chunk": ("ransac_affine", (R3, R3), ValueError, "chunk must be positive, got 0", {"chunk": 0}),
    "ransac confidence": ("ransac_affine", (R3, R3), ValueError, "confidence must be in (0, 1), got 1.0",
                          {"confidence": 1.0}),
    "ransac collinear": ("ransac_affine", (torch.tensor([[0.0, 0], [1, 1], [2, 2], [3, 3]]), torch.rand(4, 2)),
                         ValueError, "ransac_affine: every sample was degenerate (collinear or repeated points)"),
}


@pytest.mark.parametrize("case", list(SIFT_ERRORS))
def test_sift_helpers_bad_input_message(case):
    from regkit.classical import sift_ransac as sr

    name, args, error, message, *kw = SIFT_ERRORS[case]
    with pytest.raises(error) as info:
        getattr(sr, name)(*args, **(kw[0] if kw else {}))
    assert str(info.value) == message


def test_match_is_the_ratio_test_by_brute_force():
    from regkit.classical.sift_ransac import match

    g = torch.Generator().manual_seed(9)
    a, b = torch.rand(30, 8, generator=g), torch.rand(25, 8, generator=g)
    for ratio in (0.75, 0.9, 1.0):
        d = torch.cdist(a.double(), b.double())
        want = [[i, int(d[i].argmin())] for i in range(30) if d[i].sort().values[0] < ratio * d[i].sort().values[1]]
        assert match(a, b, ratio).tolist() == want, ratio
    assert match(a, b).tolist() == match(a, b, 0.75).tolist()
    assert match(a[:0], b).shape == (0, 2) and match(a, b[:1]).shape == (0, 2) and match(a, b[:1]).dtype == torch.long
    assert match(a, b[:2]).shape[1] == 2


def test_ransac_refits_on_inliers_and_stops_when_every_match_agrees():
    """40 exact matches and 10 outliers: the refit recovers the affine and marks exactly the 40.
    With every match an inlier the first chunk of 256 samples is enough: the generator has drawn
    exactly 256 x 3 indices."""
    from regkit.classical.sift_ransac import ransac_affine

    g = torch.Generator().manual_seed(10)
    src = torch.rand(50, 2, generator=g) * 100
    theta = torch.tensor([[1.1, 0.1, 3.0], [-0.05, 0.95, -2.0]])
    dst = src @ theta[:, :2].T + theta[:, 2]
    dst[:10] += 30
    est, inl = ransac_affine(src, dst, threshold=1.0, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(est, theta, atol=1e-3) and inl.tolist() == [False] * 10 + [True] * 40
    rough, _ = ransac_affine(src, dst + torch.randn(50, 2, generator=g) * 0.3, threshold=2.0, refine=0,
                             generator=torch.Generator().manual_seed(0))
    refined, _ = ransac_affine(src, dst + torch.randn(50, 2, generator=g) * 0.3, threshold=2.0, refine=2,
                               generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(rough, refined, atol=1e-6)
    gen = torch.Generator().manual_seed(3)
    ransac_affine(src[10:], dst[10:], generator=gen)
    twin = torch.Generator().manual_seed(3)
    torch.randint(40, (256, 3), generator=twin)
    assert torch.equal(torch.randint(1000, (5,), generator=gen), torch.randint(1000, (5,), generator=twin))
    # a threshold in pixels: 0.5 px of error is out at 0.4 px, in at 0.6 px
    off = dst[10:].clone()
    off[0] += torch.tensor([0.5, 0.0])
    for thr, expected in ((0.4, False), (0.6, True)):
        _, inl = ransac_affine(src[10:], off, threshold=thr, refine=0, generator=torch.Generator().manual_seed(1))
        assert bool(inl[0]) is expected and int(inl[1:].sum()) == 39


def test_sift_ransac_on_a_flat_pair_falls_back_to_the_identity_with_a_warning():
    flat = torch.full((2, 1, 32, 32), 0.5)
    with pytest.warns(RuntimeWarning, match=r"sift_ransac: no affine found for pairs \[0, 1\]"):
        res = sift_ransac(flat, flat)
    assert res.extras["ok"] == [False, False] and res.extras["n_matches"] == [0, 0] and res.extras["n_inliers"] == [0, 0]
    assert torch.equal(res.params, torch.eye(2, 3).expand(2, 2, 3)) and float(res.disp.abs().max()) == 0.0
    assert res.extras["seconds"] >= 0 and len(res.extras["points"]) == 2


def test_demons_step_thresholds_at_their_exact_values():
    """A difference of exactly 1e-5 (float32) still drives the update (only smaller ones count as
    matched); a denominator of exactly 1e-12 gives none (gradient 1e-6, whose square is exactly
    1e-12 in float32, and a step bound so large that d^2/s^2 vanishes)."""
    from regkit.classical.demons import demons_step

    zero_u, m = torch.zeros(1, 2, 5, 5), torch.zeros(1, 1, 5, 5)
    f = torch.zeros(1, 1, 5, 5)
    f[0, 0, 2, 2], f[0, 0, 2, 3] = 1e-5, 0.1
    assert float(demons_step(m, f, zero_u, sigma_diffusion=0.0)[0, 0, 2, 2].abs()) > 0
    f[0, 0, 2, 3] = 2e-6                                      # central difference at (2, 2): exactly 1e-6
    du = demons_step(m, f, zero_u, sigma_diffusion=0.0, max_step=1e30)
    assert float(du[0, :, 2, 2].abs().max()) == 0.0


def test_syn_cc_forces_are_the_derivative_of_the_local_cc():
    """At an interior pixel p, the CC force on the fixed half is ``n dcc(p)/dF(p) grad F(p)``:
    the derivative (autograd) of the window's squared correlation with respect to its centre,
    times the ``n`` pixels of the window; likewise for the moving half. The similarity is the
    mean over pixels of that squared correlation (variances floored at eps)."""
    from regkit.classical.syn import _forces
    from regkit.filters import image_gradient

    g = torch.Generator().manual_seed(11)
    fh = torch.rand(1, 1, 9, 10, generator=g, dtype=torch.float64)
    mh = (0.6 * fh + 0.4 * torch.rand(1, 1, 9, 10, generator=g, dtype=torch.float64))
    r, eps = 1, 1e-4
    d_f, d_m, sim = _forces(fh.float(), mh.float(), "cc", r, eps)

    def cc(wf, wm):
        mf, mm = wf.mean(), wm.mean()
        sff = (wf.pow(2).mean() - mf**2).clamp_min(eps)
        smm = (wm.pow(2).mean() - mm**2).clamp_min(eps)
        return ((wf * wm).mean() - mf * mm) ** 2 / (sff * smm)

    n = (2 * r + 1) ** 2
    for (y, x) in ((3, 4), (5, 7)):
        wf = fh[0, 0, y - r: y + r + 1, x - r: x + r + 1].clone().requires_grad_(True)
        wm = mh[0, 0, y - r: y + r + 1, x - r: x + r + 1].clone().requires_grad_(True)
        dcf, dcm = torch.autograd.grad(cc(wf, wm), (wf, wm))
        gf, gm = image_gradient(fh)[0, :, y, x], image_gradient(mh)[0, :, y, x]
        assert torch.allclose(d_f[0, :, y, x].double(), n * dcf[r, r] * gf, atol=1e-4, rtol=1e-3)
        assert torch.allclose(d_m[0, :, y, x].double(), n * dcm[r, r] * gm, atol=1e-4, rtol=1e-3)
    pool = lambda t: torch.nn.functional.avg_pool2d(t, 2 * r + 1, 1, r, count_include_pad=False)  # noqa: E731
    mf, mm = pool(fh), pool(mh)
    sff, smm = (pool(fh * fh) - mf**2).clamp_min(eps), (pool(mh * mh) - mm**2).clamp_min(eps)
    want = ((pool(fh * mh) - mf * mm) ** 2 / (sff * smm)).mean()
    assert float(sim) == pytest.approx(float(want), abs=1e-5)


def test_syn_step_threshold_and_defaults():
    """A force of norm exactly 1e-12 (and less) gives no step; syn_step's and syn's defaults are
    the documented ones."""
    from regkit.classical.syn import _scaled_step, syn_step

    f = torch.zeros(1, 2, 4, 4)
    f[0, 0, 1, 1] = 1e-12
    assert float(_scaled_step(f, 0.0, 0.25).abs().max()) == 0.0
    f[0, 0, 1, 1] = 1.0001e-12
    assert float(_scaled_step(f, 0.0, 0.25).abs().max()) == pytest.approx(0.25)
    m, fx = _pair(size=16, seed=6)
    images = torch.cat((fx, m))
    zero = torch.zeros(2, 2, 16, 16)
    a = syn_step(images, zero, zero)
    b = syn_step(images, zero, zero, metric="cc", radius=2, cc_eps=1e-4, flow_sigma=3.0, grad_step=0.25, total_sigma=1.0,
                 inverse_iterations=2)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    quick = dict(iterations=(2, 1), shrink_factors=(2, 1))
    a = syn(m, fx, **quick)
    b = syn(m, fx, metric="cc", radius=2, grad_step=0.25, flow_sigma=3.0, total_sigma=1.0, inverse_iterations=2,
            cc_eps=1e-4, **quick)
    assert torch.equal(a.disp, b.disp) and a.extras["params"] == b.extras["params"]


def test_syn_coarse_last_level_is_resized_to_the_image():
    """Ending on a level at half size: the fields are resized to the full grid before the final
    inverses and the composition."""
    from regkit.classical.syn import _invert, _level_size, syn_step
    from regkit.filters import gaussian_blur

    m, f = _pair(1, size=21, seed=7)
    res = syn(m, f, iterations=(2,), shrink_factors=(2,), smoothing_sigmas=(1.0,), metric="mse")
    size = _level_size(21, 21, 2)
    images = spatial.resize_image(gaussian_blur(torch.cat((C.grey(f), C.grey(m))), 1.0), size)
    halves = inverses = torch.zeros(2, 2, *size)
    for _ in range(2):
        halves, inverses, _ = syn_step(images, halves, inverses, metric="mse")
    halves, inverses = spatial.resize_disp(halves, (21, 21)), spatial.resize_disp(inverses, (21, 21))
    inverses = _invert(halves, inverses, 10)
    assert res.disp.shape == (1, 2, 21, 21)
    assert torch.allclose(res.disp, spatial.compose(halves[1:], inverses[:1]), atol=1e-6)


def test_inverse_consistency_per_pair_and_per_direction():
    """Pair 0: forward ``u_x = 0.1 x`` on 8 px, inverse 0. The round trip on the fixed grid reads
    inside for x <= 6 (1.1 x <= 7): mean 0.3; on the moving grid everywhere: mean 0.35; result
    0.325. Pair 1: forward and inverse 0, error 0."""
    from regkit.classical.syn import inverse_consistency_error

    fwd = torch.zeros(2, 2, 3, 8)
    fwd[0, 0] = 0.1 * torch.arange(8.0)
    got = inverse_consistency_error(fwd, torch.zeros_like(fwd))
    assert got.shape == (2,) and got.tolist() == pytest.approx([0.325, 0.0], abs=1e-6)
