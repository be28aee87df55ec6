r"""Symmetric diffeomorphic normalisation (greedy SyN, Avants et al. 2008) in PyTorch.

Both images are deformed half way, towards a *middle* image: a field :math:`u_f` pulls the
fixed image and a field :math:`u_m` pulls the moving image onto the middle grid, and every
iteration pushes each half a small, smooth step up the similarity gradient computed in the
middle. The full transform is the moving half composed with the inverse of the fixed half, so
both halves (and their inverses) are kept throughout.

Convention
----------
- Images ``N,C,H,W`` in [0, 1]; displacements ``N,2,H,W`` in pixels (x then y); pull warps on
  the output grid, as everywhere in regkit (:mod:`regkit.spatial`).
- ``u_f`` and ``u_m`` live on the middle grid: ``warp(fixed, u_f) ≈ warp(moving, u_m)``.
- The returned ``disp`` lives on the fixed grid, :math:`u = u_m \circ (\mathrm{id} + u_f^{-1})`
  (``compose(u_m, inv(u_f))``), so ``warp(moving, disp) ≈ fixed``; ``extras["inverse"]`` lives
  on the moving grid, ``compose(u_f, inv(u_m))``, so ``warp(fixed, inverse) ≈ moving``.

Algorithm (one iteration at one resolution)
-------------------------------------------
1. Middle images :math:`F_h = F\circ(\mathrm{id}+u_f)`, :math:`M_h = M\circ(\mathrm{id}+u_m)`.
2. Forces: the derivative of the similarity with respect to each middle image times that
   image's gradient. Local cross-correlation (ANTs' ``CC``) over a ``(2r+1)^2`` box,
   :math:`\mathrm{CC} = \frac{\langle\tilde F\tilde M\rangle^2}{\langle\tilde F^2\rangle\langle\tilde M^2\rangle}`,
   gives :math:`\partial\mathrm{CC}/\partial F_h \propto \frac{\langle\tilde F\tilde M\rangle}{\langle\tilde F^2\rangle\langle\tilde M^2\rangle}
   (\tilde M - \frac{\langle\tilde F\tilde M\rangle}{\langle\tilde F^2\rangle}\tilde F)` (the ANTs
   approximation); MSE gives :math:`M_h - F_h`.
3. Fluid regularisation: smooth each force with a Gaussian of ``flow_sigma`` pixels and scale it
   so that its largest vector is ``grad_step`` pixels (ANTs' update scaling).
4. Compose the step onto each half, :math:`u \leftarrow u\circ(\mathrm{id}+\delta)`, keep the
   inverses up to date (first-order predictor plus fixed-point refinement
   :math:`v \leftarrow -u\circ(\mathrm{id}+v)`), and, with ``total_sigma > 0``, smooth the total
   fields (diffusion regularisation).

Multi-resolution: the images are Gaussian-smoothed (``smoothing_sigmas``, pixels of the level)
and shrunk by ``shrink_factors``; the four fields are carried to the next level with
:func:`regkit.spatial.resize_disp`.

Example
-------
>>> import torch, regkit
>>> g = torch.Generator().manual_seed(0)
>>> fixed = regkit.spatial.resize_image(torch.rand(1, 1, 8, 8, generator=g), (32, 32))
>>> res = regkit.register(fixed, fixed, method="syn", iterations=(5, 5), shrink_factors=(2, 1),
...                       smoothing_sigmas=(1.0, 0.0))
>>> res.disp.shape, float(res.disp.abs().max()) < 0.5
(torch.Size([1, 2, 32, 32]), True)
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import spatial
from .._checks import check_disp, check_pair, check_positive
from ..registry import RegResult, method
from ..filters import gaussian_blur, image_gradient
from ._common import MIN_SIZE, auto_levels, check_min_size, grey

__all__ = ["syn", "syn_step", "update_halves", "invert_disp", "inverse_consistency_error"]

METRICS = ("cc", "mse")


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


def _pull(x: Tensor, u: Tensor) -> Tensor:
    """Unchecked bilinear, border-padded pull warp for the inner loop (inputs validated once)."""
    return spatial.warp(x, u, check=False)


def _compose(u: Tensor, v: Tensor) -> Tensor:
    """Unchecked :func:`regkit.spatial.compose`: ``v + u∘(id + v)``."""
    return v + _pull(u, v)


def _invert(u: Tensor, v: Tensor, iterations: int) -> Tensor:
    for _ in range(iterations):
        v = -_pull(u, v)
    return v


def invert_disp(disp: Tensor, init: Tensor | None = None, iterations: int = 20) -> Tensor:
    r"""Numerical inverse of a pull displacement by fixed-point iteration.

    Solves :math:`v(p) + u(p + v(p)) = 0`, i.e. ``compose(disp, v) ≈ 0`` so that
    ``warp(warp(x, disp), v) ≈ x``, by :math:`v \leftarrow -u\circ(\mathrm{id}+v)` from ``init``
    (default :math:`-u`). Converges for fields whose Jacobian stays close to the identity, which
    is what SyN's small steps guarantee.

    >>> u = 0.5 * torch.ones(1, 2, 8, 8)
    >>> float(invert_disp(u).add(u).abs().max())
    0.0
    """
    check_disp("disp", disp)
    check_positive("iterations", iterations, integer=True, allow_zero=True)
    if init is not None:
        check_disp("init", init, like=disp)
    return _invert(disp.float(), -disp.float() if init is None else init.float(), iterations)


def inverse_consistency_error(forward: Tensor, inverse: Tensor) -> Tensor:
    r"""Mean inverse-consistency error per pair, in pixels.

    ``forward`` pulls on the fixed grid and ``inverse`` on the moving grid; both round trips
    :math:`\lVert\mathrm{compose}(w, u)\rVert` (fixed grid) and :math:`\lVert\mathrm{compose}(u, w)\rVert`
    (moving grid) should vanish. Each is averaged over the pixels whose first sample point lies
    inside the image (outside it border padding makes any round trip wrong); the result is the
    mean of the two, shape ``N``.

    >>> u = torch.full((1, 2, 8, 8), 0.5)
    >>> inverse_consistency_error(u, -u)
    tensor([0.])
    """
    check_disp("forward", forward)
    check_disp("inverse", inverse, like=forward)
    errors = []
    for a, b in ((inverse, forward), (forward, inverse)):
        d = spatial.compose(a, b)
        err = (d * d).sum(1, keepdim=True).sqrt()   # (``norm(dim=1)`` is several times slower on the CPU)
        mask = spatial.inside_mask(b).float()
        errors.append((err * mask).flatten(1).sum(1) / mask.flatten(1).sum(1).clamp_min(1.0))
    return 0.5 * (errors[0] + errors[1])


def _box_mean(x: Tensor, radius: int) -> Tensor:
    """Mean over a ``(2r+1)^2`` box, counting only the pixels inside the image.

    Two 1-D passes of shifted sums over a zero-padded copy, divided by the (separable) number of
    inside pixels: the same as ``avg_pool2d(..., count_include_pad=False)`` and several times
    faster on the CPU for small radii.
    """
    h, w = x.shape[-2:]
    k = 2 * radius + 1
    p = F.pad(x, (radius, radius, 0, 0))
    s = p[..., :, 0:w]
    for i in range(1, k):
        s = s + p[..., :, i : i + w]
    p = F.pad(s, (0, 0, radius, radius))
    s = p[..., 0:h, :]
    for i in range(1, k):
        s = s + p[..., i : i + h, :]
    return s / _box_count(h, w, radius, x.device)


@lru_cache(maxsize=16)
def _box_count(h: int, w: int, radius: int, device: torch.device) -> Tensor:
    def inside(n):
        j = torch.arange(n, device="cpu")
        return ((j + radius).clamp(max=n - 1) - (j - radius).clamp(min=0) + 1).float()

    return (inside(h)[:, None] * inside(w)[None, :]).to(device)


def _forces(fh: Tensor, mh: Tensor, metric: str, radius: int, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """Ascent directions for the fixed half and the moving half, and the similarity per pair.

    ``fh`` and ``mh`` are the grey middle images ``N,1,H,W``.

    Returns ``(force_f, force_m, similarity)``: displacements ``N,2,H,W`` on the middle grid that
    increase the similarity when composed onto ``u_f`` and ``u_m``, and ``N`` similarities
    (mean local CC, or minus the MSE).
    """
    if metric == "cc":
        mean = _box_mean(torch.cat((fh, mh, fh * fh, mh * mh, fh * mh), 1), radius)
        mf, mm, ff, mm2, fm = mean.unbind(1)
        mf, mm, ff, mm2, fm = (t[:, None] for t in (mf, mm, ff, mm2, fm))
        sff = (ff - mf * mf).clamp_min(eps)
        smm = (mm2 - mm * mm).clamp_min(eps)
        sfm = fm - mf * mm
        ft, mt = fh - mf, mh - mm
        scale = 2.0 * sfm / (sff * smm)
        d_f = scale * (mt - sfm / sff * ft)  # dCC / dF_h
        d_m = scale * (ft - sfm / smm * mt)  # dCC / dM_h
        sim = (sfm * sfm / (sff * smm)).flatten(1).mean(1)
    else:
        d_f = mh - fh
        d_m = fh - mh
        sim = -((fh - mh) ** 2).flatten(1).mean(1)
    return d_f * image_gradient(fh), d_m * image_gradient(mh), sim


def _scaled_step(force: Tensor, flow_sigma: float, grad_step: float) -> Tensor:
    """Fluid step: smooth the force, then scale each pair's largest vector to ``grad_step`` px."""
    step = gaussian_blur(force, flow_sigma)
    # (squared norms by hand: ``Tensor.norm(dim=1)`` is several times slower on CPU)
    peak = (step * step).sum(1).flatten(1).amax(1).sqrt().view(-1, 1, 1, 1)
    return step * (grad_step / peak.clamp_min(1e-12)) * (peak > 1e-12)


