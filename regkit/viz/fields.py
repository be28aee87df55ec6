"""Plots of displacement fields: deformed grids, colour-wheel flow, arrows, Jacobian maps.

Convention
----------
* Displacements ``u``: ``N,2,H,W`` or ``2,H,W`` (torch or numpy) in pixels, channel 0 = x
  (columns), channel 1 = y (rows); the first item of a batch is shown.
* Pull warp: ``warped(p) = moving(p + u(p))``; ``u`` lives on the fixed grid. Plots of ``u``
  are therefore drawn in fixed-image coordinates, and the point ``p + u(p)`` is where the
  fixed pixel ``p`` samples the moving image.
* Image axes: ``y`` points down, so ``+y`` is a downward motion.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap, TwoSlopeNorm, hsv_to_rgb

from .inputs import as_disp, as_image, check_positive_float, check_positive_int, check_same_size
from .layout import finish_panel, panel_axes, show_image

__all__ = ["deformed_grid", "flow_to_rgb", "flow", "quiver", "jacobian_map"]


def _background(ax: Axes, image: Any, u: np.ndarray, cmap: str) -> None:
    if image is not None:
        img = as_image(image, "image")
        check_same_size(img, u[0], "image", "disp")
        show_image(ax, img, cmap)


def deformed_grid(
    disp: Any,
    step: int = 8,
    image: Any = None,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    color: str = "tab:orange",
    linewidth: float = 0.8,
    cmap: str = "gray",
) -> Axes:
    """Draw the fixed grid lines moved by the displacement: ``p + u(p)``.

    Parameters
    ----------
    disp : Tensor or ndarray
        Displacement ``N,2,H,W`` or ``2,H,W`` in pixels (x, y).
    step : int
        Spacing of the grid lines in pixels (>= 1).
    image : Tensor or ndarray, optional
        Background, normally the *moving* image: the deformed lines show where
        each fixed grid line samples it.
    ax : Axes, optional
        Draw here instead of a new figure.
    title : str, optional
        Panel title.
    color : str
        Colour of the grid lines.
    linewidth : float
        Width of the grid lines in points.
    cmap : str
        Colormap of a grey background.

    Returns
    -------
    Axes

    Convention
    ----------
    Pull warp ``warped(p) = moving(p + u(p))``. Line ``y = k * step`` of the
    fixed grid is drawn through the points ``(x + u_x(x, y), y + u_y(x, y))``;
    a zero field draws a regular grid. Crossing lines reveal folds.

    Examples
    --------
    >>> import torch
    >>> ax = deformed_grid(torch.zeros(1, 2, 17, 17), step=8)
    >>> len(ax.lines)  # rows 0, 8, 16 and columns 0, 8, 16
    6
    """
    step = check_positive_int(step, "step")
    u = as_disp(disp)
    _, h, w = u.shape
    ax = panel_axes(ax)
    _background(ax, image, u, cmap)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    px, py = xs + u[0], ys + u[1]
    rows = list(range(0, h, step))
    cols = list(range(0, w, step))
    if rows[-1] != h - 1:
        rows.append(h - 1)
    if cols[-1] != w - 1:
        cols.append(w - 1)
    for r in rows:
        ax.plot(px[r, :], py[r, :], color=color, linewidth=linewidth)
    for c in cols:
        ax.plot(px[:, c], py[:, c], color=color, linewidth=linewidth)
    finish_panel(ax, title, h, w)
    return ax


def _max_norm(u: np.ndarray, max_norm: float | None) -> float:
    if max_norm is None:
        return float(np.hypot(u[0], u[1]).max()) or 1.0
    return check_positive_float(max_norm, "max_norm")


def flow_to_rgb(disp: Any, max_norm: float | None = None) -> np.ndarray:
    """Colour-wheel image of a displacement: hue = direction, saturation = length.

    Parameters
    ----------
    disp : Tensor or ndarray
        Displacement ``N,2,H,W`` or ``2,H,W`` in pixels (x, y); first item used.
    max_norm : float, optional
        Length (pixels) that maps to full saturation; longer vectors saturate.
        Default: the largest length in the field (1 if the field is zero).

    Returns
    -------
    ndarray
        ``H,W,3`` float array in ``[0, 1]``.

    Convention
    ----------
    With ``theta = atan2(u_y, u_x)`` in image axes (y down), hue is
    ``theta / (2 pi) mod 1``: ``+x`` (right) is red (hue 0), ``+y`` (down) is
    yellow-green (hue 1/4), ``-x`` (left) is cyan (hue 1/2) and ``-y`` (up) is
    violet (hue 3/4). Saturation is ``min(|u| / max_norm, 1)`` and value is 1,
    so **zero displacement is white**.

    Examples
    --------
    >>> rgb = flow_to_rgb(np.stack([np.ones((4, 4)), np.zeros((4, 4))]))
    >>> rgb[0, 0].round(3).tolist()  # +x: pure red
    [1.0, 0.0, 0.0]
    """
    u = as_disp(disp)
    max_norm = _max_norm(u, max_norm)
    hue = np.mod(np.arctan2(u[1], u[0]) / (2 * np.pi), 1.0)
    sat = np.clip(np.hypot(u[0], u[1]) / max_norm, 0.0, 1.0)
    return hsv_to_rgb(np.stack([hue, sat, np.ones_like(hue)], axis=-1))


def _wheel(size: int = 64) -> np.ndarray:
    """RGBA colour wheel matching :func:`flow_to_rgb` (transparent outside)."""
    c = np.linspace(-1.0, 1.0, size)
    yy, xx = np.meshgrid(c, c, indexing="ij")
    rgb = flow_to_rgb(np.stack([xx, yy]), max_norm=1.0)
    alpha = (np.hypot(xx, yy) <= 1.0).astype(np.float64)
    return np.concatenate([rgb, alpha[..., None]], axis=-1)


def flow(
    disp: Any,
    *,
    ax: Axes | None = None,
    max_norm: float | None = None,
    title: str | None = None,
    legend: bool = True,
) -> Axes:
    """Show a displacement as a colour-wheel image with a small wheel legend.

    Parameters
    ----------
    disp : Tensor or ndarray
        Displacement ``N,2,H,W`` or ``2,H,W`` in pixels (x, y).
    ax : Axes, optional
        Draw here instead of a new figure.
    max_norm : float, optional
        See :func:`flow_to_rgb`; the default title reports the value used.
    title : str, optional
        Panel title.
    legend : bool
        Draw the colour wheel in the top-right corner.

    Returns
    -------
    Axes

    Convention
    ----------
    As :func:`flow_to_rgb`: hue = direction in image axes (y down), saturation
    = length, white = no motion. The wheel's centre is zero displacement and its
    rim is ``max_norm`` pixels.

    Examples
    --------
    >>> ax = flow(np.ones((2, 16, 16)))
    >>> ax.get_title()
    'flow (rim = 1.41 px)'
    """
    u = as_disp(disp)
    max_norm = _max_norm(u, max_norm)
    ax = panel_axes(ax)
    ax.imshow(flow_to_rgb(u, max_norm=max_norm), interpolation="nearest")
    if title is None:
        title = f"flow (rim = {max_norm:.3g} px)"
    finish_panel(ax, title, u.shape[1], u.shape[2])
    if legend:
        inset = ax.inset_axes([0.74, 0.74, 0.24, 0.24])
        inset.imshow(_wheel(), interpolation="bilinear")
        inset.set_axis_off()
    return ax


def quiver(
    disp: Any,
    step: int = 8,
    image: Any = None,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    color: str = "tab:red",
    scale: float = 1.0,
    cmap: str = "gray",
) -> Axes:
    """Arrows from ``p`` to ``p + scale * u(p)`` on a grid of every ``step`` pixels.

    Parameters
    ----------
    disp : Tensor or ndarray
        Displacement ``N,2,H,W`` or ``2,H,W`` in pixels (x, y).
    step : int
        Spacing of the arrows in pixels (>= 1).
    image : Tensor or ndarray, optional
        Background image (e.g. the fixed image, on whose grid ``u`` lives).
    ax : Axes, optional
        Draw here instead of a new figure.
    title : str, optional
        Panel title.
    color : str
        Colour of the arrows.
    scale : float
        Arrow length multiplier (1 = true length in pixels).
    cmap : str
        Colormap of a grey background.

    Returns
    -------
    Axes

    Convention
    ----------
    Arrows start at fixed-grid pixels ``p`` and point to ``p + u(p)``, where the
    pull warp samples the moving image; ``+y`` points down.

    Examples
    --------
    >>> ax = quiver(np.ones((2, 16, 16)), step=4)
    >>> len(ax.collections[0].get_offsets())  # a 4 x 4 grid of arrows
    16
    """
    step = check_positive_int(step, "step")
    scale = check_positive_float(scale, "scale")
    u = as_disp(disp)
    _, h, w = u.shape
    ax = panel_axes(ax)
    _background(ax, image, u, cmap)
    off = step // 2
    ys, xs = np.mgrid[off:h:step, off:w:step]
    ax.quiver(xs, ys, u[0][ys, xs], u[1][ys, xs], angles="xy", scale_units="xy", scale=1.0 / scale,
              color=color, width=0.006)
    finish_panel(ax, title, h, w)
    return ax


_FOLD_CMAP = ListedColormap(["black"])


def jacobian_map(
    disp: Any,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    vmax: float | None = None,
    cmap: str = "RdBu_r",
    colorbar: bool = True,
) -> Axes:
    """Determinant of the Jacobian of ``p -> p + u(p)``, centred at 1, folds in black.

    Parameters
    ----------
    disp : Tensor or ndarray
        Displacement ``N,2,H,W`` or ``2,H,W`` in pixels (x, y).
    ax : Axes, optional
        Draw here instead of a new figure.
    title : str, optional
        Default: ``det J`` with the folding fraction (share of pixels with
        ``det J <= 0``).
    vmax : float, optional
        Upper colour limit (> 1); the lower one is ``2 - vmax`` so that the map
        is symmetric about 1. Default: from the data, at least 2.
    cmap : str
        Diverging colormap; blue = compression (det < 1), red = expansion.
    colorbar : bool
        Draw a colour bar beside the panel.

    Returns
    -------
    Axes

    Convention
    ----------
    .. math:: J(p) = I + \\nabla u(p), \\qquad \\text{folding} = \\frac{|\\{p : \\det J(p) \\le 0\\}|}{HW}

    computed by :func:`regkit.spatial.jacobian_determinant`. Folded pixels are
    drawn in solid black on top of the colour map.

    Examples
    --------
    >>> import torch
    >>> jacobian_map(torch.zeros(1, 2, 16, 16)).get_title()  # det J = 1 everywhere
    'det J (folding 0.00%)'
    """
    import torch

    from regkit.spatial import jacobian_determinant

    u = as_disp(disp)
    det = jacobian_determinant(torch.from_numpy(u[None].astype(np.float32)))
    det = np.asarray(det.detach().cpu().double().numpy())[0]
    folds = det <= 0
    if vmax is None:
        vmax = 1.0 + max(float(np.abs(det - 1.0).max()), 1.0)
    else:
        vmax = check_positive_float(vmax, "vmax", above=1.0)
    ax = panel_axes(ax)
    norm = TwoSlopeNorm(vcenter=1.0, vmin=2.0 - float(vmax), vmax=float(vmax))
    im = ax.imshow(det, cmap=cmap, norm=norm, interpolation="nearest")
    if folds.any():
        ax.imshow(np.ma.masked_where(~folds, np.ones_like(det)), cmap=_FOLD_CMAP, vmin=0, vmax=1,
                  interpolation="nearest")
    if title is None:
        title = f"det J (folding {100 * float(folds.mean()):.2f}%)"
    finish_panel(ax, title, *det.shape)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return ax
