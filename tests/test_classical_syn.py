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


# ------------------------------------------------------------------------------------------------
# Exact values: the inverse fields, the iteration counts, devices and autocast
# ------------------------------------------------------------------------------------------------


def _small_pair(size: int = 16, seed: int = 3):
    g = torch.Generator().manual_seed(seed)
    fixed = spatial.resize_image(torch.rand(1, 1, 5, 5, generator=g), (size, size), mode="bicubic").clamp(0, 1)
    return spatial.warp(fixed, spatial.random_smooth_disp(1, (size, size), max_disp=2.0, generator=g)), fixed


def test_update_halves_inverse_starts_from_minus_the_step():
    """Catches the inverse predictor composed with +step instead of -step (exact first-order value)."""
    # no refinement: the new inverse is v + (-d)(p + v); v_x = 1, d_x = x/10 give 1 - (x + 1)/10
    step = torch.zeros(1, 2, 8, 8)
    step[:, 0] = torch.arange(8.0) / 10
    inverse = torch.zeros(1, 2, 8, 8)
    inverse[:, 0] = 1.0
    halves, inverses = update_halves(torch.zeros(1, 2, 8, 8), inverse, step, 0.0, 0)
    assert torch.equal(halves, step)
    x = torch.arange(8.0).clamp(max=6)
    assert torch.allclose(inverses[0, 0], (1 - (x + 1) / 10).expand(8, 8), atol=1e-6)
    assert float(inverses[0, 1].abs().max()) == 0.0


def test_syn_one_level_equals_the_public_steps_bit_for_bit():
    """Catches inverse_iterations not passed to syn_step, or a final inverse refinement other than 10."""
    # syn at one level is bit-identical to the loop of syn_step plus invert_disp(..., 10)
    m, f = _small_pair()
    kw = dict(grad_step=0.5, flow_sigma=1.0, total_sigma=0.5)
    res = regkit.register(m, f, method="syn", iterations=(4,), shrink_factors=(1,), smoothing_sigmas=(0.0,),
                          inverse_iterations=1, **kw)
    images = torch.cat((f, m))

    def by_hand(inverse_iterations, final):
        halves = inverses = torch.zeros(2, 2, 16, 16)
        for _ in range(4):
            halves, inverses, _ = syn_step(images, halves, inverses, inverse_iterations=inverse_iterations, **kw)
        inverses = invert_disp(halves, inverses, final)
        return spatial.compose(halves[1:], inverses[:1]), spatial.compose(halves[:1], inverses[1:])

    disp, inverse = by_hand(1, 10)
    assert torch.equal(res.disp, disp) and torch.equal(res.extras["inverse"], inverse)
    # the comparison sees both counts: one more refinement per step, or at the end, changes the bits
    for other in (by_hand(2, 10), by_hand(1, 11)):
        assert not torch.equal(other[0], disp) and not torch.equal(other[1], inverse)


def test_invert_disp_runs_20_iterations_by_default():
    """Catches a default iteration count of invert_disp other than 20 (bit-equal to iterations=20)."""
    u = spatial.random_smooth_disp(1, (16, 16), max_disp=1.5, generator=torch.Generator().manual_seed(1))
    want = invert_disp(u, iterations=20)
    assert torch.equal(invert_disp(u), want)
    assert not torch.equal(invert_disp(u, iterations=19), want) and not torch.equal(invert_disp(u, iterations=21), want)


def test_inverse_consistency_error_with_one_pixel_inside():
    """Catches the inside-pixel count clamped at 2 instead of 1 (one pixel inside: its error, not half)."""
    forward = torch.zeros(1, 2, 4, 4)
    forward[:, 0] = 100.0        # every sample point far outside ...
    forward[0, 0, 0, 0] = 0.5    # ... but this one
    err = inverse_consistency_error(forward, torch.zeros_like(forward))
    # fixed grid: one pixel inside, error 0.5; moving grid: all 16 inside, 15 x 100 + 0.5 px
    assert err.tolist() == [pytest.approx(0.5 * (0.5 + (15 * 100 + 0.5) / 16), rel=1e-6)]


