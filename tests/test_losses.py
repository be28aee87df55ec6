"""regkit.losses: zero at a perfect match, differentiable, consistent with the metrics."""

import pytest
import torch

from regkit import losses, metrics, spatial


def _img(seed=0, n=2, size=(32, 32)):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, size[0] // 4, size[1] // 4, generator=g)
    return spatial.resize_image(x, size, mode="bicubic").clamp(0, 1)


@pytest.mark.parametrize("name", sorted(losses.SIMILARITIES))
def test_similarity_is_zero_at_a_match_and_larger_otherwise(name):
    fn = losses.similarity_loss(name)
    a, b = _img(0), _img(1)
    assert float(fn(a, a)) < 1e-4
    assert float(fn(a, b)) > float(fn(a, a)) + 1e-3


def test_losses_agree_with_metrics():
    a, b = _img(0), _img(1)
    assert torch.allclose(losses.mse_loss(a, b), metrics.mse(a, b).mean())
    assert torch.allclose(losses.ncc_loss(a, b), (1 - metrics.ncc(a, b)).mean(), atol=1e-5)


def test_local_ncc_is_finite_on_flat_images_and_has_gradients():
    flat = torch.full((1, 1, 16, 16), 0.5, requires_grad=True)
    loss = losses.local_ncc_loss(flat, torch.full((1, 1, 16, 16), 0.5))
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(flat.grad).all()


def test_regularisers_vanish_where_they_should():
    const = torch.ones(1, 2, 16, 16) * 3.0
    assert float(losses.diffusion_loss(const)) == 0.0
    affine = spatial.affine_to_disp(torch.tensor([[[1.2, 0.1, 1.0], [0.0, 0.9, 2.0]]]), (16, 16))
    assert float(losses.bending_loss(affine)) < 1e-8
    assert float(losses.diffusion_loss(affine)) > 0


def test_gradient_of_mse_through_warp_points_downhill():
    fixed = _img(2, n=1)
    moving = spatial.warp(fixed, torch.full((1, 2, 32, 32), 1.5))
    disp = torch.zeros(1, 2, 32, 32, requires_grad=True)
    opt = torch.optim.Adam([disp], lr=0.1)
    start = float(losses.mse_loss(spatial.warp(moving, disp.detach()), fixed))
    for _ in range(30):
        opt.zero_grad()
        loss = losses.mse_loss(spatial.warp(moving, disp), fixed) + 0.1 * losses.diffusion_loss(disp)
        loss.backward()
        opt.step()
    assert float(losses.mse_loss(spatial.warp(moving, disp.detach()), fixed)) < 0.5 * start


def test_modules_wrap_the_functions():
    a, b = _img(0), _img(1)
    assert torch.equal(losses.MSELoss()(a, b), losses.mse_loss(a, b))
    assert torch.equal(losses.NCCLoss()(a, b), losses.ncc_loss(a, b))
    assert torch.equal(losses.LocalNCCLoss(5)(a, b), losses.local_ncc_loss(a, b, 5))
    u = torch.randn(1, 2, 8, 8)
    assert torch.equal(losses.DiffusionLoss()(u), losses.diffusion_loss(u))
    assert torch.equal(losses.BendingLoss()(u), losses.bending_loss(u))