def update_halves(halves: Tensor, inverses: Tensor, step: Tensor, total_sigma: float, inverse_iterations: int):
    r"""Compose a step *after* each half field and keep the inverses up to date.

    :math:`\mathrm{id} + u \leftarrow (\mathrm{id} + u)\circ(\mathrm{id} + \delta)`, i.e.
    :math:`u \leftarrow \delta + u\circ(\mathrm{id}+\delta)`: the step lives on the middle grid, where
    the forces were computed, so it acts first; then the optional diffusion smoothing; then the
    inverse :math:`v \leftarrow (-\delta)\circ(\mathrm{id}+v)` to first order, refined by
    ``inverse_iterations`` fixed-point steps. Unchecked (SyN's inner loop).

    Example
    -------
    A half field :math:`u_x = x / 10` and a step of one pixel in x: :math:`1 + (x + 1)/10`, not
    the :math:`x/10 + 1` of the wrong order.

    >>> u = torch.zeros(1, 2, 8, 8); u[:, 0] = torch.arange(8.) / 10
    >>> d = torch.zeros(1, 2, 8, 8); d[:, 0] = 1.0
    >>> new, _ = update_halves(u, -u, d, 0.0, 1)
    >>> round(float(new[0, 0, 3, 3]), 4)      # 1 + (3 + 1) / 10
    1.4
    """
    halves = _compose(halves, step)
    if total_sigma > 0:
        halves = gaussian_blur(halves, total_sigma)
    inverses = _invert(halves, _compose(-step, inverses), inverse_iterations)
    return halves, inverses


