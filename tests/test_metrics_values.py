"""regkit.metrics: exact messages for bad input and exact values on pairs small enough to compute
by hand (masks, labels, eps, landmarks, folds). Tolerances: float32 rounding unless stated."""

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from regkit import metrics as M
from regkit.filters import gaussian_filter

A = torch.rand(1, 1, 12, 12, generator=torch.Generator().manual_seed(0))
B = torch.rand(1, 1, 12, 12, generator=torch.Generator().manual_seed(1))
FLAT2D = torch.rand(12, 12)
L3 = torch.zeros(1, 2, 3)
L2 = torch.zeros(1, 2, 2)
MASK_MSG = "mask must have shape (N,1,H,W) or (N,C,H,W) matching (1, 1, 12, 12), got (1, 1, 12, 11)"
BAD_MASK = torch.zeros(1, 1, 12, 11)

ERRORS = {
    **{f"{f} a": ((lambda f=f: getattr(M, f)(FLAT2D, B)), ValueError, "a must have 4 dimensions, got shape (12, 12)")
       for f in ("mse", "psnr", "ssim", "ncc", "soft_dice", "smooth_dice")},
    **{f"{f} b": ((lambda f=f: getattr(M, f)(A, FLAT2D)), ValueError, "b must have 4 dimensions, got shape (12, 12)")
       for f in ("mse", "psnr", "ssim", "ncc", "soft_dice", "smooth_dice")},
    **{f"{f} mask": ((lambda f=f: getattr(M, f)(A, B, BAD_MASK)), ValueError, MASK_MSG)
       for f in ("mse", "psnr", "ssim", "ncc", "soft_dice")},
    "mse empty mask": (lambda: M.mse(A, B, torch.zeros(1, 1, 12, 12)), ValueError,
                       "mask must select at least one pixel in every pair"),
    "psnr data_range": (lambda: M.psnr(A, B, data_range=0), ValueError, "data_range must be positive, got 0"),
    "ssim data_range": (lambda: M.ssim(A, B, data_range=-1.0), ValueError, "data_range must be positive, got -1.0"),
    "ssim sigma": (lambda: M.ssim(A, B, sigma=0.0), ValueError, "sigma must be positive, got 0.0"),
    "ssim small": (lambda: M.ssim(torch.rand(1, 1, 10, 12), torch.rand(1, 1, 10, 12)), ValueError,
                   "a and b must be larger than the 11-pixel SSIM window, got (10, 12)"),
    "ssim small wide": (lambda: M.ssim(torch.rand(1, 1, 12, 10), torch.rand(1, 1, 12, 10)), ValueError,
                        "a and b must be larger than the 11-pixel SSIM window, got (12, 10)"),
    "ssim small sigma 1": (lambda: M.ssim(torch.rand(1, 1, 8, 12), torch.rand(1, 1, 8, 12), sigma=1.0), ValueError,
                           "a and b must be larger than the 9-pixel SSIM window, got (8, 12)"),
    "dice shape": (lambda: M.dice(A, torch.rand(1, 1, 12, 11)), ValueError,
                   "a and b must be N,C,H,W masks of the same shape, got (1, 1, 12, 12) and (1, 1, 12, 11)"),
    "dice ndim": (lambda: M.dice(A[0], B[0]), ValueError,
                  "a and b must be N,C,H,W masks of the same shape, got (1, 12, 12) and (1, 12, 12)"),
    "dice labels empty": (lambda: M.dice(A.long(), B.long(), labels=[]), ValueError,
                          "labels must name at least one label value"),
    "dice a NaN": (lambda: M.dice(torch.full((1, 1, 2, 2), math.nan), B[..., :2, :2]), ValueError,
                   "a contains NaN or infinite values"),
    "dice b NaN": (lambda: M.dice(B[..., :2, :2], torch.full((1, 1, 2, 2), math.nan)), ValueError,
                   "b contains NaN or infinite values"),
    "dice labels a NaN": (lambda: M.dice(torch.full((1, 1, 2, 2), math.nan), B[..., :2, :2], labels=[1]), ValueError,
                          "a contains NaN or infinite values"),
    "dice labels b NaN": (lambda: M.dice(B[..., :2, :2], torch.full((1, 1, 2, 2), math.nan), labels=[1]), ValueError,
                          "b contains NaN or infinite values"),
    "soft_dice eps": (lambda: M.soft_dice(A, B, eps=0.0), ValueError, "eps must be positive, got 0.0"),
    "smooth_dice sigma": (lambda: M.smooth_dice(A, B, sigma=-1.0), ValueError, "sigma must be non-negative, got -1.0"),
    "tre moving": (lambda: M.tre(torch.zeros(2, 3), L3), ValueError, "landmarks_moving must have 3 dimensions, got shape (2, 3)"),
    "tre fixed": (lambda: M.tre(L3, torch.zeros(2, 3)), ValueError, "landmarks_fixed must have 3 dimensions, got shape (2, 3)"),
    "tre shapes": (lambda: M.tre(L3, torch.zeros(1, 3, 3)), ValueError,
                   "landmarks_moving and landmarks_fixed must both have shape (N, K, 2), got (1, 2, 3) and (1, 3, 3)"),
    "tre xyz": (lambda: M.tre(L3, L3), ValueError,
                "landmarks_moving and landmarks_fixed must both have shape (N, K, 2), got (1, 2, 3) and (1, 2, 3)"),
    "tre disp": (lambda: M.tre(L2, L2, torch.zeros(1, 3, 4, 4)), ValueError,
                 "disp must have 2 channels (x, y displacement in pixels), got shape (1, 3, 4, 4)"),
    "tre disp batch": (lambda: M.tre(L2, L2, torch.zeros(2, 2, 4, 4)), ValueError,
                       "disp must have N=1 fields, got shape (2, 2, 4, 4)"),
    "tre valid": (lambda: M.tre(L2, L2, valid=torch.ones(1, 3, dtype=torch.bool)), ValueError,
                  "valid must have shape (1, 2), got (1, 3)"),
    "tre valid empty": (lambda: M.tre(L2, L2, valid=torch.zeros(1, 2, dtype=torch.bool)), ValueError,
                        "valid must keep at least one landmark in every pair"),
    "epe disp": (lambda: M.epe(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 4, 4)), ValueError,
                 "disp must have 2 channels (x, y displacement in pixels), got shape (1, 3, 4, 4)"),
    "epe true_disp": (lambda: M.epe(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 5)), ValueError,
                      "true_disp must match the image batch and size: expected N=1, H,W=(4, 4), got shape (1, 2, 4, 5)"),
    "epe mask": (lambda: M.epe(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4), torch.ones(1, 1, 4, 5)), ValueError,
                 "mask must have shape (N,1,H,W) or (N,C,H,W) matching (1, 1, 4, 4), got (1, 1, 4, 5)"),
    "folding disp": (lambda: M.folding_fraction(torch.zeros(1, 3, 4, 4)), ValueError,
                     "disp must have 2 channels (x, y displacement in pixels), got shape (1, 3, 4, 4)"),
    "folding mask": (lambda: M.folding_fraction(torch.zeros(1, 2, 4, 4), torch.ones(1, 1, 4, 5)), ValueError,
                     "mask must have shape (N,1,H,W) or (N,C,H,W) matching (1, 1, 4, 4), got (1, 1, 4, 5)"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_bad_input_message(case):
    call, error, message = ERRORS[case]
    with pytest.raises(error) as info:
        call()
    assert str(info.value) == message


def _t(rows):
    return torch.tensor(rows, dtype=torch.float32)[None, None]


def test_mse_and_psnr_with_a_mask_by_hand():
    """Pair 0: errors 0.5, 0.5 and 1.0 in row 0, the mask keeps the first two: MSE 0.25.
    Pair 1: error 1 everywhere, all kept: MSE 1. Two channels share a one-channel mask."""
    a = torch.zeros(2, 2, 2, 3)
    b = torch.cat((_t([[0.5, 0.5, 1.0], [0.0, 0.0, 0.0]]).expand(1, 2, 2, 3), torch.ones(1, 2, 2, 3)))
    mask = torch.zeros(2, 1, 2, 3, dtype=torch.bool)
    mask[0, 0, 0, :2] = True
    mask[1] = True
    assert M.mse(a, b, mask).tolist() == [0.25, 1.0]
    assert M.mse(a, b).tolist() == pytest.approx([1.5 / 6, 1.0])
    # PSNR = 10 log10(R^2 / MSE): 10 log10(4 / 0.25) = 12.0412 dB with R = 2, and inf for equal images
    assert M.psnr(a, b, mask, data_range=2.0).tolist() == pytest.approx([10 * math.log10(16), 10 * math.log10(4)])
    assert M.psnr(a, b, mask).tolist() == pytest.approx([10 * math.log10(4), 0.0], abs=1e-5)
    assert M.psnr(a, a).tolist() == [math.inf, math.inf]


def test_ssim_with_a_mask_data_range_and_constants_against_skimage():
    """The SSIM map over the pixels whose 11-pixel window lies inside the image (5 px border) and
    inside the mask, with skimage's constants K1, K2 and data range."""
    g = torch.Generator().manual_seed(2)
    a = torch.rand(1, 1, 20, 23, generator=g)
    b = (0.7 * a + 0.3 * torch.rand(1, 1, 20, 23, generator=g)).clamp(0, 1)
    kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    _, smap = structural_similarity(a[0, 0].double().numpy(), b[0, 0].double().numpy(), data_range=2.0, K1=0.02,
                                    K2=0.05, full=True, **kw)
    mask = torch.zeros(1, 1, 20, 23, dtype=torch.bool)
    mask[..., :12, 3:17] = True
    inner = smap[5:-5, 5:-5][mask[0, 0, 5:-5, 5:-5].numpy()]
    got = M.ssim(a, b, mask, data_range=2.0, k1=0.02, k2=0.05)
    assert float(got) == pytest.approx(inner.mean(), abs=2e-5)
    plain = M.ssim(a, b, data_range=2.0, k1=0.02, k2=0.05)
    assert float(plain) == pytest.approx(smap[5:-5, 5:-5].mean(), abs=2e-5)
    # sigma 1: 9 taps (int(3.5 + 0.5) = 4), a 4 px border
    _, smap1 = structural_similarity(a[0, 0].double().numpy(), b[0, 0].double().numpy(), data_range=1.0,
                                     full=True, gaussian_weights=True, sigma=1.0, use_sample_covariance=False)
    assert float(M.ssim(a, b, sigma=1.0)) == pytest.approx(smap1[4:-4, 4:-4].mean(), abs=2e-5)


def test_ncc_with_a_mask_and_channels():
    """Pearson's r over the masked pixels of both channels, against NumPy; a constant image has 0."""
    g = torch.Generator().manual_seed(3)
    a, b = torch.rand(2, 2, 5, 6, generator=g), torch.rand(2, 2, 5, 6, generator=g)
    b[1] = (0.5 * a[1] + 0.5 * b[1])
    mask = torch.rand(2, 1, 5, 6, generator=g) > 0.4
    got = M.ncc(a, b, mask)
    for i in range(2):
        m = mask[i].expand(2, 5, 6).numpy()
        want = np.corrcoef(a[i].numpy()[m], b[i].numpy()[m])[0, 1]
        assert float(got[i]) == pytest.approx(want, abs=1e-5)
    assert M.ncc(torch.full((1, 1, 4, 4), 0.5), b[:1, :1, :4, :4]).tolist() == [0.0]
    assert M.ncc(torch.full((1, 1, 4, 4), 0.3), b[:1, :1, :4, :4]).tolist() == pytest.approx([0.0], abs=1e-6)
    assert M.ncc(a[:1], 1 - a[:1]).tolist() == pytest.approx([-1.0], abs=1e-6)


def test_dice_by_hand():
    """Binary: floats above 0.5 are in (0.5 itself is out), integers non-zero. ``|A| = 2``,
    ``|B| = 3``, ``|A and B| = 1``: 2/5. Label maps ``(1, 1, 2, 0, 2)`` and ``(1, 0, 2, 2, 1)``:
    label 1 and label 2 each overlap once in 2 + 2, Dice 1/2, mean 1/2. Against
    ``(1, 1, 2, 0, 0)``: label 1 is 2*2/(2+2) = 1, label 2 is 2*1/(2+1) = 2/3, mean 5/6. Two
    empty masks, and a label absent from both images, score 1."""
    a = _t([[0.9, 0.6, 0.5, 0.0]])
    b = _t([[1.0, 0.0, 0.7, 0.51]])
    assert M.dice(a, b).tolist() == pytest.approx([0.4])
    assert M.dice((a > 0.5).long() * 3, (b > 0.5).long()).tolist() == pytest.approx([0.4])
    la = torch.tensor([[1, 1, 2, 0, 2]])[None, None]
    lb = torch.tensor([[1, 0, 2, 2, 1]])[None, None]
    assert M.dice(la, lb, labels=[1, 2]).tolist() == pytest.approx([0.5])
    lc = torch.tensor([[1, 1, 2, 0, 0]])[None, None]
    assert M.dice(la, lc, labels=[1]).tolist() == pytest.approx([1.0])
    assert M.dice(la, lc, labels=[2]).tolist() == pytest.approx([2 / 3])
    assert M.dice(la, lc, labels=[1, 2]).tolist() == pytest.approx([(1 + 2 / 3) / 2])
    assert M.dice(la, lc, labels=[7]).tolist() == [1.0]
    empty = torch.zeros(2, 1, 3, 3)
    assert M.dice(empty, empty).tolist() == [1.0, 1.0]


def test_soft_dice_by_hand():
    """``a = (1, 0.5)``, ``b = (1, 1)``: ``(2 * 1.5 + eps) / (1.5 + 2 + eps) = 6/7``; the mask
    keeping the first pixel gives ``(2 + eps) / (2 + eps) = 1``; two black images ``eps/eps = 1``."""
    a, b = _t([[1.0, 0.5]]), _t([[1.0, 1.0]])
    assert float(M.soft_dice(a, b)) == pytest.approx(6 / 7, abs=1e-6)
    assert float(M.soft_dice(a, b, eps=1.0)) == pytest.approx(4 / 4.5, abs=1e-6)
    assert float(M.soft_dice(a, b, _t([[1.0, 0.0]]).bool())) == pytest.approx(1.0, abs=1e-6)
    black = torch.zeros(1, 1, 2, 2)
    assert float(M.soft_dice(black, black)) == pytest.approx(1.0, abs=1e-6)
    assert float(M.soft_dice(black, _t([[1.0, 1.0], [0.0, 0.0]]))) == pytest.approx(1e-6 / 2, rel=1e-3)


def test_smooth_dice_by_hand_and_with_the_blur():
    """sigma 0, ``a = (1, 0.5)``, ``b = (1, 1)``: ``2 * 1.5 / (1.25 + 2) = 12/13``. With a blur,
    the same formula on ``gaussian_filter(., sigma, 3.5)`` of each image (default sigma 1.5)."""
    a, b = _t([[1.0, 0.5]]), _t([[1.0, 1.0]])
    assert float(M.smooth_dice(a, b, sigma=0)) == pytest.approx(12 / 13, abs=1e-6)
    g = torch.Generator().manual_seed(4)
    x, y = torch.rand(2, 1, 9, 11, generator=g), torch.rand(2, 1, 9, 11, generator=g)
    for sigma, kwargs in ((1.5, {}), (0.8, {"sigma": 0.8})):
        bx, by = gaussian_filter(x, sigma, 3.5), gaussian_filter(y, sigma, 3.5)
        want = 2 * (bx * by).flatten(1).sum(1) / ((bx * bx).flatten(1).sum(1) + (by * by).flatten(1).sum(1))
        assert torch.allclose(M.smooth_dice(x, y, **kwargs), want, atol=1e-6)
    black = torch.zeros(1, 1, 4, 4)
    assert M.smooth_dice(black, black).tolist() == [1.0]
    assert M.smooth_dice(black, black, sigma=0).tolist() == [1.0]


def test_tre_with_a_field_and_valid_landmarks():
    """Fixed landmarks (1, 1) and (2.5, 0) carried by ``u = (x, 0.5)``: to (2, 1.5) and (5, 0.5)
    (bilinear read at x = 2.5). Moving landmarks (2, 1.5) and (5, 2.5): errors 0 and 2; mean 1,
    or 2 when only the second counts."""
    h, w = 3, 6
    u = torch.zeros(1, 2, h, w)
    u[0, 0] = torch.arange(w, dtype=torch.float32)
    u[0, 1] = 0.5
    fixed = torch.tensor([[[1.0, 1.0], [2.5, 0.0]]])
    moving = torch.tensor([[[2.0, 1.5], [5.0, 2.5]]])
    assert M.tre(moving, fixed, u).tolist() == pytest.approx([1.0])
    assert M.tre(moving, fixed, u, valid=torch.tensor([[False, True]])).tolist() == pytest.approx([2.0])
    assert M.tre(moving, fixed, u, valid=torch.tensor([[1, 1]])).tolist() == pytest.approx([1.0])
    # unregistered: |(1, 0.5)| and |(2.5, 2.5)|
    assert M.tre(moving, fixed).tolist() == pytest.approx([(math.sqrt(1.25) + math.sqrt(12.5)) / 2])
    assert M.tre(moving.double(), fixed.double(), u).dtype == torch.float32


def test_epe_with_a_mask():
    """Errors 5 (3-4-5) on the left column and 0 elsewhere of 2 x 2: mean 2.5, masked to the
    left column 5, to the right 0."""
    u = torch.zeros(1, 2, 2, 2)
    u[0, 0, :, 0], u[0, 1, :, 0] = 3.0, 4.0
    zero = torch.zeros_like(u)
    assert M.epe(u, zero).tolist() == [2.5]
    left = torch.tensor([[[[True, False], [True, False]]]])
    assert M.epe(u, zero, left).tolist() == [5.0]
    assert M.epe(u, zero, ~left).tolist() == [0.0]


def test_folding_fraction_counts_zero_and_negative_determinants():
    """``u_x = -2x`` on rows 0-1 of 5 (det 1 - 2 = -1 there, 1 elsewhere): 2/5 fold; masked to
    rows 0-2, 2/3. ``u_x = -x`` collapses every column (det 0): all fold."""
    u = torch.zeros(1, 2, 5, 4)
    u[0, 0, :2] = -2 * torch.arange(4.0)
    assert M.folding_fraction(u).tolist() == pytest.approx([0.4])
    rows = torch.zeros(1, 1, 5, 4, dtype=torch.bool)
    rows[..., :3, :] = True
    assert M.folding_fraction(u, rows).tolist() == pytest.approx([2 / 3])
    collapse = torch.zeros(1, 2, 5, 4)
    collapse[0, 0] = -torch.arange(4.0)
    assert M.folding_fraction(collapse).tolist() == [1.0]
    assert M.folding_fraction(torch.zeros(1, 2, 5, 4)).tolist() == [0.0]


def test_metrics_are_float32_without_gradients_even_for_float64_inputs():
    a = torch.rand(2, 1, 12, 12, dtype=torch.float64, requires_grad=True)
    b = torch.rand(2, 1, 12, 12, dtype=torch.float64)
    u = torch.zeros(2, 2, 12, 12, dtype=torch.float64, requires_grad=True)
    outs = [M.mse(a, b), M.psnr(a, b), M.ssim(a, b), M.ncc(a, b), M.soft_dice(a, b), M.smooth_dice(a, b),
            M.epe(u, u.detach()), M.folding_fraction(u)]
    for out in outs:
        assert out.dtype == torch.float32 and out.shape == (2,) and not out.requires_grad
    with torch.autocast("cpu", dtype=torch.bfloat16):
        s, d = M.ssim(a.float(), b.float()), M.smooth_dice(a.float(), b.float())
    assert s.dtype == torch.float32 and d.dtype == torch.float32
    assert torch.allclose(s, M.ssim(a, b), atol=1e-6) and torch.allclose(d, M.smooth_dice(a, b), atol=1e-6)


def test_the_device_follows_the_inputs_not_the_default_device():
    g = torch.Generator().manual_seed(6)
    a, b = torch.rand(2, 1, 12, 13, generator=g), torch.rand(2, 1, 12, 13, generator=g)
    u, mask = torch.randn(2, 2, 12, 13, generator=g), torch.rand(2, 1, 12, 13, generator=g) > 0.3
    lm, lf = torch.rand(2, 4, 2, generator=g) * 10, torch.rand(2, 4, 2, generator=g) * 10
    valid = torch.tensor([[1, 1, 0, 1], [1, 0, 0, 0]]).bool()
    calls = {
        "mse": lambda: M.mse(a, b, mask), "psnr": lambda: M.psnr(a, b), "ssim": lambda: M.ssim(a, b, mask),
        "ncc": lambda: M.ncc(a, b, mask), "dice": lambda: M.dice(a, b),
        "labels": lambda: M.dice(a.round().long(), b.round().long(), [0, 1]),
        "soft_dice": lambda: M.soft_dice(a, b, mask), "smooth_dice": lambda: M.smooth_dice(a, b),
        "tre": lambda: M.tre(lm, lf, u, valid=valid),
        "epe": lambda: M.epe(u, -u, mask), "folding_fraction": lambda: M.folding_fraction(u, mask),
    }
    for name, call in calls.items():
        ref = call()
        with torch.device("meta"):
            out = call()
        assert out.device.type == "cpu" and torch.equal(out, ref), name


def test_dice_per_pair_integers_and_single_pixels():
    """Two pairs in one batch keep their own scores; negative integers are non-zero, so they count;
    one pixel against an empty mask scores 0 (only two empty masks score 1)."""
    a = torch.tensor([[[[1, 0, 2, 0]]], [[[0, -1, 0, 0]]]])
    b = torch.tensor([[[[1, 1, 0, 0]]], [[[0, 5, 0, 0]]]])
    assert M.dice(a, b).tolist() == pytest.approx([0.5, 1.0])
    assert M.dice(a.float(), b.float()).tolist() == pytest.approx([0.5, 0.0])     # floats: above 0.5 only
    one, empty = torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)
    one[..., 0, 0] = 1.0
    assert M.dice(one, empty).tolist() == [0.0] and M.dice(empty, one).tolist() == [0.0]
    la = torch.tensor([[[[1, 1, 2]]], [[[2, 2, 2]]]])
    lb = torch.tensor([[[[1, 2, 2]]], [[[2, 1, 1]]]])
    # pair 0: label 1 -> 2/3, label 2 -> 2/3; pair 1: label 1 -> 0, label 2 -> 2*1/(3+1) = 1/2
    assert M.dice(la, lb, labels=[1, 2]).tolist() == pytest.approx([2 / 3, 0.25])


