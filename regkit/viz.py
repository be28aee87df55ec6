"""Plots for image registration: pairs, overlays, fields, Jacobians and sliders.

Every function takes a torch tensor or a numpy array shaped ``N,C,H,W``,
``C,H,W`` or ``H,W`` (images) or ``N,2,H,W`` / ``2,H,W`` (displacements) and
shows the *first* item of a batch. A function that draws one panel takes
``ax=None``: it draws into ``ax`` when given, otherwise into a new small figure,
and returns the Axes. Functions that lay out several panels return the Figure.

Convention
----------
* Images: ``C = 1`` (grey) or ``C = 3`` (RGB), float intensities in ``[0, 1]``.
* Displacements ``u``: in pixels, channel 0 = x (columns), channel 1 = y (rows).
* Pull warp: ``warped(p) = moving(p + u(p))``; ``u`` lives on the fixed grid.
  Plots of ``u`` are therefore drawn in fixed-image coordinates, and the point
  ``p + u(p)`` is where the fixed pixel ``p`` samples the moving image.
* Pixel ``(x, y)`` is drawn at data coordinates ``(x, y)`` with ``y`` pointing
  down (``imshow`` with ``origin="upper"``).

:func:`slider` turns a function ``render(value) -> Figure`` into one object that
is a live ``ipywidgets`` control under a Jupyter or Colab kernel and a static,
precomputed slider (inline HTML + JavaScript, no network) in the rendered book.
"""

from __future__ import annotations

import base64
import io
import itertools
import math
from typing import Any, Callable, Iterable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LinearSegmentedColormap, ListedColormap, TwoSlopeNorm, hsv_to_rgb
from matplotlib.figure import Figure

from regkit._static_slider import static_slider_html

__all__ = [
    "PANEL_SIZE",
    "DPI",
    "show_pair",
    "overlay",
    "checkerboard",
    "difference",
    "deformed_grid",
    "flow_to_rgb",
    "flow",
    "quiver",
    "jacobian_map",
    "compare_grid",
    "draw_matches",
    "slider",
    "Slider",
]

#: Side of one panel in inches; with :data:`DPI` it keeps notebook outputs small.
PANEL_SIZE = 2.4
#: Resolution of figures created here (inline PNGs stay around 20-60 kB).
DPI = 80


# --------------------------------------------------------------------------- inputs


