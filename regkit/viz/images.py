"""Plots of images: a pair side by side, overlays, checkerboards, differences, grids, matches.

A function that draws one panel takes ``ax=None``: it draws into ``ax`` when given, otherwise
into a new one-panel figure, and returns the Axes. Functions that lay out several panels
return the Figure.

Convention
----------
* Images: ``N,C,H,W``, ``C,H,W`` or ``H,W`` (torch or numpy), ``C = 1`` or ``3``, float
  intensities in ``[0, 1]``; the first item of a batch is shown.
* Argument order is ``(moving, fixed)`` as everywhere in regkit; two images that play no
  such role are ``(a, b)``.
* Points are pixels ``(x, y)``, x along columns, y down the rows.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .inputs import as_gray, as_image, as_numpy, check_positive_float, check_positive_int, check_same_size
from .inputs import normalise as _stretch  # ``overlay`` has an argument named ``normalise``
from .layout import FONT_SIZE, PANEL_SIZE, finish_panel, fit_titles, new_figure, panel_axes, set_title, show_image

__all__ = ["show_pair", "overlay", "checkerboard", "difference", "compare_grid", "draw_matches"]


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
    >>> len(fig.axes)
    2
    """
    imgs = [as_image(moving, "moving"), as_image(fixed, "fixed")]
    if warped is not None:
        imgs.append(as_image(warped, "warped"))
    titles = list(titles) if titles is not None else ["moving", "fixed", "warped"][: len(imgs)]
    if len(titles) != len(imgs):
        raise ValueError(f"titles must have {len(imgs)} entries, got {len(titles)}")
    created = axes is None
    if created:
        fig, grid = new_figure(1, len(imgs))
        axes = list(grid.ravel())
    else:
        axes = list(np.ravel(axes))
        if len(axes) != len(imgs):
            raise ValueError(f"axes must hold {len(imgs)} Axes, got {len(axes)}")
        fig = axes[0].figure
    for ax, img, title in zip(axes, imgs, titles):
        show_image(ax, img, cmap)
        finish_panel(ax, title, img.shape[0], img.shape[1])
    if created:
        fit_titles(fig, grid)
    return fig


