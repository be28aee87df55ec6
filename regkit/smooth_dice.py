r"""Smooth Dice: the overlap score of the AiR paper's Table 1, as regkit defines it.

The AiR paper reports a "Smooth DICE" on MNIST intensity images without defining it. Ours is the
squared-denominator soft Dice (Milletari et al.'s V-Net form) of the two images after a Gaussian
blur of width :math:`\sigma`:

.. math::

    \mathrm{SmoothDice}(a, b) = \frac{2 \langle G_\sigma * a,\; G_\sigma * b \rangle}
                                     {\lVert G_\sigma * a \rVert^2 + \lVert G_\sigma * b \rVert^2}

- It is 1 for identical images and falls towards 0 as the strokes stop overlapping.
- Without the blur, two thin strokes a pixel apart do not overlap at all; the blur makes the score
  tolerant to misalignments of about :math:`\sigma` pixels, hence "smooth".
- The squared denominator makes it invariant to a common intensity scale and to zero padding
  (the blur pads with zeros, MNIST's background).

:data:`SMOOTH_DICE_SIGMA` = 1.5 px is *calibrated*, not derived: it is the round value for which
the unregistered MNIST test pairs (our 80/20 split, seed 0) score about the paper's 0.756 (we get
0.766 ± 0.118; the paper reports 0.756 ± 0.039, so the spread does not match). Because of this
calibration the unregistered row cannot confirm the definition; only the registered rows, scored
with the same sigma, say something.

Convention
----------
Inputs ``N,C,H,W`` float in [0, 1]; returns float32 ``N`` (one score per pair), no gradients,
float32 under autocast, on the inputs' device. Two black images score 1.

Example
-------
>>> import torch
>>> x = torch.zeros(1, 1, 16, 16); x[..., 6:10, 6:10] = 1
>>> smooth_dice(x, x)
tensor([1.])
>>> bool(smooth_dice(x, x.roll(1, -1)) > smooth_dice(x, x.roll(3, -1)))
True
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import check_pair, check_positive

__all__ = ["smooth_dice", "SMOOTH_DICE_SIGMA"]

SMOOTH_DICE_SIGMA = 1.5
"""Gaussian width (pixels) of :func:`smooth_dice`, calibrated on unregistered MNIST pairs."""

_EPS = 1e-12


@lru_cache(maxsize=8)
def _kernel(sigma: float) -> Tensor:
    radius = max(1, int(3.5 * sigma + 0.5))
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).float()


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur per channel with zero padding (same size), truncated at 3.5 sigma."""
    k = _kernel(float(sigma)).to(x.device)
    r = (k.numel() - 1) // 2
    c = x.shape[1]
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), padding=(0, r), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), padding=(r, 0), groups=c)


@torch.no_grad()
def smooth_dice(a: Tensor, b: Tensor, sigma: float = SMOOTH_DICE_SIGMA) -> Tensor:
    r"""Smooth Dice per pair (see the module docstring); ``sigma=0`` gives the unblurred V-Net Dice."""
    check_pair("a", a, "b", b)
    check_positive("sigma", sigma, allow_zero=True)
    with torch.autocast(device_type=a.device.type, enabled=False):
        a, b = a.float(), b.float()
        if sigma > 0:
            a, b = gaussian_blur(a, sigma), gaussian_blur(b, sigma)
        num = 2 * (a * b).flatten(1).sum(1)
        den = (a * a).flatten(1).sum(1) + (b * b).flatten(1).sum(1)
        return torch.where(den > _EPS, num / den.clamp_min(_EPS), torch.ones_like(den))
