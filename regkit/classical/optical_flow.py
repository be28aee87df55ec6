r"""Horn-Schunck optical flow, coarse to fine with warping.

Horn and Schunck (1981) find the flow :math:`u` that minimises brightness-constancy error plus a
quadratic smoothness term,

.. math::

    E(u) = \int \big(\nabla I \cdot u + I_t\big)^2 + \alpha^2 \lVert\nabla u\rVert^2 \, dp,

whose Euler-Lagrange equations are solved by the Jacobi iteration

.. math::

    u^{k+1} = \bar u^{k} - \nabla I \, \frac{\nabla I \cdot \bar u^{k} + I_t}{\alpha^2 + \lVert\nabla I\rVert^2},

with :math:`\bar u` the weighted average of the 8 neighbours (Horn and Schunck's kernel).
Brightness constancy is linearised, so large motion is handled coarse to fine: on each pyramid
level the moving image is warped with the current flow :math:`u_0`, and the iteration solves for
the total flow with the data term linearised about :math:`u_0`
(:math:`I_t = W - F`, :math:`\nabla I = (\nabla F + \nabla W)/2`, :math:`W = M\circ(\mathrm{id}+u_0)`).
By default the pyramid halves down to 16-31 px, which follows motions up to about 10% of the
width (see ``regkit.classical._common``), and after each warp the flow is median-filtered
(Sun, Roth and Black, 2010), which keeps one warp's outliers from misleading the next.

Convention
----------
``(moving, fixed)``, ``N,C,H,W`` in [0, 1] (channels averaged to grey); the flow ``N,2,H,W`` is
in pixels, x first, and pulls: ``warped = spatial.warp(moving, disp)``. ``alpha`` is in intensity
units per pixel (intensities in [0, 1]). Fully batched; follows the inputs' device.

Example
-------
>>> import torch, regkit
>>> yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
>>> blob = lambda cx: torch.exp(-((xx - cx) ** 2 + (yy - 32) ** 2) / 100)[None, None]
>>> fixed, moving = blob(30.0), blob(32.0)          # the moving blob sits 2 px to the right
>>> res = regkit.register(moving, fixed, method="horn_schunck")
>>> round(float(res.disp[0, 0, 32, 30]), 1)
2.0
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import spatial
from .._checks import check_pair, check_positive
from ..registry import RegResult, method
from ..filters import gaussian_blur, image_gradient
from ._common import MIN_SIZE, check_levels_iterations, check_min_size, grey, image_pyramid, level_schedule

__all__ = ["horn_schunck", "horn_schunck_step", "neighbour_average", "median_filter"]


def neighbour_average(u: Tensor) -> Tensor:
    """Horn-Schunck's neighbour average (1/6 for the 4 edge neighbours, 1/12 for the diagonals),
    replicate padding, per channel of ``N,C,H,W``.

    Computed as a separable ``[1, 2, 1]`` filter in both directions (divided by 12) minus a third
    of the centre, which is the same kernel, with a few fused in-place passes instead of eight
    shifted sums (about twice as fast on batches).

    >>> float(neighbour_average(torch.ones(1, 2, 5, 5)).min())
    1.0
    """
    h, w = u.shape[-2:]
    p = F.pad(u, (1, 1, 1, 1), mode="replicate")
    rows = torch.add(p[..., :, 0:w], p[..., :, 2 : w + 2]).add_(p[..., :, 1 : w + 1], alpha=2)
    both = torch.add(rows[..., 0:h, :], rows[..., 2 : h + 2, :]).add_(rows[..., 1 : h + 1, :], alpha=2)
    return both.mul_(1.0 / 12.0).sub_(u, alpha=1.0 / 3.0)


def horn_schunck_step(u: Tensor, g: Tensor, c: Tensor, scale: Tensor) -> Tensor:
    r"""One Jacobi iteration of Horn-Schunck: :math:`u \leftarrow \bar u - s\,(g\cdot\bar u + c)`.

    ``u`` and ``g`` (the image gradient) are ``N,2,H,W``; ``c`` (``N,1,H,W``) is the constant
    part of the linearised residual :math:`g\cdot u + c`; ``scale`` is
    :math:`s = g / (\alpha^2 + \lVert g\rVert^2)` (``N,2,H,W``, fixed during one warp, so
    computed once). No input checks (the inner loop of :func:`horn_schunck`).

    Example
    -------
    A zero flow, gradient ``(0.2, 0)``, residual constant ``c = -0.1`` (the moving image is 0.1
    darker) and :math:`\alpha^2 = 0.04`: :math:`u_x = 0 - 0.2 \cdot (-0.1) / (0.04 + 0.04) = 0.25`.

    >>> g = torch.zeros(1, 2, 5, 5); g[:, 0] = 0.2
    >>> scale = g / (0.04 + (g * g).sum(1, keepdim=True))
    >>> u = horn_schunck_step(torch.zeros(1, 2, 5, 5), g, torch.full((1, 1, 5, 5), -0.1), scale)
    >>> round(float(u[0, 0, 2, 2]), 4), round(float(u[0, 1, 2, 2]), 4)
    (0.25, 0.0)
    """
    ub = neighbour_average(u)
    residual = torch.addcmul(c, g[:, :1], ub[:, :1]).addcmul_(g[:, 1:], ub[:, 1:])   # g . ub + c
    return ub.addcmul_(scale, residual, value=-1.0)


def _median_of(values: list[Tensor]) -> Tensor:
    """Elementwise median of an odd number of equal-shape tensors (min/max networks for 3 and 5)."""
    if len(values) == 3:
        a, b, c = values
        return torch.maximum(torch.minimum(a, b), torch.minimum(torch.maximum(a, b), c))
    if len(values) == 5:
        a, b, c, d, e = values
        a, b = torch.minimum(a, b), torch.maximum(a, b)
        c, d = torch.minimum(c, d), torch.maximum(c, d)
        b = torch.minimum(b, d)           # drops the largest of the four
        c = torch.maximum(a, c)           # drops the smallest of the four
        return _median_of([b, c, e])      # the median of five is the median of these three
    return torch.stack(values).median(0).values


def median_filter(u: Tensor, size: int) -> Tensor:
    """Separable median filter of every channel of ``N,C,H,W``: the median over ``size`` pixels
    along each row, then along each column (replicate padding).

    The separable form is not the exact ``size x size`` median but keeps what the flow needs from
    it (outliers removed, edges kept) at a fraction of the cost: at 256 px, 5 px, about a tenth of
    one Horn-Schunck warp where the exact 5 x 5 median cost three times a whole warp. ``size`` is
    odd; 1 returns ``u``.

    >>> u = torch.zeros(1, 2, 5, 5); u[..., 2, 2] = 9.0     # an outlier
    >>> float(median_filter(u, 3).abs().max())
    0.0
    """
    if size == 1:
        return u
    n, c, h, w = u.shape
    r = size // 2
    p = F.pad(u.reshape(n * c, 1, h, w), (r, r, 0, 0), mode="replicate")[:, 0]
    rows = _median_of([p[:, :, i : i + w] for i in range(size)])
    p = F.pad(rows[:, None], (0, 0, r, r), mode="replicate")[:, 0]
    return _median_of([p[:, i : i + h, :] for i in range(size)]).reshape(n, c, h, w)


#: On the CPU the Jacobi iterations run on chunks of about this many pixels (whole pairs), so that
#: a chunk's fields stay in cache: at 256 px a batch of 8 ran 30% slower per pair than a batch
#: of 2 without it. The pairs are independent, so the result is the same.
_CPU_CHUNK_PIXELS = 1 << 17


def _jacobi(u: Tensor, g: Tensor, c: Tensor, scale: Tensor, iterations: int) -> Tensor:
    """``iterations`` Jacobi steps from ``u``, in cache-sized chunks of pairs on the CPU."""
    n, _, h, w = u.shape
    step = n if u.device.type != "cpu" else max(1, _CPU_CHUNK_PIXELS // (h * w))
    chunks = []
    for i in range(0, n, step):
        v, gi, ci, si = u[i : i + step], g[i : i + step], c[i : i + step], scale[i : i + step]
        for _ in range(iterations):
            v = horn_schunck_step(v, gi, ci, si)
        chunks.append(v)
    return chunks[0] if len(chunks) == 1 else torch.cat(chunks)


@method(
    "horn_schunck",
    kind="classical",
    summary="Horn-Schunck optical flow (quadratic smoothness), coarse to fine with warping.",
)
def horn_schunck(
    moving: Tensor,
    fixed: Tensor,
    alpha: float = 0.04,
    iterations=100,
    warps: int = 2,
    levels: int | None = None,
    sigma: float = 1.0,
    median: int = 5,
    history: int = 0,
) -> RegResult:
    """Register ``moving`` to ``fixed`` with Horn-Schunck optical flow.

    Parameters
    ----------
    moving, fixed : Tensor ``N,C,H,W``
        Same shape, at least 4 x 4 pixels.
    alpha : float
        Smoothness weight :math:`\\alpha` (intensity per pixel; larger = smoother flow). The
        default 0.04 with the median filter recovered motions of 10% of the width better than
        0.05-0.06 (``benchmarks/large_motion.py``); larger values cope better with an appearance
        change between the images.
    iterations : int or sequence of int
        Jacobi iterations per warp, for every level (int) or per level, coarse to fine (a
        sequence also sets the number of levels when ``levels=None``).
    warps : int
        Re-linearisations (warps of the moving image) per level.
    levels : int or None
        Pyramid levels, halving each. ``None`` (default): down to 16-31 px, which follows motions
        up to about 10% of the width. Levels below 16 px are dropped and their iterations run on
        the coarsest level kept (``extras["iterations"]`` says what ran).
    sigma : float
        Gaussian pre-smoothing of both images (pixels, 0: off); it widens the range over which
        the linearisation holds.
    median : int
        Odd window (pixels) of a median filter applied to the flow after each warp (1: off). Sun,
        Roth and Black (2010) found this the one heuristic that helps classical flow most: it
        removes the outliers of a linearisation before the next warp builds on them.
    history : int
        If positive, keep the full-resolution flow after every ``history``-th warp (and the last)
        in ``extras["history"]`` as ``(warp count, disp)`` pairs.
    """
    check_pair("moving", moving, "fixed", fixed)
    check_min_size("horn_schunck", fixed, MIN_SIZE)
    check_positive("alpha", alpha)
    levels, per_level = check_levels_iterations(levels, iterations)
    check_positive("warps", warps, integer=True)
    check_positive("sigma", sigma, allow_zero=True)
    check_positive("median", median, integer=True)
    if median % 2 == 0:
        raise ValueError(f"median must be an odd window size, got {median}")
    check_positive("history", history, integer=True, allow_zero=True)
    a2 = float(alpha) ** 2
    with torch.no_grad(), torch.autocast(device_type=moving.device.type, enabled=False):
        m, f = gaussian_blur(grey(moving), sigma), gaussian_blur(grey(fixed), sigma)
        full = tuple(f.shape[-2:])
        sizes, per_level = level_schedule(full, levels, per_level)
        ms, fs = image_pyramid(m, sizes), image_pyramid(f, sizes)
        disp = torch.zeros(f.shape[0], 2, *sizes[0], device=f.device)
        snapshots, done, total = [], 0, len(sizes) * warps
        for lvl, (size, its) in enumerate(zip(sizes, per_level)):
            if lvl > 0:
                disp = spatial.resize_disp(disp, size, check=False)
            gf = image_gradient(fs[lvl])
            for _ in range(warps):
                warped = spatial.warp(ms[lvl], disp, check=False)
                g = 0.5 * (gf + image_gradient(warped))                  # N,2,H,W
                # the residual at u, linearised about u0 = disp: g.(u - u0) + (W - F) = g.u + c
                c = warped - fs[lvl] - (g * disp).sum(1, keepdim=True)
                scale = g / (a2 + (g * g).sum(1, keepdim=True))         # N,2,H,W
                disp = median_filter(_jacobi(disp, g, c, scale, its), median)
                done += 1
                if history and (done % history == 0 or done == total):
                    snapshots.append((done, disp.clone() if size == full else spatial.resize_disp(disp, full, check=False)))
        warped = spatial.warp(moving.float(), disp, check=False)
    extras = {"iterations": per_level, "warps": warps, "sizes": sizes}
    if history:
        extras["history"] = snapshots
    return RegResult(warped=warped, disp=disp, extras=extras)
