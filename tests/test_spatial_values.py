"""regkit.spatial: exact messages for bad input, and exact values on cases small enough to
compute by hand (B-spline weights, affine matrices, masks, chunked warps).

Tolerances: float32 rounding (``1e-6``) unless stated; float64 cases to ``1e-12``.
"""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from regkit import spatial as S

I = torch.rand(1, 1, 6, 7, generator=torch.Generator().manual_seed(0))
U = torch.zeros(1, 2, 6, 7)
T = torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]])
LONG = torch.zeros(1, 1, 6, 7, dtype=torch.long)

# (call, error type, the whole message): each names the argument as the caller wrote it
ERRORS = {
    "identity_grid": (lambda: S.identity_grid((1, 5)), ValueError, "size must be at least (2, 2), got (1, 5)"),
    "warp image": (lambda: S.warp(torch.rand(6, 7), U), ValueError, "image must have 4 dimensions, got shape (6, 7)"),
    "warp disp": (lambda: S.warp(I, torch.zeros(1, 2, 5, 7)), ValueError,
                  "disp must match the image batch and size: expected N=1, H,W=(6, 7), got shape (1, 2, 5, 7)"),
    "warp mode": (lambda: S.warp(I, U, mode="linear"), ValueError,
                  "mode must be one of ('bilinear', 'nearest', 'bicubic'), got 'linear'"),
    "warp padding": (lambda: S.warp(I, U, padding="edge"), ValueError,
                     "padding must be one of ('border', 'zeros', 'reflection'), got 'edge'"),
    "warp 1 px": (lambda: S.warp(torch.rand(1, 1, 1, 7), torch.zeros(1, 2, 1, 7)), ValueError,
                  "disp must be at least 2 x 2 pixels (align_corners=True), got (1, 7)"),
    "warp 1 px wide": (lambda: S.warp(torch.rand(1, 1, 7, 1), torch.zeros(1, 2, 7, 1)), ValueError,
                       "disp must be at least 2 x 2 pixels (align_corners=True), got (7, 1)"),
    "warp_labels labels": (lambda: S.warp_labels(torch.zeros(6, 7, dtype=torch.long), U), ValueError,
                           "labels must have 4 dimensions, got shape (6, 7)"),
    "warp_labels disp": (lambda: S.warp_labels(LONG, torch.zeros(2, 2, 6, 7)), ValueError,
                         "disp must match the image batch and size: expected N=1, H,W=(6, 7), got shape (2, 2, 6, 7)"),
    "affine_matrix size": (lambda: S.affine_matrix((1, 3)), ValueError, "size must be at least (2, 2), got (1, 3)"),
    **{f"affine_matrix {n} 2-D": ((lambda n=n: S.affine_matrix((5, 5), **{n: torch.ones(1, 1)})), ValueError,
                                  f"{n} must be a number or a 1-D tensor, got shape (1, 1)")
       for n in ("rotation", "scale", "shear", "tx", "ty")},
    **{f"affine_matrix {n} inf": ((lambda n=n: S.affine_matrix((5, 5), **{n: math.inf})), ValueError,
                                  f"{n} must be finite, got inf")
       for n in ("rotation", "scale", "shear", "tx", "ty")},
    "affine_matrix scale": (lambda: S.affine_matrix((5, 5), scale=torch.tensor([1.0, -2.0]), shear=torch.tensor([3.0, 4.0])),
                            ValueError, "scale must be positive, got tensor([ 1., -2.])"),
    "random_affine n": (lambda: S.random_affine(0, (5, 5)), ValueError, "n must be positive, got 0"),
    "random_affine n float": (lambda: S.random_affine(2.0, (5, 5)), TypeError, "n must be an integer, got 2.0"),
    **{f"random_affine {n}": ((lambda n=n: S.random_affine(2, (5, 5), **{n: -1.0})), ValueError,
                              f"{n} must be non-negative, got -1.0")
       for n in ("rotation", "scale", "shear", "translation")},
    "random_affine scale 1": (lambda: S.random_affine(2, (5, 5), scale=1.0), ValueError,
                              "scale must be below 1 (a relative change), got 1.0"),
    "invert_affine ndim": (lambda: S.invert_affine(T[0]), ValueError, "theta must have 3 dimensions, got shape (2, 3)"),
    "invert_affine shape": (lambda: S.invert_affine(torch.zeros(1, 3, 3)), ValueError,
                            "theta must have shape (N, 2, 3), got (1, 3, 3)"),
    "affine_to_disp ndim": (lambda: S.affine_to_disp(T[0], (4, 4)), ValueError,
                            "theta must have 3 dimensions, got shape (2, 3)"),
    "affine_to_disp shape": (lambda: S.affine_to_disp(torch.zeros(1, 2, 2), (4, 4)), ValueError,
                             "theta must have shape (N, 2, 3), got (1, 2, 2)"),
    "affine_to_disp size": (lambda: S.affine_to_disp(T, (4, 1)), ValueError, "size must be at least (2, 2), got (4, 1)"),
    "fit_affine src": (lambda: S.fit_affine([[0.0, 0.0]], torch.zeros(1, 2)), TypeError,
                       "src must be a torch.Tensor, got list"),
    "fit_affine dst": (lambda: S.fit_affine(torch.zeros(1, 2), [[0.0, 0.0]]), TypeError,
                       "dst must be a torch.Tensor, got list"),
    "fit_affine shapes": (lambda: S.fit_affine(torch.zeros(4, 2), torch.zeros(5, 2)), ValueError,
                          "src and dst must both be (K, 2) or (N, K, 2), got (4, 2) and (5, 2)"),
    "fit_affine 4-D": (lambda: S.fit_affine(torch.zeros(1, 1, 4, 2), torch.zeros(1, 1, 4, 2)), ValueError,
                       "src and dst must both be (K, 2) or (N, K, 2), got (1, 1, 4, 2) and (1, 1, 4, 2)"),
    "fit_affine 1-D": (lambda: S.fit_affine(torch.zeros(2), torch.zeros(2)), ValueError,
                       "src and dst must both be (K, 2) or (N, K, 2), got (2,) and (2,)"),
    "fit_affine 3 coordinates": (lambda: S.fit_affine(torch.zeros(4, 3), torch.zeros(4, 3)), ValueError,
                                 "src and dst must both be (K, 2) or (N, K, 2), got (4, 3) and (4, 3)"),
    "fit_affine weight": (lambda: S.fit_affine(torch.zeros(2, 4, 2), torch.zeros(2, 4, 2), torch.ones(2, 3)), ValueError,
                          "weight must have shape (2, 4), got (2, 3)"),
    "fit_affine weight 1-D": (lambda: S.fit_affine(torch.zeros(4, 2), torch.zeros(4, 2), torch.ones(4, 1)), ValueError,
                              "weight must have shape (4,), got (4, 1)"),
    "fit_affine 2 points": (lambda: S.fit_affine(torch.zeros(2, 2), torch.zeros(2, 2)), ValueError,
                            "fit_affine needs at least 3 points, got 2"),
    "fit_affine 2 kept": (lambda: S.fit_affine(torch.rand(5, 2), torch.rand(5, 2), torch.tensor([1, 1, 0, 0, 0]).bool()),
                          ValueError, "fit_affine needs at least 3 points, got 2"),
    "fit_affine 2 batched": (lambda: S.fit_affine(torch.zeros(3, 2, 2), torch.zeros(3, 2, 2)), ValueError,
                             "fit_affine needs at least 3 points, got 2"),
    "disp_to_affine": (lambda: S.disp_to_affine(torch.zeros(1, 3, 4, 4)), ValueError,
                       "disp must have 2 channels (x, y displacement in pixels), got shape (1, 3, 4, 4)"),
    "compose u": (lambda: S.compose(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 4, 4)), ValueError,
                  "u must have 2 channels (x, y displacement in pixels), got shape (1, 3, 4, 4)"),
    "compose v": (lambda: S.compose(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 5)), ValueError,
                  "v must match the image batch and size: expected N=1, H,W=(4, 4), got shape (1, 2, 4, 5)"),
    "compose 1 px": (lambda: S.compose(torch.zeros(1, 2, 1, 4), torch.zeros(1, 2, 1, 4)), ValueError,
                     "u must be at least 2 x 2 pixels, got (1, 4)"),
    "compose 1 px wide": (lambda: S.compose(torch.zeros(1, 2, 4, 1), torch.zeros(1, 2, 4, 1)), ValueError,
                          "u must be at least 2 x 2 pixels, got (4, 1)"),
    "integrate velocity": (lambda: S.integrate_velocity(torch.zeros(1, 1, 4, 4)), ValueError,
                           "velocity must have 2 channels (x, y displacement in pixels), got shape (1, 1, 4, 4)"),
    "integrate steps": (lambda: S.integrate_velocity(torch.zeros(1, 2, 4, 4), 2.0), TypeError,
                        "steps must be an integer, got 2.0"),
    "integrate steps < 0": (lambda: S.integrate_velocity(torch.zeros(1, 2, 4, 4), -1), ValueError,
                            "steps must be non-negative, got -1"),
    "integrate 1 px": (lambda: S.integrate_velocity(torch.zeros(1, 2, 4, 1)), ValueError,
                       "velocity must be at least 2 x 2 pixels, got (4, 1)"),
    "integrate 1 px high": (lambda: S.integrate_velocity(torch.zeros(1, 2, 1, 4)), ValueError,
                            "velocity must be at least 2 x 2 pixels, got (1, 4)"),
    "resize_image image": (lambda: S.resize_image(torch.zeros(4, 4), (2, 2)), ValueError,
                           "image must have 4 dimensions, got shape (4, 4)"),
    "resize_image size": (lambda: S.resize_image(I, (2, 1)), ValueError, "size must be at least (2, 2), got (2, 1)"),
    "resize_image mode": (lambda: S.resize_image(I, (2, 2), mode="area"), ValueError,
                          "mode must be 'bilinear', 'bicubic' or 'nearest', got 'area'"),
    "resize_disp disp": (lambda: S.resize_disp(torch.zeros(1, 1, 4, 4), (2, 2)), ValueError,
                         "disp must have 2 channels (x, y displacement in pixels), got shape (1, 1, 4, 4)"),
    "resize_disp size": (lambda: S.resize_disp(U, (2, 1)), ValueError, "size must be at least (2, 2), got (2, 1)"),
    "resize_disp own size": (lambda: S.resize_disp(torch.zeros(1, 2, 1, 4), (2, 2)), ValueError,
                             "disp's size must be at least (2, 2), got (1, 4)"),
    "jacobian_determinant": (lambda: S.jacobian_determinant(torch.zeros(1, 1, 4, 4)), ValueError,
                             "disp must have 2 channels (x, y displacement in pixels), got shape (1, 1, 4, 4)"),
    "inside_mask": (lambda: S.inside_mask(torch.zeros(1, 1, 4, 4)), ValueError,
                    "disp must have 2 channels (x, y displacement in pixels), got shape (1, 1, 4, 4)"),
    "sample_points field": (lambda: S.sample_points(torch.zeros(4, 4), torch.zeros(1, 1, 2)), ValueError,
                            "field must have 4 dimensions, got shape (4, 4)"),
    "sample_points points": (lambda: S.sample_points(I, torch.zeros(1, 2)), ValueError,
                             "points must have 3 dimensions, got shape (1, 2)"),
    "sample_points batch": (lambda: S.sample_points(I, torch.zeros(2, 1, 2)), ValueError,
                            "points must have shape (N=1, K, 2), got (2, 1, 2)"),
    "sample_points xyz": (lambda: S.sample_points(I, torch.zeros(1, 4, 3)), ValueError,
                          "points must have shape (N=1, K, 2), got (1, 4, 3)"),
    # N=1 and C=3 differ, so the message must name the batch size, not the channels
    "sample_points batch 3 channels": (lambda: S.sample_points(torch.zeros(1, 3, 6, 7), torch.zeros(2, 1, 2)), ValueError,
                                       "points must have shape (N=1, K, 2), got (2, 1, 2)"),
    "random_smooth_disp n": (lambda: S.random_smooth_disp(0, (8, 8)), ValueError, "n must be positive, got 0"),
    "random_smooth_disp n float": (lambda: S.random_smooth_disp(1.0, (8, 8)), TypeError, "n must be an integer, got 1.0"),
    "random_smooth_disp size": (lambda: S.random_smooth_disp(1, (8, 1)), ValueError,
                                "size must be at least (2, 2), got (8, 1)"),
    "random_smooth_disp max_disp": (lambda: S.random_smooth_disp(1, (8, 8), max_disp=-1.0), ValueError,
                                    "max_disp must be non-negative, got -1.0"),
    "random_smooth_disp control": (lambda: S.random_smooth_disp(1, (8, 8), control=0), ValueError,
                                   "control must be positive, got 0"),
    "random_smooth_disp control float": (lambda: S.random_smooth_disp(1, (8, 8), control=4.0), TypeError,
                                         "control must be an integer, got 4.0"),
    "random_smooth_disp control 1": (lambda: S.random_smooth_disp(1, (8, 8), control=1), ValueError,
                                     "control must be at least 2, got 1"),
    "bspline_basis n_points": (lambda: S.bspline_basis(9.0, 6), TypeError, "n_points must be an integer, got 9.0"),
    "bspline_basis n_ctrl": (lambda: S.bspline_basis(9, 6.0), TypeError, "n_ctrl must be an integer, got 6.0"),
    "bspline_basis n_points 1": (lambda: S.bspline_basis(1, 6), ValueError, "need n_points >= 2 and n_ctrl >= 4, got 1 and 6"),
    "bspline_basis n_ctrl 3": (lambda: S.bspline_basis(9, 3), ValueError, "need n_points >= 2 and n_ctrl >= 4, got 9 and 3"),
    "bspline_upsample control": (lambda: S.bspline_upsample(torch.zeros(1, 3, 6, 6), (8, 8)), ValueError,
                                 "control must have 2 channels (x, y displacement in pixels), got shape (1, 3, 6, 6)"),
    "bspline_upsample size": (lambda: S.bspline_upsample(torch.zeros(1, 2, 6, 6), (8, 1)), ValueError,
                              "size must be at least (2, 2), got (8, 1)"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_bad_input_message(case):
    call, error, message = ERRORS[case]
    with pytest.raises(error) as info:
        call()
    assert str(info.value) == message


def test_smallest_accepted_inputs():
    """The limits themselves pass: 2 x 2 fields, 3 points, 2 control points, 4 B-spline controls,
    zero ranges and zero steps."""
    two = torch.zeros(1, 2, 2, 2)
    assert S.warp(torch.rand(1, 1, 2, 2), two).shape == (1, 1, 2, 2)
    assert S.compose(two, two).shape == two.shape
    assert S.integrate_velocity(two, 0).shape == two.shape
    assert S.resize_disp(two, (2, 2)).shape == two.shape
    pts = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert torch.allclose(S.fit_affine(pts, pts + 1), torch.tensor([[1.0, 0, 1], [0, 1.0, 1]]), atol=1e-6)
    assert torch.allclose(S.fit_affine(pts[None], pts[None] + 1)[0], torch.tensor([[1.0, 0, 1], [0, 1.0, 1]]), atol=1e-6)
    assert S.random_smooth_disp(1, (4, 4), control=2, generator=torch.Generator().manual_seed(0)).shape == (1, 2, 4, 4)
    assert S.bspline_basis(2, 4).shape == (2, 4)
    assert S.bspline_basis(3, 4).shape == (3, 4)
    zero = S.random_affine(3, (5, 5), rotation=0, scale=0, shear=0, translation=0)
    assert torch.equal(zero, T.expand(3, 2, 3))
    assert torch.equal(S.random_smooth_disp(2, (6, 6), max_disp=0.0, diffeomorphic=False), torch.zeros(2, 2, 6, 6))


def test_checks_are_on_by_default():
    bad = torch.full((1, 2, 4, 4), math.nan)
    for call in (lambda: S.warp(torch.rand(1, 1, 4, 4), bad), lambda: S.compose(bad, bad),
                 lambda: S.integrate_velocity(bad), lambda: S.resize_disp(bad, (3, 3)),
                 lambda: S.resize_image(bad[:, :1], (3, 3))):
        with pytest.raises(ValueError, match="contains NaN or infinite values"):
            call()


# ------------------------------------------------------------------------------------------------
# Cubic B-splines
# ------------------------------------------------------------------------------------------------

def _b3(t):
    """The uniform cubic B-spline by cases: (4 - 6t^2 + 3|t|^3)/6 on |t| < 1, (2 - |t|)^3/6 on
    1 <= |t| < 2, else 0."""
    a = abs(t)
    return (4 - 6 * a**2 + 3 * a**3) / 6 if a < 1 else (2 - a) ** 3 / 6 if a < 2 else 0.0


def test_bspline_basis_by_hand():
    r"""7 pixels, 5 control points: spacing ``(7 - 1)/(5 - 3) = 3``, controls at -3, 0, 3, 6, 9.
    Pixel 0 sits on control 1: weights ``(1/6, 4/6, 1/6, 0, 0)``. Pixel 1 is 4/3, 1/3, 2/3, 5/3
    and 8/3 spacings from them: ``(4/81, 31/54, 10/27, 1/162, 0)``."""
    b = S.bspline_basis(7, 5, dtype=torch.float64)
    assert b.dtype == torch.float64 and b.device.type == "cpu"
    expected0 = torch.tensor([1 / 6, 4 / 6, 1 / 6, 0, 0], dtype=torch.float64)
    expected1 = torch.tensor([4 / 81, 31 / 54, 10 / 27, 1 / 162, 0], dtype=torch.float64)
    assert torch.allclose(b[0], expected0, atol=1e-12, rtol=0)
    assert torch.allclose(b[1], expected1, atol=1e-12, rtol=0)
    # the whole table against the kernel written by cases, and the last row mirrors the first
    full = torch.tensor([[_b3((x - (j - 1) * 3.0) / 3.0) for j in range(5)] for x in range(7)], dtype=torch.float64)
    assert torch.allclose(b, full, atol=1e-12, rtol=0)
    assert torch.allclose(b[6], expected0.flip(0), atol=1e-12, rtol=0)
    # float32 by default, on the CPU unless told
    b32 = S.bspline_basis(7, 5)
    assert b32.dtype == torch.float32 and b32.device.type == "cpu"
    assert torch.allclose(b32.double(), full, atol=1e-7, rtol=0)
    assert S.bspline_basis(7, 5, device="meta").device.type == "meta"


@pytest.mark.parametrize("n_points, n_ctrl", [(9, 6), (16, 4), (5, 8)])
def test_bspline_basis_other_sizes(n_points, n_ctrl):
    s = (n_points - 1) / (n_ctrl - 3)
    full = torch.tensor([[_b3((x - (j - 1) * s) / s) for j in range(n_ctrl)] for x in range(n_points)],
                        dtype=torch.float64)
    assert torch.allclose(S.bspline_basis(n_points, n_ctrl, dtype=torch.float64), full, atol=1e-12, rtol=0)


def test_bspline_upsample_of_single_control_points():
    """``u(y, x) = sum_ij By[y, i] c[i, j] Bx[x, j]``: one control point gives the outer product of
    its two basis columns; x and y have their own grids (5 x 6 controls, 7 x 9 pixels)."""
    c = torch.zeros(1, 2, 5, 6)
    c[0, 0, 2, 3] = 1.0
    c[0, 1, 1, 4] = 2.0
    u = S.bspline_upsample(c, (7, 9))
    by, bx = S.bspline_basis(7, 5, dtype=torch.float64), S.bspline_basis(9, 6, dtype=torch.float64)
    assert u.shape == (1, 2, 7, 9) and u.dtype == torch.float32
    assert torch.allclose(u[0, 0].double(), torch.outer(by[:, 2], bx[:, 3]), atol=1e-6)
    assert torch.allclose(u[0, 1].double(), 2 * torch.outer(by[:, 1], bx[:, 4]), atol=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ua = S.bspline_upsample(c, (7, 9))
    assert ua.dtype == torch.float32 and torch.allclose(ua, u, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# Affine maps
# ------------------------------------------------------------------------------------------------

def test_affine_matrix_by_hand():
    r"""On 3 x 5 px (centre ``c = (2, 1)``), rotation 90, shear 45, scale 2, ``t = (1, -2)``:
    ``A = 2 R(90) Sh(45) = 2 [[0, -1], [1, 0]] [[1, 1], [0, 1]] = [[0, -2], [2, 2]]`` and
    ``c + t - A c = (2, 1) + (1, -2) - (-2, 6) = (5, -7)``."""
    m = S.affine_matrix((3, 5), rotation=90.0, scale=2.0, shear=45.0, tx=1.0, ty=-2.0)
    assert m.dtype == torch.float32
    assert torch.allclose(m, torch.tensor([[[0.0, -2.0, 5.0], [2.0, 2.0, -7.0]]]), atol=1e-5)
    # shear alone is a horizontal shear about the centre: x' = x + y - 1
    assert torch.allclose(S.affine_matrix((3, 5), shear=45.0), torch.tensor([[[1.0, 1.0, -1.0], [0.0, 1.0, 0.0]]]),
                          atol=1e-6)


def test_affine_matrix_broadcasts_numbers_to_tensors_and_keeps_float32():
    rot = torch.tensor([0.0, 90.0], dtype=torch.float64)
    m = S.affine_matrix((3, 5), rotation=rot, tx=torch.tensor([1, 2]), ty=3)
    assert m.shape == (2, 2, 3) and m.dtype == torch.float32
    assert torch.allclose(m[0], torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 3.0]]), atol=1e-6)
    assert torch.allclose(m[1], torch.tensor([[0.0, -1.0, 5.0], [1.0, 0.0, 2.0]]), atol=1e-5)