def test_epe_of_two_nonzero_fields():
    """``|(1, 2) - (4, -2)| = 5`` everywhere; per pair, in a batch of two."""
    u = torch.zeros(2, 2, 3, 3)
    v = torch.zeros(2, 2, 3, 3)
    u[0, 0], u[0, 1], v[0, 0], v[0, 1] = 1.0, 2.0, 4.0, -2.0
    u[1, 0], v[1, 0] = -1.0, 2.0
    assert M.epe(u, v).tolist() == [5.0, 3.0]


def test_tre_per_pair_with_weights_read_as_truth_values():
    """Two pairs: errors (1, 3) and (2, 4). ``valid`` keeps (yes, yes) and (no, yes); any non-zero
    entry counts as true (a float 2.0 does not weight the landmark twice)."""
    fixed = torch.zeros(2, 2, 2)
    moving = torch.tensor([[[1.0, 0.0], [3.0, 0.0]], [[0.0, 2.0], [0.0, 4.0]]])
    assert M.tre(moving, fixed).tolist() == [2.0, 3.0]
    assert M.tre(moving, fixed, valid=torch.tensor([[True, True], [False, True]])).tolist() == [2.0, 4.0]
    assert M.tre(moving, fixed, valid=torch.tensor([[2.0, 1.0], [0.0, 3.0]])).tolist() == [2.0, 4.0]
    with pytest.raises(ValueError, match="valid must keep at least one landmark in every pair"):
        M.tre(moving, fixed, valid=torch.tensor([[True, True], [False, False]]))


