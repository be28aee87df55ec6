r"""Baselines and controls: methods that register nothing, and say so.

They stand beside the real methods in :func:`regkit.register` so that every table can put a
floor and a ceiling next to its rows, through the same protocol:

- ``identity`` (kind ``"baseline"``): the moving image as it is, the unregistered row.
- ``appearance_transfer`` (kind ``"control"``): the moving image given the fixed image's global
  intensity statistics (histogram or mean/std matching, per pair, no learning). It changes how
  the image looks and nothing about where anything is (its ``disp`` is zero).
- ``fixed_oracle`` (kind ``"control"``): the fixed image itself, the upper bound of every score.
- ``constant_shift`` (kind ``"control"``): every moving image moved by one given shift. A
  sub-pixel shift blurs (bilinear interpolation), which is all it does: fitted to a training set,
  it shows what "no registration" can score on blur-tolerant metrics.

Convention
----------
Images ``N,C,H,W`` float in [0, 1]; the outputs are float32 on the inputs' device; displacements
``N,2,H,W`` in pixels (zero where a method does not move anything).

Example
-------
>>> import torch, regkit
>>> g = torch.Generator().manual_seed(0)
>>> m, f = torch.rand(2, 1, 32, 32, generator=g), torch.rand(2, 1, 32, 32, generator=g) ** 2
>>> out = regkit.register(m, f, method="appearance_transfer").warped
>>> bool(torch.allclose(out.flatten(1).sort(1).values, f.flatten(1).sort(1).values, atol=1e-6))
True
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.exposure import match_histograms
from torch import Tensor

from . import spatial
from ._checks import check_pair
from .registry import RegResult, method

__all__ = ["histogram_match", "meanstd_match", "MATCHERS"]


@torch.no_grad()
def histogram_match(moving: Tensor, fixed: Tensor) -> Tensor:
    """The moving image with the fixed image's intensity histogram, per pair and channel.

    ``skimage.exposure.match_histograms`` on each pair: quantile mapping, each distinct moving
    value replaced by the fixed value at the same quantile. The map is monotone, so the spatial
    layout is the moving image's; with images of the same size and no ties the output's sorted
    values are exactly the fixed image's.

    Parameters
    ----------
    moving, fixed : Tensor ``N,C,H,W`` float, same shape

    Returns
    -------
    Tensor ``N,C,H,W`` float32 on the inputs' device.
    """
    check_pair("moving", moving, "fixed", fixed)
    m = moving.detach().float().cpu().numpy()
    f = fixed.detach().float().cpu().numpy()
    out = np.stack([match_histograms(mi, fi, channel_axis=0) for mi, fi in zip(m, f)])
    return torch.from_numpy(out.astype(np.float32)).to(moving.device)


@torch.no_grad()
def meanstd_match(moving: Tensor, fixed: Tensor) -> Tensor:
    r"""The moving image with the fixed image's mean and standard deviation, per pair and channel.

    :math:`(m - \mu_m)\,\sigma_f / \sigma_m + \mu_f`, then clipped to [0, 1] (the result must stay
    an image). A flat moving image gives a flat image at the fixed mean.

    Parameters
    ----------
    moving, fixed : Tensor ``N,C,H,W`` float, same shape

    Returns
    -------
    Tensor ``N,C,H,W`` float32.

    >>> m = torch.linspace(0, 1, 16).view(1, 1, 4, 4)
    >>> out = meanstd_match(m, 0.5 * m + 0.2)
    >>> round(float(out.mean()), 4), round(float(out.std()), 4)
    (0.45, 0.1587)
    """
    check_pair("moving", moving, "fixed", fixed)
    m, f = moving.float(), fixed.float()
    mu_m, mu_f = m.mean((2, 3), keepdim=True), f.mean((2, 3), keepdim=True)
    sd_m, sd_f = m.std((2, 3), keepdim=True), f.std((2, 3), keepdim=True)
    scale = torch.where(sd_m > 1e-6, sd_f / sd_m.clamp_min(1e-6), torch.zeros_like(sd_m))
    return ((m - mu_m) * scale + mu_f).clamp(0, 1)


MATCHERS = {"histogram": histogram_match, "meanstd": meanstd_match}
"""The appearance matchers of ``appearance_transfer`` by ``mode``."""


def _zero_disp(x: Tensor) -> Tensor:
    return torch.zeros(x.shape[0], 2, *x.shape[-2:], device=x.device)


@method("identity", kind="baseline", summary="No registration: the moving image as it is (the unregistered row).")
def _identity(moving: Tensor, fixed: Tensor) -> RegResult:
    return RegResult(warped=moving.float().clone(), disp=_zero_disp(moving))


@method(
    "appearance_transfer",
    kind="control",
    summary="Control: the moving image given the fixed image's global intensity statistics "
    "(histogram or mean/std matching, per pair, no learning); geometry untouched (disp = 0).",
)
def _appearance_transfer(moving: Tensor, fixed: Tensor, mode: str = "histogram") -> RegResult:
    if mode not in MATCHERS:
        raise ValueError(f"mode must be one of {sorted(MATCHERS)}, got {mode!r}")
    return RegResult(warped=MATCHERS[mode](moving, fixed), disp=_zero_disp(moving), extras={"mode": mode})


@method(
    "fixed_oracle",
    kind="control",
    summary="Control: the fixed image itself, the upper bound of every score (no displacement).",
)
def _fixed_oracle(moving: Tensor, fixed: Tensor) -> RegResult:
    return RegResult(warped=fixed.float().clone(), disp=None)


@method(
    "constant_shift",
    kind="control",
    summary="Control: every moving image moved by one constant shift (dx, dy) in pixels; registers nothing, "
    "blurs a little (bilinear interpolation).",
)
def _constant_shift(moving: Tensor, fixed: Tensor, shift=(0.0, 0.0)) -> RegResult:
    try:
        dx, dy = (float(v) for v in shift)
    except (TypeError, ValueError):
        raise TypeError(f"shift must be a pair of numbers (dx, dy) in pixels, got {shift!r}") from None
    if not (abs(dx) < float("inf") and abs(dy) < float("inf")):
        raise ValueError(f"shift must be finite, got {shift!r}")
    disp = _zero_disp(moving)
    disp[:, 0], disp[:, 1] = dx, dy
    return RegResult(warped=spatial.warp(moving.float(), disp), disp=disp, extras={"shift": [dx, dy]})
