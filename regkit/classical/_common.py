r"""Helpers shared by the classical methods (Demons, Horn-Schunck, SyN): pyramids and schedules.

Anyone writing a classical method may import these; they are small, batched and device-following.
Smoothing and gradients live one layer down, in :mod:`regkit.filters`.

- :func:`auto_levels` -- how many levels a pyramid needs so that its coarsest level is 16-31 px.
- :func:`pyramid_sizes` / :func:`image_pyramid` -- coarse-to-fine sizes and images (resampling via
  :func:`regkit.spatial.resize_image`, anti-aliased).
- :func:`level_schedule` -- sizes and iterations per level, with the iterations of levels an image
  is too small for moved to the coarsest level kept.
- :func:`grey` -- ``N,C,H,W`` -> ``N,1,H,W`` float32 by averaging channels.
- :func:`check_levels_iterations` -- validate ``levels`` and a per-level ``iterations`` spec.
- :func:`check_min_size` -- refuse images smaller than a method's stated minimum.

Why a pyramid from the image size: a method that linearises the images (Horn-Schunck) or takes
steps of at most half a pixel (Demons) follows a motion of a pixel or two per level. Halving down
to 16-31 px turns a motion of 10% of the width into 1.6-3 px at the top, which the top level can
follow; a fixed number of levels leaves the top of a large image too large for its motion.

Convention
----------
Images ``N,C,H,W`` float; displacements ``N,2,H,W`` in pixels, channel 0 = x, pull on the fixed
grid (see :mod:`regkit.spatial`). Sigmas are in pixels of the grid they act on.

Example
-------
>>> pyramid_sizes((64, 64), 3)
[(16, 16), (32, 32), (64, 64)]
>>> auto_levels((256, 256)), auto_levels((250, 370))
(5, 5)
"""

from __future__ import annotations

from torch import Tensor

from .. import spatial
from .._checks import check_positive

__all__ = [
    "MIN_SIZE",
    "TOP_SIZE",
    "grey",
    "auto_levels",
    "pyramid_sizes",
    "image_pyramid",
    "level_schedule",
    "check_levels_iterations",
    "check_min_size",
]

#: Smallest image side (pixels) Demons, Horn-Schunck and SyN accept: gradients, the neighbour
#: average and bilinear warps need at least two pixels on each side of a pixel's neighbourhood.
MIN_SIZE = 4

#: Shorter side (pixels) below which a pyramid stops halving: levels are 16-31 px at the top.
TOP_SIZE = 16


def grey(x: Tensor) -> Tensor:
    """``N,C,H,W`` -> ``N,1,H,W`` float32, the mean over channels."""
    return x.float().mean(1, keepdim=True)


def auto_levels(size, top: int = TOP_SIZE) -> int:
    """Number of halving levels that brings the shorter side of ``size`` into ``[top, 2 top)``.

    One level for images whose shorter side is already below ``2 top``.

    >>> [auto_levels((s, s)) for s in (20, 32, 64, 128, 256, 512)]
    [1, 2, 3, 4, 5, 6]
    """
    check_positive("top", top, integer=True)
    side, levels = min(int(s) for s in size), 1
    while side >= 2 * top:
        side = (side + 1) // 2
        levels += 1
    return levels


def pyramid_sizes(size, levels: int, min_size: int = TOP_SIZE) -> list[tuple[int, int]]:
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
    return [x if tuple(s) == tuple(x.shape[-2:]) else spatial.resize_image(x, s, antialias=True, check=False)
            for s in sizes]


def check_levels_iterations(levels, iterations) -> tuple[int | None, list[int]]:
    """Validate ``levels`` (a positive int, or ``None`` for :func:`auto_levels`) and ``iterations``
    (an int for every level, or a sequence with one count per level, coarse to fine).

    Returns ``(levels, per_level)``; with ``levels=None`` and an int, ``per_level`` has one entry
    (to be repeated once the size is known); with ``levels=None`` and a sequence, the sequence
    sets the number of levels.

    >>> check_levels_iterations(3, 20)
    (3, [20, 20, 20])
    >>> check_levels_iterations(None, (10, 5))
    (2, [10, 5])
    """
    if levels is not None:
        check_positive("levels", levels, integer=True)
    if isinstance(iterations, int) and not isinstance(iterations, bool):
        check_positive("iterations", iterations, integer=True)
        return levels, [iterations] * (levels or 1)
    if isinstance(iterations, (str, bytes)):
        raise TypeError(f"iterations must be an int or a sequence of ints, got {iterations!r}")
    try:
        per = list(iterations)
    except TypeError:
        raise TypeError(f"iterations must be an int or a sequence of ints, got {iterations!r}") from None
    if not per:
        raise ValueError("iterations must give at least one level, got ()")
    if levels is not None and len(per) != levels:
        raise ValueError(f"iterations must give one count per level ({levels}), got {per}")
    for i in per:
        check_positive("iterations", i, integer=True, allow_zero=True)
    if sum(per) == 0:
        raise ValueError(f"iterations must not all be zero, got {per}")
    return len(per), per


def level_schedule(size, levels, iterations) -> tuple[list[tuple[int, int]], list[int]]:
    """Pyramid sizes (coarse to fine) and iterations per level for an image of ``size``.

    ``levels`` and ``iterations`` as :func:`check_levels_iterations` returns them (``levels=None``:
    :func:`auto_levels`). Levels the image is too small for (below 16 px) are dropped and their
    iterations are added to the coarsest level kept, so no requested iteration is lost.

    >>> level_schedule((256, 256), None, [30])
    ([(16, 16), (32, 32), (64, 64), (128, 128), (256, 256)], [30, 30, 30, 30, 30])
    >>> level_schedule((32, 32), 3, [10, 0, 0])       # 8 px is too small: (10, 0) on 16 and 32 px
    ([(16, 16), (32, 32)], [10, 0])
    """
    if levels is None:
        levels = auto_levels(size)
        if len(iterations) == 1:
            iterations = iterations * levels
    sizes = pyramid_sizes(size, levels)
    dropped = len(iterations) - len(sizes)
    per_level = [sum(iterations[: dropped + 1])] + list(iterations[dropped + 1 :])
    return sizes, per_level


def check_min_size(method: str, x: Tensor, minimum: int = MIN_SIZE) -> None:
    """Raise a ``ValueError`` naming ``method`` if ``x`` (``N,C,H,W``) is smaller than ``minimum`` px a side."""
    h, w = x.shape[-2:]
    if min(h, w) < minimum:
        raise ValueError(f"{method} needs images of at least {minimum} x {minimum} pixels, got {h} x {w}")