def _decompose(m, size):
    """Rotation, scale, shear (degrees, ratio, degrees) and translation of ``affine_matrix``'s
    ``A = s R(theta) Sh(phi)``: ``theta = atan2(A10, A00)``, ``s = |A e_x|``,
    ``tan(phi) = (cos(theta) A01 + sin(theta) A11) / s``, ``t = m[:, 2] - c + A c``."""
    a = m[:, :, :2].double()
    theta = torch.atan2(a[:, 1, 0], a[:, 0, 0])
    s = torch.hypot(a[:, 0, 0], a[:, 1, 0])
    phi = torch.atan((torch.cos(theta) * a[:, 0, 1] + torch.sin(theta) * a[:, 1, 1]) / s)
    c = torch.tensor([(size[1] - 1) / 2, (size[0] - 1) / 2], dtype=torch.float64)
    t = m[:, :, 2].double() - c + a @ c
    return torch.rad2deg(theta), s, torch.rad2deg(phi), t


def test_random_affine_draws_each_parameter_uniformly_in_its_documented_range():
    """Defaults: rotation in [-15, 15] deg, scale in [0.9, 1.1], shear in [-5, 5] deg, tx and ty in
    [-10, 10] px, independently; 4000 draws come within 3% of every end."""
    m = S.random_affine(4000, (33, 65), generator=torch.Generator().manual_seed(0))
    rot, s, shear, t = _decompose(m, (33, 65))
    for v, lo, hi in ((rot, -15, 15), (s, 0.9, 1.1), (shear, -5, 5), (t[:, 0], -10, 10), (t[:, 1], -10, 10)):
        span = hi - lo
        assert lo - 1e-4 <= float(v.min()) < lo + 0.03 * span
        assert hi - 0.03 * span < float(v.max()) <= hi + 1e-4
        assert abs(float(v.mean()) - (lo + hi) / 2) < 0.03 * span
    assert abs(float(torch.corrcoef(t.T)[0, 1])) < 0.1


