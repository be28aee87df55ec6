"""regkit.metrics agree with scikit-image / torchmetrics / NumPy and behave at the edges."""

import numpy as np
import pytest
import torch
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from regkit import metrics, spatial


def _pair(n=3, c=1, size=(48, 40), seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(n, c, *size, generator=g)
    a = spatial.resize_image(spatial.resize_image(a, (size[0] // 4, size[1] // 4)), size)  # some structure
    b = (0.7 * a + 0.3 * torch.rand(n, c, *size, generator=g)).clamp(0, 1)
    return a, b


def test_shapes_are_one_value_per_pair():
    a, b = _pair(n=4)
    for fn in (metrics.mse, metrics.psnr, metrics.ssim, metrics.ncc, metrics.soft_dice):
        out = fn(a, b)
        assert out.shape == (4,) and out.dtype == torch.float32


def test_ssim_agrees_with_skimage():
    a, b = _pair(n=2, c=1)
    ours = metrics.ssim(a, b)
    for i in range(2):
        ref = structural_similarity(
            a[i, 0].double().numpy(), b[i, 0].double().numpy(), gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False, data_range=1.0,
        )
        assert abs(float(ours[i]) - ref) < 1e-4


def test_ssim_multichannel_agrees_with_skimage():
    a, b = _pair(n=1, c=3)
    ref = structural_similarity(
        a[0].permute(1, 2, 0).double().numpy(), b[0].permute(1, 2, 0).double().numpy(), channel_axis=2,
        gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0,
    )
    assert abs(float(metrics.ssim(a, b)[0]) - ref) < 1e-4


def test_mse_and_psnr_agree_with_skimage_and_torchmetrics():
    from torchmetrics.functional.image import peak_signal_noise_ratio as tm_psnr

    a, b = _pair(n=2)
    for i in range(2):
        x, y = a[i, 0].double().numpy(), b[i, 0].double().numpy()
        assert abs(float(metrics.mse(a, b)[i]) - mean_squared_error(x, y)) < 1e-6
        assert abs(float(metrics.psnr(a, b)[i]) - peak_signal_noise_ratio(x, y, data_range=1.0)) < 1e-3
        assert abs(float(metrics.psnr(a, b)[i]) - float(tm_psnr(a[i : i + 1], b[i : i + 1], data_range=1.0))) < 1e-3


def test_ncc_agrees_with_pearson_and_is_one_on_itself():
    a, b = _pair(n=2)
    for i in range(2):
        ref = np.corrcoef(a[i].flatten().numpy(), b[i].flatten().numpy())[0, 1]
        assert abs(float(metrics.ncc(a, b)[i]) - ref) < 1e-5
    assert torch.allclose(metrics.ncc(a, a), torch.ones(2), atol=1e-6)
    assert torch.allclose(metrics.ncc(a, 1 - a), -torch.ones(2), atol=1e-6)
    assert torch.equal(metrics.ncc(torch.zeros(1, 1, 8, 8), a[:1, :, :8, :8]), torch.zeros(1))


def test_ncc_is_per_image_not_across_the_batch():
    a, b = _pair(n=2)
    swapped = metrics.ncc(torch.cat((a[:1], a[1:] * 0.5 + 0.2)), torch.cat((b[:1], b[1:])))
    assert abs(float(swapped[0]) - float(metrics.ncc(a[:1], b[:1])[0])) < 1e-6


def test_masks_select_pixels():
    a, b = _pair(n=1)
    mask = torch.zeros(1, 1, *a.shape[-2:], dtype=torch.bool)
    mask[..., :20, :] = True
    assert torch.allclose(metrics.mse(a, b, mask), metrics.mse(a[..., :20, :], b[..., :20, :]))
    with pytest.raises(ValueError, match="mask"):
        metrics.mse(a, b, torch.zeros_like(mask))


def test_dice_binary_and_labels():
    a = torch.zeros(1, 1, 10, 10)
    b = torch.zeros(1, 1, 10, 10)
    a[..., :5, :] = 1
    b[..., :, :5] = 1
    assert torch.allclose(metrics.dice(a, b), torch.tensor([0.5]))
    assert torch.equal(metrics.dice(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)), torch.ones(1))
    la = torch.tensor([[[[1, 1, 2, 2]]]])
    lb = torch.tensor([[[[1, 2, 2, 2]]]])
    expected = (2 * 1 / 3 + 2 * 2 / 5) / 2
    assert torch.allclose(metrics.dice(la, lb, labels=[1, 2]), torch.tensor([expected]))


def test_soft_dice():
    x = torch.rand(2, 1, 8, 8)
    ref = 2 * (x * x).flatten(1).sum(1) / (2 * x.flatten(1).sum(1))
    assert torch.allclose(metrics.soft_dice(x, x), ref, atol=1e-6)
    assert torch.equal(metrics.soft_dice(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)), torch.ones(1))


def test_tre_with_a_known_field():
    theta = spatial.affine_matrix((32, 32), tx=2.0, ty=-1.0)
    disp = spatial.affine_to_disp(theta, (32, 32))
    fixed_pts = torch.tensor([[[5.0, 5.0], [20.5, 11.25], [30.0, 2.0]]])
    moving_pts = fixed_pts + torch.tensor([2.0, -1.0])
    assert torch.allclose(metrics.tre(moving_pts, fixed_pts, disp), torch.zeros(1), atol=1e-5)
    assert torch.allclose(metrics.tre(moving_pts, fixed_pts), torch.tensor([5.0**0.5]))
    valid = torch.tensor([[True, False, False]])
    assert torch.allclose(metrics.tre(moving_pts + torch.tensor([[[1.0, 0], [9, 9], [9, 9]]]), fixed_pts, disp, valid), torch.ones(1))


def test_folding_fraction():
    disp = torch.zeros(2, 2, 16, 16)
    disp[1, 0, :, 8:] = -3.0
    frac = metrics.folding_fraction(disp)
    assert frac[0] == 0 and 0 < frac[1] < 0.5


def test_metrics_do_not_track_gradients():
    a = torch.rand(1, 1, 16, 16, requires_grad=True)
    assert not metrics.mse(a, a.detach()).requires_grad


def test_epe_known_values_and_mask():
    true = torch.zeros(2, 2, 8, 8)
    est = true.clone()
    est[0, 0] = 3.0
    est[0, 1] = 4.0  # pair 0: 5 px everywhere; pair 1: exact
    assert torch.allclose(metrics.epe(est, true), torch.tensor([5.0, 0.0]))
    mask = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    mask[..., :2, :] = True
    est[0, :, 2:, :] = 0.0  # only the masked rows are wrong now
    assert torch.allclose(metrics.epe(est, true, mask), torch.tensor([5.0, 0.0]))
    assert torch.allclose(metrics.epe(est, true), torch.tensor([5.0 * 2 / 8, 0.0]))