def _as_numpy(x: Any, name: str) -> np.ndarray:
    """Tensor or array -> float64 numpy array (detached, on the CPU)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, without importing torch
        x = x.detach().cpu()
        if x.is_complex() or str(x.dtype) == "torch.bool":
            raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
        x = x.double().numpy()
    elif not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(x).__name__}")
    if x.dtype == bool or not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be finite (found NaN or inf)")
    return x


def _image(x: Any, name: str) -> np.ndarray:
    """First image of ``x`` as ``H,W`` (grey) or ``H,W,3`` (RGB)."""
    a = _as_numpy(x, name)
    if a.ndim == 4:
        if a.shape[0] < 1:
            raise ValueError(f"{name} has an empty batch (shape {a.shape})")
        a = a[0]
    if a.ndim == 3:
        if a.shape[0] == 1:
            a = a[0]
        elif a.shape[0] == 3:
            a = np.moveaxis(a, 0, -1)
        else:
            raise ValueError(
                f"{name} must have 1 or 3 channels (C,H,W), got {a.shape[0]} channels in shape {a.shape}"
            )
    elif a.ndim != 2:
        raise ValueError(f"{name} must be N,C,H,W, C,H,W or H,W; got shape {a.shape}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"{name} must have a non-empty spatial size, got shape {a.shape}")
    return a


def _gray(x: Any, name: str) -> np.ndarray:
    """First image as ``H,W``; RGB is converted to luminance."""
    a = _image(x, name)
    if a.ndim == 3:
        a = a @ np.array([0.299, 0.587, 0.114])
    return a


def _disp(d: Any, name: str = "disp") -> np.ndarray:
    """First displacement of ``d`` as ``2,H,W`` (x then y, in pixels)."""
    a = _as_numpy(d, name)
    if a.ndim == 4:
        if a.shape[0] < 1:
            raise ValueError(f"{name} has an empty batch (shape {a.shape})")
        a = a[0]
    if a.ndim != 3:
        raise ValueError(f"{name} must be N,2,H,W or 2,H,W (pixels, x then y); got shape {a.shape}")
    if a.shape[0] != 2:
        raise ValueError(
            f"{name} must have 2 channels (x, y) in dimension -3, got {a.shape[0]} in shape {a.shape}"
        )
    return a


def _same_size(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape[:2] != b.shape[:2]:
        raise ValueError(f"{name_a} and {name_b} must have the same H,W; got {a.shape[:2]} and {b.shape[:2]}")


def _ax(ax: Axes | None, panels: int = 1) -> Axes:
    if ax is not None:
        if not isinstance(ax, Axes):
            raise TypeError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}")
        return ax
    _, new = plt.subplots(figsize=(PANEL_SIZE * panels, PANEL_SIZE), dpi=DPI, layout="constrained")
    return new


def _frame(ax: Axes, title: str | None, h: int, w: int) -> None:
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def _normalise(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    if hi - lo < 1e-12:
        return np.zeros_like(a)
    return (a - lo) / (hi - lo)


def _imshow(ax: Axes, img: np.ndarray, cmap: str = "gray", vmin: float | None = 0.0, vmax: float | None = 1.0):
    if img.ndim == 3:
        return ax.imshow(np.clip(img, 0.0, 1.0), interpolation="nearest")
    return ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")


# --------------------------------------------------------------------------- images


def show_pair(
    moving: Any,
    fixed: Any,
    warped: Any = None,
    *,
    titles: Sequence[str] | None = None,
    cmap: str = "gray",
    axes: Sequence[Axes] | None = None,
) -> Figure:
    """Show ``moving`` and ``fixed`` (and optionally ``warped``) side by side.

    Parameters
    ----------
    moving, fixed : Tensor or ndarray
        Images ``N,C,H,W``, ``C,H,W`` or ``H,W`` in ``[0, 1]``; the first item is shown.
    warped : Tensor or ndarray, optional
        The moving image after registration, drawn as a third panel.
    titles : sequence of str, optional
        Panel titles (default ``moving``, ``fixed``, ``warped``).
    cmap : str
        Colormap for grey images.
    axes : sequence of Axes, optional
        Draw into these (one per panel) instead of a new figure.

    Returns
    -------
    Figure

    Convention
    ----------
    Argument order is ``(moving, fixed)`` as everywhere in regkit.

    Examples
    --------
    >>> import torch
    >>> fig = show_pair(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16))
    """
    imgs = [_image(moving, "moving"), _image(fixed, "fixed")]
    if warped is not None:
        imgs.append(_image(warped, "warped"))
    default = ["moving", "fixed", "warped"]
    titles = list(titles) if titles is not None else default[: len(imgs)]
    if len(titles) != len(imgs):
        raise ValueError(f"titles must have {len(imgs)} entries, got {len(titles)}")
    if axes is None:
        fig, axes = plt.subplots(
            1, len(imgs), figsize=(PANEL_SIZE * len(imgs), PANEL_SIZE), dpi=DPI, layout="constrained"
        )
    else:
        axes = list(axes)
        if len(axes) != len(imgs):
            raise ValueError(f"axes must hold {len(imgs)} Axes, got {len(axes)}")
        fig = axes[0].figure
    for ax, img, title in zip(np.ravel(axes), imgs, titles):
        _imshow(ax, img, cmap)
        _frame(ax, title, img.shape[0], img.shape[1])
    return fig


def overlay(a: Any, b: Any, *, ax: Axes | None = None, title: str | None = None, normalise: bool = True) -> Axes:
    """Red-green overlay: ``a`` in red, ``b`` in green, agreement turns yellow.

    Parameters
    ----------
    a, b : Tensor or ndarray
        Images (RGB is converted to grey); e.g. ``(warped, fixed)``.
    ax : Axes, optional
        Draw here instead of a new figure.
    title : str, optional
    normalise : bool
        Stretch each image to ``[0, 1]`` before mixing (default ``True``).

    Returns
    -------
    Axes

    Convention
    ----------
    ``rgb = (a, b, 0)``: bright in both is yellow, only in ``a`` red, only in ``b`` green.

    Examples
    --------
    >>> import torch
    >>> x = torch.rand(1, 1, 16, 16)
    >>> ax = overlay(x, x)  # identical images: all yellow/black
    """
    ga, gb = _gray(a, "a"), _gray(b, "b")
    _same_size(ga, gb, "a", "b")
    if normalise:
        ga, gb = _normalise(ga), _normalise(gb)
    rgb = np.stack([np.clip(ga, 0, 1), np.clip(gb, 0, 1), np.zeros_like(ga)], axis=-1)
    ax = _ax(ax)
    ax.imshow(rgb, interpolation="nearest")
    _frame(ax, title, *ga.shape)
    return ax


def _checker(a: np.ndarray, b: np.ndarray, tiles: int) -> np.ndarray:
    h, w = a.shape[:2]
    rows = (np.arange(h) * tiles // h)[:, None]
    cols = (np.arange(w) * tiles // w)[None, :]
    mask = (rows + cols) % 2 == 0
    if a.ndim == 3:
        mask = mask[..., None]
    return np.where(mask, a, b)


def checkerboard(
    a: Any, b: Any, tiles: int = 8, *, ax: Axes | None = None, title: str | None = None, cmap: str = "gray"
) -> Axes:
    """Checkerboard of two images: alternate tiles come from ``a`` and ``b``.

    Misalignment shows as broken edges at tile borders.

    Parameters
    ----------
    a, b : Tensor or ndarray
        Images of equal size (both grey or both RGB).
    tiles : int
        Number of tiles along each side (>= 1).
    ax : Axes, optional
    title : str, optional
    cmap : str

    Returns
    -------
    Axes

    Convention
    ----------
    The top-left tile comes from ``a``.

    Examples
    --------
    >>> import numpy as np
    >>> ax = checkerboard(np.zeros((16, 16)), np.ones((16, 16)), tiles=4)
    """
    if not isinstance(tiles, (int, np.integer)) or isinstance(tiles, bool) or tiles < 1:
        raise ValueError(f"tiles must be a positive int, got {tiles!r}")
    ia, ib = _image(a, "a"), _image(b, "b")
    _same_size(ia, ib, "a", "b")
    if ia.ndim != ib.ndim:
        ia, ib = _gray(a, "a"), _gray(b, "b")
    ax = _ax(ax)
    _imshow(ax, _checker(ia, ib, int(tiles)), cmap)
    _frame(ax, title, ia.shape[0], ia.shape[1])
    return ax


def difference(
    a: Any,
    b: Any,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    vmax: float | None = None,
    cmap: str = "RdBu_r",
    colorbar: bool = True,
) -> Axes:
    """Signed difference ``a - b`` in a diverging colormap centred at 0.

    Parameters
    ----------
    a, b : Tensor or ndarray
        Images of equal size (RGB is converted to grey).
    ax : Axes, optional
    title : str, optional
        Default: ``"a - b"`` with the mean absolute difference.
    vmax : float, optional
        Colour limit; the map spans ``[-vmax, vmax]`` (default: ``max|a - b|``).
    cmap : str
        A diverging colormap (white at the centre).
    colorbar : bool

    Returns
    -------
    Axes

    Convention
    ----------
    Red where ``a > b``, blue where ``a < b`` (with the default colormap).

    Examples
    --------
    >>> import numpy as np
    >>> ax = difference(np.ones((8, 8)), np.zeros((8, 8)))
    """
    ga, gb = _gray(a, "a"), _gray(b, "b")
    _same_size(ga, gb, "a", "b")
    d = ga - gb
    if vmax is None:
        vmax = float(np.abs(d).max())
    elif not (isinstance(vmax, (int, float)) and math.isfinite(vmax) and vmax > 0):
        raise ValueError(f"vmax must be a positive finite number, got {vmax!r}")
    vmax = max(float(vmax), 1e-12)
    ax = _ax(ax)
    im = ax.imshow(d, cmap=cmap, vmin=-vmax, vmax=vmax, interpolation="nearest")
    if title is None:
        title = f"a - b (MAE {np.abs(d).mean():.3f})"
    _frame(ax, title, *d.shape)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return ax


# --------------------------------------------------------------------------- fields


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
    title : str, optional
    color : str
    linewidth : float
    cmap : str

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
    >>> ax = deformed_grid(torch.zeros(1, 2, 32, 32), step=8)
    """
    if not isinstance(step, (int, np.integer)) or isinstance(step, bool) or step < 1:
        raise ValueError(f"step must be a positive int, got {step!r}")
    u = _disp(disp)
    _, h, w = u.shape
    ax = _ax(ax)
    if image is not None:
        img = _image(image, "image")
        _same_size(img, u[0], "image", "disp")
        _imshow(ax, img, cmap)
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
    _frame(ax, title, h, w)
    return ax


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
    >>> import numpy as np
    >>> rgb = flow_to_rgb(np.stack([np.ones((4, 4)), np.zeros((4, 4))]))
    >>> rgb[0, 0].round(3).tolist()  # +x: pure red
    [1.0, 0.0, 0.0]
    """
    u = _disp(disp)
    mag = np.hypot(u[0], u[1])
    if max_norm is None:
        max_norm = float(mag.max()) or 1.0
    elif not (isinstance(max_norm, (int, float, np.floating)) and math.isfinite(max_norm) and max_norm > 0):
        raise ValueError(f"max_norm must be a positive finite number, got {max_norm!r}")
    hue = np.mod(np.arctan2(u[1], u[0]) / (2 * np.pi), 1.0)
    sat = np.clip(mag / float(max_norm), 0.0, 1.0)
    hsv = np.stack([hue, sat, np.ones_like(hue)], axis=-1)
    return hsv_to_rgb(hsv)


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
    max_norm : float, optional
        See :func:`flow_to_rgb`; the title reports the value used.
    title : str, optional
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
    >>> import torch
    >>> ax = flow(torch.randn(1, 2, 16, 16))
    """
    u = _disp(disp)
    if max_norm is None:
        max_norm = float(np.hypot(u[0], u[1]).max()) or 1.0
    rgb = flow_to_rgb(u, max_norm=max_norm)
    ax = _ax(ax)
    ax.imshow(rgb, interpolation="nearest")
    if title is None:
        title = f"flow (rim = {max_norm:.3g} px)"
    _frame(ax, title, u.shape[1], u.shape[2])
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
    title : str, optional
    color : str
    scale : float
        Arrow length multiplier (1 = true length in pixels).
    cmap : str

    Returns
    -------
    Axes

    Convention
    ----------
    Arrows start at fixed-grid pixels ``p`` and point to ``p + u(p)``, where the
    pull warp samples the moving image; ``+y`` points down.

    Examples
    --------
    >>> import torch
    >>> ax = quiver(torch.ones(1, 2, 16, 16), step=4)
    """
    if not isinstance(step, (int, np.integer)) or isinstance(step, bool) or step < 1:
        raise ValueError(f"step must be a positive int, got {step!r}")
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive finite number, got {scale!r}")
    u = _disp(disp)
    _, h, w = u.shape
    ax = _ax(ax)
    if image is not None:
        img = _image(image, "image")
        _same_size(img, u[0], "image", "disp")
        _imshow(ax, img, cmap)
    off = step // 2
    ys, xs = np.mgrid[off:h:step, off:w:step]
    ax.quiver(
        xs,
        ys,
        u[0][ys, xs],
        u[1][ys, xs],
        angles="xy",
        scale_units="xy",
        scale=1.0 / scale,
        color=color,
        width=0.006,
    )
    _frame(ax, title, h, w)
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
    title : str, optional
        Default: ``det J`` with the folding fraction (share of pixels with
        ``det J <= 0``).
    vmax : float, optional
        Upper colour limit (> 1); the lower one is ``2 - vmax`` so that the map
        is symmetric about 1. Default: from the data, at least 2.
    cmap : str
        Diverging colormap; blue = compression (det < 1), red = expansion.
    colorbar : bool

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
    >>> ax = jacobian_map(torch.zeros(1, 2, 16, 16))  # det J = 1 everywhere
    """
    import torch

    from regkit.spatial import jacobian_determinant

    u = _disp(disp)
    det = jacobian_determinant(torch.from_numpy(u[None].astype(np.float32)))
    det = np.asarray(det.detach().cpu().double().numpy())[0]
    folds = det <= 0
    frac = float(folds.mean())
    if vmax is None:
        spread = float(np.abs(det - 1.0).max())
        vmax = 1.0 + max(spread, 1.0)
    elif not (isinstance(vmax, (int, float)) and math.isfinite(vmax) and vmax > 1):
        raise ValueError(f"vmax must be a finite number > 1, got {vmax!r}")
    ax = _ax(ax)
    norm = TwoSlopeNorm(vcenter=1.0, vmin=2.0 - float(vmax), vmax=float(vmax))
    im = ax.imshow(det, cmap=cmap, norm=norm, interpolation="nearest")
    if folds.any():
        ax.imshow(np.ma.masked_where(~folds, np.ones_like(det)), cmap=_FOLD_CMAP, vmin=0, vmax=1,
                  interpolation="nearest")
    if title is None:
        title = f"det J (folding {100 * frac:.2f}%)"
    _frame(ax, title, *det.shape)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return ax