def overlay(a: Any, b: Any, *, ax: Axes | None = None, title: str | None = None, normalise: bool = True) -> Axes:
    """Red-green overlay: ``a`` in red, ``b`` in green, agreement turns yellow.

    Parameters
    ----------
    a, b : Tensor or ndarray
        Images of equal size (RGB is converted to grey); e.g. ``(warped, fixed)``.
    ax : Axes, optional
        Draw here instead of a new figure.
    title : str, optional
        Panel title.
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
    >>> rgb = overlay(x, x).get_images()[0].get_array()  # identical images: yellow or black
    >>> bool((rgb[..., 0] == rgb[..., 1]).all())
    True
    """
    ga, gb = as_gray(a, "a"), as_gray(b, "b")
    check_same_size(ga, gb, "a", "b")
    if normalise:
        ga, gb = _stretch(ga), _stretch(gb)
    rgb = np.stack([np.clip(ga, 0, 1), np.clip(gb, 0, 1), np.zeros_like(ga)], axis=-1)
    ax = panel_axes(ax)
    ax.imshow(rgb, interpolation="nearest")
    finish_panel(ax, title, *ga.shape)
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
        Images of equal size (both grey or both RGB; mixed inputs are shown in grey).
    tiles : int
        Number of tiles along each side (>= 1).
    ax : Axes, optional
        Draw here instead of a new figure.
    title : str, optional
        Panel title.
    cmap : str
        Colormap for grey images.

    Returns
    -------
    Axes

    Convention
    ----------
    The top-left tile comes from ``a``.

    Examples
    --------
    >>> ax = checkerboard(np.zeros((16, 16)), np.ones((16, 16)), tiles=2)
    >>> ax.get_images()[0].get_array()[[0, 0], [0, 15]].tolist()
    [0.0, 1.0]
    """
    tiles = check_positive_int(tiles, "tiles")
    ia, ib = as_image(a, "a"), as_image(b, "b")
    check_same_size(ia, ib, "a", "b")
    if ia.ndim != ib.ndim:
        ia, ib = as_gray(a, "a"), as_gray(b, "b")
    ax = panel_axes(ax)
    show_image(ax, _checker(ia, ib, tiles), cmap)
    finish_panel(ax, title, ia.shape[0], ia.shape[1])
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
        Draw here instead of a new figure.
    title : str, optional
        Default: ``"a - b"`` with the mean absolute difference.
    vmax : float, optional
        Colour limit; the map spans ``[-vmax, vmax]`` (default: ``max|a - b|``).
    cmap : str
        A diverging colormap (white at the centre).
    colorbar : bool
        Draw a colour bar beside the panel.

    Returns
    -------
    Axes

    Convention
    ----------
    Red where ``a > b``, blue where ``a < b`` (with the default colormap).

    Examples
    --------
    >>> ax = difference(np.ones((8, 8)), np.zeros((8, 8)))
    >>> ax.get_title()
    'a - b (MAE 1.000)'
    """
    ga, gb = as_gray(a, "a"), as_gray(b, "b")
    check_same_size(ga, gb, "a", "b")
    d = ga - gb
    if vmax is None:
        vmax = float(np.abs(d).max())
    else:
        vmax = check_positive_float(vmax, "vmax")
    vmax = max(float(vmax), 1e-12)
    ax = panel_axes(ax)
    im = ax.imshow(d, cmap=cmap, vmin=-vmax, vmax=vmax, interpolation="nearest")
    if title is None:
        title = f"a - b (MAE {np.abs(d).mean():.3f})"
    finish_panel(ax, title, *d.shape)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
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
    """Lay out several panels in one figure that fits the book's text column.

    Parameters
    ----------
    panels : sequence
        Each entry is an image (Tensor/ndarray, shown with ``cmap``) or a
        callable ``f(ax)`` that draws into the given Axes, e.g.
        ``lambda ax: overlay(warped, fixed, ax=ax)``.
    titles : sequence of str, optional
        One per panel; long titles wrap to the panel's width.
    ncols : int, optional
        Panels per row (default: all in one row, at most 4).
    cmap : str
        Colormap for grey images.
    size : float
        Side of one panel in inches; panels shrink so that the figure is at most
        :data:`~regkit.viz.layout.TEXT_WIDTH` wide.
    suptitle : str, optional
        Title above the whole figure.

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
    >>> [ax.get_title() for ax in fig.axes]
    ['a', 'b', 'overlay']
    """
    panels = list(panels)
    if not panels:
        raise ValueError("panels must not be empty")
    if titles is not None and len(titles) != len(panels):
        raise ValueError(f"titles must have {len(panels)} entries, got {len(titles)}")
    ncols = min(len(panels), 4) if ncols is None else check_positive_int(ncols, "ncols")
    fig, axes = new_figure(math.ceil(len(panels) / ncols), ncols, size=size)
    flat = axes.ravel()
    for k, (ax, panel) in enumerate(zip(flat, panels)):
        title = titles[k] if titles is not None else None
        if callable(panel):
            panel(ax)
            set_title(ax, title)
        else:
            img = as_image(panel, f"panels[{k}]")
            show_image(ax, img, cmap)
            finish_panel(ax, title, img.shape[0], img.shape[1])
    for ax in flat[len(panels):]:
        ax.set_axis_off()
    fit_titles(fig, axes, extra_lines=1 if suptitle else 0)
    if suptitle:
        fig.suptitle(suptitle, fontsize=FONT_SIZE + 1)
    return fig


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
    ax : Axes, optional
        Draw here instead of a new figure.
    max_lines : int
        Draw at most this many matches (a seeded random choice), so dense matches stay legible.
    title : str, optional
        Default: the number of inliers and matches.

    Returns
    -------
    Axes

    Convention
    ----------
    The moving image is drawn ``W`` pixels to the right of the fixed one; a match is a line
    from ``points_fixed[i]`` to ``points_moving[i] + (W, 0)``.

    Examples
    --------
    >>> import torch
    >>> pts = torch.tensor([[3.0, 4.0], [10.0, 2.0]])
    >>> ax = draw_matches(torch.rand(16, 16), torch.rand(16, 16), pts, pts + 1.0)
    >>> len(ax.lines)
    2
    """
    f, m = as_gray(fixed, "fixed"), as_gray(moving, "moving")
    check_same_size(f, m, "fixed", "moving")
    pf = as_numpy(points_fixed, "points_fixed").reshape(-1, 2)
    pm = as_numpy(points_moving, "points_moving").reshape(-1, 2)
    if pf.shape != pm.shape:
        raise ValueError(f"points_fixed and points_moving must have the same shape, got {pf.shape} and {pm.shape}")
    if inliers is None:
        inl = np.ones(len(pf), bool)
    else:
        inl = np.asarray(inliers.detach().cpu() if hasattr(inliers, "detach") else inliers).astype(bool).reshape(-1)
    if inl.shape != (len(pf),):
        raise ValueError(f"inliers must hold one flag per match ({len(pf)}), got shape {inl.shape}")
    max_lines = check_positive_int(max_lines, "max_lines")
    if ax is None:
        ax = new_figure(1, 1, size=PANEL_SIZE + 0.8, extra_width=PANEL_SIZE + 0.8)[1][0, 0]
    h, w = f.shape
    show_image(ax, np.concatenate((f, m), 1))
    for i in np.random.default_rng(0).permutation(len(pf))[:max_lines]:
        ax.plot([pf[i, 0], pm[i, 0] + w], [pf[i, 1], pm[i, 1]], "-", lw=0.8,
                color="tab:green" if inl[i] else "tab:red")
    finish_panel(ax, title or f"fixed | moving: {int(inl.sum())} inliers / {len(pf)} matches", h, 2 * w)
    return ax
