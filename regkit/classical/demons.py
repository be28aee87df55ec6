r"""Thirion's demons with symmetric (ESM) forces, additive or diffeomorphic updates, multi-resolution.

Each iteration warps the moving image with the current field, computes a force from the intensity
difference and the image gradients, regularises it, and adds (or composes) it:

.. math::

    W = M \circ (\mathrm{id} + u), \qquad d = F - W, \qquad G = \nabla F + \nabla W,

    \delta u = \frac{2\, d\, G}{\lVert G\rVert^2 + d^2 / s^2},

where :math:`s` is the largest step (``max_step`` pixels; :math:`\lVert\delta u\rVert \le s`).
This is the efficient second-order minimisation ("symmetric forces") update of Vercauteren et
al. (2009), which SimpleITK's ``FastSymmetricForcesDemonsRegistrationFilter`` implements.

- *fluid* regularisation: :math:`\delta u \leftarrow G_{\sigma_f} * \delta u`;
- update: additive :math:`u \leftarrow u + \delta u`, or diffeomorphic
  :math:`\mathrm{id} + u \leftarrow (\mathrm{id} + u) \circ \exp(\delta u)` (scaling and squaring,
  :func:`regkit.spatial.integrate_velocity`, then :func:`regkit.spatial.compose`);
- *diffusion* regularisation: :math:`u \leftarrow G_{\sigma_d} * u`.

Coarse to fine: the images are resized to a pyramid (halving per level, by default down to
16-31 px so that motions of about 10% of the width are followed, see
``regkit.classical._common``); the field found on one level is resized (values rescaled) to
start the next.

Intensity differences below ``1e-5`` (a 400th of an 8-bit grey level) count as matched and give
no force, like SimpleITK's ``IntensityDifferenceThreshold`` (0.001 there): float32 warps are
exact to about that, and in flat regions, where the gradient is as small as the difference, the
normalised force would turn that rounding into a full step.

Convention
----------
``(moving, fixed)``, ``N,C,H,W`` in [0, 1] (channels are averaged to grey); the field ``N,2,H,W``
is in pixels, x first, and pulls: ``warped = spatial.warp(moving, disp)``. Fully batched; follows
the inputs' device. Sigmas are in pixels of each level's grid.

Example
-------
>>> import torch, regkit
>>> yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
>>> blob = lambda cx: torch.exp(-((xx - cx) ** 2 + (yy - 32) ** 2) / 100)[None, None]
>>> fixed, moving = blob(30.0), blob(32.0)          # the moving blob sits 2 px to the right
>>> res = regkit.register(moving, fixed, method="demons")
>>> round(float(res.disp[0, 0, 32, 30]), 1)          # so the fixed centre reads 2 px to the right
2.0
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import spatial
from .._checks import check_pair, check_positive
from ..registry import RegResult, method
from ..filters import gaussian_blur, image_gradient
from ._common import MIN_SIZE, check_levels_iterations, check_min_size, grey, image_pyramid, level_schedule

__all__ = ["demons", "demons_step"]

_FORCES = ("symmetric", "fixed", "moving")

#: Intensity differences below this count as matched (no force); see the module docstring.
MATCHED = 1e-5


def demons_step(
    moving: Tensor,
    fixed: Tensor,
    disp: Tensor,
    *,
    force: str = "symmetric",
    max_step: float = 0.5,
    sigma_fluid: float = 0.0,
    sigma_diffusion: float = 1.0,
    diffeomorphic: bool = False,
    grad_fixed: Tensor | None = None,
) -> Tensor:
    r"""One demons iteration on grey batches ``N,1,H,W``; returns the new field ``N,2,H,W``.

    ``grad_fixed`` may pass a precomputed :func:`regkit.filters.image_gradient` of ``fixed``. No
    input checks (this is the inner loop of :func:`demons`, which checks once).

    Example
    -------
    A ramp ``fixed = x / 10`` and a moving image 0.1 brighter, i.e. the ramp one pixel to the
    right: :math:`d = -0.1`, :math:`G = (0.2, 0)` and the update is
    :math:`2 d G / (\lVert G\rVert^2 + d^2/s^2) = -0.04 / 0.08 = -0.5` px in x.

    >>> x = torch.arange(8.).repeat(8, 1)[None, None] / 10
    >>> u = demons_step(x + 0.1, x, torch.zeros(1, 2, 8, 8), sigma_diffusion=0.0)
    >>> round(float(u[0, 0, 4, 4]), 4), round(float(u[0, 1, 4, 4]), 4)
    (-0.5, 0.0)
    """
    warped = spatial.warp(moving, disp, check=False)
    diff = fixed - warped
    diff = torch.where(diff.abs() < MATCHED, torch.zeros_like(diff), diff)
    if force == "symmetric":
        g = (image_gradient(fixed) if grad_fixed is None else grad_fixed) + image_gradient(warped)
    elif force == "fixed":
        g = 2 * (image_gradient(fixed) if grad_fixed is None else grad_fixed)
    else:
        g = 2 * image_gradient(warped)
    denom = (g * g).sum(1, keepdim=True) + diff * diff / (max_step * max_step)
    du = torch.where(denom > 1e-12, 2 * diff * g / denom.clamp_min(1e-12), torch.zeros_like(g))
    du = gaussian_blur(du, sigma_fluid)
    if diffeomorphic:
        disp = spatial.compose(disp, spatial.integrate_velocity(du, steps=4, check=False), check=False)
    else:
        disp = disp + du
    return gaussian_blur(disp, sigma_diffusion)


#: On the CPU the iterations of a level run on chunks of about this many pixels (whole pairs), so
#: that a chunk's fields stay in cache; the pairs are independent, so the result is the same.
_CPU_CHUNK_PIXELS = 1 << 17


def _iterate(moving: Tensor, fixed: Tensor, disp: Tensor, grad_fixed: Tensor, iterations: int, step_kw: dict) -> Tensor:
    """``iterations`` demons steps on one level, in cache-sized chunks of pairs on the CPU."""
    n, _, h, w = disp.shape
    step = n if disp.device.type != "cpu" else max(1, _CPU_CHUNK_PIXELS // (h * w))
    chunks = []
    for i in range(0, n, step):
        m, f, u, g = moving[i : i + step], fixed[i : i + step], disp[i : i + step], grad_fixed[i : i + step]
        for _ in range(iterations):
            u = demons_step(m, f, u, grad_fixed=g, **step_kw)
        chunks.append(u)
    return chunks[0] if len(chunks) == 1 else torch.cat(chunks)


@method(
    "demons",
    kind="classical",
    summary="Thirion's demons, symmetric (ESM) forces, fluid + diffusion smoothing, optional "
    "diffeomorphic update, multi-resolution.",
)
def demons(
    moving: Tensor,
    fixed: Tensor,
    iterations=30,
    levels: int | None = None,
    sigma_diffusion: float = 1.5,
    sigma_fluid: float = 0.0,
    max_step: float = 0.5,
    force: str = "symmetric",
    diffeomorphic: bool = False,
    history: int = 0,
) -> RegResult:
    """Register ``moving`` to ``fixed`` with demons.

    Parameters
    ----------
    moving, fixed : Tensor ``N,C,H,W``
        Same shape, at least 4 x 4 pixels.
    iterations : int or sequence of int
        Iterations per level, coarse to fine: an int means that many on every level; a sequence
        gives one count per level (and, with ``levels=None``, the number of levels). Default 30
        on every level: the coarse levels cost a quarter of the next, so this is about 40 full-
        resolution iterations in all.
    levels : int or None
        Pyramid levels, halving each. ``None`` (default): down to 16-31 px
        (``auto_levels`` in ``regkit.classical._common``), which follows motions up to about 10% of
        the width. Levels below 16 px are dropped and their iterations run on the coarsest level
        kept (``extras["iterations"]`` says what ran).
    sigma_diffusion : float
        Gaussian sigma (pixels) applied to the whole field after each iteration (0: off). Our
        default 1.5 (SimpleITK's is 1.0) lowered the end-point error both on seeded 6 px fields
        (0.08 -> 0.05 px) and on the large-motion stereo pair of ``benchmarks/large_motion.py``.
    sigma_fluid : float
        Gaussian sigma (pixels) applied to each update before it is added (0: off).
    max_step : float
        Largest update per iteration, pixels (SimpleITK's ``MaximumUpdateStepLength``).
    force : {"symmetric", "fixed", "moving"}
        Which gradient drives the update: the ESM average of both (default), the fixed image's
        (Thirion's original), or the warped moving image's.
    diffeomorphic : bool
        Compose the exponential of each update instead of adding it (diffeomorphic demons).
    history : int
        If positive, keep the full-resolution field every ``history`` iterations (and the last
        one) in ``extras["history"]`` as a list of ``(iteration, disp)``, for plots and sliders.

    Returns
    -------
    RegResult with ``warped``, ``disp`` and ``extras["iterations"]`` and ``extras["sizes"]``
    (per level, coarse to fine).
    """
    check_pair("moving", moving, "fixed", fixed)
    check_min_size("demons", fixed, MIN_SIZE)
    levels, per_level = check_levels_iterations(levels, iterations)
    check_positive("sigma_diffusion", sigma_diffusion, allow_zero=True)
    check_positive("sigma_fluid", sigma_fluid, allow_zero=True)
    check_positive("max_step", max_step)
    check_positive("history", history, integer=True, allow_zero=True)
    if force not in _FORCES:
        raise ValueError(f"force must be one of {_FORCES}, got {force!r}")
    if not isinstance(diffeomorphic, bool):
        raise TypeError(f"diffeomorphic must be a bool, got {diffeomorphic!r}")

    with torch.no_grad(), torch.autocast(device_type=moving.device.type, enabled=False):
        m, f = grey(moving), grey(fixed)
        full = tuple(f.shape[-2:])
        sizes, per_level = level_schedule(full, levels, per_level)
        ms, fs = image_pyramid(m, sizes), image_pyramid(f, sizes)
        disp = torch.zeros(f.shape[0], 2, *sizes[0], device=f.device)
        snapshots, done = [], 0
        total = sum(per_level)
        step_kw = dict(force=force, max_step=max_step, sigma_fluid=sigma_fluid, sigma_diffusion=sigma_diffusion,
                       diffeomorphic=diffeomorphic)
        for lvl, (size, its) in enumerate(zip(sizes, per_level)):
            if lvl > 0:
                disp = spatial.resize_disp(disp, size, check=False)
            gf = image_gradient(fs[lvl])
            if not history:
                disp = _iterate(ms[lvl], fs[lvl], disp, gf, its, step_kw)
                continue
            for _ in range(its):
                disp = demons_step(ms[lvl], fs[lvl], disp, grad_fixed=gf, **step_kw)
                done += 1
                if done % history == 0 or done == total:
                    snapshots.append((done, disp.clone() if size == full else spatial.resize_disp(disp, full, check=False)))
        if tuple(disp.shape[-2:]) != full:
            disp = spatial.resize_disp(disp, full, check=False)
        warped = spatial.warp(moving.float(), disp, check=False)
    extras = {"iterations": per_level, "sizes": sizes}
    if history:
        extras["history"] = snapshots
    return RegResult(warped=warped, disp=disp, extras=extras)
