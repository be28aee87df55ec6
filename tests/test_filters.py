"""regkit.filters: Gaussian smoothing and gradients against SciPy and scikit-image."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from regkit import filters, spatial


def test_gaussian_blur_matches_scipy_nearest():
    x = torch.rand(2, 2, 40, 33, generator=torch.Generator().manual_seed(0))
    ours = filters.gaussian_blur(x, 1.5)
    ref = np.stack([[ndimage.gaussian_filter(c, 1.5, mode="nearest", truncate=3.0) for c in img] for img in x.numpy()])
    # scipy's radius is int(truncate * sigma + 0.5) = 5, ours ceil(4.5) = 5: the same taps
    assert np.allclose(ours.numpy(), ref, atol=1e-5)


@pytest.mark.parametrize("padding,mode", [("zeros", "constant"), ("replicate", "nearest")])
def test_gaussian_filter_matches_scipy(padding, mode):
    x = torch.rand(1, 3, 30, 27, generator=torch.Generator().manual_seed(1))
    ours = filters.gaussian_filter(x, 1.5, 3.5, padding=padding)
    ref = np.stack([ndimage.gaussian_filter(c, 1.5, mode=mode, truncate=3.5) for c in x[0].numpy()])
    assert np.allclose(ours[0].numpy(), ref, atol=1e-6)


def test_gaussian_filter_valid_is_the_interior_of_same():
    x = torch.rand(1, 1, 30, 30, generator=torch.Generator().manual_seed(2))
    valid = filters.gaussian_filter(x, 1.5, padding="valid")
    same = filters.gaussian_filter(x, 1.5, padding="zeros")
    assert valid.shape[-2:] == (20, 20)  # 11 taps: 5 px lost on each side
    assert torch.allclose(valid, same[..., 5:-5, 5:-5], atol=1e-6)


def test_kernel_radius_rules():
    assert filters.gaussian_kernel1d(1.5, 3.0).numel() == 11  # ceil(4.5) = 5
    assert filters.gaussian_kernel1d(1.5, 3.5, "round").numel() == 11  # int(5.25 + 0.5) = 5
    assert filters.gaussian_kernel1d(0.1).numel() == 3  # at least radius 1 with "ceil"
    assert filters.gaussian_kernel1d(0.1, radius_rule="round").numel() == 1
    assert float(filters.gaussian_kernel1d(2.0).sum()) == pytest.approx(1.0, abs=1e-6)


def test_gaussian_blur_zero_sigma_identity_and_constants():
    u = torch.randn(1, 2, 8, 8)
    assert filters.gaussian_blur(u, 0.0) is u
    c = torch.full((1, 2, 6, 6), 3.0)
    assert torch.allclose(filters.gaussian_blur(c, 4.0), c)  # radius larger than the image is clipped


@pytest.mark.parametrize("sigma", [-1.0, float("nan"), float("inf")])
def test_gaussian_blur_bad_sigma(sigma):
    with pytest.raises(ValueError, match="sigma"):
        filters.gaussian_blur(torch.zeros(1, 1, 8, 8), sigma)


def test_gaussian_filter_bad_padding():
    with pytest.raises(ValueError, match="padding"):
        filters.gaussian_filter(torch.zeros(1, 1, 8, 8), 1.0, padding="reflect")


def test_image_gradient_of_linear_ramp_is_exact():
    g = spatial.identity_grid((6, 7))
    img = (0.5 * g[:, :1] - 0.25 * g[:, 1:]).clone()
    grad = filters.image_gradient(img)
    assert torch.allclose(grad[:, 0], torch.full((1, 6, 7), 0.5))
    assert torch.allclose(grad[:, 1], torch.full((1, 6, 7), -0.25))


def test_image_gradient_needs_two_pixels():
    with pytest.raises(ValueError, match="at least 2"):
        filters.image_gradient(torch.zeros(1, 1, 1, 5))
