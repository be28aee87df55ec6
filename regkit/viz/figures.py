"""Figures of many methods at once: their outputs side by side, and their overlays on the fixed image.

The functions take outputs that are already computed (``{label: warped batch}``), so that
plotting never runs a method: compute the outputs with :func:`regkit.register` (or an
evaluation) and pass them in. They are the analogues of GPEReg-Net's Figures 2 (outputs) and 3
(overlays), and wrap into rows of at most ``max_cols`` panels so that the titles stay
readable at the book's width.

Convention
----------
* Every image is a batch ``N,C,H,W`` (or a single ``C,H,W`` / ``H,W`` image); item ``index``
  of each is shown.
* ``scores`` maps a panel label (an output's label, or ``"moving"``) to a number or text
  shown under the label as ``"<score_name> <value>"``.
* Overlays are :func:`regkit.viz.overlay` of an output (red) on the fixed image (green):
  yellow where they agree.
"""

from __future__ import annotations

from typing import Any, Mapping

from matplotlib.figure import Figure

from .images import overlay
from .inputs import as_image, batch_item, check_same_size
from .layout import finish_panel, fit_titles, grid_shape, new_figure, show_image

__all__ = ["figure_outputs", "figure_overlays"]


def _title(label: str, scores: Mapping[str, Any] | None, score_name: str, digits: int) -> str:
    if scores is None or label not in scores or scores[label] is None:
        return label
    value = scores[label]
    text = value if isinstance(value, str) else f"{float(value):.{digits}f}"
    return f"{label}\n{score_name} {text}".rstrip()


def _grid(n: int, max_cols: int):
    nrows, ncols = grid_shape(n, max_cols)
    fig, axes = new_figure(nrows, ncols)
    for ax in axes.ravel()[n:]:
        ax.set_axis_off()
    return fig, axes


def _outputs(images: Mapping[str, Any], fixed: Any, index: int) -> tuple[Any, dict[str, Any]]:
    if not isinstance(images, Mapping) or not images:
        raise TypeError("images must be a non-empty mapping label -> image batch N,C,H,W")
    fixed_i = batch_item(fixed, index, "fixed")
    f = as_image(fixed_i, "fixed")
    outs = {}
    for label, img in images.items():
        item = batch_item(img, index, f"images[{label!r}]")
        check_same_size(as_image(item, f"images[{label!r}]"), f, f"images[{label!r}]", "fixed")
        outs[str(label)] = item
    return fixed_i, outs


def figure_outputs(
    images: Mapping[str, Any],
    fixed: Any,
    moving: Any,
    index: int = 0,
    scores: Mapping[str, Any] | None = None,
    *,
    score_name: str = "SSIM",
    digits: int = 3,
    max_cols: int = 5,
    cmap: str = "gray",
) -> Figure:
    """Moving, fixed and every method's output for one pair, each titled with its score.

    Parameters
    ----------
    images : mapping of str to Tensor or ndarray
        ``{label: output batch}``, e.g. each method's warped moving images ``N,1,H,W``,
        in the order to show.
    fixed, moving : Tensor or ndarray
        The batches the outputs were computed from.
    index : int
        Which item of the batches to show.
    scores : mapping of str to float or str, optional
        Score of each panel by label (``"moving"`` for the unregistered pair).
    score_name : str
        Name printed before each score.
    digits : int
        Decimals of numeric scores.
    max_cols : int
        Panels per row; more panels wrap into further rows.
    cmap : str
        Colormap for grey images.

    Returns
    -------
    Figure

    Convention
    ----------
    Panels are ``moving``, ``fixed``, then the outputs in the order of ``images``; intensities
    are shown on ``[0, 1]``.

    Examples
    --------
    >>> import torch
    >>> m, f = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    >>> fig = figure_outputs({"identity": m}, f, m, index=1, scores={"identity": 0.1234})
    >>> [ax.get_title() for ax in fig.axes]
    ['moving', 'fixed', 'identity\\nSSIM 0.123']
    """
    fixed_i, outs = _outputs(images, fixed, index)
    moving_i = batch_item(moving, index, "moving")
    check_same_size(as_image(moving_i, "moving"), as_image(fixed_i, "fixed"), "moving", "fixed")
    panels = {"moving": moving_i, "fixed": fixed_i, **outs}
    fig, axes = _grid(len(panels), max_cols)
    for ax, (label, img) in zip(axes.ravel(), panels.items()):
        a = as_image(img, label)
        show_image(ax, a, cmap)
        finish_panel(ax, label if label == "fixed" else _title(label, scores, score_name, digits), *a.shape[:2])
    fit_titles(fig, axes)
    return fig


def figure_overlays(
    images: Mapping[str, Any],
    fixed: Any,
    moving: Any = None,
    index: int = 0,
    scores: Mapping[str, Any] | None = None,
    *,
    score_name: str = "SSIM",
    digits: int = 3,
    max_cols: int = 5,
) -> Figure:
    """Red-green overlays of every output (red) on the fixed image (green) for one pair.

    Parameters
    ----------
    images : mapping of str to Tensor or ndarray
        ``{label: output batch}`` in the order to show.
    fixed : Tensor or ndarray
        The fixed batch.
    moving : Tensor or ndarray, optional
        The moving batch; when given, the first panel overlays it (the unregistered pair).
    index : int
        Which item of the batches to show.
    scores : mapping of str to float or str, optional
        Score of each panel by label (``"moving"`` for the unregistered pair).
    score_name : str
        Name printed before each score.
    digits : int
        Decimals of numeric scores.
    max_cols : int
        Panels per row; more panels wrap into further rows.

    Returns
    -------
    Figure

    Convention
    ----------
    Each panel is ``overlay(output, fixed)``: yellow where output and fixed agree, red
    where only the output is bright, green where only the fixed image is.

    Examples
    --------
    >>> import torch
    >>> f = torch.rand(3, 1, 16, 16)
    >>> fig = figure_overlays({"a": f, "b": 1 - f}, f, moving=f.flip(-1), index=2)
    >>> [ax.get_title() for ax in fig.axes]
    ['moving', 'a', 'b']
    """
    fixed_i, outs = _outputs(images, fixed, index)
    if moving is not None:
        outs = {"moving": batch_item(moving, index, "moving"), **outs}
    fig, axes = _grid(len(outs), max_cols)
    for ax, (label, img) in zip(axes.ravel(), outs.items()):
        overlay(img, fixed_i, ax=ax, title=_title(label, scores, score_name, digits))
    fit_titles(fig, axes)
    return fig
