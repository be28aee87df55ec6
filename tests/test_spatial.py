"""regkit.spatial: warps are exact where they must be and agree with SciPy elsewhere."""

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from regkit import spatial


def _smooth(n=2, size=(48, 40), max_disp=3.0, seed=0, diffeomorphic=True):
    g = torch.Generator().manual_seed(seed)
    return spatial.random_smooth_disp(n, size, max_disp=max_disp, diffeomorphic=diffeomorphic, generator=g)


#: identity and integer-shift warps are exact to this (intensities in [0, 1]), up to 257 px:
#: float32 coordinates land within 7.6e-6 px of the integer (see ``spatial._normalise``)
EXACT = 1e-5


@pytest.mark.parametrize("size", [(8, 8), (28, 28), (64, 48), (256, 256), (255, 257)])
@pytest.mark.parametrize("mode", ["bilinear", "bicubic", "nearest"])
def test_identity_warp_is_exact(size, mode):
    img = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(1))
    out = spatial.warp(img, torch.zeros(2, 2, *size), mode=mode)
    assert out.dtype == torch.float32
    assert torch.allclose(out, img, atol=EXACT, rtol=0)


@pytest.mark.parametrize("size", [(32, 40), (256, 256), (255, 257)])
@pytest.mark.parametrize("dx,dy", [(1, 0), (0, -2), (3, 5), (-4, 1)])
def test_integer_shift_equals_roll_in_the_interior(size, dx, dy):
    img = torch.rand(1, 1, *size, generator=torch.Generator().manual_seed(2))
    disp = torch.zeros(1, 2, *size)
    disp[:, 0], disp[:, 1] = dx, dy
    out = spatial.warp(img, disp)
    # pull: out(p) = img(p + d), i.e. the content moves by -d, which is roll by -d
    rolled = torch.roll(img, shifts=(-dy, -dx), dims=(2, 3))
    m = 6
    assert torch.allclose(out[..., m:-m, m:-m], rolled[..., m:-m, m:-m], atol=EXACT, rtol=0)


def test_warp_samples_in_the_inputs_dtype():
    img = torch.rand(2, 1, 12, 10, generator=torch.Generator().manual_seed(3))
    disp = _smooth(2, (12, 10), max_disp=2.0)
    out32 = spatial.warp(img, disp)
    out64 = spatial.warp(img.double(), disp.double())
    assert out32.dtype == torch.float32 and out64.dtype == torch.float64
    assert torch.allclose(out64.float(), out32, atol=1e-5)
    half = spatial.warp(img.half(), disp.half())   # float32 coordinates inside, float16 out
    assert half.dtype == torch.float16
    assert torch.allclose(half.float(), spatial.warp(img.half().float(), disp.half().float()), atol=1e-3)
    assert spatial.resize_disp(disp.double(), (7, 9)).dtype == torch.float64
    assert spatial.compose(disp.double(), disp.double()).dtype == torch.float64
    assert spatial.integrate_velocity(disp.double(), 3).dtype == torch.float64


def test_unchecked_path_gives_the_same_result_and_grid_is_cached():
    img = torch.rand(3, 2, 20, 24, generator=torch.Generator().manual_seed(4))
    disp = _smooth(3, (20, 24), max_disp=3.0)
    assert torch.equal(spatial.warp(img, disp), spatial.warp(img, disp, check=False))
    assert torch.equal(spatial.compose(disp, disp), spatial.compose(disp, disp, check=False))
    assert spatial.identity_grid((20, 24)) is spatial.identity_grid((20, 24))


def test_large_cpu_batches_are_chunked_without_changing_the_result():
    n, size = 9, (128, 130)  # 9 x 16,640 px: several chunks of 2^17 px
    img = torch.rand(n, 1, *size, generator=torch.Generator().manual_seed(5))
    disp = _smooth(n, size, max_disp=5.0)
    whole = torch.cat([spatial.warp(img[i : i + 1], disp[i : i + 1]) for i in range(n)])
    assert torch.equal(spatial.warp(img, disp), whole)
    # with gradients the chunks are concatenated; the gradient is that of one pair at a time
    d = disp.clone().requires_grad_()
    spatial.warp(img, d).square().sum().backward()
    d1 = disp[4:5].clone().requires_grad_()
    spatial.warp(img[4:5], d1).square().sum().backward()
    assert torch.allclose(d.grad[4:5], d1.grad, atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 1, 1, 8), (1, 1, 8, 1)])
