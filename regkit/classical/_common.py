r"""Helpers shared by the classical methods (Demons, Horn-Schunck, SyN): smoothing, gradients, pyramids.

Anyone writing a classical method may import these; they are small, batched and device-following.

- :func:`gaussian_blur` -- separable Gaussian filter of any ``N,C,H,W`` tensor (images or
  displacement fields), replicate padding, a convolution (no resampling).
- :func:`image_gradient` -- central-difference gradient ``N,2,H,W`` (x then y) of a grey batch.
- :func:`pyramid_sizes` / :func:`image_pyramid` -- coarse-to-fine sizes and images (resampling via
  :func:`regkit.spatial.resize_image`, anti-aliased).
- :func:`grey` -- ``N,C,H,W`` -> ``N,1,H,W`` float32 by averaging channels.
- :func:`check_levels_iterations` -- validate ``levels`` and a per-level ``iterations`` spec.

Convention
----------
Images ``N,C,H,W`` float; displacements ``N,2,H,W`` in pixels, channel 0 = x, pull on the fixed
grid (see :mod:`regkit.spatial`). Sigmas are in pixels of the grid they act on.

Example
-------
>>> import torch
>>> u = torch.ones(1, 2, 16, 16)
>>> torch.allclose(gaussian_blur(u, 2.0), u)   # a constant field is left unchanged
True
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import spatial
from .._checks import check_image, check_positive

__all__ = [
    "gaussian_kernel1d",
    "gaussian_blur",
    "image_gradient",
    "grey",
    "pyramid_sizes",
    "image_pyramid",
    "check_levels_iterations",
]


@lru_cache(maxsize=32)
def _kernel_cpu(sigma: float, truncate: float) -> Tensor:
    radius = max(1, int(math.ceil(truncate * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).float()


def gaussian_kernel1d(sigma: float, truncate: float = 3.0, device=None) -> Tensor:
    """Normalised 1-D Gaussian taps, radius ``ceil(truncate * sigma)`` (at least 1).

    >>> gaussian_kernel1d(1.0).numel()
    7
    """
    check_positive("sigma", sigma)
    check_positive("truncate", truncate)
    return _kernel_cpu(float(sigma), float(truncate)).to(device)


def gaussian_blur(x: Tensor, sigma: float, truncate: float = 3.0) -> Tensor:
    """Separable Gaussian smoothing of every channel of ``x`` (``N,C,H,W``), replicate padding.

    ``sigma = 0`` returns ``x`` unchanged. Used for the fluid (update) and diffusion (total field)
    regularisation of Demons and SyN, and for pre-smoothing images.

    >>> x = torch.zeros(1, 1, 9, 9); x[..., 4, 4] = 1
    >>> round(float(gaussian_blur(x, 1.0).sum()), 4)
    1.0
    """
    check_image("x", x)
    check_positive("sigma", sigma, allow_zero=True)
    if sigma == 0:
        return x
    taps = _kernel_cpu(float(sigma), float(truncate)).tolist()
    r = (len(taps) - 1) // 2
    n, c, h, w = x.shape
    if r >= h or r >= w:  # replicate padding needs the image to be larger than the radius
        r = min(r, h - 1, w - 1)
        mid = (len(taps) - 1) // 2
        taps = taps[mid - r : mid + r + 1]
        taps = [t / sum(taps) for t in taps]
    # A sum of shifted slices: for these short kernels it is far faster on the CPU than a
    # single-channel conv2d, and exact (symmetric taps are paired).
    y = F.pad(x.reshape(n * c, 1, h, w), (r, r, r, r), mode="replicate")[:, 0]
    a = taps[r] * y[:, :, r : r + w]
    for i in range(r):
        a = a + taps[i] * (y[:, :, i : i + w] + y[:, :, 2 * r - i : 2 * r - i + w])
    b = taps[r] * a[:, r : r + h]
    for i in range(r):
        b = b + taps[i] * (a[:, i : i + h] + a[:, 2 * r - i : 2 * r - i + h])
    return b.reshape(n, c, h, w)


def image_gradient(x: Tensor) -> Tensor:
    """Central-difference gradient of a grey batch ``N,1,H,W`` -> ``N,2,H,W`` (d/dx, d/dy), per pixel.

    One-sided differences at the border (``torch.gradient``).

    >>> g = image_gradient(spatial.identity_grid((4, 5))[:, :1].clone())   # the x coordinate
    >>> g[0, 0].unique().tolist(), g[0, 1].unique().tolist()
    ([1.0], [0.0])
    """
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"x must be a grey batch N,1,H,W, got shape {tuple(x.shape)}")
    gy, gx = torch.gradient(x[:, 0], dim=(1, 2))
    return torch.stack((gx, gy), 1)


def grey(x: Tensor) -> Tensor:
    """``N,C,H,W`` -> ``N,1,H,W`` float32, the mean over channels."""
    return x.float().mean(1, keepdim=True)


def pyramid_sizes(size, levels: int, min_size: int = 16) -> list[tuple[int, int]]:
    """Sizes of a ``levels``-level pyramid, coarse to fine, halving per level (never below ``min_size``).

    >>> pyramid_sizes((256, 256), 3)
    [(64, 64), (128, 128), (256, 256)]
    """
    h, w = (int(s) for s in size)
    check_positive("levels", levels, integer=True)
    sizes = [(h, w)]
    for _ in range(levels - 1):
        ph, pw = sizes[-1]
        nh, nw = (ph + 1) // 2, (pw + 1) // 2
        if min(nh, nw) < min_size:
            break
        sizes.append((nh, nw))
    return sizes[::-1]


def image_pyramid(x: Tensor, sizes) -> list[Tensor]:
    """Anti-aliased resizes of ``x`` to each of ``sizes`` (the full size returns ``x`` itself)."""
    return [x if tuple(s) == tuple(x.shape[-2:]) else spatial.resize_image(x, s, antialias=True) for s in sizes]


def check_levels_iterations(levels, iterations) -> tuple[int, list[int]]:
    """Validate ``levels`` (positive int) and ``iterations`` (an int for every level, or one per
    level, coarse to fine); returns ``(levels, per_level)``.

    >>> check_levels_iterations(3, 20)
    (3, [20, 20, 20])
    """
    check_positive("levels", levels, integer=True)
    if isinstance(iterations, int) and not isinstance(iterations, bool):
        check_positive("iterations", iterations, integer=True)
        return levels, [iterations] * levels
    try:
        per = list(iterations)
    except TypeError:
        raise TypeError(f"iterations must be an int or a sequence of ints, got {iterations!r}") from None
    if len(per) != levels:
        raise ValueError(f"iterations must give one count per level ({levels}), got {per}")
    for i in per:
        check_positive("iterations", i, integer=True, allow_zero=True)
    if sum(per) == 0:
        raise ValueError(f"iterations must not all be zero, got {per}")
    return levels, per