def test_box_mean_of_a_single_image():
    """Catches the box mean sized from shape[2:] instead of the last two dims (H x W and C,H,W inputs)."""
    from regkit.classical.syn import _box_mean

    x = torch.rand(7, 9, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    want = torch.nn.functional.avg_pool2d(x[None, None], 5, stride=1, padding=2, count_include_pad=False)[0, 0]
    assert torch.allclose(_box_mean(x, 2), want, atol=1e-12)
    assert torch.allclose(_box_mean(x[None], 2)[0], want, atol=1e-12)


def test_syn_of_cpu_tensors_stays_on_the_cpu_under_another_default_device():
    """Catches zero fields or an empty level similarity made on the default device instead of the inputs'."""
    # a meta default device with CPU inputs must give the same CPU results (MSE: no cached box counts)
    m, f = _small_pair()
    kw = dict(metric="mse", iterations=(2, 0), shrink_factors=(2, 1), smoothing_sigmas=(0.0, 0.0))
    ref = regkit.register(m, f, method="syn", **kw)
    spatial._half_size.cache_clear()
    spatial._identity_grid_cached.cache_clear()
    with torch.device("meta"):
        res = regkit.register(m, f, method="syn", **kw)
    assert res.disp.device.type == "cpu" and torch.equal(res.disp, ref.disp)
    assert torch.equal(res.extras["inverse"], ref.extras["inverse"])
    sims = res.extras["similarity"]
    assert [s.device.type for s in sims] == ["cpu", "cpu"] and [tuple(s.shape) for s in sims] == [(1, 2), (1, 0)]
    assert torch.equal(sims[0], ref.extras["similarity"][0])


@pytest.mark.parametrize("metric", ["cc", "mse"])
def test_syn_switches_a_callers_autocast_off(monkeypatch, metric):
    """Catches the autocast guard left on (enabled=True or no enabled=): steps run with autocast off."""
    # and inside a caller's bfloat16 autocast region the result is bit-identical
    import regkit.classical.syn as S

    m, f = _small_pair()
    kw = dict(metric=metric, iterations=(2, 2), shrink_factors=(2, 1), smoothing_sigmas=(1.0, 0.0))
    ref = regkit.register(m, f, method="syn", **kw)
    seen = []
    step = S.syn_step

    def spy(*args, **kwargs):
        seen.append(torch.is_autocast_enabled("cpu"))
        return step(*args, **kwargs)

    monkeypatch.setattr(S, "syn_step", spy)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        res = regkit.register(m, f, method="syn", **kw)
    assert seen == [False] * 4
    assert res.disp.dtype == torch.float32 and torch.equal(res.disp, ref.disp) and torch.equal(res.warped, ref.warped)
    assert torch.equal(res.extras["inverse"], ref.extras["inverse"])


def test_cpu_chunks_of_pairs_give_the_same_result(monkeypatch):
    """Three pairs in three chunks (first, middle and last chunk) equal the whole batch bit for bit,
    with the caller's settings in every chunk, also under a meta default device and a float64
    default dtype (the fields, similarities and chunk buffers follow the inputs)."""
    import regkit.classical.syn as S

    g = torch.Generator().manual_seed(3)
    moving = spatial.resize_image(torch.rand(3, 1, 8, 8, generator=g), (32, 32))
    fixed = spatial.warp(moving, spatial.random_smooth_disp(3, (32, 32), max_disp=2.0, generator=g))
    kw = dict(iterations=(4, 3, 0), shrink_factors=(4, 2, 1), smoothing_sigmas=(1.0, 0.5, 0.0), grad_step=0.5,
              flow_sigma=2.0)
    whole = regkit.register(moving, fixed, method="syn", **kw)
    monkeypatch.setattr(S, "_CPU_CHUNK_PIXELS", 1)   # one pair per chunk
    chunked = regkit.register(moving, fixed, method="syn", **kw)
    assert not torch.equal(whole.disp[0], whole.disp[2])   # the pairs differ, so a mix-up shows
    S._box_count.cache_clear()
    with torch.device("meta"):   # the chunks' indices and buffers are made on the inputs' device
        under_meta = regkit.register(moving, fixed, method="syn", **kw)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        wide_default = regkit.register(moving, fixed, method="syn", **kw)
    finally:
        torch.set_default_dtype(old)
    for res in (chunked, under_meta, wide_default):
        assert torch.equal(res.disp, whole.disp)
        assert torch.equal(res.extras["inverse"], whole.extras["inverse"])
        for a, b in zip(res.extras["similarity"], whole.extras["similarity"]):
            assert a.dtype == torch.float32 and a.shape == b.shape and torch.equal(a, b)
    assert [tuple(s.shape) for s in whole.extras["similarity"]] == [(3, 4), (3, 3), (3, 0)]


@pytest.mark.parametrize(("n", "size", "chunks"), [(2, 256, [1, 1]), (5, 128, [4, 1])])
def test_cpu_chunks_hold_as_many_pairs_as_fit_the_chunk_size(monkeypatch, n, size, chunks):
    """2^17 pixels per chunk over both half fields: one pair at 256 px, four at 128 px."""
    import regkit.classical.syn as S

    seen, step = [], S.syn_step

    def recording(images, *args, **kw):
        seen.append(images.shape[0] // 2)
        return step(images, *args, **kw)

    monkeypatch.setattr(S, "syn_step", recording)
    x = torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(0))
    regkit.register(x, x, method="syn", iterations=(1,), shrink_factors=(1,), smoothing_sigmas=(0.0,))
    assert seen == chunks