def test_random_affine_ranges_are_the_arguments():
    m = S.random_affine(500, (9, 9), rotation=40.0, scale=0.5, shear=20.0, translation=3.0,
                        generator=torch.Generator().manual_seed(1))
    rot, s, shear, t = _decompose(m, (9, 9))
    for v, hi in ((rot, 40.0), (s - 1, 0.5), (shear, 20.0), (t, 3.0)):
        assert float(v.abs().max()) <= hi + 1e-4 and float(v.abs().max()) > 0.9 * hi


def test_invert_affine_by_hand():
    """The inverse of ``x -> 2x + 1, y -> 4y - 2`` is ``x -> (x - 1)/2, y -> (y + 2)/4``."""
    theta = torch.tensor([[[2.0, 0.0, 1.0], [0.0, 4.0, -2.0]]])
    assert torch.allclose(S.invert_affine(theta), torch.tensor([[[0.5, 0.0, -0.5], [0.0, 0.25, 0.5]]]))


def test_affine_to_disp_by_hand_in_its_dtype():
    """``u(p) = A p + t - p`` with ``A = [[1, 1], [0, 2]]``, ``t = (1, 0)`` on 2 x 3 px:
    ``u_x = y + 1`` and ``u_y = y``."""
    theta = torch.tensor([[[1.0, 1.0, 1.0], [0.0, 2.0, 0.0]]], dtype=torch.float64)
    u = S.affine_to_disp(theta, (2, 3))
    y = torch.tensor([[0.0], [1.0]], dtype=torch.float64).expand(2, 3)
    assert u.dtype == torch.float64
    assert torch.equal(u[0, 0], y + 1) and torch.equal(u[0, 1], y)