def syn_step(images: Tensor, halves: Tensor, inverses: Tensor, *, metric: str = "cc", radius: int = 2,
             cc_eps: float = 1e-4, flow_sigma: float = 3.0, grad_step: float = 0.25, total_sigma: float = 1.0,
             inverse_iterations: int = 2) -> tuple[Tensor, Tensor, Tensor]:
    r"""One SyN iteration on one level: middle images, forces, fluid step, update of both halves.

    ``images`` is ``2N,1,H,W`` (the N fixed images, then the N moving ones), ``halves`` and
    ``inverses`` ``2N,2,H,W`` in the same order (:math:`u_f` then :math:`u_m`). Returns the new
    halves, inverses and the ``N`` similarities of the middle images before the step. Unchecked
    (the inner loop of :func:`syn`, which checks once).

    Example
    -------
    A ramp :math:`F = x/10` and :math:`M = F + 0.1` (its content one pixel to the left): with MSE
    the force on the fixed half is :math:`(M - F)\nabla F = (0.01, 0)`, scaled to ``grad_step``
    px, and the moving half gets the opposite, so the two halves move 0.25 px towards each other.

    >>> f = torch.arange(8.).repeat(8, 1)[None, None] / 10
    >>> zero = torch.zeros(2, 2, 8, 8)
    >>> halves, _, sim = syn_step(torch.cat((f, f + 0.1)), zero, zero, metric="mse", flow_sigma=0.0,
    ...                           total_sigma=0.0)
    >>> [round(float(halves[i, 0, 4, 4]), 4) for i in (0, 1)], round(float(sim[0]), 4)
    ([0.25, -0.25], -0.01)
    """
    n = images.shape[0] // 2
    middle = _pull(images, halves)
    force_f, force_m, sim = _forces(middle[:n], middle[n:], metric, radius, cc_eps)
    step = _scaled_step(torch.cat((force_f, force_m)), flow_sigma, grad_step)
    halves, inverses = update_halves(halves, inverses, step, total_sigma, inverse_iterations)
    return halves, inverses, sim


