"""Shared helpers of the classical methods: Gaussian smoothing, gradients, pyramids, checks."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from regkit import spatial
from regkit.classical import _common as C


def test_gaussian_blur_matches_scipy_nearest():
    x = torch.rand(2, 2, 40, 33, generator=torch.Generator().manual_seed(0))
    ours = C.gaussian_blur(x, 1.5)
    ref = np.stack([[ndimage.gaussian_filter(c, 1.5, mode="nearest", truncate=3.0) for c in img] for img in x.numpy()])
    # scipy's radius is int(truncate * sigma + 0.5) = 5, ours ceil(4.5) = 5: the same taps
    assert np.allclose(ours.numpy(), ref, atol=1e-5)


def test_gaussian_blur_zero_sigma_identity_and_constants():
    u = torch.randn(1, 2, 8, 8)
    assert C.gaussian_blur(u, 0.0) is u
    c = torch.full((1, 2, 6, 6), 3.0)
    assert torch.allclose(C.gaussian_blur(c, 4.0), c)  # radius larger than the image is clipped


def test_gaussian_blur_bad_sigma():
    with pytest.raises(ValueError, match="sigma"):
        C.gaussian_blur(torch.zeros(1, 1, 8, 8), -1.0)


def test_image_gradient_of_linear_ramp_is_exact():
    g = spatial.identity_grid((6, 7))
    img = (0.5 * g[:, :1] - 0.25 * g[:, 1:]).clone()
    grad = C.image_gradient(img)
    assert torch.allclose(grad[:, 0], torch.full((1, 6, 7), 0.5))
    assert torch.allclose(grad[:, 1], torch.full((1, 6, 7), -0.25))


def test_pyramid_and_iterations():
    assert C.pyramid_sizes((256, 200), 3) == [(64, 50), (128, 100), (256, 200)]
    assert C.pyramid_sizes((40, 40), 4) == [(20, 20), (40, 40)]  # stops at 16 px
    assert C.check_levels_iterations(2, (3, 4)) == (2, [3, 4])
    with pytest.raises(ValueError, match="one count per level"):
        C.check_levels_iterations(3, (3, 4))
    with pytest.raises(ValueError, match="all be zero"):
        C.check_levels_iterations(2, (0, 0))
    with pytest.raises(ValueError, match="iterations"):
        C.check_levels_iterations(2, 0)