def test_fit_affine_weights():
    """Five points on ``dst = 2 src + (3, -1)`` and one outlier: with weight 0 on the outlier the
    fit is exact; with float weights it is the weighted least-squares solution (computed here by
    the normal equations); a bool mask keeps the true points, batched or not."""
    src = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 1.0], [1.0, 3.0]])
    dst = src * 2 + torch.tensor([3.0, -1.0])
    dst[5] += torch.tensor([4.0, 2.0])
    exact = torch.tensor([[2.0, 0.0, 3.0], [0.0, 2.0, -1.0]])
    w = torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    assert torch.allclose(S.fit_affine(src, dst, w), exact, atol=1e-5)
    keep = w.bool()
    assert torch.allclose(S.fit_affine(src, dst, keep), exact, atol=1e-5)
    assert torch.allclose(S.fit_affine(src[None], dst[None], keep[None])[0], exact, atol=1e-5)
    wf = torch.tensor([1.0, 2.0, 3.0, 1.0, 0.5, 0.25])
    x = torch.cat((src, torch.ones(6, 1)), 1).double()
    wd = torch.diag(wf.double())
    normal = torch.linalg.solve(x.T @ wd @ x, x.T @ wd @ dst.double()).T
    got = S.fit_affine(src, dst, wf)
    assert torch.allclose(got.double(), normal, atol=1e-5)
    assert torch.allclose(S.fit_affine(src[None].expand(2, 6, 2), dst[None].expand(2, 6, 2), wf.expand(2, 6))[1].double(),
                          normal, atol=1e-5)
    # unweighted differs (the outlier pulls), and the fit keeps the points' dtype
    assert not torch.allclose(S.fit_affine(src, dst), exact, atol=1e-2)
    assert S.fit_affine(src.double(), dst.double()).dtype == torch.float64