def test_warp_refuses_fields_thinner_than_two_pixels(shape):
    with pytest.raises(ValueError, match="at least 2 x 2"):
        spatial.warp(torch.rand(*shape), torch.zeros(shape[0], 2, *shape[2:]))


def test_warp_agrees_with_scipy_map_coordinates():
    img = torch.rand(1, 1, 40, 52, generator=torch.Generator().manual_seed(3))
    disp = _smooth(1, (40, 52), max_disp=6.0)
    out = spatial.warp(img, disp)
    grid = spatial.identity_grid((40, 52), dtype=torch.float64) + disp.double()
    coords = np.stack([grid[0, 1].numpy(), grid[0, 0].numpy()])  # SciPy wants (row, col)
    ref = ndimage.map_coordinates(img[0, 0].double().numpy(), coords.astype(np.float64), order=1, mode="nearest")
    # float32 sampling: coordinates carry ~4e-6 px of rounding at 52 px
    assert np.abs(out[0, 0].numpy() - ref).max() < 1e-5
    out64 = spatial.warp(img.double(), disp.double())   # float64 in, float64 sampling
    assert np.abs(out64[0, 0].numpy() - ref).max() < 1e-12


def test_affine_warp_agrees_with_scipy_affine_transform():
    img = torch.rand(1, 1, 36, 44, generator=torch.Generator().manual_seed(4))
    theta = spatial.affine_matrix((36, 44), rotation=20.0, scale=1.1, shear=5.0, tx=2.5, ty=-1.5)
    out = spatial.warp(img, spatial.affine_to_disp(theta, (36, 44)))
    a, t = theta[0, :, :2].double().numpy(), theta[0, :, 2].double().numpy()
    # SciPy maps output (row, col) to input (row, col): swap x/y in matrix and offset.
    swap = np.array([[0, 1], [1, 0]])
    ref = ndimage.affine_transform(img[0, 0].double().numpy(), swap @ a @ swap, offset=swap @ t, order=1, mode="nearest")
    # the field is computed in float32: coordinates carry ~4e-6 px of rounding at 40 px
    assert np.abs(out[0, 0].numpy() - ref).max() < 1e-5


def test_affine_to_disp_recovers_a_known_matrix():
    theta = torch.tensor([[[1.1, -0.2, 3.0], [0.15, 0.9, -2.0]], [[1.0, 0.0, 0.5], [0.0, 1.0, 0.25]]])
    disp = spatial.affine_to_disp(theta, (30, 34))
    assert torch.allclose(spatial.disp_to_affine(disp), theta, atol=1e-5)
    # and the field itself is A p + t - p at a probe point
    x, y = 7.0, 11.0
    expected = theta[0, :, :2] @ torch.tensor([x, y]) + theta[0, :, 2] - torch.tensor([x, y])
    assert torch.allclose(disp[0, :, 11, 7], expected, atol=1e-5)


def test_affine_matrix_conventions():
    # tx > 0 reads to the right, so content moves left
    theta = spatial.affine_matrix((9, 9), tx=2.0)
    assert torch.equal(theta, torch.tensor([[[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]]]))
    # a positive rotation turns the content counter-clockwise on screen (y down)
    img = torch.zeros(1, 1, 21, 21)
    img[0, 0, 10, 17] = 1.0  # a dot to the right of the centre
    out = spatial.warp(img, spatial.affine_to_disp(spatial.affine_matrix((21, 21), rotation=90.0), (21, 21)))
    row, col = divmod(int(out.flatten().argmax()), 21)
    assert (row, col) == (3, 10)  # now above the centre: counter-clockwise
    # the centre is fixed by rotation and scaling
    theta = spatial.affine_matrix((21, 21), rotation=33.0, scale=1.3, shear=7.0)
    centre = torch.tensor([10.0, 10.0])
    assert torch.allclose(theta[0, :, :2] @ centre + theta[0, :, 2], centre, atol=1e-5)


