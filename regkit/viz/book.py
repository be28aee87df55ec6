"""Figures and values for the book's pages: ``glue`` that works with and without myst-nb.

The rendered book numbers and captions figures through myst-nb's ``glue`` (a notebook cell
glues a figure under a name; a markdown cell shows it with ``{glue:figure}`` and a caption). On
Colab or a plain Jupyter install myst-nb is usually absent: :func:`glue` then simply shows the
value (a figure, a table, a number) where the cell runs, so a chapter runs everywhere unchanged.

Example
-------
>>> glue("answer", 42, display=False)   # stored for the book; shown nowhere here
"""

from __future__ import annotations

from typing import Any

__all__ = ["glue"]


def glue(name: str, value: Any, display: bool = True) -> None:
    """Glue ``value`` under ``name`` for the book (myst-nb), or show it where myst-nb is absent.

    Parameters
    ----------
    name : str
        The key a markdown cell refers to (``{glue:figure} name``, ``{glue:text} name``).
    value : object
        A matplotlib figure, a table, a number, ...
    display : bool
        Also show the value in the cell's output (myst-nb's meaning). Without myst-nb the value is
        shown unless it is a plain number or string with ``display=False``.

    A matplotlib figure is closed once glued, so that the notebook does not show it a second time
    at the end of the cell.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        if display or not isinstance(value, (int, float, str)):
            from IPython.display import display as show

            show(value)
    else:
        myst_glue(name, value, display=display)
    _close_if_figure(value)


def _close_if_figure(value: Any) -> None:
    from matplotlib.figure import Figure

    if isinstance(value, Figure):
        import matplotlib.pyplot as plt

        plt.close(value)