def test_disp_to_affine_with_a_mask_and_in_float64():
    """An affine field on the left half and noise on the right: the mask picks the affine."""
    theta = S.affine_matrix((8, 10), rotation=5.0, tx=1.0).double()
    u = S.affine_to_disp(theta, (8, 10))
    u[..., 5:] += torch.randn(1, 2, 8, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    mask = torch.zeros(1, 1, 8, 10, dtype=torch.bool)
    mask[..., :5] = True
    got = S.disp_to_affine(u, mask)
    assert got.dtype == torch.float64
    assert torch.allclose(got, theta, atol=1e-9)
    assert not torch.allclose(S.disp_to_affine(u), theta, atol=1e-2)


# ------------------------------------------------------------------------------------------------
# Grids, masks, points, labels
# ------------------------------------------------------------------------------------------------

def test_identity_grid_values_device_and_dtype():
    g = S.identity_grid((2, 3), dtype=torch.float64)
    assert g.dtype == torch.float64 and g.shape == (1, 2, 2, 3)
    assert g[0, 0].tolist() == [[0, 1, 2], [0, 1, 2]] and g[0, 1].tolist() == [[0, 0, 0], [1, 1, 1]]
    assert S.identity_grid((2, 3), device="meta").device.type == "meta"
    assert S.identity_grid((2, 3), device="cpu").device.type == "cpu"


def test_inside_mask_edges():
    """A point exactly on the first or last pixel centre is inside; 1e-3 px beyond is not (5 x 7 px:
    x in [0, 6], y in [0, 4])."""
    u = torch.zeros(1, 2, 5, 7)
    u[0, 0, 0, 1], u[0, 0, 0, 2] = -1.0, -2.001       # x: 0 (inside), -0.001 (outside)
    u[0, 0, 1, 5], u[0, 0, 1, 4] = 1.0, 2.001         # x: 6 (inside), 6.001 (outside)
    u[0, 1, 1, 0], u[0, 1, 2, 0] = -1.0, -2.001       # y: 0 (inside), -0.001 (outside)
    u[0, 1, 3, 3], u[0, 1, 2, 3] = 1.0, 2.001         # y: 4 (inside), 4.001 (outside)
    m = S.inside_mask(u)[0, 0]
    assert m.dtype == torch.bool
    assert m[0, 1] and not m[0, 2] and m[1, 5] and not m[1, 4]
    assert m[1, 0] and not m[2, 0] and m[3, 3] and not m[2, 3]
    assert int(m.sum()) == 35 - 4


def test_sample_points_reads_the_border_outside_and_keeps_precision():
    f = S.identity_grid((4, 5)).clone() * torch.tensor([1.0, 10.0]).view(1, 2, 1, 1)
    p = torch.tensor([[[-1.0, 0.5], [6.0, 3.0], [1.25, 2.5]]])
    out = S.sample_points(f, p)
    assert torch.allclose(out, torch.tensor([[[0.0, 5.0], [4.0, 30.0], [1.25, 25.0]]]))
    # float64 field, float32 points: the sampling runs in float64 (1e8 + x is not a float32)
    big = (S.identity_grid((4, 5), dtype=torch.float64)[:, :1] + 1e8).clone()
    got = S.sample_points(big, torch.tensor([[[1.0, 1.0], [3.0, 2.0]]]))
    assert got.dtype == torch.float64 and torch.equal(got[0, :, 0], torch.tensor([1e8 + 1, 1e8 + 3], dtype=torch.float64))
    # float32 field, float64 points: float64 coordinates (1/3 px is not a float32)
    third = S.sample_points(S.identity_grid((4, 5)).clone(), torch.tensor([[[1 / 3, 0.0]]], dtype=torch.float64))
    assert third.dtype == torch.float64 and abs(float(third[0, 0, 0]) - 1 / 3) < 1e-12
    half = S.sample_points(f.half(), p.half())
    assert half.dtype == torch.float16


def test_warp_labels_keeps_float_labels_unrounded_and_their_dtype():
    lab = torch.full((1, 1, 4, 4), 0.4, dtype=torch.float64)
    out = S.warp_labels(lab, torch.zeros(1, 2, 4, 4))
    assert out.dtype == torch.float64 and torch.allclose(out, lab)
    ints = torch.arange(16).view(1, 1, 4, 4)
    shift = torch.zeros(1, 2, 4, 4)
    shift[:, 0] = 1.0
    moved = S.warp_labels(ints, shift)
    assert moved.dtype == torch.long
    assert moved[0, 0, :, :3].equal(ints[0, 0, :, 1:]) and int(moved[0, 0, :, 3].abs().sum()) == 0


def test_the_device_follows_the_inputs_not_the_default_device():
    """With another default device (meta), functions of CPU tensors still compute on the CPU
    (every tensor they make follows their inputs) and give the same values."""
    g = torch.Generator().manual_seed(7)
    img, u = torch.rand(2, 1, 8, 9, generator=g), torch.randn(2, 2, 8, 9, generator=g)
    theta, pts = S.affine_matrix((8, 9), rotation=10.0, tx=1.0), torch.rand(2, 3, 2, generator=g) * 7
    src, ctrl = torch.rand(6, 2, generator=g), torch.randn(2, 2, 5, 6, generator=g)
    calls = {
        "warp": lambda: S.warp(img, u), "warp_labels": lambda: S.warp_labels((img > 0.5).long(), u),
        "compose": lambda: S.compose(u, u), "integrate_velocity": lambda: S.integrate_velocity(u, 3),
        "resize_image": lambda: S.resize_image(img, (5, 6)), "resize_disp": lambda: S.resize_disp(u, (5, 6)),
        "affine_to_disp": lambda: S.affine_to_disp(theta, (4, 5)), "disp_to_affine": lambda: S.disp_to_affine(u),
        "invert_affine": lambda: S.invert_affine(theta), "fit_affine": lambda: S.fit_affine(src, 2 * src + 1),
        "jacobian_determinant": lambda: S.jacobian_determinant(u), "inside_mask": lambda: S.inside_mask(u),
        "sample_points": lambda: S.sample_points(img, pts), "bspline_upsample": lambda: S.bspline_upsample(ctrl, (8, 9)),
    }
    for name, call in calls.items():
        ref = call()
        with torch.device("meta"):
            out = call()
        assert out.device.type == "cpu" and torch.equal(out, ref), name


# ------------------------------------------------------------------------------------------------
# Integration, resampling modes, dtypes and the CPU chunks of a warp
# ------------------------------------------------------------------------------------------------

def test_integrate_velocity_of_constant_and_linear_fields():
    """A constant velocity is a translation: exp(v) = v exactly, whatever the steps. A linear
    contraction ``v = c x`` (c = -0.1) stays linear under scaling and squaring (bilinear reads of a
    linear field are exact, and the sample points stay inside): ``u = ((1 + c/2^K)^(2^K) - 1) x``."""
    v = torch.zeros(1, 2, 5, 7, dtype=torch.float64)
    v[:, 0], v[:, 1] = 1.25, -0.5
    for steps in (0, 1, 7):
        assert torch.allclose(S.integrate_velocity(v, steps), v, atol=1e-12)
    lin = torch.zeros(1, 2, 5, 33, dtype=torch.float64)
    x = torch.arange(33, dtype=torch.float64)
    lin[:, 0] = -0.1 * x
    for steps in (3, 7):
        k = 2**steps
        want = ((1 - 0.1 / k) ** k - 1) * x
        got = S.integrate_velocity(lin, steps)
        assert torch.allclose(got[0, 0], want.expand(5, 33), atol=1e-10) and float(got[0, 1].abs().max()) == 0.0
    assert torch.equal(S.integrate_velocity(lin), S.integrate_velocity(lin, 7))          # 7 steps by default
    assert not torch.allclose(S.integrate_velocity(lin), S.integrate_velocity(lin, 8), atol=1e-7)


def test_warp_modes():
    """A 0.4 px shift: nearest reads the same pixel, bilinear blends 60/40, bicubic equals
    grid_sample's bicubic (align_corners=True) at the same points."""
    img = torch.rand(2, 1, 6, 7, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    u = torch.zeros(2, 2, 6, 7, dtype=torch.float64)
    u[:, 0] = 0.4
    assert torch.equal(S.warp(img, u, mode="nearest")[..., :6], img[..., :6])
    assert torch.allclose(S.warp(img, u)[..., :6], 0.6 * img[..., :6] + 0.4 * img[..., 1:], atol=1e-12)
    xs = (torch.arange(7, dtype=torch.float64) + 0.4) / 3 - 1
    ys = torch.arange(6, dtype=torch.float64) / 2.5 - 1
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], -1)[None].expand(2, 6, 7, 2)
    ref = torch.nn.functional.grid_sample(img, grid, mode="bicubic", padding_mode="border", align_corners=True)
    assert torch.allclose(S.warp(img, u, mode="bicubic"), ref, atol=1e-12)