# --------------------------------------------------------------------------- layout


def draw_matches(
    moving: Any,
    fixed: Any,
    points_fixed: Any,
    points_moving: Any,
    inliers: Any = None,
    *,
    ax: Axes | None = None,
    max_lines: int = 200,
    title: str | None = None,
) -> Axes:
    """Draw point matches between a fixed and a moving image placed side by side (fixed left).

    Parameters
    ----------
    moving, fixed : Tensor or ndarray
        Images ``N,C,H,W`` / ``C,H,W`` / ``H,W`` of the same size (the first of a batch is drawn).
    points_fixed, points_moving : Tensor or ndarray ``M,2``
        Matched points in pixels (x, y), row ``i`` of one matching row ``i`` of the other.
    inliers : Tensor or ndarray ``M`` of bool, optional
        Inlier lines are green, outliers red (all green without it).
    max_lines : int
        Draw at most this many matches (a seeded random choice), so dense matches stay legible.

    >>> import torch
    >>> pts = torch.tensor([[3.0, 4.0], [10.0, 2.0]])
    >>> ax = draw_matches(torch.rand(16, 16), torch.rand(16, 16), pts, pts + 1.0)
    >>> len(ax.lines)
    2
    """
    f, m = _gray(fixed, "fixed"), _gray(moving, "moving")
    _same_size(f, m, "fixed", "moving")
    pf = _as_numpy(points_fixed, "points_fixed").reshape(-1, 2)
    pm = _as_numpy(points_moving, "points_moving").reshape(-1, 2)
    if pf.shape != pm.shape:
        raise ValueError(f"points_fixed and points_moving must have the same shape, got {pf.shape} and {pm.shape}")
    if inliers is None:
        inl = np.ones(len(pf), bool)
    else:
        inl = np.asarray(inliers.detach().cpu() if hasattr(inliers, "detach") else inliers).astype(bool).reshape(-1)
    if inl.shape != (len(pf),):
        raise ValueError(f"inliers must hold one flag per match ({len(pf)}), got shape {inl.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(2 * PANEL_SIZE + 1.6, PANEL_SIZE + 0.8), dpi=DPI, layout="constrained")
    h, w = f.shape
    _imshow(ax, np.concatenate((f, m), 1))
    for i in np.random.default_rng(0).permutation(len(pf))[:max_lines]:
        ax.plot([pf[i, 0], pm[i, 0] + w], [pf[i, 1], pm[i, 1]], "-", lw=0.6,
                color="tab:green" if inl[i] else "tab:red")
    _frame(ax, title or f"fixed | moving: {int(inl.sum())} inliers / {len(pf)} matches", h, 2 * w)
    return ax


def compare_grid(
    panels: Sequence[Any],
    titles: Sequence[str] | None = None,
    *,
    ncols: int | None = None,
    cmap: str = "gray",
    size: float = PANEL_SIZE,
    suptitle: str | None = None,
) -> Figure:
    """Lay out several panels in one small figure.

    Parameters
    ----------
    panels : sequence
        Each entry is an image (Tensor/ndarray, shown with ``cmap``) or a
        callable ``f(ax)`` that draws into the given Axes, e.g.
        ``lambda ax: overlay(warped, fixed, ax=ax)``.
    titles : sequence of str, optional
        One per panel.
    ncols : int, optional
        Panels per row (default: all in one row, at most 4).
    cmap : str
    size : float
        Side of one panel in inches.
    suptitle : str, optional

    Returns
    -------
    Figure

    Convention
    ----------
    Images follow the module convention (first item of a batch).

    Examples
    --------
    >>> import torch
    >>> a, b = torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16)
    >>> fig = compare_grid([a, b, lambda ax: overlay(a, b, ax=ax)], ["a", "b", "overlay"])
    """
    panels = list(panels)
    if not panels:
        raise ValueError("panels must not be empty")
    if titles is not None and len(titles) != len(panels):
        raise ValueError(f"titles must have {len(panels)} entries, got {len(titles)}")
    if ncols is None:
        ncols = min(len(panels), 4)
    if not isinstance(ncols, (int, np.integer)) or ncols < 1:
        raise ValueError(f"ncols must be a positive int, got {ncols!r}")
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size * ncols, size * nrows), dpi=DPI, layout="constrained", squeeze=False
    )
    flat = axes.ravel()
    for k, (ax, panel) in enumerate(zip(flat, panels)):
        title = titles[k] if titles is not None else None
        if callable(panel):
            panel(ax)
            if title:
                ax.set_title(title, fontsize=9)
        else:
            img = _image(panel, f"panels[{k}]")
            _imshow(ax, img, cmap)
            _frame(ax, title, img.shape[0], img.shape[1])
    for ax in flat[len(panels):]:
        ax.set_axis_off()
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return fig