#: On the CPU the iterations of a level run on chunks of about this many pixels per half-field
#: batch (whole pairs, both halves of a pair together), so that a chunk's fields stay in cache;
#: the pairs are independent, so the result is the same.
_CPU_CHUNK_PIXELS = 1 << 17


def _iterate(images: Tensor, halves: Tensor, inverses: Tensor, iterations: int, step_kw: dict):
    """``iterations`` SyN steps on one level, in cache-sized chunks of pairs on the CPU.

    Returns ``((halves, inverses), sims)`` with ``sims`` a list of ``N`` similarities per iteration.
    """
    n2, _, h, w = halves.shape
    n = n2 // 2
    step = n if halves.device.type != "cpu" else max(1, _CPU_CHUNK_PIXELS // (2 * h * w))
    if step >= n:
        sims = []
        for _ in range(iterations):
            halves, inverses, sim = syn_step(images, halves, inverses, **step_kw)
            sims.append(sim)
        return (halves, inverses), sims
    out_h, out_v = torch.empty_like(halves), torch.empty_like(inverses)
    sims = [torch.empty(n, dtype=halves.dtype, device=halves.device) for _ in range(iterations)]
    for i in range(0, n, step):
        j = min(i + step, n)
        rows = torch.cat((torch.arange(i, j, device=halves.device), torch.arange(n + i, n + j, device=halves.device)))
        im, hv, iv = images[rows], halves[rows], inverses[rows]
        for k in range(iterations):
            hv, iv, sim = syn_step(im, hv, iv, **step_kw)
            sims[k][i:j] = sim
        out_h[i:j], out_h[n + i : n + j] = hv[: j - i], hv[j - i :]
        out_v[i:j], out_v[n + i : n + j] = iv[: j - i], iv[j - i :]
    return (out_h, out_v), sims


def _level_size(h: int, w: int, factor: int) -> tuple[int, int]:
    return max(2, int(round((h - 1) / factor)) + 1), max(2, int(round((w - 1) / factor)) + 1)


def _default_iterations(factor: int) -> int:
    """ANTs-like: 40 iterations on every coarse level, 20 at half resolution, 10 at full."""
    return 10 if factor == 1 else 20 if factor == 2 else 40


def _check_params(size, iterations, shrink_factors, smoothing_sigmas, metric, radius, grad_step, flow_sigma,
                  total_sigma, inverse_iterations):
    """Validate the settings and fill in the pyramid: ``None`` entries follow from the others or
    from the image ``size`` (see :func:`syn`)."""
    def as_tuple(name, value):
        if value is None:
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return (value,)
        if isinstance(value, (str, bytes)):
            raise TypeError(f"{name} must be a sequence of numbers (one per level), got {value!r}")
        try:
            return tuple(value)
        except TypeError:
            raise TypeError(f"{name} must be a sequence of numbers (one per level), got {value!r}") from None

    iterations, shrink_factors, smoothing_sigmas = (
        as_tuple("iterations", iterations), as_tuple("shrink_factors", shrink_factors),
        as_tuple("smoothing_sigmas", smoothing_sigmas),
    )
    given = [v for v in (iterations, shrink_factors, smoothing_sigmas) if v is not None]
    if any(not v for v in given):
        raise ValueError("iterations, shrink_factors and smoothing_sigmas must name at least one level, got ()")
    if len({len(v) for v in given}) > 1:
        raise ValueError(
            "iterations, shrink_factors and smoothing_sigmas must have one entry per level, got lengths "
            + ", ".join(str(len(v)) if v is not None else "None" for v in (iterations, shrink_factors, smoothing_sigmas))
        )
    if iterations is not None:
        for i in iterations:
            check_positive("iterations (each level)", i, integer=True, allow_zero=True)
        if sum(iterations) == 0:
            raise ValueError(f"iterations must run at least one iteration in total, got {iterations}")
    if shrink_factors is not None:
        for f in shrink_factors:
            check_positive("shrink_factors (each level)", f, integer=True)
    if smoothing_sigmas is not None:
        for sg in smoothing_sigmas:
            check_positive("smoothing_sigmas (each level)", sg, allow_zero=True)
    if shrink_factors is None:
        levels = len(given[0]) if given else auto_levels(size)
        shrink_factors = tuple(2**k for k in range(levels - 1, -1, -1))
    if iterations is None:
        iterations = tuple(_default_iterations(f) for f in shrink_factors)
    if smoothing_sigmas is None:
        smoothing_sigmas = tuple(f / 2.0 if f > 1 else 0.0 for f in shrink_factors)
    if not isinstance(metric, str) or metric.lower() not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    check_positive("radius", radius, integer=True)
    check_positive("grad_step", grad_step)
    check_positive("flow_sigma", flow_sigma, allow_zero=True)
    check_positive("total_sigma", total_sigma, allow_zero=True)
    check_positive("inverse_iterations", inverse_iterations, integer=True)
    return iterations, shrink_factors, smoothing_sigmas, metric.lower()


# ----------------------------------------------------------------------------------------------
# The method
# ----------------------------------------------------------------------------------------------


@method(
    "syn",
    kind="classical",
    summary="Symmetric diffeomorphic normalisation (greedy SyN): both images meet in the middle; local CC or MSE.",
)
@torch.no_grad()
def syn(
    moving: Tensor,
    fixed: Tensor,
    *,
    metric: str = "cc",
    radius: int = 2,
    iterations=None,
    shrink_factors=None,
    smoothing_sigmas=None,
    grad_step: float = 0.25,
    flow_sigma: float = 3.0,
    total_sigma: float = 1.0,
    inverse_iterations: int = 2,
    cc_eps: float = 1e-4,
) -> RegResult:
    r"""Register ``moving`` to ``fixed`` with greedy symmetric normalisation (SyN).

    Parameters
    ----------
    moving, fixed : Tensor ``N,C,H,W`` float in [0, 1]
        Same shape and device, at least 4 x 4 pixels; the forces use the channel mean (grey), the
        output warps every channel.
    metric : {"cc", "mse"}
        Local cross-correlation over a ``(2 radius + 1)^2`` box (ANTs' ``CC``) or mean squares.
    radius : int
        Radius of the CC box, in pixels of each level.
    iterations, shrink_factors, smoothing_sigmas : sequences, one entry per level (coarse first), or None
        Iterations per level (0 skips a level's optimisation but still carries the fields), the
        integer shrink factor and the Gaussian sigma applied to both images before shrinking (in
        pixels of the full-resolution image, like ANTs' ``vox`` sigmas). ``None`` fills them in:
        shrink factors halving down to a level of 16-31 px (``16x8x4x2x1`` at 256 px; with
        ``iterations`` given, one factor per entry), which follows motions up to about 10% of the
        width; smoothing ``factor / 2`` (0 at full resolution), ANTs' ``2x1x0`` for ``4x2x1``;
        iterations 40 on the coarse levels, 20 at half and 10 at full resolution (ANTsPy's
        ``SyNOnly`` runs ``40x20x0`` on ``4x2x1``).
    grad_step : float
        Largest step of an update, in pixels of the level (ANTs' gradient step).
    flow_sigma : float
        Gaussian sigma (pixels) of the update field: fluid regularisation.
    total_sigma : float
        Gaussian sigma (pixels) of the two total fields after each step: diffusion regularisation.
        0 (ANTs' default) switches it off; our default 1.0 was chosen on seeded smooth fields,
        where it lowered the end-point error by about a third.
    inverse_iterations : int
        Fixed-point refinements of each inverse per step (the final inverses get 10 more).
    cc_eps : float
        Floor of the local variances in CC (intensities in [0, 1]). CC ignores contrast, so
        without a floor a nearly flat region (a sky, a dark fundus border) pushes as hard as an
        edge and the field drifts there; 1e-4 (a local standard deviation of 0.01) stopped that
        drift on our seeded pairs at the cost of slightly slower convergence on faint texture.

    Returns
    -------
    RegResult
        ``warped`` (moving on the fixed grid), ``disp`` (``N,2,H,W`` pull on the fixed grid) and
        ``extras`` with ``inverse`` (pull on the moving grid: ``warp(fixed, inverse) ≈ moving``),
        ``inverse_consistency`` (``N``, pixels, see :func:`inverse_consistency_error`),
        ``fixed_to_middle``/``moving_to_middle`` (the two half fields on the middle grid),
        ``middle_fixed``/``middle_moving`` (both images on the middle grid), ``similarity``
        (per level, a list of per-iteration ``N`` similarities) and ``params`` (the settings used).

    Convention
    ----------
    Pixel units, x then y, pull warps on the output grid; ``disp = compose(u_m, inv(u_f))``.
    """
    check_pair("moving", moving, "fixed", fixed)
    check_min_size("syn", fixed, MIN_SIZE)
    iterations, shrink_factors, smoothing_sigmas, metric = _check_params(
        tuple(fixed.shape[-2:]), iterations, shrink_factors, smoothing_sigmas, metric, radius, grad_step, flow_sigma,
        total_sigma, inverse_iterations,
    )
    check_positive("cc_eps", cc_eps)
    with torch.autocast(device_type=fixed.device.type, enabled=False):
        return _syn(moving.float(), fixed.float(), metric, radius, iterations, shrink_factors, smoothing_sigmas,
                    grad_step, flow_sigma, total_sigma, inverse_iterations, cc_eps)


def _syn(mov, fix, metric, radius, iterations, shrink_factors, smoothing_sigmas, grad_step, flow_sigma, total_sigma,
         inverse_iterations, cc_eps) -> RegResult:
    n, _, h, w = fix.shape
    device = fix.device
    grey_pair = torch.cat((grey(fix), grey(mov)))  # the forces use grey images; the output warps all channels
    # The two halves travel as one batch of 2N: [fixed half; moving half].
    fields = None  # (halves, their inverses), each 2N,2,h,w on the current level's grid
    history = []
    for its, factor, sigma in zip(iterations, shrink_factors, smoothing_sigmas):
        size = _level_size(h, w, factor)
        images = gaussian_blur(grey_pair, sigma)
        if size != (h, w):
            images = spatial.resize_image(images, size)
        if fields is None:
            zero = torch.zeros(2 * n, 2, *size, dtype=fix.dtype, device=device)
            fields = (zero, zero)
        else:
            fields = tuple(spatial.resize_disp(f, size) for f in fields)
        step_kw = dict(metric=metric, radius=radius, cc_eps=cc_eps, flow_sigma=flow_sigma, grad_step=grad_step,
                       total_sigma=total_sigma, inverse_iterations=inverse_iterations)
        fields, sims = _iterate(images, *fields, its, step_kw)
        history.append(sims)
    halves, inverses = (spatial.resize_disp(f, (h, w)) if f.shape[-2:] != (h, w) else f for f in fields)
    inverses = _invert(halves, inverses, 10)
    u_f, u_m = halves[:n], halves[n:]
    v_f, v_m = inverses[:n], inverses[n:]
    disp = spatial.compose(u_m, v_f)
    inverse = spatial.compose(u_f, v_m)
    warped = spatial.warp(mov, disp)
    extras = {
        "inverse": inverse,
        "inverse_consistency": inverse_consistency_error(disp, inverse),
        "fixed_to_middle": u_f,
        "moving_to_middle": u_m,
        "middle_fixed": spatial.warp(fix, u_f),
        "middle_moving": spatial.warp(mov, u_m),
        "similarity": [torch.stack(s).T if s else torch.empty(n, 0, dtype=fix.dtype, device=device) for s in history],
        "params": {
            "metric": metric, "radius": radius, "iterations": iterations, "shrink_factors": shrink_factors,
            "smoothing_sigmas": smoothing_sigmas, "grad_step": grad_step, "flow_sigma": flow_sigma,
            "total_sigma": total_sigma, "inverse_iterations": inverse_iterations, "cc_eps": cc_eps,
        },
    }
    return RegResult(warped=warped, disp=disp, params=None, extras=extras)
