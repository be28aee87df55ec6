"""SIFT + RANSAC: a known affine is recovered, RANSAC rejects outliers, agreement with OpenCV's
estimateAffine2D, degenerate input and bad parameters."""

import os

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


# --- exact values: _to_uint8, detect, match ----------------------------------------------------

def _texture(seed=0, size=80):
    """Smoothed noise in [0, 1]: a small image with a few hundred SIFT keypoints."""
    from regkit import filters

    g = torch.Generator().manual_seed(seed)
    img = filters.gaussian_filter(torch.rand(1, 1, size, size, generator=g), 1.5)
    return (img - img.min()) / (img.max() - img.min())


def _affine_pair(size=80):
    """(moving, fixed, theta): fixed samples the texture through a known affine."""
    moving = _texture(0, size)
    theta = spatial.affine_matrix((size, size), rotation=8.0, scale=1.05, tx=2.0, ty=-1.5)
    return moving, spatial.warp(moving, spatial.affine_to_disp(theta, (size, size))), theta


def test_to_uint8_scales_by_255_rounds_and_clips_both_ends():
    """Catches a wrong scale (256), a lower clip other than 0 or missing, an upper clip other than 255."""
    from regkit.classical.sift_ransac import _to_uint8

    out = _to_uint8(np.array([0.0, 0.5, 0.6, 1.0, -0.1, 1.2, -3.0]))
    assert out.dtype == np.uint8 and out.tolist() == [0, 128, 153, 255, 0, 255, 0]
    assert _to_uint8(np.full((3, 3), 0.25)).tolist() == [[64] * 3] * 3


def test_detect_is_opencv_sift_with_the_documented_parameters():
    """Catches n_features or contrast_threshold not passed to cv2.SIFT_create (or other defaults than
    0 and 0.04), and descriptors or points not float32: same keypoints/descriptors as OpenCV."""
    import cv2

    img = _texture(1)
    u8 = np.clip(np.rint(img[0, 0].numpy() * 255.0), 0, 255).astype(np.uint8)

    def ref(**kw):
        kps, desc = cv2.SIFT_create(**kw).detectAndCompute(u8, None)
        return cv2.KeyPoint_convert(kps).reshape(-1, 2), desc

    for ours, kw in ((detect(img), {"nfeatures": 0, "contrastThreshold": 0.04}),
                     (detect(img, n_features=7), {"nfeatures": 7, "contrastThreshold": 0.04}),
                     (detect(img, contrast_threshold=0.1), {"nfeatures": 0, "contrastThreshold": 0.1}),
                     (detect(img, 5, 0.02), {"nfeatures": 5, "contrastThreshold": 0.02})):
        pts, desc = ours[0]
        rp, rd = ref(**kw)
        assert pts.dtype == torch.float32 and desc.dtype == torch.float32
        assert pts.device.type == "cpu" and desc.device.type == "cpu"
        np.testing.assert_array_equal(pts.numpy(), rp)
        np.testing.assert_array_equal(desc.numpy(), rd.astype(np.float32))
    assert detect(img)[0][0].shape[0] > 100 and detect(img, n_features=7)[0][0].shape[0] == 7
    assert len(detect(img, contrast_threshold=0.1)[0][0]) < len(detect(img)[0][0])


def test_detect_on_a_flat_image_gives_empty_float32_arrays():
    """Catches the empty keypoint/descriptor arrays made with another shape or dtype (float64)."""
    (pts, desc), (pts2, desc2) = detect(torch.full((2, 1, 32, 32), 0.5))
    for p, d in ((pts, desc), (pts2, desc2)):
        assert p.shape == (0, 2) and p.dtype == torch.float32
        assert d.shape == (0, 128) and d.dtype == torch.float32