def test_warp_samples_in_the_wider_input_dtype():
    """float64 image with a float32 field, and the other way round: sampled and returned in float64
    (1e8 + x and 1/3 px need it)."""
    img = (S.identity_grid((4, 6), dtype=torch.float64)[:, :1] + 1e8).clone()
    u = torch.zeros(1, 2, 4, 6)
    u[:, 0] = 1.0
    out = S.warp(img, u)
    assert out.dtype == torch.float64 and torch.equal(out[0, 0, :, :5], img[0, 0, :, 1:])
    third = torch.full((1, 2, 4, 6), 1 / 3, dtype=torch.float64)
    out = S.warp(S.identity_grid((4, 6))[:, :1].clone(), third)
    assert out.dtype == torch.float64 and abs(float(out[0, 0, 1, 1]) - 4 / 3) < 1e-12


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
@pytest.mark.parametrize("grad", [False, True])
def test_cpu_chunks_give_the_same_warp(dtype, grad):
    """72 pairs of 64 x 64 px are warped in three chunks of at most 32 on the CPU (2^17 px each):
    values, dtype and gradients equal those of the pairs warped one by one, in every mode, in the
    first, second and last chunk."""
    g = torch.Generator().manual_seed(4)
    img = torch.rand(72, 2, 64, 64, generator=g).to(dtype)
    u = (torch.randn(72, 2, 64, 64, generator=g) * 3).to(dtype)
    if grad:
        u.requires_grad_(True)
    for mode in ("bilinear", "nearest", "bicubic"):
        out = S.warp(img, u, mode=mode, padding="zeros")
        assert out.dtype == dtype and out.shape == (72, 2, 64, 64) and out.requires_grad == grad
        rows = [0, 31, 32, 63, 64, 71]
        one = torch.cat([S.warp(img[i: i + 1], u[i: i + 1], mode=mode, padding="zeros") for i in rows])
        assert torch.equal(out[rows], one), mode
    if grad:
        out.sum().backward()
        g_all = u.grad.clone()
        u.grad = None
        S.warp(img[70:71], u[70:71], mode="bicubic", padding="zeros").sum().backward()
        assert torch.equal(g_all[70], u.grad[70])


