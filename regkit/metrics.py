r"""Evaluation metrics: one value per pair, no gradients.

Convention
----------
- Inputs are batches ``N,C,H,W`` (float, intensities in [0, 1]); every metric returns a float32
  tensor of shape ``N`` (one value per pair), on the inputs' device.
- Argument order is ``(a, b)`` for symmetric metrics and ``(moving, fixed)`` where it matters.
- ``mask`` (optional) is ``N,1,H,W`` or ``N,C,H,W``, bool or {0, 1}; only pixels where it is
  true count.
- Metrics run in float32 under autocast and never track gradients; for training, use
  :mod:`regkit.losses`.

Example
-------
>>> import torch
>>> from regkit import metrics
>>> x = torch.rand(2, 1, 32, 32)
>>> metrics.ncc(x, x)
tensor([1., 1.])
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._checks import check_disp, check_mask, check_pair, check_positive, check_tensor
from .filters import gaussian_filter, gaussian_kernel1d
from .spatial import jacobian_determinant, sample_points

__all__ = ["mse", "psnr", "ssim", "ncc", "dice", "soft_dice", "smooth_dice", "tre", "epe", "folding_fraction"]

_NCC_EPS = 1e-12
SOFT_DICE_EPS = 1e-6
"""Smoothing constant of :func:`soft_dice`, added to numerator and denominator."""
SMOOTH_DICE_SIGMA = 1.5
"""Gaussian width (pixels) of :func:`smooth_dice`, calibrated on unregistered MNIST pairs."""


def _float(*xs: Tensor):
    return tuple(x.float() for x in xs)


def _masked_mean(values: Tensor, mask: Tensor | None) -> Tensor:
    """Mean over all but the batch dimension, weighted by ``mask`` (broadcast over channels)."""
    if mask is None:
        return values.flatten(1).mean(1)
    mask = mask.expand_as(values)
    total = mask.flatten(1).sum(1)
    if bool((total == 0).any()):
        raise ValueError("mask must select at least one pixel in every pair")
    return (values * mask).flatten(1).sum(1) / total


@torch.no_grad()
def mse(a: Tensor, b: Tensor, mask: Tensor | None = None) -> Tensor:
    r"""Mean squared error per pair, :math:`\frac{1}{|\Omega|}\sum_\Omega (a - b)^2`."""
    check_pair("a", a, "b", b)
    mask = check_mask("mask", mask, a)
    a, b = _float(a, b)
    return _masked_mean((a - b) ** 2, mask)


@torch.no_grad()
def psnr(a: Tensor, b: Tensor, mask: Tensor | None = None, data_range: float = 1.0) -> Tensor:
    r"""Peak signal-to-noise ratio in dB, :math:`10\log_{10}(R^2/\mathrm{MSE})`; ``inf`` for equal images.

    >>> psnr(torch.zeros(1, 1, 4, 4), torch.full((1, 1, 4, 4), 0.1))
    tensor([20.])
    """
    check_positive("data_range", data_range)
    err = mse(a, b, mask)
    return 10.0 * torch.log10(data_range**2 / err)


@torch.no_grad()
def ssim(
    a: Tensor,
    b: Tensor,
    mask: Tensor | None = None,
    data_range: float = 1.0,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> Tensor:
    r"""Structural similarity (Wang et al. 2004) per pair, Gaussian window (11 taps for sigma 1.5).

    Local means, variances and covariance are Gaussian-weighted (truncated at 3.5 sigma, population
    covariance); the SSIM map is averaged over the pixels whose window lies fully inside the image
    (and inside ``mask``), and over channels. This equals
    ``skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1)`` to about 1e-5.

    >>> x = torch.rand(1, 1, 32, 32)
    >>> ssim(x, x)
    tensor([1.])
    """
    check_pair("a", a, "b", b)
    mask = check_mask("mask", mask, a)
    check_positive("data_range", data_range)
    check_positive("sigma", sigma)
    r = (gaussian_kernel1d(float(sigma), 3.5, "round").numel() - 1) // 2
    if min(a.shape[-2:]) <= 2 * r:
        raise ValueError(f"a and b must be larger than the {2 * r + 1}-pixel SSIM window, got {tuple(a.shape[-2:])}")
    with torch.autocast(device_type=a.device.type, enabled=False):
        a, b = _float(a, b)
        c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
        stats = gaussian_filter(torch.cat((a, b, a * a, b * b, a * b), 1), sigma, 3.5, padding="valid")
        mu_a, mu_b, aa, bb, ab = stats.chunk(5, dim=1)
        var_a, var_b, cov = aa - mu_a**2, bb - mu_b**2, ab - mu_a * mu_b
        smap = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
        if mask is not None:
            mask = mask[..., r:-r, r:-r]
        return _masked_mean(smap, mask)


@torch.no_grad()
def ncc(a: Tensor, b: Tensor, mask: Tensor | None = None) -> Tensor:
    r"""Global normalised cross-correlation (Pearson's r) per pair, over channels and pixels.

    :math:`\mathrm{NCC} = \frac{\sum (a-\bar a)(b-\bar b)}{\sqrt{\sum (a-\bar a)^2 \sum (b-\bar b)^2}}`
    in [-1, 1]; a constant image has no correlation and gives 0.
    """
    check_pair("a", a, "b", b)
    mask = check_mask("mask", mask, a)
    a, b = _float(a, b)
    ma, mb = _masked_mean(a, mask).view(-1, 1, 1, 1), _masked_mean(b, mask).view(-1, 1, 1, 1)
    da, db = a - ma, b - mb
    num = _masked_mean(da * db, mask)
    den = torch.sqrt(_masked_mean(da * da, mask) * _masked_mean(db * db, mask))
    return torch.where(den > _NCC_EPS, num / den.clamp_min(_NCC_EPS), torch.zeros_like(num))


def _as_binary(name: str, x: Tensor) -> Tensor:
    check_tensor(name, x, ndim=4, floating=False)
    return x > 0.5 if x.is_floating_point() else x != 0


@torch.no_grad()
def dice(a: Tensor, b: Tensor, labels=None) -> Tensor:
    r"""Dice overlap :math:`2|A\cap B|/(|A|+|B|)` per pair.

    Without ``labels``, inputs are binary masks (floats are thresholded at 0.5, integers at
    non-zero). With ``labels`` (a list of label values), inputs are integer label maps and the result
    is the mean Dice over those labels. Two empty masks overlap perfectly (Dice 1).
    """
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"a and b must be N,C,H,W masks of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if labels is None:
        sets = [(_as_binary("a", a), _as_binary("b", b))]
    else:
        check_tensor("a", a, ndim=4, floating=False)
        check_tensor("b", b, ndim=4, floating=False)
        if len(labels) == 0:
            raise ValueError("labels must name at least one label value")
        sets = [(a == lab, b == lab) for lab in labels]
    scores = []
    for sa, sb in sets:
        inter = (sa & sb).flatten(1).sum(1).float()
        total = (sa.flatten(1).sum(1) + sb.flatten(1).sum(1)).float()
        scores.append(torch.where(total > 0, 2 * inter / total.clamp_min(1), torch.ones_like(total)))
    return torch.stack(scores).mean(0)


@torch.no_grad()
def soft_dice(a: Tensor, b: Tensor, mask: Tensor | None = None, eps: float = SOFT_DICE_EPS) -> Tensor:
    r"""Soft Dice of two intensity (or probability) images in [0, 1], per pair.

    :math:`\frac{2\sum ab + \epsilon}{\sum a + \sum b + \epsilon}` with ``eps`` =
    :data:`SOFT_DICE_EPS` (1e-6) by default, so that two black images score 1.
    """
    check_pair("a", a, "b", b)
    mask = check_mask("mask", mask, a)
    check_positive("eps", eps)
    a, b = _float(a, b)
    if mask is not None:
        a, b = a * mask, b * mask
    num = 2 * (a * b).flatten(1).sum(1) + eps
    return num / (a.flatten(1).sum(1) + b.flatten(1).sum(1) + eps)


@torch.no_grad()
def smooth_dice(a: Tensor, b: Tensor, sigma: float = SMOOTH_DICE_SIGMA) -> Tensor:
    r"""Smooth Dice per pair: the overlap score of the AiR paper's Table 1, as regkit defines it.

    The AiR paper reports a "Smooth DICE" on MNIST intensity images without defining it. Ours is
    the squared-denominator soft Dice (Milletari et al.'s V-Net form) of the two images after a
    Gaussian blur of width :math:`\sigma` (zero padding, truncated at 3.5 sigma):

    .. math::

        \mathrm{SmoothDice}(a, b) = \frac{2 \langle G_\sigma * a,\; G_\sigma * b \rangle}
                                         {\lVert G_\sigma * a \rVert^2 + \lVert G_\sigma * b \rVert^2}

    - It is 1 for identical images and falls towards 0 as the strokes stop overlapping; two black
      images score 1. ``sigma=0`` gives the unblurred V-Net Dice.
    - Without the blur, two thin strokes a pixel apart do not overlap at all; the blur makes the
      score tolerant to misalignments of about :math:`\sigma` pixels, hence "smooth".
    - The squared denominator makes it invariant to a common intensity scale and to zero padding.

    :data:`SMOOTH_DICE_SIGMA` = 1.5 px is *calibrated*, not derived: it is the round value for
    which the unregistered MNIST test pairs (our 80/20 split, seed 0) score about the paper's
    0.756. Because of this calibration the unregistered row cannot confirm the definition; only the
    registered rows, scored with the same sigma, say something.

    >>> x = torch.zeros(1, 1, 16, 16); x[..., 6:10, 6:10] = 1
    >>> smooth_dice(x, x)
    tensor([1.])
    >>> bool(smooth_dice(x, x.roll(1, -1)) > smooth_dice(x, x.roll(3, -1)))
    True
    """
    check_pair("a", a, "b", b)
    check_positive("sigma", sigma, allow_zero=True)
    with torch.autocast(device_type=a.device.type, enabled=False):
        a, b = _float(a, b)
        if sigma > 0:
            a, b = gaussian_filter(a, sigma, 3.5), gaussian_filter(b, sigma, 3.5)
        num = 2 * (a * b).flatten(1).sum(1)
        den = (a * a).flatten(1).sum(1) + (b * b).flatten(1).sum(1)
        return torch.where(den > _NCC_EPS, num / den.clamp_min(_NCC_EPS), torch.ones_like(den))


@torch.no_grad()
def tre(
    landmarks_moving: Tensor, landmarks_fixed: Tensor, disp: Tensor | None = None, valid: Tensor | None = None
) -> Tensor:
    r"""Target registration error in pixels: mean distance per pair after moving the fixed landmarks.

    Each fixed landmark :math:`q` is carried by the pull field to :math:`q + u(q)` (``u`` sampled
    bilinearly) and compared with its moving counterpart:
    :math:`\mathrm{TRE} = \frac{1}{K}\sum_k \lVert q_k + u(q_k) - m_k \rVert`. Without ``disp`` this is
    the unregistered error.

    Parameters
    ----------
    landmarks_moving, landmarks_fixed : Tensor ``N,K,2``, pixels (x, y)
    disp : Tensor ``N,2,H,W``, optional
    valid : Tensor ``N,K`` bool, optional, which landmarks exist (for pairs with fewer than K)

    >>> q = torch.tensor([[[3.0, 4.0]]]); m = q + torch.tensor([1.0, 0.0])
    >>> tre(m, q), tre(m, q, torch.ones(1, 2, 8, 8) * torch.tensor([1.0, 0.0]).view(1, 2, 1, 1))
    (tensor([1.]), tensor([0.]))
    """
    check_tensor("landmarks_moving", landmarks_moving, ndim=3)
    check_tensor("landmarks_fixed", landmarks_fixed, ndim=3)
    if landmarks_moving.shape != landmarks_fixed.shape or landmarks_fixed.shape[-1] != 2:
        raise ValueError(
            "landmarks_moving and landmarks_fixed must both have shape (N, K, 2), got "
            f"{tuple(landmarks_moving.shape)} and {tuple(landmarks_fixed.shape)}"
        )
    q = landmarks_fixed.float()
    if disp is not None:
        check_disp("disp", disp)
        if disp.shape[0] != q.shape[0]:
            raise ValueError(f"disp must have N={q.shape[0]} fields, got shape {tuple(disp.shape)}")
        q = q + sample_points(disp, q)
    dist = (q - landmarks_moving.float()).norm(dim=-1)
    if valid is None:
        return dist.mean(1)
    if valid.shape != dist.shape:
        raise ValueError(f"valid must have shape {tuple(dist.shape)}, got {tuple(valid.shape)}")
    valid = valid.to(dist.device, torch.bool)
    if bool((valid.sum(1) == 0).any()):
        raise ValueError("valid must keep at least one landmark in every pair")
    return (dist * valid).sum(1) / valid.sum(1)


@torch.no_grad()
def epe(disp: Tensor, true_disp: Tensor, mask: Tensor | None = None) -> Tensor:
    r"""Mean end-point error in pixels per pair, :math:`\frac{1}{|\Omega|}\sum \lVert u(p) - u^*(p)\rVert`.

    ``mask`` (``N,1,H,W``) restricts the mean, e.g. to the valid region
    ``regkit.spatial.inside_mask(true_disp)`` where the true field reads inside the image.

    >>> u = torch.zeros(1, 2, 4, 4); u[:, 0] = 3.0; u[:, 1] = 4.0
    >>> epe(u, torch.zeros_like(u))
    tensor([5.])
    """
    check_disp("disp", disp)
    check_disp("true_disp", true_disp, like=disp)
    err = (disp.float() - true_disp.float()).norm(dim=1, keepdim=True)
    return _masked_mean(err, check_mask("mask", mask, err))


@torch.no_grad()
def folding_fraction(disp: Tensor, mask: Tensor | None = None) -> Tensor:
    r"""Fraction of pixels where the map :math:`p + u(p)` folds (Jacobian determinant :math:`\le 0`)."""
    check_disp("disp", disp)
    det = jacobian_determinant(disp)[:, None]
    mask = check_mask("mask", mask, det)
    return _masked_mean((det <= 0).float(), mask)

