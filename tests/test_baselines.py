"""regkit.baselines: the unregistered row and the controls, registered like every other method."""

import pytest
import torch
from skimage.exposure import match_histograms

import regkit
from regkit import baselines as B


def test_histogram_match_keeps_layout_takes_histogram():
    g = torch.Generator().manual_seed(0)
    m, f = torch.rand(2, 1, 24, 24, generator=g), torch.rand(2, 1, 24, 24, generator=g) ** 3
    out = B.histogram_match(m, f)
    torch.testing.assert_close(out.flatten(1).sort(1).values, f.flatten(1).sort(1).values)
    # monotone: the ranking of pixels is the moving image's
    assert torch.equal(out.flatten(1).argsort(1), m.flatten(1).argsort(1))


def test_meanstd_match():
    m = torch.linspace(0.2, 0.6, 64).view(1, 1, 8, 8)
    f = 0.3 + 0.5 * torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    out = B.meanstd_match(m, f)
    assert abs(float(out.mean() - f.mean())) < 1e-5 and abs(float(out.std() - f.std())) < 1e-5
    flat = B.meanstd_match(torch.full((1, 1, 8, 8), 0.4), f)
    torch.testing.assert_close(flat, torch.full_like(flat, float(f.mean())))


def test_control_methods():
    x, y = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    res = regkit.register(x, y, method="appearance_transfer")
    assert res.disp is not None and float(res.disp.abs().max()) == 0.0
    res = regkit.register(x, y, method="appearance_transfer", mode="meanstd")
    assert res.warped.shape == x.shape
    with pytest.raises(ValueError, match="mode"):
        regkit.register(x, y, method="appearance_transfer", mode="clahe")
    oracle = regkit.register(x, y, method="fixed_oracle")
    assert torch.equal(oracle.warped, y) and oracle.disp is None
    assert regkit.describe()["fixed_oracle"]["kind"] == "control"


def test_histogram_match_equals_scikit_image():
    g = torch.Generator().manual_seed(2)
    m, f = torch.rand(3, 1, 20, 20, generator=g), torch.rand(3, 1, 20, 20, generator=g) ** 2
    ours = B.histogram_match(m, f)
    for i in range(3):
        ref = match_histograms(m[i].numpy(), f[i].numpy(), channel_axis=0)
        assert torch.allclose(ours[i], torch.from_numpy(ref).float(), atol=1e-6)


def test_constant_shift_moves_everything_by_the_same_amount():
    x = torch.rand(2, 1, 16, 16)
    res = regkit.register(x, x, method="constant_shift", shift=(1.0, -2.0))
    assert torch.equal(res.disp[:, 0], torch.ones(2, 16, 16)) and torch.equal(res.disp[:, 1], -2 * torch.ones(2, 16, 16))
    # an integer shift reads the image 1 px right and 2 px up (border padding at the edges)
    assert torch.allclose(res.warped[..., 2:, :-1], x[..., :-2, 1:], atol=1e-5)
    with pytest.raises(TypeError, match="shift"):
        regkit.register(x, x, method="constant_shift", shift=3.0)
    with pytest.raises(ValueError, match="finite"):
        regkit.register(x, x, method="constant_shift", shift=(float("inf"), 0.0))


def test_identity_is_the_moving_image_with_a_zero_field():
    x, y = torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8)
    res = regkit.register(x, y, method="identity")
    assert torch.equal(res.warped, x) and res.disp.abs().max() == 0
    assert regkit.describe()["identity"]["kind"] == "baseline"