# --------------------------------------------------------------------------- slider


def _default_fmt(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.3g}"
    return str(v)


def _png(fig: Figure, dpi: float) -> bytes:
    buf = io.BytesIO()
    # No "Software" entry: the bytes then do not depend on the matplotlib version.
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.05, metadata={"Software": None})
    return buf.getvalue()


class Slider:
    """Precomputed frames shown as a live widget in Jupyter and as static HTML in the book.

    Built by :func:`slider`; see there. Displaying the object (last expression
    of a cell, or ``IPython.display.display``) emits one output with

    * ``application/vnd.jupyter.widget-view+json``: an ``ipywidgets`` control
      (one ``SelectionSlider`` per parameter and an ``Image``) that Jupyter,
      JupyterLab, VS Code and Colab render while a kernel runs;
    * ``text/html``: a self-contained slider (inline PNGs + a few lines of
      JavaScript, no external files) that the rendered book shows;
    * ``text/plain``: a deterministic one-line summary.

    Attributes
    ----------
    names : list of str
        Parameter names.
    values : list of list
        Values of each parameter.
    frames : list of bytes
        PNG frames in row-major order (last parameter fastest).
    """

    def __init__(
        self,
        frames: list[bytes],
        names: list[str],
        values: list[list[Any]],
        labels: list[list[str]],
        initial: list[int],
        alt: str,
        continuous_update: bool,
    ) -> None:
        self.frames = frames
        self.names = names
        self.values = values
        self.labels = labels
        self.initial = initial
        self.alt = alt
        self.continuous_update = continuous_update
        self._b64 = [base64.b64encode(f).decode("ascii") for f in frames]
        self._html: str | None = None
        self._widget = None

    def __len__(self) -> int:
        return len(self.frames)

    def __repr__(self) -> str:
        return f"<regkit slider over {' x '.join(self.names)}: {len(self.frames)} frames>"

    @property
    def html(self) -> str:
        """The static HTML snippet (built once; element ids unique per page)."""
        if self._html is None:
            self._html = static_slider_html(
                self._b64, list(zip(self.names, self.labels)), initial=self.initial, alt=self.alt
            )
        return self._html

    def _repr_html_(self) -> str:
        return self.html

    def widget(self):
        """The live ``ipywidgets`` control (created on first use), or ``None`` without ipywidgets."""
        if self._widget is None:
            try:
                import ipywidgets as widgets
            except ImportError:  # pragma: no cover - ipywidgets is a dependency of the book
                return None
            sizes = [len(v) for v in self.values]
            start = _flat(self.initial, sizes)
            image = widgets.Image(value=self.frames[start], format="png")
            controls = [
                widgets.SelectionSlider(
                    options=[(lab, j) for j, lab in enumerate(labels)],
                    value=pos,
                    description=name,
                    continuous_update=self.continuous_update,
                    style={"description_width": "initial"},
                    layout=widgets.Layout(width="24em"),
                )
                for name, labels, pos in zip(self.names, self.labels, self.initial)
            ]

            def update(_change: Any = None) -> None:
                image.value = self.frames[_flat([c.value for c in controls], sizes)]

            for c in controls:
                c.observe(update, names="value")
            self._widget = widgets.VBox([*controls, image])
        return self._widget

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = {}
        w = self.widget()
        if w is not None:
            if hasattr(w, "_repr_mimebundle_"):
                bundle.update(w._repr_mimebundle_())
            else:  # ipywidgets 7 (Colab's): the view its _ipython_display_ would emit
                view = {"version_major": 2, "version_minor": 0, "model_id": w.model_id}
                bundle["application/vnd.jupyter.widget-view+json"] = view
        bundle["text/html"] = self.html
        bundle["text/plain"] = repr(self)
        return bundle

    def save_html(self, path: str) -> None:
        """Write a standalone HTML page holding the static slider."""
        page = (
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{' x '.join(self.names)}</title></head><body>\n{self.html}\n</body></html>\n"
        )
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(page)