def test_invert_affine():
    theta = spatial.affine_matrix((20, 20), rotation=torch.tensor([10.0, -30.0]), scale=torch.tensor([0.9, 1.2]), tx=3.0)
    inv = spatial.invert_affine(theta)
    v = spatial.affine_to_disp(inv, (20, 20))
    both = spatial.compose(spatial.affine_to_disp(theta, (20, 20)), v)
    inside = spatial.inside_mask(v)[:, 0]  # outside, compose reads the border of the first field
    assert both.norm(dim=1)[inside].max() < 1e-4


def test_jacobian_determinant_of_an_affine_field_is_det_a():
    theta = torch.tensor([[[1.3, 0.4, 2.0], [-0.2, 0.8, 1.0]]])
    det = spatial.jacobian_determinant(spatial.affine_to_disp(theta, (24, 24)))
    expected = torch.linalg.det(theta[:, :, :2])
    assert torch.allclose(det, expected.view(1, 1, 1).expand_as(det), atol=1e-5)


def test_jacobian_determinant_detects_folding():
    disp = torch.zeros(1, 2, 16, 16)
    disp[0, 0, :, 8:] = -3.0  # columns 8.. read 3 px to the left: the map folds at the step
    assert (spatial.jacobian_determinant(disp) <= 0).any()


def test_integrating_zero_gives_zero():
    assert torch.equal(spatial.integrate_velocity(torch.zeros(2, 2, 16, 20)), torch.zeros(2, 2, 16, 20))


def test_integrated_velocity_is_inverted_by_its_negative():
    v = _smooth(1, (48, 48), max_disp=4.0, diffeomorphic=False)
    fwd, bwd = spatial.integrate_velocity(v), spatial.integrate_velocity(-v)
    err = spatial.compose(fwd, bwd)[..., 4:-4, 4:-4].norm(dim=1)
    assert err.mean() < 0.05 and err.max() < 0.3
    assert (spatial.jacobian_determinant(fwd) > 0).all()


def test_compose_with_identity_changes_nothing():
    u = _smooth()
    zero = torch.zeros_like(u)
    assert torch.allclose(spatial.compose(u, zero), u, atol=EXACT, rtol=0)
    assert torch.equal(spatial.compose(zero, u), u)


def test_compose_matches_two_warps():
    img = torch.rand(1, 1, 48, 48, generator=torch.Generator().manual_seed(5))
    img = spatial.resize_image(spatial.resize_image(img, (6, 6), mode="bicubic"), (48, 48), mode="bicubic")
    u, v = _smooth(1, (48, 48), seed=1), _smooth(1, (48, 48), seed=2)
    once = spatial.warp(img, spatial.compose(u, v))
    twice = spatial.warp(spatial.warp(img, u), v)  # interpolates twice, so it is a little blurrier
    assert (once - twice)[..., 6:-6, 6:-6].abs().max() < 0.01


def test_resize_disp_rescales_values():
    theta = spatial.affine_matrix((33, 17), rotation=10.0, tx=3.0)
    small = spatial.affine_to_disp(theta, (33, 17))
    big = spatial.resize_disp(small, (65, 33))
    # the same physical transform sampled on the finer grid (scale factor 2 in both axes)
    theta_big = theta.clone()
    theta_big[:, :, 2] *= 2
    assert torch.allclose(big, spatial.affine_to_disp(theta_big, (65, 33)), atol=1e-4)


def test_resize_disp_scales_x_and_y_by_their_own_factors():
    # 5 x 9 -> 9 x 33 (align_corners): y by (9-1)/(5-1) = 2, x by (33-1)/(9-1) = 4
    u = torch.zeros(1, 2, 5, 9)
    u[:, 0], u[:, 1] = 3.0, 5.0
    out = spatial.resize_disp(u, (9, 33))
    assert out.shape == (1, 2, 9, 33)
    assert torch.allclose(out[:, 0], torch.full((1, 9, 33), 12.0)) and torch.allclose(out[:, 1], torch.full((1, 9, 33), 10.0))
    # and a field that reads the image's far corner still does after resizing
    corner = torch.zeros(1, 2, 5, 9)
    corner[:, 0], corner[:, 1] = 8.0, 4.0   # from (0, 0) to (W-1, H-1)
    big = spatial.resize_disp(corner, (17, 12))
    assert torch.allclose(big[0, :, 0, 0], torch.tensor([11.0, 16.0]))