def test_detect_and_ransac_refuse_non_integer_counts_with_the_exact_message():
    """Catches n_features, hypotheses, refine or chunk no longer checked to be integers."""
    img = _texture(0, 32)
    with pytest.raises(TypeError) as info:
        detect(img, n_features=2.0)
    assert str(info.value) == "n_features must be an integer, got 2.0"
    src = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    for kw, msg in (({"hypotheses": 10.0}, "hypotheses must be an integer, got 10.0"),
                    ({"refine": 1.0}, "refine must be an integer, got 1.0"),
                    ({"chunk": 4.0}, "chunk must be an integer, got 4.0")):
        with pytest.raises(TypeError) as info:
            ransac_affine(src, src, **kw)
        assert str(info.value) == msg


def test_sift_ransac_checks_n_features_itself_before_seed():
    """Catches sift_ransac leaving the n_features integer check to detect (seed is checked first then)."""
    x = torch.linspace(0, 1, 256).view(1, 1, 16, 16)
    with pytest.raises(TypeError) as info:
        sift_ransac(x, x, n_features=1.0, seed=-1)
    assert str(info.value) == "n_features must be an integer, got 1.0"


def test_match_single_query_two_candidates_and_exact_ratio():
    """Catches one query descriptor or two candidates treated as too few, and the ratio test made
    inclusive: d1 = 3, d2 = 4 is not a match at ratio 0.75 (3 < 0.75 * 4 is false) but is at 0.76."""
    a = torch.tensor([[0.0, 0.0]])
    b = torch.tensor([[3.0, 0.0], [0.0, 4.0]])
    assert match(a, b, ratio=0.75).tolist() == []
    assert match(a, b, ratio=0.76).tolist() == [[0, 0]]
    b2 = torch.tensor([[9.0, 0.0], [0.0, 1.0]])
    assert match(a, b2).tolist() == [[0, 1]]
    assert match(torch.tensor([[0.0, 0.0], [9.0, 0.0]]), b2).tolist() == [[0, 1], [1, 0]]
    b3 = torch.tensor([[9.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    assert match(a, b3).tolist() == [[0, 1]]


def test_match_empty_result_stays_on_the_cpu_under_a_meta_default_device():
    """Catches the empty match list made on the default device instead of the descriptors' one."""
    a, b = torch.zeros(0, 4), torch.rand(3, 4, generator=torch.Generator().manual_seed(0))
    with torch.device("meta"):
        out, out2 = match(a, b), match(b, b[:1])
    for o in (out, out2):
        assert o.device.type == "cpu" and o.dtype == torch.long and o.shape == (0, 2)


# --- exact values: ransac_affine -----------------------------------------------------------------

T1 = torch.tensor([[1.1, 0.1, 3.0], [-0.05, 0.95, -2.0]], dtype=torch.float64)
T2 = torch.tensor([[0.9, -0.2, 60.0], [0.15, 1.05, 45.0]], dtype=torch.float64)


def _apply(theta, p):
    return p @ theta[:, :2].T + theta[:, 2]


def _inliers_and_outliers(n_in, n_out, seed=0):
    """``n_out`` far random outliers, then ``n_in`` exact matches of T1 (float32 points)."""
    g = torch.Generator().manual_seed(seed)
    src = torch.rand(n_in + n_out, 2, generator=g, dtype=torch.float64) * 1000
    dst = _apply(T1, src)
    dst[:n_out] = torch.rand(n_out, 2, generator=g, dtype=torch.float64) * 1000
    return src.float(), dst.float()


def _two_groups(t, n_exact1, n_noisy1, n2, seed=0):
    """Matches of two affines: ``n_exact1`` exact ones of T1, ``n_noisy1`` of T1 off by 0.95 t
    (in random directions), then ``n2`` exact ones of T2 (each group is outlying for the other)."""
    g = torch.Generator().manual_seed(seed)
    m = n_exact1 + n_noisy1 + n2
    src = torch.rand(m, 2, generator=g, dtype=torch.float64) * 100
    ang = torch.rand(n_noisy1, generator=g, dtype=torch.float64) * 2 * torch.pi
    dst = torch.cat((_apply(T1, src[: n_exact1 + n_noisy1]), _apply(T2, src[n_exact1 + n_noisy1:])))
    dst[n_exact1:n_exact1 + n_noisy1] += 0.95 * t * torch.stack((ang.cos(), ang.sin()), 1)
    return src.float(), dst.float()


def test_ransac_hypothesis_is_the_exact_three_point_affine():
    """Catches a wrong closed-form 3-point solve (determinant, adjugate, transposes): without a
    refit the estimate is the hypothesis itself, the true affine to 1e-5, with exactly its inliers."""
    src, dst = _inliers_and_outliers(40, 10, seed=3)
    est, inl = ransac_affine(src, dst, threshold=1.0, refine=0, generator=torch.Generator().manual_seed(0))
    assert est.dtype == torch.float32 and (est.double() - T1).abs().max() < 1e-5
    assert inl.tolist() == [False] * 10 + [True] * 40
    small = torch.tensor([[0.0, 0.0], [7.0, 1.0], [2.0, 9.0], [5.0, 5.0], [1.0, 4.0]])
    est, inl = ransac_affine(small, _apply(T1, small.double()).float(), refine=0,
                             generator=torch.Generator().manual_seed(0))
    assert (est.double() - T1).abs().max() < 1e-5 and inl.all()


def test_ransac_degenerate_threshold_is_twice_the_area_above_one_px2():
    """Catches the collinearity test moved off ``|det| > 1``: a triangle of det exactly 1 is
    degenerate (error), one of det 1.5 is solved exactly."""
    tri = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(ValueError) as info:
        ransac_affine(tri, tri * 2, hypotheses=100, generator=torch.Generator().manual_seed(0))
    assert str(info.value) == "ransac_affine: every sample was degenerate (collinear or repeated points)"
    tri = torch.tensor([[0.0, 0.0], [1.5, 0.0], [0.0, 1.0]])
    est, inl = ransac_affine(tri, _apply(T1, tri.double()).float(), hypotheses=100, refine=0,
                             generator=torch.Generator().manual_seed(0))
    assert (est.double() - T1).abs().max() < 1e-5 and inl.all()


def test_ransac_goes_on_after_a_chunk_of_only_degenerate_samples():
    """Catches the loop stopping (break) at the first chunk whose samples are all degenerate: with
    3 matches and chunks of 1, the first draw repeats an index, later ones do not."""
    g = torch.Generator().manual_seed(0)
    first = torch.randint(3, (1, 3), generator=g)[0].tolist()
    assert len(set(first)) < 3
    tri = torch.tensor([[0.0, 0.0], [8.0, 1.0], [2.0, 9.0]])
    est, inl = ransac_affine(tri, _apply(T1, tri.double()).float(), chunk=1, refine=0,
                             generator=torch.Generator().manual_seed(0))
    assert (est.double() - T1).abs().max() < 1e-5 and inl.all()


@pytest.mark.parametrize("t", [10.0, 0.1])
def test_ransac_most_inliers_win_over_smaller_errors(t):
    """Catches an inlier count weighted by less than threshold**2 in the score (threshold * 2,
    / threshold**2, threshold**3): 6 matches of T1 (3 of them 0.95 threshold off) beat 5 exact
    matches of T2."""
    src, dst = _two_groups(t, 3, 3, 5)
    _, inl = ransac_affine(src, dst, threshold=t, refine=0, hypotheses=2000, chunk=2000,
                           generator=torch.Generator().manual_seed(0))
    assert inl.tolist() == [True] * 6 + [False] * 5


def test_ransac_equal_counts_go_to_the_smallest_summed_error():
    """Catches the MSAC tie break reversed or dropped (sum over every hypothesis): 5 exact matches of
    T2 beat 5 matches of T1 of which 2 are 0.95 threshold off; the estimate is T2."""
    src, dst = _two_groups(3.0, 3, 2, 5)
    for seed in range(3):
        est, inl = ransac_affine(src, dst, threshold=3.0, refine=0, hypotheses=2000, chunk=2000,
                                 generator=torch.Generator().manual_seed(seed))
        assert inl.tolist() == [False] * 5 + [True] * 5
        assert (est.double() - T2).abs().max() < 1e-4


def test_ransac_threshold_is_strict_on_the_hypothesis_and_the_refits():
    """Catches ``err <= threshold`` (hypotheses or refits) or ``threshold * 2`` for threshold**2 in
    the refits: a match exactly 1 px off (exact arithmetic: integer points, dyadic affine, whose
    least-squares refit is exact too) is out at threshold 1."""
    src = torch.tensor([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0], [8.0, 8.0], [4.0, 2.0], [2.0, 6.0]])
    theta = torch.tensor([[1.5, 0.25, 3.0], [-0.5, 1.25, -2.0]])
    dst = _apply(theta, src)
    dst[4, 0] += 1.0
    est, inl = ransac_affine(src, dst, threshold=1.0, refine=0, generator=torch.Generator().manual_seed(0))
    assert inl.tolist() == [True] * 4 + [False, True]
    assert torch.allclose(est, theta, atol=1e-5)
    est, inl = ransac_affine(src, dst, threshold=1.0, generator=torch.Generator().manual_seed(0))
    assert inl.tolist() == [True] * 4 + [False, True] and torch.equal(est, theta)


def test_ransac_keeps_the_first_of_equally_good_hypotheses():
    """Catches ``score >= best`` (a later, equally good hypothesis replacing the first): two groups
    of 5 exact matches (integer points, dyadic affines: exactly equal scores), chunks of 1; the
    group of the first all-one-group sample wins, replayed from the same generator."""
    a = torch.tensor([[1.5, 0.25, 3.0], [-0.5, 1.25, -2.0]])
    b = torch.tensor([[0.75, -0.25, 60.0], [0.5, 1.0, 45.0]])
    src = torch.randint(0, 64, (10, 2), generator=torch.Generator().manual_seed(1)).float()
    dst = torch.cat((_apply(a, src[:5]), _apply(b, src[5:])))
    for seed in range(10):
        draws = torch.randint(10, (52, 3), generator=torch.Generator().manual_seed(seed)).tolist()
        first = next(d[0] // 5 for d in draws if len(set(d)) == 3 and len({i // 5 for i in d}) == 1)
        est, inl = ransac_affine(src, dst, threshold=3.0, refine=0, chunk=1, generator=torch.Generator().manual_seed(seed))
        assert inl.tolist() == [first == 0] * 5 + [first == 1] * 5, seed
        assert torch.allclose(est, (a, b)[first], atol=1e-5), seed


def _draws_after(gen, m, sizes):
    """A twin of a fresh generator that has drawn ``torch.randint(m, (k, 3))`` for each k."""
    for k in sizes:
        torch.randint(m, (k, 3), generator=gen)
    return gen.get_state()


def test_ransac_draws_every_hypothesis_when_inliers_are_rare():
    """Catches another hypotheses default than 2000, a wrong count of draws per chunk (start at 1,
    hypotheses + drawn) and a wrong adaptive stop (log(1 - confidence) / log(1 - w**3)): with 10%
    inliers the stop needs ~6900 samples, so all 2000 are drawn in chunks of 256 and a last of 208."""
    src, dst = _inliers_and_outliers(10, 90, seed=4)
    g = torch.Generator().manual_seed(0)
    _, inl = ransac_affine(src, dst, generator=g)
    assert inl.tolist() == [False] * 90 + [True] * 10
    assert torch.equal(g.get_state(), _draws_after(torch.Generator().manual_seed(0), 100, [256] * 7 + [208]))
    g2 = torch.Generator().manual_seed(0)
    explicit = ransac_affine(src, dst, threshold=3.0, hypotheses=2000, refine=2, generator=g2, confidence=0.999, chunk=256)
    default = ransac_affine(src, dst, generator=torch.Generator().manual_seed(0))
    assert torch.equal(explicit[0], default[0]) and torch.equal(explicit[1], default[1])
    assert torch.equal(g2.get_state(), g.get_state())


def test_ransac_adaptive_stop_after_one_chunk_at_30_percent_inliers():
    """Catches the stop not recomputed for 0 < w < 1 or computed with w**4: 30 inliers of 100 need
    ceil(log(0.001) / log(1 - 0.3**3)) = 253 samples, so one chunk of 256 is drawn."""
    src, dst = _inliers_and_outliers(30, 70, seed=5)
    g = torch.Generator().manual_seed(0)
    _, inl = ransac_affine(src, dst, generator=g)
    assert inl.tolist() == [False] * 70 + [True] * 30
    assert torch.equal(g.get_state(), _draws_after(torch.Generator().manual_seed(0), 100, [256]))


def test_ransac_default_threshold_is_3_px():
    """Catches another threshold default: a match 2.5 px off is in, one 3.5 px off is out, exactly
    as with threshold=3.0 passed explicitly."""
    src, dst = _inliers_and_outliers(30, 0, seed=6)
    dst[0] += torch.tensor([2.5, 0.0])
    dst[1] += torch.tensor([0.0, 3.5])
    est, inl = ransac_affine(src, dst, generator=torch.Generator().manual_seed(0))
    assert inl.tolist() == [True, False] + [True] * 28
    ref = ransac_affine(src, dst, threshold=3.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(est, ref[0]) and torch.equal(inl, ref[1])


def _refit_case():
    """20 noisy matches of T1 whose inlier set (threshold 2) changes over the first 3 refits."""
    g = torch.Generator().manual_seed(10)
    src = torch.rand(20, 2, generator=g) * 60
    dst = src @ T1[:, :2].T.float() + T1[:, 2].float() + torch.randn(20, 2, generator=g) * 1.5
    return src, dst


def test_ransac_refits_are_least_squares_on_the_previous_inliers():
    """Catches a wrong refit (sign of the translation, residual summed wrongly, ``<=`` or
    ``threshold * 2``), another refine default than 2: each refit is fit_affine on the previous
    inliers, and its inliers are the matches strictly within the threshold."""
    from regkit.spatial import fit_affine

    src, dst = _refit_case()
    theta, inl = ransac_affine(src, dst, threshold=2.0, refine=0, generator=torch.Generator().manual_seed(0))
    masks = [inl]
    for k in (1, 2, 3):
        theta = fit_affine(src, dst, inl).float()
        pred = src @ theta[:, :2].T + theta[:, 2]
        d2 = ((pred - dst) ** 2).sum(1)
        inl = d2 < 4.0
        masks.append(inl)
        est, got = ransac_affine(src, dst, threshold=2.0, refine=k, generator=torch.Generator().manual_seed(0))
        assert torch.equal(est, theta) and torch.equal(got, inl), k
    assert not torch.equal(masks[2], masks[3]) and not torch.equal(masks[0], masks[1])
    default = ransac_affine(src, dst, threshold=2.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(default[0], fit_affine(src, dst, masks[1]).float()) and torch.equal(default[1], masks[2])


def test_ransac_with_no_inlier_at_all_returns_the_hypothesis():
    """Catches a crash when even the sampled matches are outside the threshold (w = 0: no adaptive
    stop, ``log(1)`` = 0) and the refit loop returning nothing: threshold**2 underflows to 0."""
    src, dst = _inliers_and_outliers(20, 0, seed=7)
    g = torch.Generator().manual_seed(0)
    est, inl = ransac_affine(src, dst, threshold=1e-200, hypotheses=300, generator=g)
    assert not inl.any() and inl.shape == (20,) and (est.double() - T1).abs().max() < 1e-2
    assert torch.equal(g.get_state(), _draws_after(torch.Generator().manual_seed(0), 20, [256, 44]))


def test_ransac_keeps_the_hypothesis_inliers_when_the_refit_has_fewer_than_3():
    """Catches the refit loop returning nothing when the float32 refit leaves fewer than 3 matches
    within a 1e-9 px threshold: the float64 hypothesis' inliers are returned with the refit."""
    from regkit.spatial import fit_affine

    src, dst = _inliers_and_outliers(20, 0, seed=18)
    est, inl = ransac_affine(src, dst, threshold=1e-9, generator=torch.Generator().manual_seed(0))
    _, hyp = ransac_affine(src, dst, threshold=1e-9, refine=0, generator=torch.Generator().manual_seed(0))
    theta = fit_affine(src, dst, hyp).float()
    within = ((src @ theta[:, :2].T + theta[:, 2] - dst) ** 2).sum(1) < 1e-18
    assert int(hyp.sum()) == 3 and int(within.sum()) < 3
    assert torch.equal(inl, hyp) and torch.equal(est, theta)


# --- exact values: sift_ransac -------------------------------------------------------------------

FALLBACK = ("sift_ransac: no affine found for pairs {} (fewer than 3 consistent matches); they get the identity")


def test_sift_ransac_is_detect_match_ransac_affine_to_disp_and_warp_by_hand():
    """Catches a setting not passed on (n_features, ratio), the params, disp, warped or extras not
    what the three steps give by hand on a batch of 2 pairs (one seeded generator for the batch)."""
    import time

    from regkit.classical import sift_ransac as sr

    moving, fixed, theta = _affine_pair()
    moving2, fixed2 = torch.cat((moving, fixed)), torch.cat((fixed, moving))
    kw = {"ratio": 0.8, "threshold": 2.5, "hypotheses": 500, "n_features": 150, "seed": 7}
    t0 = time.perf_counter()
    res = sift_ransac(moving2, fixed2, **kw)
    elapsed = time.perf_counter() - t0
    feats = detect(torch.cat((fixed2, moving2)), 150)
    gen = torch.Generator().manual_seed(7)
    params, points, masks = [], [], []
    for (pf, df), (pm, dm) in zip(feats[:2], feats[2:]):
        pairs = match(df, dm, 0.8)
        src, dst = pf[pairs[:, 0]], pm[pairs[:, 1]]
        est, inl = sr.ransac_affine(src, dst, threshold=2.5, hypotheses=500, generator=gen)
        params.append(est), points.append((src, dst)), masks.append(inl)
    params = torch.stack(params)
    assert torch.equal(res.params, params) and (res.params[0] - theta[0]).abs().max() < 0.2
    assert torch.equal(res.disp, spatial.affine_to_disp(params, (80, 80)))
    assert torch.equal(res.warped, spatial.warp(moving2, res.disp))
    ex = res.extras
    assert ex["ok"] == [True, True] and ex["n_matches"] == [p[0].shape[0] for p in points]
    assert ex["n_inliers"] == [int(m.sum()) for m in masks] and min(ex["n_inliers"]) >= 20
    for (a, b), (c, d), m, n in zip(ex["points"], points, ex["inliers"], masks):
        assert torch.equal(a, c) and torch.equal(b, d) and torch.equal(m, n)
    assert 0 <= ex["seconds"] <= elapsed
    ref = sift_ransac(moving2, fixed2, 0.8, 2.5, 500, 0, 7)
    assert ref.extras["n_matches"] != ex["n_matches"]  # n_features=150 is passed on
    assert sift_ransac(moving2, fixed2, 0.75, 2.5, 500, 150, 7).extras["n_matches"] != ex["n_matches"]  # and ratio


def test_sift_ransac_passes_its_settings_and_one_seeded_generator_to_ransac(monkeypatch):
    """Catches another default (threshold 3, hypotheses 2000, seed 0) or a setting or the seeded
    generator not passed on to ransac_affine (one generator, seeded with ``seed``, for the batch)."""
    from regkit.classical import sift_ransac as sr

    calls, real = [], sr.ransac_affine

    def spy(src, dst, threshold="unset", hypotheses="unset", generator="unset", **kw):
        calls.append((threshold, hypotheses, generator, generator.initial_seed() if generator is not None
                      and generator != "unset" else None, kw))
        return real(src, dst, threshold=threshold, hypotheses=hypotheses, generator=generator, **kw)

    monkeypatch.setattr(sr, "ransac_affine", spy)
    moving, fixed, _ = _affine_pair()
    sift_ransac(torch.cat((moving, moving)), torch.cat((fixed, fixed)))
    assert [c[:2] + c[3:] for c in calls] == [(3.0, 2000, 0, {})] * 2 and calls[0][2] is calls[1][2]
    calls.clear()
    sift_ransac(moving, fixed, threshold=2.5, hypotheses=300, seed=11)
    assert [c[:2] + c[3:] for c in calls] == [(2.5, 300, 11, {})]


def _patched_match(monkeypatch, rows):
    """Make sift_ransac see only the given rows of the real matches (or fixed pairs if a tensor)."""
    from regkit.classical import sift_ransac as sr

    real = sr.match

    def fake(a, b, ratio=0.75):
        return rows if isinstance(rows, torch.Tensor) else real(a, b, ratio)[rows]

    monkeypatch.setattr(sr, "match", fake)


def test_sift_ransac_with_exactly_3_matches_solves_them():
    """Catches 3 matches (or 3 inliers) treated as too few: 3 consistent matches give their exact
    affine, ok and no warning."""
    import warnings

    from regkit.spatial import fit_affine

    moving, fixed, _ = _affine_pair()
    full = sift_ransac(moving, fixed)
    rows = torch.nonzero(full.extras["inliers"][0])[:, 0][[0, 5, 10]].tolist()
    with pytest.MonkeyPatch.context() as mp:
        _patched_match(mp, rows)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            res = sift_ransac(moving, fixed)
    assert res.extras["ok"] == [True] and res.extras["n_matches"] == [3] and res.extras["n_inliers"] == [3]
    src, dst = res.extras["points"][0]
    assert torch.allclose(res.params[0], fit_affine(src, dst), atol=1e-4)


def _fallback(moving, fixed, **kw):
    """sift_ransac under the identity fallback: the result and the one warning."""
    with pytest.warns(RuntimeWarning) as rec:
        res = sift_ransac(moving, fixed, **kw)
    assert len(rec) == 1
    return res, rec[0]


def test_sift_ransac_fallback_for_too_few_matches_has_exact_mask_warning_and_identity(monkeypatch):
    """Catches the empty inlier mask of a pair with under 3 matches made with the wrong length,
    dtype or device, the warning's text changed or attributed to sift_ransac itself (stacklevel)."""
    moving, fixed, _ = _affine_pair()
    _patched_match(monkeypatch, [3])
    res, w = _fallback(moving, fixed)
    assert str(w.message) == FALLBACK.format([0]) and w.category is RuntimeWarning
    assert os.path.basename(w.filename) != "sift_ransac.py"
    mask = res.extras["inliers"][0]
    assert mask.shape == (1,) and mask.dtype == torch.bool and not mask.any()
    assert res.extras["ok"] == [False] and res.extras["n_matches"] == [1] and res.extras["n_inliers"] == [0]
    assert torch.equal(res.params, torch.eye(2, 3)[None]) and torch.allclose(res.warped, moving, atol=1e-5)
    with torch.device("meta"):
        res, _ = _fallback(moving, fixed)
    assert res.extras["inliers"][0].device.type == "cpu" and res.params.device.type == "cpu"
    assert torch.allclose(res.warped, moving, atol=1e-5)


def test_sift_ransac_fallback_when_every_sample_is_degenerate(monkeypatch):
    """Catches the except branch (ransac_affine raising: the fixed points all coincide) giving no
    identity or a mask of the wrong length, dtype or device."""
    moving, fixed, _ = _affine_pair()
    _patched_match(monkeypatch, torch.tensor([[0, 0], [0, 1], [0, 2], [0, 3], [0, 4]]))
    res, w = _fallback(moving, fixed)
    assert str(w.message) == FALLBACK.format([0])
    mask = res.extras["inliers"][0]
    assert mask.shape == (5,) and mask.dtype == torch.bool and not mask.any()
    assert res.extras["ok"] == [False] and torch.equal(res.params, torch.eye(2, 3)[None])
    from regkit.classical import sift_ransac as sr

    def degenerate(*args, **kw):  # RANSAC cannot run under a meta default device: raise as it would
        raise ValueError("ransac_affine: every sample was degenerate (collinear or repeated points)")

    monkeypatch.setattr(sr, "ransac_affine", degenerate)
    with torch.device("meta"):
        res, _ = _fallback(moving, fixed)
    mask = res.extras["inliers"][0]
    assert mask.device.type == "cpu" and mask.shape == (5,) and res.params.device.type == "cpu"


def test_sift_ransac_ignores_an_estimate_with_fewer_than_3_inliers(monkeypatch):
    """Catches an estimate kept although ransac_affine found fewer than 3 inliers (ok False), and
    exactly 3 inliers refused: 2 inliers give the identity with a warning, 3 give the estimate."""
    from regkit.classical import sift_ransac as sr

    moving, fixed, _ = _affine_pair()
    fake = torch.tensor([[1.0, 0.0, 5.0], [0.0, 1.0, -3.0]])
    for n, ok in ((2, False), (3, True)):
        monkeypatch.setattr(sr, "ransac_affine", lambda src, dst, **kw: (fake, torch.arange(len(src)) < n))
        if ok:
            res = sift_ransac(moving, fixed)
            assert torch.equal(res.params[0], fake)
        else:
            res, w = _fallback(moving, fixed)
            assert torch.equal(res.params[0], torch.eye(2, 3)) and str(w.message) == FALLBACK.format([0])
        assert res.extras["ok"] == [ok] and res.extras["n_inliers"] == [n]


def test_sift_ransac_flat_pairs_stay_on_the_cpu_under_a_meta_default_device():
    """Catches the identity or the empty masks made on the default device, not the images' one."""
    flat = torch.full((2, 1, 32, 32), 0.5)
    with torch.device("meta"):
        res, w = _fallback(flat, flat)
    assert str(w.message) == FALLBACK.format([0, 1])
    assert res.params.device.type == "cpu" and torch.equal(res.params, torch.eye(2, 3).expand(2, 2, 3))
    assert all(m.device.type == "cpu" and m.dtype == torch.bool and m.shape == (0,) for m in res.extras["inliers"])
    assert torch.allclose(res.warped, flat, atol=1e-6)


def test_ransac_of_cpu_points_under_another_default_device():
    """Catches the hypothesis indices drawn on the default device (this failed under a meta one):
    CPU points give the same CPU estimate and inliers whatever the default device."""
    src, dst = _inliers_and_outliers(40, 10, seed=3)
    ref = ransac_affine(src, dst, threshold=1.0, generator=torch.Generator().manual_seed(0))
    with torch.device("meta"):
        est, inl = ransac_affine(src, dst, threshold=1.0, generator=torch.Generator().manual_seed(0))
    assert est.device.type == "cpu" and torch.equal(est, ref[0]) and torch.equal(inl, ref[1])
