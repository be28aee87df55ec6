r"""Helpers shared by the classical methods (Demons, Horn-Schunck, SyN): pyramids and schedules.

Anyone writing a classical method may import these; they are small, batched and device-following.
Smoothing and gradients live one layer down, in :mod:`regkit.filters`.

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
>>> pyramid_sizes((64, 64), 3)
[(16, 16), (32, 32), (64, 64)]
"""

from __future__ import annotations

from torch import Tensor

from .. import spatial
from .._checks import check_positive

__all__ = [
    "grey",
    "pyramid_sizes",
    "image_pyramid",
    "check_levels_iterations",
]


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