def _flat(positions: Sequence[int], sizes: Sequence[int]) -> int:
    flat = 0
    for pos, size in zip(positions, sizes):
        flat = flat * size + int(pos)
    return flat


def _to_figure(result: Any, before: set[int]) -> Figure:
    if isinstance(result, Figure):
        return result
    if isinstance(result, Axes):
        return result.figure
    if result is None:
        new = [n for n in plt.get_fignums() if n not in before]
        if new:
            return plt.figure(new[-1])
        if plt.get_fignums():
            return plt.gcf()
    raise TypeError(
        "render must return a matplotlib Figure or Axes, or draw into a new pyplot figure and return None; "
        f"got {type(result).__name__}"
    )


def slider(
    render: Callable[..., Any],
    values: Iterable[Any] | Mapping[str, Iterable[Any]],
    *,
    label: str = "value",
    fmt: Callable[[Any], str] | str | None = None,
    initial: Any = None,
    dpi: float = 72,
    max_frames: int = 40,
    alt: str | None = None,
    continuous_update: bool = True,
) -> Slider:
    """Precompute one figure per value and show them behind a slider.

    The returned :class:`Slider` is, from one displayed output, a live
    ``ipywidgets`` control under a Jupyter/Colab kernel and a static slider
    (inline PNG frames + JavaScript, no kernel, no network) in the rendered
    book. Both flip between the same precomputed frames, so moving the live
    slider is instant and the book shows exactly what the notebook showed.

    Parameters
    ----------
    render : callable
        ``render(value)`` for one parameter, or ``render(**{name: value})``
        when ``values`` is a mapping. It returns a matplotlib Figure or Axes,
        or draws into a new pyplot figure and returns ``None``. Figures it
        creates are closed after being saved, so ``%matplotlib inline`` does
        not show them a second time.
    values : iterable or mapping of str to iterable
        The values of the parameter, or ``{name: values}`` for several
        parameters (one slider each; frames for every combination).
    label : str
        Name of the single parameter (ignored for a mapping).
    fmt : callable or str, optional
        Formats a value for display: a callable or a format spec such as
        ``".2f"``. Default: ``3`` significant digits for floats, ``str`` otherwise.
    initial : optional
        Starting value (or ``{name: value}``); default the first value(s).
    dpi : float
        Resolution of the frames; ~72 keeps a 20-frame slider around 0.5 MB.
    max_frames : int
        Refuse more frames than this (the product of the value counts), to keep
        pages small.
    alt : str, optional
        Alternative text of the static image.
    continuous_update : bool
        Whether the live widget updates while dragging.

    Returns
    -------
    Slider

    Convention
    ----------
    Frames are stored row-major: for ``{"a": [..], "b": [..]}`` the frame of
    ``(a_i, b_j)`` is number ``i * len(b) + j``. The ``text/plain``
    representation is ``<regkit slider over a x b: N frames>``.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> def render(k):
    ...     fig, ax = plt.subplots(figsize=(1, 1))
    ...     ax.plot([0, k])
    ...     return fig
    >>> s = slider(render, [1, 2, 3], label="k")
    >>> s
    <regkit slider over k: 3 frames>
    """
    if not callable(render):
        raise TypeError(f"render must be callable, got {type(render).__name__}")
    if isinstance(values, Mapping):
        if not values:
            raise ValueError("values must not be an empty mapping")
        names = [str(k) for k in values]
        vals = [list(v) for v in values.values()]
        multi = True
    else:
        if isinstance(values, (str, bytes)):
            raise TypeError("values must be an iterable of values or a mapping name -> values, not a string")
        names = [str(label)]
        vals = [list(values)]
        multi = False
    for name, v in zip(names, vals):
        if not v:
            raise ValueError(f"values for {name!r} must not be empty")
    total = math.prod(len(v) for v in vals)
    if not isinstance(max_frames, (int, np.integer)) or max_frames < 1:
        raise ValueError(f"max_frames must be a positive int, got {max_frames!r}")
    if total > max_frames:
        raise ValueError(
            f"values give {total} frames, more than max_frames={max_frames}; use fewer values or raise max_frames"
        )
    if not (isinstance(dpi, (int, float)) and math.isfinite(dpi) and dpi > 0):
        raise ValueError(f"dpi must be a positive number, got {dpi!r}")

    if fmt is None:
        fmt_fn = _default_fmt
    elif isinstance(fmt, str):
        spec = fmt
        fmt_fn = lambda v: format(v, spec)  # noqa: E731
    elif callable(fmt):
        fmt_fn = fmt
    else:
        raise TypeError(f"fmt must be a callable, a format spec string or None, got {type(fmt).__name__}")
    labels = [[str(fmt_fn(x)) for x in v] for v in vals]

    def _position(name: str, v: list[Any], want: Any) -> int:
        for j, x in enumerate(v):
            try:
                if x is want or bool(x == want):
                    return j
            except (TypeError, ValueError):
                continue
        raise ValueError(f"initial value {want!r} is not among the values of {name!r}")

    if initial is None:
        start = [0] * len(vals)
    elif multi:
        if not isinstance(initial, Mapping):
            raise TypeError("initial must be a mapping name -> value when values is a mapping")
        start = [(_position(n, v, initial[n]) if n in initial else 0) for n, v in zip(names, vals)]
    else:
        start = [_position(names[0], vals[0], initial)]

    frames: list[bytes] = []
    for combo in itertools.product(*vals):
        before = set(plt.get_fignums())
        try:
            result = render(**dict(zip(names, combo))) if multi else render(combo[0])
            fig = _to_figure(result, before)
            frames.append(_png(fig, dpi))
            plt.close(fig)
        finally:
            for num in set(plt.get_fignums()) - before:
                plt.close(num)
    if alt is None:
        alt = f"figure for {' x '.join(names)}"
    return Slider(frames, names, vals, labels, start, alt, continuous_update)