def test_warp_labels_keeps_dtype_and_values():
    lab = torch.randint(0, 4, (1, 1, 20, 20), generator=torch.Generator().manual_seed(0))
    out = spatial.warp_labels(lab, _smooth(1, (20, 20)))
    assert out.dtype == lab.dtype and set(out.unique().tolist()) <= {0, 1, 2, 3}


def test_inside_mask_and_sample_points():
    disp = torch.zeros(1, 2, 10, 10)
    disp[:, 0] = 3.0
    mask = spatial.inside_mask(disp)
    assert mask[0, 0, :, :7].all() and not mask[0, 0, :, 7:].any()
    field = spatial.identity_grid((10, 10)).clone()
    pts = torch.tensor([[[2.5, 3.25], [9.0, 0.0]]])
    assert torch.allclose(spatial.sample_points(field, pts), pts)


def test_random_generators_are_seeded_and_bounded():
    a = _smooth(3, (32, 32), max_disp=5.0, seed=7, diffeomorphic=False)
    b = _smooth(3, (32, 32), max_disp=5.0, seed=7, diffeomorphic=False)
    assert torch.equal(a, b)
    assert torch.allclose(a.norm(dim=1).flatten(1).amax(1), torch.full((3,), 5.0), atol=1e-4)
    d = _smooth(3, (32, 32), max_disp=5.0, seed=7, diffeomorphic=True)
    assert (spatial.jacobian_determinant(d) > 0).all()
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    t1 = spatial.random_affine(5, (64, 64), rotation=10.0, scale=0.1, shear=0.0, translation=4.0, generator=g1)
    t2 = spatial.random_affine(5, (64, 64), rotation=10.0, scale=0.1, shear=0.0, translation=4.0, generator=g2)
    assert torch.equal(t1, t2)
    det = torch.linalg.det(t1[:, :, :2])
    assert ((det >= 0.9**2 - 1e-5) & (det <= 1.1**2 + 1e-5)).all()


def test_warp_runs_in_float32_under_autocast_and_keeps_gradients():
    img = torch.rand(1, 1, 16, 16, requires_grad=True)
    disp = (0.5 * torch.randn(1, 2, 16, 16)).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = spatial.warp(img, disp)
    assert out.dtype == torch.float32
    out.sum().backward()
    assert img.grad is not None and disp.grad is not None and disp.grad.abs().sum() > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_warp_follows_the_input_device():
    img = torch.rand(1, 1, 16, 16, device="cuda")
    out = spatial.warp(img, torch.zeros(1, 2, 16, 16, device="cuda"))
    assert out.device == img.device and torch.equal(out, img)


def test_identity_grid_layout():
    g = spatial.identity_grid((3, 4))
    assert g.shape == (1, 2, 3, 4)
    assert torch.equal(g[0, 0, 2], torch.arange(4.0)) and torch.equal(g[0, 1, :, 3], torch.arange(3.0))
    assert math.isclose(float(g[0, 0].max()), 3.0)


# ----------------------------------------------------------------------------------------------
# Gradients: every differentiable resampler against finite differences, in float64
# ----------------------------------------------------------------------------------------------


def _off_grid(n, size, seed):
    """A float64 field away from integer sample points (bilinear interpolation has kinks there)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randint(-2, 3, (n, 2, *size), generator=g).double() + 0.2 + 0.6 * torch.rand(n, 2, *size, generator=g, dtype=torch.float64)
    return u.requires_grad_()


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_warp_gradcheck(mode):
    img = torch.rand(2, 2, 6, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64).requires_grad_()
    disp = _off_grid(2, (6, 7), 1)
    assert torch.autograd.gradcheck(lambda i, d: spatial.warp(i, d, mode=mode, padding="zeros"), (img, disp))


def test_compose_gradcheck():
    u, v = _off_grid(1, (6, 5), 2), _off_grid(1, (6, 5), 3)
    assert torch.autograd.gradcheck(spatial.compose, (u, v))


def test_integrate_velocity_gradcheck():
    v = (0.8 * torch.rand(1, 2, 6, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64) - 0.4)
    v = (v + 0.013).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: spatial.integrate_velocity(x, 3), (v,))


def test_resize_disp_gradcheck():
    u = torch.randn(1, 2, 5, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: spatial.resize_disp(x, (9, 4)), (u,))
