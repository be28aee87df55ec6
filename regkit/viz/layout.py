"""Figure and panel helpers shared by the plots of :mod:`regkit.viz`: sizes, grids, titles.

Every plotting module lays out its panels here, so that each rule (how big a figure is, how a
panel is framed, how a title wraps) is written once. Inputs are converted by
:mod:`regkit.viz.inputs`.

Convention
----------
* Pixel ``(x, y)`` is drawn at data coordinates ``(x, y)`` with ``y`` pointing down
  (``imshow`` with ``origin="upper"``).
* Sizes: a figure is at most :data:`TEXT_WIDTH` inches wide and drawn at :data:`DPI`, so the
  book (a text column of 772 px at a 1400 px window) shows it at its own size and a title in
  :data:`FONT_SIZE` points reads at about 14 px. Many panels make the panels smaller, never
  the text.
"""

from __future__ import annotations

import math
import textwrap

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .inputs import check_positive_float, check_positive_int

__all__ = [
    "PANEL_SIZE",
    "DPI",
    "TEXT_WIDTH",
    "FONT_SIZE",
    "grid_shape",
    "new_figure",
    "panel_axes",
    "wrap_title",
    "fit_titles",
    "set_title",
    "panel_width",
    "finish_panel",
    "show_image",
]

#: Side of one panel in inches (240 px at :data:`DPI`).
PANEL_SIZE = 2.4
#: Resolution of every figure created here, in dots per inch.
DPI = 100
#: Widest figure in inches: the book's text column (772 px at a 1400 px window) at :data:`DPI`,
#: less the margin that saving with a tight bounding box adds.
TEXT_WIDTH = 7.5
#: Font size of panel titles in points (about 14 px at :data:`DPI`).
FONT_SIZE = 10
_LINE_HEIGHT = 1.25 * FONT_SIZE / 72.0  # inches per title line (measured: 17 px at 100 dpi)
_TITLE_PAD = 8.0 / 72.0  # inches between a title and its panel (matplotlib's 6 pt, and a margin)


def grid_shape(n: int, max_cols: int = 4) -> tuple[int, int]:
    """Rows and columns for ``n`` panels, at most ``max_cols`` per row, rows as even as possible.

    Parameters
    ----------
    n : int
        Number of panels (>= 1).
    max_cols : int
        Most panels in one row (>= 1).

    Returns
    -------
    (int, int)
        ``(nrows, ncols)`` with ``nrows * ncols >= n``.

    Examples
    --------
    >>> grid_shape(3), grid_shape(6), grid_shape(10, max_cols=5)
    ((1, 3), (2, 3), (2, 5))
    """
    n = check_positive_int(n, "n")
    max_cols = check_positive_int(max_cols, "max_cols")
    nrows = math.ceil(n / max_cols)
    return nrows, math.ceil(n / nrows)


def new_figure(
    nrows: int = 1,
    ncols: int = 1,
    *,
    size: float = PANEL_SIZE,
    extra_width: float = 0.0,
    extra_height: float = 0.0,
) -> tuple[Figure, np.ndarray]:
    """A figure of ``nrows x ncols`` square panels that fits the text column.

    Parameters
    ----------
    nrows, ncols : int
        Panel grid.
    size : float
        Side of one panel in inches; panels shrink so that the figure is at most
        :data:`TEXT_WIDTH` wide (the fonts keep their size).
    extra_width, extra_height : float
        Inches added for colour bars or wide panels.

    Returns
    -------
    (Figure, ndarray of Axes)
        The figure (``dpi = DPI``, constrained layout) and its axes shaped ``nrows, ncols``.

    Examples
    --------
    >>> fig, axes = new_figure(1, 6)
    >>> axes.shape, round(float(fig.get_figwidth()), 3), fig.dpi  # 6 x 2.4 in shrunk to TEXT_WIDTH
    ((1, 6), 7.5, 100)
    >>> plt.close(fig)
    """
    nrows = check_positive_int(nrows, "nrows")
    ncols = check_positive_int(ncols, "ncols")
    size = check_positive_float(size, "size")
    width = size * ncols + extra_width
    scale = min(1.0, TEXT_WIDTH / width)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(width * scale, (size * nrows + extra_height) * scale),
        dpi=DPI,
        layout="constrained",
        squeeze=False,
    )
    return fig, axes


def panel_axes(ax: Axes | None = None) -> Axes:
    """``ax`` itself, or the Axes of a new one-panel figure (:data:`PANEL_SIZE`, :data:`DPI`).

    Parameters
    ----------
    ax : Axes, optional

    Returns
    -------
    Axes

    Examples
    --------
    >>> ax = panel_axes()
    >>> ax.figure.get_size_inches().tolist(), ax.figure.dpi
    ([2.4, 2.4], 100)
    >>> plt.close(ax.figure)
    """
    if ax is not None:
        if not isinstance(ax, Axes):
            raise TypeError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}")
        return ax
    return new_figure(1, 1)[1][0, 0]