def test_smooth_dice_threshold_of_a_black_pair():
    """Denominators up to 1e-12 count as two black images (score 1): a pixel of 1e-6 (squared
    exactly 1e-12 in float32) against black scores 1; 2e-6 scores 0."""
    a, black = torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)
    a[..., 0, 0] = 1e-6
    assert M.smooth_dice(a, black, sigma=0).tolist() == [1.0]
    a[..., 0, 0] = 2e-6
    assert M.smooth_dice(a, black, sigma=0).tolist() == [0.0]


def test_ncc_threshold_of_a_constant_image():
    """Products of standard deviations up to 1e-12 count as constant (NCC 0): ``(0, 2e-6)`` has a
    standard deviation of exactly 1e-6 in float32, so its NCC with itself is 0, not 1."""
    a = torch.tensor([[[[0.0, 2e-6]]]])
    assert M.ncc(a, a).tolist() == [0.0]
    b = torch.tensor([[[[0.0, 4e-6]]]])
    assert M.ncc(b, b).tolist() == pytest.approx([1.0])


def test_ssim_constants_on_dark_images_and_many_channels():
    """On dark images the constants ``c1 = (k1 R)^2`` and ``c2 = (k2 R)^2`` weigh as much as the
    statistics: against skimage to 1e-6 with R = 2; six channels are averaged like skimage's."""
    g = torch.Generator().manual_seed(12)
    a = torch.rand(1, 6, 16, 15, generator=g) * 0.05
    b = (a + 0.02 * torch.rand(1, 6, 16, 15, generator=g)).clamp(0, 1)
    kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=2.0, channel_axis=0)
    want = structural_similarity(a[0].double().numpy(), b[0].double().numpy(), **kw)
    assert float(M.ssim(a, b, data_range=2.0)) == pytest.approx(want, abs=1e-6)
    want1 = structural_similarity(a[0, :1].double().numpy(), b[0, :1].double().numpy(), K1=0.05, K2=0.1, **kw)
    assert float(M.ssim(a[:, :1], b[:, :1], data_range=2.0, k1=0.05, k2=0.1)) == pytest.approx(want1, abs=1e-6)
