"""SIFT + RANSAC: a known affine is recovered, RANSAC rejects outliers, agreement with OpenCV's
estimateAffine2D, degenerate input and bad parameters."""

import numpy as np
import pytest
import torch

import regkit
from regkit import spatial
from regkit.classical.sift_ransac import MIN_SIZE, detect, match, ransac_affine, sift_ransac
from regkit.viz import draw_matches

SIZE = (256, 256)
#: tolerance on the recovered matrix: 0.01 on the linear part, 0.5 px on the translation, and
#: a mean end-point error of the field under 0.3 px
LIN_TOL, T_TOL, EPE_TOL = 0.01, 0.5, 0.3


@pytest.fixture(scope="module")
def affine_pair():
    from skimage import data

    pic = torch.from_numpy(data.camera()).float()[None, None] / 255
    moving = spatial.resize_image(pic, SIZE, antialias=True)
    theta = spatial.affine_matrix(SIZE, rotation=12.0, scale=1.08, shear=3.0, tx=7.0, ty=-5.0)
    return moving, spatial.warp(moving, spatial.affine_to_disp(theta, SIZE)), theta


def test_recovers_known_affine(affine_pair):
    moving, fixed, theta = affine_pair
    res = regkit.register(moving, fixed, method="sift_ransac")
    est = res.params
    assert est.shape == (1, 2, 3)
    assert (est[:, :, :2] - theta[:, :, :2]).abs().max() < LIN_TOL
    assert (est[:, :, 2] - theta[:, :, 2]).abs().max() < T_TOL
    true = spatial.affine_to_disp(theta, SIZE)
    assert float((res.disp - true).norm(dim=1).mean()) < EPE_TOL
    assert res.extras["ok"] == [True] and res.extras["n_inliers"][0] >= 20


def test_agrees_with_opencv(affine_pair):
    moving, fixed, theta = affine_pair
    ours = regkit.register(moving, fixed, method="sift_ransac")
    ref = regkit.register(moving, fixed, method="cv2_affine")
    true = spatial.affine_to_disp(theta, SIZE)
    e_ours = float((ours.disp - true).norm(dim=1).mean())
    e_ref = float((ref.disp - true).norm(dim=1).mean())
    assert e_ours <= 1.1 * e_ref + 0.02
    assert float((ours.disp - ref.disp).norm(dim=1).mean()) < 0.2


def test_batched(affine_pair):
    moving, fixed, theta = affine_pair
    res = regkit.register(torch.cat((moving, fixed)), torch.cat((fixed, moving)), method="sift_ransac")
    assert res.params.shape == (2, 2, 3)
    # the second pair is the inverse problem
    inv = spatial.invert_affine(theta)
    assert (res.params[1] - inv[0]).abs().max() < 0.6


@pytest.mark.parametrize("outlier_ratio", [0.0, 0.5, 0.7])
def test_ransac_rejects_outliers(outlier_ratio):
    g = torch.Generator().manual_seed(1)
    m = 100
    src = torch.rand(m, 2, generator=g) * 255
    theta = spatial.affine_matrix(SIZE, rotation=-7.0, scale=0.95, tx=4.0, ty=2.0)[0]
    dst = src @ theta[:, :2].T + theta[:, 2] + 0.3 * torch.randn(m, 2, generator=g)
    k = int(outlier_ratio * m)
    dst[:k] = torch.rand(k, 2, generator=g) * 255
    est, inliers = ransac_affine(src, dst, threshold=2.0, generator=g)
    assert (est - theta).abs()[:, :2].max() < 0.01 and (est - theta).abs()[:, 2].max() < 1.0
    assert int(inliers[k:].sum()) >= 0.95 * (m - k)
    assert int(inliers[:k].sum()) <= 0.05 * m


def test_ransac_is_seeded():
    g = torch.Generator().manual_seed(0)
    src = torch.rand(30, 2, generator=g) * 100
    dst = src + torch.randn(30, 2, generator=g) * 3
    a = ransac_affine(src, dst, generator=torch.Generator().manual_seed(5))
    b = ransac_affine(src, dst, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_match_ratio_test():
    a = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    b = torch.tensor([[0.1, 0.0], [5.0, 0.0], [10.0, 0.2]])
    assert match(a, b, ratio=0.75).tolist() == [[0, 0], [1, 2]]
    b_ambiguous = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    assert match(a[:1], b_ambiguous, ratio=0.75).shape == (0, 2)


def test_textureless_pair_falls_back_to_identity_with_warning():
    flat = torch.full((1, 1, 64, 64), 0.5)
    with pytest.warns(RuntimeWarning, match="identity"):
        res = regkit.register(flat, flat, method="sift_ransac")
    assert res.extras["ok"] == [False]
    assert torch.equal(res.params, torch.eye(2, 3)[None])


@pytest.mark.parametrize(
    "kwargs,match",
    [({"ratio": 0.0}, "ratio"), ({"ratio": 1.5}, "ratio"), ({"threshold": -1.0}, "threshold"),
     ({"hypotheses": 0}, "hypotheses"), ({"seed": -1}, "seed"), ({"threshold": float("inf")}, "threshold must be a finite"),
     ({"ratio": float("nan")}, r"ratio must be in \(0, 1\]")],
)
def test_bad_parameters(affine_pair, kwargs, match):
    moving, fixed, _ = affine_pair
    with pytest.raises(ValueError, match=match):
        regkit.register(moving, fixed, method="sift_ransac", **kwargs)


def test_images_outside_unit_range_are_refused_not_clipped(affine_pair):
    moving, fixed, _ = affine_pair
    with pytest.raises(ValueError, match=r"moving must have intensities in \[0, 1\], got values in \["):
        regkit.register(moving * 255, fixed, method="sift_ransac")
    with pytest.raises(ValueError, match=r"fixed must have intensities in \[0, 1\]"):
        sift_ransac(moving, fixed - 1)  # called directly, past register
    with pytest.raises(ValueError, match=r"image must have intensities in \[0, 1\]"):
        detect(moving * 255)


def test_minimum_size():
    small = torch.rand(1, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="sift_ransac needs moving and fixed images of at least 16 x 16 pixels"):
        regkit.register(small, small, method="sift_ransac")
    assert MIN_SIZE == 16 and "16" in sift_ransac.__doc__


def test_ransac_bad_input():
    with pytest.raises(ValueError, match="at least 3"):
        ransac_affine(torch.zeros(2, 2), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="shape"):
        ransac_affine(torch.zeros(5, 2), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="degenerate"):
        ransac_affine(torch.zeros(5, 2), torch.zeros(5, 2))


def test_draw_matches_runs(affine_pair):
    import matplotlib

    matplotlib.use("Agg", force=False)
    moving, fixed, _ = affine_pair
    res = regkit.register(moving, fixed, method="sift_ransac")
    pf, pm = res.extras["points"][0]
    ax = draw_matches(moving, fixed, pf, pm, res.extras["inliers"][0])
    assert "inliers" in ax.get_title()
    with pytest.raises(ValueError, match="points"):
        draw_matches(moving, fixed, pf, pm[:-1])
    np.testing.assert_equal(len(ax.lines), min(200, pf.shape[0]))
