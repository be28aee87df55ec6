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
from ._common import check_levels_iterations, grey, image_pyramid, pyramid_sizes

__all__ = ["horn_schunck", "neighbour_average"]


def neighbour_average(u: Tensor) -> Tensor:
    """Horn-Schunck's neighbour average (1/6 for the 4 edge neighbours, 1/12 for the diagonals),
    replicate padding, per channel of ``N,C,H,W``.

    >>> float(neighbour_average(torch.ones(1, 2, 5, 5)).min())
    1.0
    """
    h, w = u.shape[-2:]
    p = F.pad(u, (1, 1, 1, 1), mode="replicate")
    edge = p[..., 0:h, 1 : w + 1] + p[..., 2 : h + 2, 1 : w + 1] + p[..., 1 : h + 1, 0:w] + p[..., 1 : h + 1, 2 : w + 2]
    diag = p[..., 0:h, 0:w] + p[..., 0:h, 2 : w + 2] + p[..., 2 : h + 2, 0:w] + p[..., 2 : h + 2, 2 : w + 2]
    return edge / 6.0 + diag / 12.0


@method(
    "horn_schunck",
    kind="classical",
    summary="Horn-Schunck optical flow (quadratic smoothness), coarse to fine with warping.",
)
def horn_schunck(
    moving: Tensor,
    fixed: Tensor,
    alpha: float = 0.06,
    iterations=100,
    warps: int = 2,
    levels: int = 4,
    sigma: float = 1.0,
    history: int = 0,
) -> RegResult:
    """Register ``moving`` to ``fixed`` with Horn-Schunck optical flow.

    Parameters
    ----------
    alpha : float
        Smoothness weight :math:`\\alpha` (intensity per pixel; larger = smoother flow).
    iterations : int or sequence of int
        Jacobi iterations per warp, for every level (int) or per level, coarse to fine.
    warps : int
        Re-linearisations (warps of the moving image) per level.
    levels : int
        Pyramid levels (halving each; coarse levels stop at 16 px).
    sigma : float
        Gaussian pre-smoothing of both images (pixels, 0: off); it widens the range over which
        the linearisation holds.
    history : int
        If positive, keep the full-resolution flow after every ``history``-th warp (and the last)
        in ``extras["history"]`` as ``(warp count, disp)`` pairs.
    """
    check_pair("moving", moving, "fixed", fixed)
    check_positive("alpha", alpha)
    levels, per_level = check_levels_iterations(levels, iterations)
    check_positive("warps", warps, integer=True)
    check_positive("sigma", sigma, allow_zero=True)
    check_positive("history", history, integer=True, allow_zero=True)
    a2 = float(alpha) ** 2
    with torch.no_grad(), torch.autocast(device_type=moving.device.type, enabled=False):
        m, f = gaussian_blur(grey(moving), sigma), gaussian_blur(grey(fixed), sigma)
        full = tuple(f.shape[-2:])
        sizes = pyramid_sizes(full, levels)
        per_level = per_level[len(per_level) - len(sizes):]
        ms, fs = image_pyramid(m, sizes), image_pyramid(f, sizes)
        disp = torch.zeros(f.shape[0], 2, *sizes[0], device=f.device)
        snapshots, done, total = [], 0, len(sizes) * warps
        for lvl, (size, its) in enumerate(zip(sizes, per_level)):
            if lvl > 0:
                disp = spatial.resize_disp(disp, size)
            gf = image_gradient(fs[lvl])
            for _ in range(warps):
                warped = spatial.warp(ms[lvl], disp)
                g = 0.5 * (gf + image_gradient(warped))                  # N,2,H,W
                it = warped - fs[lvl]                                     # N,1,H,W
                u0 = disp
                # constant part of the residual at u: g.(u - u0) + it = g.u + c, c = it - g.u0
                c = it - (g * u0).sum(1, keepdim=True)
                scale = g / (a2 + (g * g).sum(1, keepdim=True))           # N,2,H,W
                u = u0
                for _ in range(its):
                    ub = neighbour_average(u)
                    u = ub - scale * ((g * ub).sum(1, keepdim=True) + c)
                disp = u
                done += 1
                if history and (done % history == 0 or done == total):
                    snapshots.append((done, disp.clone() if size == full else spatial.resize_disp(disp, full)))
        warped = spatial.warp(moving.float(), disp)
    extras = {"iterations": per_level, "warps": warps, "sizes": sizes}
    if history:
        extras["history"] = snapshots
    return RegResult(warped=warped, disp=disp, extras=extras)