def wrap_title(title: str, width_in: float, fontsize: float = FONT_SIZE) -> str:
    """Break ``title`` into lines that fit ``width_in`` inches at ``fontsize`` points.

    A character is taken as 0.55 em wide (DejaVu Sans averages about 0.55 em); existing line
    breaks are kept, and a word longer than a line stays whole.

    Parameters
    ----------
    title : str
    width_in : float
        Available width in inches.
    fontsize : float
        Font size in points.

    Returns
    -------
    str

    Examples
    --------
    >>> wrap_title("fixed (moving under a known affine)", 2.4)
    'fixed (moving under a known\\naffine)'
    """
    chars = max(8, int(width_in * 72.0 / (0.55 * fontsize)))
    lines = []
    for line in str(title).split("\n"):
        lines.extend(textwrap.wrap(line, chars, break_long_words=False, break_on_hyphens=False) or [""])
    return "\n".join(lines)


def set_title(ax: Axes, title: str | None, fontsize: float = FONT_SIZE) -> None:
    """Title ``ax`` in ``fontsize`` points, wrapped to the width of the panel.

    Parameters
    ----------
    ax : Axes
    title : str or None
        Nothing happens for ``None`` or ``""``.
    fontsize : float

    Returns
    -------
    None
    """
    if not title:
        return
    ax.set_title(wrap_title(title, panel_width(ax), fontsize), fontsize=fontsize)


def panel_width(ax: Axes) -> float:
    """Width in inches of the grid cell(s) that ``ax`` occupies (its own width if not on a grid).

    Parameters
    ----------
    ax : Axes

    Returns
    -------
    float
        Before layout the Axes itself is narrower than its cell; the cell is what a
        constrained layout gives it, less about 5 % of margins.

    Examples
    --------
    >>> fig, axes = new_figure(1, 3, size=2.0)
    >>> round(panel_width(axes[0, 1]), 2)
    1.9
    >>> plt.close(fig)
    """
    fig_width = ax.figure.bbox.width / ax.figure.dpi
    spec = ax.get_subplotspec()
    if spec is None:
        return float(ax.get_position().width * fig_width)
    cols = spec.colspan
    return float(0.95 * fig_width * (cols.stop - cols.start) / spec.get_gridspec().ncols)


def fit_titles(fig: Figure, axes: np.ndarray, extra_lines: int = 0) -> None:
    """Make ``fig`` taller by the height of its panel titles, so that they do not squeeze the images.

    Figures from :func:`new_figure` have square panels with no room for titles; this adds the
    height of the longest (wrapped) title of each row of ``axes``, plus ``extra_lines``.

    Parameters
    ----------
    fig : Figure
    axes : ndarray of Axes
        The panel grid, shaped ``nrows, ncols``, titles already set.
    extra_lines : int
        Further lines of text, e.g. 1 for a suptitle.

    Returns
    -------
    None

    Examples
    --------
    >>> fig, axes = new_figure(1, 2)
    >>> set_title(axes[0, 0], "a title long enough to need a second line")
    >>> before = fig.get_figheight(); fit_titles(fig, axes)
    >>> round(float(fig.get_figheight() - before), 3)  # two lines of 10 pt and a pad
    0.458
    >>> plt.close(fig)
    """
    extra = int(extra_lines) * _LINE_HEIGHT
    for row in np.atleast_2d(axes):
        lines = max([ax.get_title().count("\n") + 1 for ax in row if ax.get_visible() and ax.get_title()] or [0])
        extra += lines * _LINE_HEIGHT + (_TITLE_PAD if lines else 0.0)
    if extra:
        fig.set_figheight(fig.get_figheight() + extra)


def finish_panel(ax: Axes, title: str | None, h: int, w: int) -> None:
    """Frame an image panel: limits to the ``h x w`` pixels (y down), no ticks, a wrapped title.

    Parameters
    ----------
    ax : Axes
    title : str or None
    h, w : int
        Image height and width in pixels.

    Returns
    -------
    None
    """
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    set_title(ax, title)


def show_image(ax: Axes, img: np.ndarray, cmap: str = "gray", vmin: float | None = 0.0, vmax: float | None = 1.0):
    """``imshow`` an ``H,W`` (with ``cmap``, ``vmin``, ``vmax``) or ``H,W,3`` image (clipped to ``[0, 1]``).

    Parameters
    ----------
    ax : Axes
    img : ndarray
        From :func:`as_image`.
    cmap : str
        Colormap of grey images.
    vmin, vmax : float or None
        Colour limits of grey images.

    Returns
    -------
    AxesImage
    """
    if img.ndim == 3:
        return ax.imshow(np.clip(img, 0.0, 1.0), interpolation="nearest")
    return ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
