"""Plots for image registration: pairs, overlays, fields, Jacobians, sliders, tables, figures.

``from regkit import viz`` gives every public plot; the modules hold one job each:

=====================================  ===================================================
:mod:`regkit.viz.images`               show_pair, overlay, checkerboard, difference,
                                       compare_grid, draw_matches
:mod:`regkit.viz.fields`               deformed_grid, flow_to_rgb, flow, quiver, jacobian_map
:mod:`regkit.viz.figures`              figure_outputs, figure_overlays (many methods' outputs)
:mod:`regkit.viz.sliders`              slider, Slider (live widget + static HTML)
:mod:`regkit.viz.static_slider`        the static slider's HTML
:mod:`regkit.viz.tables`               result_table, ResultTable (HTML + plain text)
:mod:`regkit.viz.layout`               panels, grids, titles, sizes (PANEL_SIZE, DPI, ...)
:mod:`regkit.viz.inputs`               tensors/arrays to images and fields, argument checks
:mod:`regkit.viz.book`                 glue (myst-nb's, or a plain display without it)
=====================================  ===================================================

Every plot takes a torch tensor or a numpy array shaped ``N,C,H,W``, ``C,H,W`` or ``H,W``
(images) or ``N,2,H,W`` / ``2,H,W`` (displacements) and shows the *first* item of a batch. A
function that draws one panel takes ``ax=None``: it draws into ``ax`` when given, otherwise
into a new small figure, and returns the Axes. Functions that lay out several panels return
the Figure.

Convention
----------
* Images: ``C = 1`` (grey) or ``C = 3`` (RGB), float intensities in ``[0, 1]``.
* Displacements ``u``: in pixels, channel 0 = x (columns), channel 1 = y (rows).
* Pull warp: ``warped(p) = moving(p + u(p))``; ``u`` lives on the fixed grid. Plots of ``u``
  are therefore drawn in fixed-image coordinates.
* Pixel ``(x, y)`` is drawn at data coordinates ``(x, y)`` with ``y`` pointing down.
* Figures are drawn at :data:`DPI` (100) and at most :data:`TEXT_WIDTH` (7.5) inches wide, so
  the book's text column (772 px at a 1400 px window) shows them at their own size, with
  14 px titles.

Examples
--------
>>> import torch
>>> from regkit import viz
>>> ax = viz.overlay(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16), title="warped / fixed")
>>> ax.figure.dpi == viz.DPI
True
"""

from .book import glue
from .fields import deformed_grid, flow, flow_to_rgb, jacobian_map, quiver
from .figures import figure_outputs, figure_overlays
from .images import checkerboard, compare_grid, difference, draw_matches, overlay, show_pair
from .layout import DPI, FONT_SIZE, PANEL_SIZE, TEXT_WIDTH
from .sliders import FRAME_WIDTH, Slider, slider
from .tables import ResultTable, result_table

__all__ = [
    "PANEL_SIZE",
    "DPI",
    "TEXT_WIDTH",
    "FONT_SIZE",
    "FRAME_WIDTH",
    "show_pair",
    "overlay",
    "checkerboard",
    "difference",
    "compare_grid",
    "draw_matches",
    "deformed_grid",
    "flow_to_rgb",
    "flow",
    "quiver",
    "jacobian_map",
    "figure_outputs",
    "figure_overlays",
    "slider",
    "Slider",
    "result_table",
    "ResultTable",
    "glue",
]
