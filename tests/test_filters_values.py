"""regkit.filters: exact messages for bad input and exact values on hand-sized cases (taps,
radius rules, clipped radii, dtypes, gradients). Tolerances: float32 rounding unless stated."""

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from regkit import filters as F

Z = torch.zeros(1, 1, 4, 4)

ERRORS = {
    "kernel sigma": (lambda: F.gaussian_kernel1d(0.0), ValueError, "sigma must be positive, got 0.0"),
    "kernel sigma type": (lambda: F.gaussian_kernel1d("1"), TypeError, "sigma must be a number, got '1'"),
    "kernel truncate": (lambda: F.gaussian_kernel1d(1.0, -1.0), ValueError, "truncate must be positive, got -1.0"),
    "kernel rule": (lambda: F.gaussian_kernel1d(1.0, 3.0, "floor"), ValueError,
                    "radius_rule must be one of ('ceil', 'round'), got 'floor'"),
    "blur x": (lambda: F.gaussian_blur(torch.zeros(4, 4), 1.0), ValueError, "x must have 4 dimensions, got shape (4, 4)"),
    "blur sigma": (lambda: F.gaussian_blur(Z, -1.0), ValueError, "sigma must be non-negative, got -1.0"),
    "filter x": (lambda: F.gaussian_filter(torch.zeros(4, 4), 1.0), ValueError, "x must have 4 dimensions, got shape (4, 4)"),
    "filter sigma": (lambda: F.gaussian_filter(Z, 0.0), ValueError, "sigma must be positive, got 0.0"),
    "filter padding": (lambda: F.gaussian_filter(Z, 1.0, padding="reflect"), ValueError,
                       "padding must be one of ('replicate', 'zeros', 'valid'), got 'reflect'"),
    "gradient 3-D": (lambda: F.image_gradient(torch.zeros(1, 4, 4)), ValueError,
                     "x must be a grey batch N,1,H,W, got shape (1, 4, 4)"),
    "gradient 2 channels": (lambda: F.image_gradient(torch.zeros(1, 2, 4, 4)), ValueError,
                            "x must be a grey batch N,1,H,W, got shape (1, 2, 4, 4)"),
    "gradient 1 px high": (lambda: F.image_gradient(torch.zeros(1, 1, 1, 4)), ValueError,
                           "x must be at least 2 x 2 pixels for a gradient, got (1, 4)"),
    "gradient 1 px wide": (lambda: F.image_gradient(torch.zeros(1, 1, 4, 1)), ValueError,
                           "x must be at least 2 x 2 pixels for a gradient, got (4, 1)"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_bad_input_message(case):
    call, error, message = ERRORS[case]
    with pytest.raises(error) as info:
        call()
    assert str(info.value) == message


def _gauss(sigma, radius):
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    return k / k.sum()


def test_kernel_taps_by_hand():
    """sigma 1, radius 1: ``(e^-1/2, 1, e^-1/2) / (1 + 2 e^-1/2) = (0.274069, 0.451863, 0.274069)``."""
    k = F.gaussian_kernel1d(1.0, 1.0)
    assert k.dtype == torch.float32 and k.device.type == "cpu"
    assert np.allclose(k.numpy(), [0.2740686, 0.4518628, 0.2740686], atol=1e-7)
    assert F.gaussian_kernel1d(1.0, device="meta").device.type == "meta"


@pytest.mark.parametrize("sigma, truncate, ceil_radius, round_radius", [
    (1.0, 1.4, 2, 1),     # ceil(1.4) = 2, int(1.9) = 1
    (1.0, 1.6, 2, 2),     # ceil(1.6) = 2, int(2.1) = 2
    (2.0, 1.1, 3, 2),     # ceil(2.2) = 3, int(2.7) = 2
    (0.2, 1.0, 1, 0),     # ceil(0.2) = 1 (at least 1), int(0.7) = 0
])
def test_radius_rules(sigma, truncate, ceil_radius, round_radius):
    for rule, radius in (("ceil", ceil_radius), ("round", round_radius)):
        k = F.gaussian_kernel1d(sigma, truncate, rule)
        assert np.allclose(k.numpy(), _gauss(sigma, radius), atol=1e-7), rule
    assert np.allclose(F.gaussian_kernel1d(sigma, truncate).numpy(), _gauss(sigma, ceil_radius), atol=1e-7)


def test_default_truncations():
    """``gaussian_kernel1d`` and ``gaussian_blur`` truncate at 3 sigma, ``gaussian_filter`` at 3.5."""
    assert F.gaussian_kernel1d(1.0).numel() == 7
    x = torch.zeros(1, 1, 21, 21)
    x[..., 10, 10] = 1.0
    blur = F.gaussian_blur(x, 1.0)
    assert np.allclose(blur[0, 0, 10].numpy(), np.pad(_gauss(1.0, 3) * _gauss(1.0, 3)[3], 7), atol=1e-7)
    filt = F.gaussian_filter(x, 1.0)   # int(3.5 + 0.5) = 4
    assert np.allclose(filt[0, 0, 10].numpy(), np.pad(_gauss(1.0, 4) * _gauss(1.0, 4)[4], 6), atol=1e-7)


def test_blur_clips_the_radius_to_small_images():
    """A 3 x 2 image blurred with sigma 4 (radius 12): the radius is clipped to ``min(h, w) - 1 = 1``
    and the three middle taps are renormalised, which is then an ordinary replicate blur."""
    x = torch.tensor([[0.0, 1.0], [0.5, 0.25], [1.0, 0.0]])[None, None]
    t = _gauss(4.0, 12)[11:14]
    t = t / t.sum()
    xp = np.pad(x[0, 0].numpy(), 1, mode="edge")
    rows = t[0] * xp[:, :-2] + t[1] * xp[:, 1:-1] + t[2] * xp[:, 2:]
    expected = t[0] * rows[:-2] + t[1] * rows[1:-1] + t[2] * rows[2:]
    assert np.allclose(F.gaussian_blur(x, 4.0)[0, 0].numpy(), expected, atol=1e-6)
    assert np.allclose(F.gaussian_filter(x, 4.0, padding="replicate")[0, 0].numpy(), expected, atol=1e-6)


def test_blur_of_a_one_pixel_row_is_a_copy():
    x = torch.rand(1, 2, 1, 5, generator=torch.Generator().manual_seed(0))
    out = F.gaussian_blur(x, 1.0)
    assert torch.equal(out, x) and out is not x
    one = F.gaussian_filter(x.expand(1, 2, 4, 5).contiguous(), 0.2, 1.0, padding="replicate")   # radius int(0.7) = 0
    assert torch.equal(one, x.expand(1, 2, 4, 5))


@pytest.mark.parametrize("h, w", [(9, 14), (14, 9)])
def test_blur_matches_scipy_on_non_square_images(h, w):
    x = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(h), dtype=torch.float64)
    ref = np.stack([[ndimage.gaussian_filter(c, 1.2, mode="nearest", truncate=3.0) for c in img] for img in x.numpy()])
    out = F.gaussian_blur(x, 1.2)
    assert out.dtype == torch.float64
    assert np.allclose(out.numpy(), ref, atol=1e-7)


@pytest.mark.parametrize("padding, mode", [("zeros", "constant"), ("replicate", "nearest")])
def test_gaussian_filter_in_float64_and_non_square(padding, mode):
    x = torch.rand(1, 2, 12, 17, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    out = F.gaussian_filter(x, 1.1, 2.5, padding=padding)
    ref = np.stack([ndimage.gaussian_filter(c, 1.1, mode=mode, truncate=2.5) for c in x[0].numpy()])
    assert out.dtype == torch.float64
    assert np.allclose(out[0].numpy(), ref, atol=1e-7)
    valid = F.gaussian_filter(x, 1.1, 2.5, padding="valid")   # radius int(2.75 + 0.5) = 3
    assert valid.shape == (1, 2, 6, 11) and torch.allclose(valid, F.gaussian_filter(x, 1.1, 2.5)[..., 3:-3, 3:-3])


def test_image_gradient_of_a_quadratic():
    """``f = x^2 + 3y`` on 4 x 5 px: central differences give ``2x`` inside; one-sided at the
    borders, ``1`` at x = 0 and ``2 (W - 1) - 1 = 7`` at x = 4; d/dy is 3 everywhere."""
    y, x = torch.meshgrid(torch.arange(4.0), torch.arange(5.0), indexing="ij")
    g = F.image_gradient((x**2 + 3 * y)[None, None])
    assert g.shape == (1, 2, 4, 5)
    assert g[0, 0, 0].tolist() == [1.0, 2.0, 4.0, 6.0, 7.0]
    assert torch.equal(g[0, 1], torch.full((4, 5), 3.0))
    assert math.isclose(float(F.image_gradient(torch.rand(2, 1, 2, 2)).shape[0]), 2)


def test_the_device_follows_the_inputs_not_the_default_device():
    x = torch.rand(1, 2, 9, 8, generator=torch.Generator().manual_seed(5))
    calls = {"blur": lambda: F.gaussian_blur(x, 1.3), "filter": lambda: F.gaussian_filter(x, 1.3),
             "filter replicate": lambda: F.gaussian_filter(x, 1.3, padding="replicate"),
             "gradient": lambda: F.image_gradient(x[:, :1])}
    for name, call in calls.items():
        ref = call()
        with torch.device("meta"):
            out = call()
        assert out.device.type == "cpu" and torch.equal(out, ref), name


@pytest.mark.parametrize("sigma", [0.3, 0.7, 1.3, 2.5])
def test_taps_are_computed_in_float64_then_rounded(sigma):
    """The taps equal the float64 Gaussian rounded once to float32 (a float32 computation is off by
    up to 1e-7 at sigma 0.3)."""
    for rule in ("ceil", "round"):
        k = F.gaussian_kernel1d(sigma, 3.0, rule)
        ref = torch.from_numpy(_gauss(sigma, (k.numel() - 1) // 2)).float()
        assert float((k - ref).abs().max()) <= 1e-9, rule


def test_blur_uses_the_ceil_radius_and_filter_the_round_one():
    """sigma 1, truncate 1.4: ``gaussian_blur`` takes radius ceil(1.4) = 2, ``gaussian_filter``
    int(1.9) = 1 (SciPy's ``radius=`` gives each)."""
    from scipy import ndimage

    x = torch.rand(1, 1, 9, 11, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    blur = F.gaussian_blur(x, 1.0, truncate=1.4)
    assert np.allclose(blur[0, 0].numpy(), ndimage.gaussian_filter(x[0, 0].numpy(), 1.0, mode="nearest", radius=2),
                       atol=1e-7)
    filt = F.gaussian_filter(x, 1.0, truncate=1.4, padding="replicate")
    assert np.allclose(filt[0, 0].numpy(), ndimage.gaussian_filter(x[0, 0].numpy(), 1.0, mode="nearest", radius=1),
                       atol=1e-7)


@pytest.mark.parametrize("h, w", [(3, 8), (8, 3)])
def test_blur_radius_equal_to_a_side_is_clipped(h, w):
    """Radius 3 (sigma 1) on a side of exactly 3 px is clipped to 2, with the five middle taps
    renormalised: replicate padding of the clipped kernel, computed here row by row."""
    x = torch.rand(1, 1, h, w, generator=torch.Generator().manual_seed(h), dtype=torch.float64)
    t = _gauss(1.0, 3)[1:6]
    t = t / t.sum()
    xp = np.pad(x[0, 0].numpy(), 2, mode="edge")
    rows = sum(t[i] * xp[:, i: i + w] for i in range(5))
    expected = sum(t[i] * rows[i: i + h] for i in range(5))
    assert np.allclose(F.gaussian_blur(x, 1.0)[0, 0].numpy(), expected, atol=1e-12)