# ------------------------------------------------------------------------------------------------
# Caches and devices, random draws, resizing in other dtypes (found by mutation testing)
# ------------------------------------------------------------------------------------------------

def test_identity_grid_is_built_without_torch_warnings():
    """Catches a ``torch.meshgrid`` call without ``indexing=`` (torch warns that its default will
    change): a fresh grid is built without any warning, torch's warn-once ones included."""
    S._identity_grid_cached.cache_clear()
    always = torch.is_warn_always_enabled()
    torch.set_warn_always(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            g = S.identity_grid((3, 4))
    finally:
        torch.set_warn_always(always)
    assert g[0, 0].tolist() == [[0, 1, 2, 3]] * 3 and g[0, 1].tolist() == [[0] * 4, [1] * 4, [2] * 4]


def test_warps_of_cpu_tensors_stay_on_the_cpu_with_cold_caches():
    """Catches a cached constant (half size, identity grid) or the chunked warp's output made on
    the default device: under a meta default device, with the caches emptied, CPU warps in one
    call and in CPU chunks (n pairs of 2^17 px, n above the thread count) give the same CPU values."""
    g = torch.Generator().manual_seed(8)
    n = torch.get_num_threads() + 1
    cases = [(torch.rand(2, 1, 5, 6, generator=g), torch.randn(2, 2, 5, 6, generator=g)),
             (torch.rand(n, 1, 256, 512, generator=g), torch.randn(n, 2, 256, 512, generator=g) * 3)]
    for img, u in cases:
        ref = S.warp(img, u)
        S._half_size.cache_clear()
        S._identity_grid_cached.cache_clear()
        with torch.device("meta"):
            out = S.warp(img, u)
        assert out.device.type == "cpu" and torch.equal(out, ref), tuple(img.shape)


def test_warp_of_tensors_on_another_device_runs_in_one_call():
    """Catches a chunk step left unset off the CPU: meta tensors (shapes only, no data) warp and
    compose to the right shape on their device."""
    img, u = torch.empty(3, 2, 5, 6, device="meta"), torch.empty(3, 2, 5, 6, device="meta")
    out = S.warp(img, u, check=False)
    assert out.device.type == "meta" and out.shape == (3, 2, 5, 6)
    assert S.compose(u, u, check=False).shape == (3, 2, 5, 6)


def test_random_affine_is_affine_matrix_of_the_documented_draws():
    """Catches a draw mapped the wrong way (scale ``1 - d`` instead of ``1 + d``) or drawn out of
    order: each parameter is ``(2 r - 1) * range`` with ``r = torch.rand(n)`` drawn for rotation,
    scale, shear, tx, ty in that order, and the scale is ``1 + d``."""
    n, size = 4, (9, 11)
    for ranges in ((15.0, 0.1, 5.0, 10.0), (40.0, 0.5, 20.0, 3.0)):
        rot, sc, sh, tr = ranges
        got = S.random_affine(n, size, rotation=rot, scale=sc, shear=sh, translation=tr,
                              generator=torch.Generator().manual_seed(3))
        g = torch.Generator().manual_seed(3)
        d = [(torch.rand(n, generator=g) * 2 - 1) * r for r in (rot, sc, sh, tr, tr)]
        want = S.affine_matrix(size, rotation=d[0], scale=1 + d[1], shear=d[2], tx=d[3], ty=d[4])
        assert torch.equal(got, want), ranges
    assert torch.equal(S.random_affine(n, size, generator=torch.Generator().manual_seed(3)),
                       S.random_affine(n, size, rotation=15.0, scale=0.1, shear=5.0, translation=10.0,
                                       generator=torch.Generator().manual_seed(3)))


def test_fit_affine_float32_weights_on_float64_points():
    """Catches the square roots of the weights taken in the weights' float32: float32 weights on
    float64 points give the float64 weighted least-squares solution (normal equations) to 1e-12."""
    src = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    dst = src * 2 + torch.tensor([3.0, -1.0], dtype=torch.float64)
    dst[5] += torch.tensor([4.0, 2.0], dtype=torch.float64)
    wf = torch.tensor([1.0, 2.0, 3.0, 1.0, 0.5, 0.3])
    x = torch.cat((src, torch.ones(6, 1, dtype=torch.float64)), 1)
    wd = torch.diag(wf.double())
    normal = torch.linalg.solve(x.T @ wd @ x, x.T @ wd @ dst).T
    got = S.fit_affine(src, dst, wf)
    assert got.dtype == torch.float64 and torch.allclose(got, normal, atol=1e-12, rtol=0)
    batched = S.fit_affine(src[None].expand(2, 6, 2), dst[None].expand(2, 6, 2), wf.expand(2, 6))
    assert torch.allclose(batched[1], normal, atol=1e-12, rtol=0)


def test_disp_to_affine_casts_the_mask_to_the_field_dtype():
    """Catches a mask used in its own dtype: the fit runs in the field's dtype, so a float64 mask
    on a float32 field weighs exactly as its float32 rounding does."""
    g = torch.Generator().manual_seed(5)
    u = torch.randn(8, 2, 6, 7, generator=g) * 3
    m64 = torch.rand(8, 1, 6, 7, generator=g, dtype=torch.float64)
    assert torch.equal(S.disp_to_affine(u, m64), S.disp_to_affine(u, m64.float()))


def test_resize_image_nearest_by_hand():
    """Catches a broken 'nearest' mode (refused, or sent to the interpolating branch): 4 x 6 -> 2 x 3
    reads rows 0, 2 and columns 0, 2, 4."""
    x = torch.arange(48.0).view(2, 1, 4, 6) / 48
    assert torch.equal(S.resize_image(x, (2, 3), mode="nearest"), x[..., ::2, ::2])
    assert torch.equal(S.resize_image(x, (8, 12), mode="nearest"), x.repeat_interleave(2, 2).repeat_interleave(2, 3))


def test_resize_image_antialias_is_off_by_default_and_passed_on():
    """Catches a changed antialias default or a dropped antialias flag: a 12 -> 5 px bilinear
    downsample equals ``F.interpolate`` with the same flag, and the two flags differ."""
    x = torch.rand(1, 2, 12, 12, generator=torch.Generator().manual_seed(9))
    ref = {aa: F.interpolate(x, size=(5, 5), mode="bilinear", align_corners=True, antialias=aa) for aa in (False, True)}
    assert torch.equal(S.resize_image(x, (5, 5)), ref[False])
    assert torch.equal(S.resize_image(x, (5, 5), antialias=False), ref[False])
    assert torch.equal(S.resize_image(x, (5, 5), antialias=True), ref[True])
    assert not torch.allclose(ref[True], ref[False], atol=1e-3)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_resize_image_and_disp_of_half_precision_run_in_float32(dtype):
    """Catches float16/bfloat16 resampled (or a field scaled) in their own precision, or returned
    as float32: the result is the float32 result rounded once to the input's dtype (torch has no
    float16 antialiasing, which therefore works too)."""
    g = torch.Generator().manual_seed(10)
    img = torch.rand(2, 3, 9, 11, generator=g).to(dtype)
    for mode in ("bilinear", "bicubic"):
        out = S.resize_image(img, (13, 7), mode=mode)
        assert out.dtype == dtype and torch.equal(out, S.resize_image(img.float(), (13, 7), mode=mode).to(dtype)), mode
    small = S.resize_image(img, (5, 6), antialias=True)
    assert small.dtype == dtype and torch.equal(small, S.resize_image(img.float(), (5, 6), antialias=True).to(dtype))
    u = (torch.randn(2, 2, 7, 9, generator=g) * 5).to(dtype)
    out = S.resize_disp(u, (11, 13))
    assert out.dtype == dtype and torch.equal(out, S.resize_disp(u.float(), (11, 13)).to(dtype))


def test_resize_disp_scales_float64_fields_in_float64():
    """Catches the x/y scale factors rounded to float32 for a float64 field: 4 -> 5 px scales x by
    4/3 and 3 -> 7 px scales y by 3, to 1e-12."""
    u = torch.zeros(1, 2, 3, 4, dtype=torch.float64)
    u[:, 0], u[:, 1] = 1.0, 0.1
    out = S.resize_disp(u, (7, 5))
    assert out.dtype == torch.float64 and out.shape == (1, 2, 7, 5)
    assert torch.allclose(out[:, 0], torch.full((1, 7, 5), 4 / 3, dtype=torch.float64), atol=1e-12, rtol=0)
    assert torch.allclose(out[:, 1], torch.full((1, 7, 5), 0.3, dtype=torch.float64), atol=1e-12, rtol=0)


def test_random_smooth_disp_defaults_are_the_documented_ones():
    """Catches a changed default: max_disp 4 px, a 5 x 5 control grid, diffeomorphic."""
    ref = S.random_smooth_disp(2, (12, 10), generator=torch.Generator().manual_seed(0))
    explicit = S.random_smooth_disp(2, (12, 10), max_disp=4.0, control=5, diffeomorphic=True,
                                    generator=torch.Generator().manual_seed(0))
    assert torch.equal(ref, explicit)


@pytest.mark.parametrize("max_disp, steps", [(0.5, 4), (1.0, 4), (2.0, 5), (4.0, 6), (20.0, 9)])
def test_random_smooth_disp_integrates_with_its_number_of_steps(max_disp, steps):
    """Catches a wrong number of scaling-and-squaring steps, ``max(4, ceil(log2(max(max_disp, 1))) + 4)``:
    the diffeomorphic field is the non-diffeomorphic one integrated with that many steps."""
    v = S.random_smooth_disp(2, (12, 10), max_disp=max_disp, diffeomorphic=False, generator=torch.Generator().manual_seed(1))
    u = S.random_smooth_disp(2, (12, 10), max_disp=max_disp, generator=torch.Generator().manual_seed(1))
    assert torch.equal(u, S.integrate_velocity(v, steps))


def test_random_smooth_disp_scales_small_noise_up_to_max_disp():
    """Catches a floor on the peak norm above 1e-12 (e.g. 1): seed 197 gives a 2 x 2 control grid
    whose upsampled field peaks at 0.754 px; it is still scaled to exactly max_disp."""
    coarse = torch.randn(1, 2, 2, 2, generator=torch.Generator().manual_seed(197))
    raw = F.interpolate(coarse, size=(5, 6), mode="bicubic", align_corners=True)
    peak = raw.norm(dim=1).amax()
    assert float(peak) < 0.8
    u = S.random_smooth_disp(1, (5, 6), max_disp=3.0, control=2, diffeomorphic=False,
                             generator=torch.Generator().manual_seed(197))
    assert torch.allclose(u, raw * (3.0 / peak), atol=1e-6)
    assert abs(float(u.norm(dim=1).amax()) - 3.0) < 1e-5


def test_bspline_basis_and_upsample_stay_on_the_cpu_with_a_cold_cache():
    """Catches the B-spline basis computed on the default device: under a meta default device,
    with the cache emptied, the basis of a CPU call and the field of CPU control points are
    computed on the CPU, with the same values (this raised "Cannot copy out of meta tensor")."""
    ctrl = torch.randn(1, 2, 5, 6, generator=torch.Generator().manual_seed(11))
    ref_b, ref_u = S.bspline_basis(7, 5), S.bspline_upsample(ctrl, (8, 9))
    S._basis_cached.cache_clear()
    with torch.device("meta"):
        b = S.bspline_basis(7, 5)
        S._basis_cached.cache_clear()
        u = S.bspline_upsample(ctrl, (8, 9))
    assert b.device.type == "cpu" and torch.equal(b, ref_b)
    assert u.device.type == "cpu" and torch.equal(u, ref_u)
