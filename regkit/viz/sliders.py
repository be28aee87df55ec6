"""Sliders: one figure per parameter value, live in Jupyter and static in the rendered book.

:func:`slider` turns a function ``render(value) -> Figure`` into one :class:`Slider` object
that is a live ``ipywidgets`` control under a Jupyter or Colab kernel and a static,
precomputed slider (inline HTML + JavaScript, no network, built by
:mod:`regkit.viz.static_slider`) in the rendered book.

Convention
----------
* Frames are rendered once, at :data:`~regkit.viz.layout.DPI` or more, and at least
  ``min_width`` pixels wide (the resolution is raised for small figures, so the fonts grow
  with the frame); every frame has the size of the largest (centred on white), so the page
  does not jump while the slider moves.
* Frames are lossy WebP images by default (quality 90): a fifth of the bytes of a PNG of the
  same frame, with no visible difference on photographs, colour-wheel fields or text (a
  256-colour palette PNG, tried first, bands smooth colour fields). ``image_format="png"`` keeps
  them lossless. Every browser the book targets shows WebP; where Pillow lacks WebP support,
  PNG is used.
* Frames are stored row-major over the parameters (the last one varies fastest).
* Each frame's alternative text names what the figure shows (``alt`` or ``caption``), the
  parameter values and the titles drawn in the frame:
  ``"<alt> (<name> = <value>). Panels: <title>; <title>"``.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import math
from typing import Any, Callable, Iterable, Mapping

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from PIL import Image, features

from .inputs import check_positive_float, check_positive_int
from .layout import DPI
from .static_slider import frame_alt, frame_index, static_slider_html

__all__ = ["Slider", "slider", "FRAME_WIDTH"]

#: Narrowest slider frame in pixels (the book's text column is 772 px at a 1400 px window).
FRAME_WIDTH = 560
_PAD_INCHES = 0.05
_WEBP_QUALITY = 90


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

    Parameters
    ----------
    frames : list of bytes
        Encoded frames (PNG or WebP) in row-major order (last parameter fastest), all of one size.
    names : list of str
        Parameter names.
    values : list of list
        Values of each parameter.
    labels : list of list of str
        Text shown for each value.
    initial : list of int
        Starting position of each parameter.
    alt : str or list of str
        Alternative text: one per frame, or one for the figure (see
        :func:`regkit.viz.static_slider.static_slider_html`).
    continuous_update : bool
        Whether the live widget updates while dragging.
    caption : str, optional
        Text shown under the frames.
    size : (int, int), optional
        ``(width, height)`` of the frames in pixels.
    image_format : {"png", "webp"}
        Encoding of the frames.
    dpi : float, optional
        Resolution the frames were rendered at.

    Attributes
    ----------
    frames, names, values, labels, initial, alt, caption, size, image_format, dpi
        As given.
    """

    def __init__(
        self,
        frames: list[bytes],
        names: list[str],
        values: list[list[Any]],
        labels: list[list[str]],
        initial: list[int],
        alt: str | list[str],
        continuous_update: bool,
        caption: str | None = None,
        size: tuple[int, int] | None = None,
        image_format: str = "png",
        dpi: float | None = None,
    ) -> None:
        self.frames = frames
        self.names = names
        self.values = values
        self.labels = labels
        self.initial = initial
        self.alt = alt
        self.continuous_update = continuous_update
        self.caption = caption
        self.size = size
        self.image_format = image_format
        self.dpi = dpi
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
                self._b64,
                list(zip(self.names, self.labels)),
                initial=self.initial,
                alt=self.alt,
                caption=self.caption,
                size=self.size,
                image_format=self.image_format,
            )
        return self._html

    def _repr_html_(self) -> str:
        return self.html

    def widget(self):
        """The live ``ipywidgets`` control (created on first use), or ``None`` without ipywidgets.

        Returns
        -------
        ipywidgets.VBox or None
            The sliders, the image and, with a caption, an ``HTML`` line under it.
        """
        if self._widget is None:
            try:
                import ipywidgets as widgets
            except ImportError:  # pragma: no cover - ipywidgets is a dependency of the book
                return None
            sizes = [len(v) for v in self.values]
            image = widgets.Image(value=self.frames[frame_index(self.initial, sizes)], format=self.image_format)
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
                image.value = self.frames[frame_index([c.value for c in controls], sizes)]

            for c in controls:
                c.observe(update, names="value")
            parts = [*controls, image]
            if self.caption:
                parts.append(widgets.HTML(value=f"<em>{html.escape(self.caption)}</em>"))
            self._widget = widgets.VBox(parts)
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
        """Write a standalone HTML page holding the static slider.

        Parameters
        ----------
        path : str
            File to write (UTF-8).

        Returns
        -------
        None
        """
        page = (
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(' x '.join(self.names))}</title></head><body>\n{self.html}\n</body></html>\n"
        )
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(page)


def _default_fmt(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.3g}"
    return str(v)


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


def _titles(fig: Figure) -> str:
    """The figure's visible titles (suptitle, then each panel's), one line, ``; ``-separated."""
    texts = [fig._suptitle.get_text()] if getattr(fig, "_suptitle", None) is not None else []
    for ax in fig.axes:
        if ax.get_visible():
            texts += [ax.get_title(loc) for loc in ("left", "center", "right")]
    return "; ".join(" ".join(t.split()) for t in texts if t.strip())


def _frame_dpi(fig: Figure, dpi: float, min_width: int) -> float:
    """At least ``dpi``, and enough for the saved (tight) figure to be ``min_width`` px wide."""
    fig.draw_without_rendering()  # runs the layout engine, so the tight box is the saved one
    width_in = fig.get_tightbbox().width + 2 * _PAD_INCHES
    return max(float(dpi), math.ceil(min_width / width_in))


def _rgb(fig: Figure, dpi: float) -> Image.Image:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", pad_inches=_PAD_INCHES, facecolor="white")
    buf.seek(0)
    with Image.open(buf) as im:
        return im.convert("RGB")


def _encode(images: list[Image.Image], image_format: str) -> tuple[list[bytes], tuple[int, int]]:
    """Centre every image on a white canvas of the largest size and encode it."""
    w = max(im.width for im in images)
    h = max(im.height for im in images)
    out = []
    for im in images:
        if im.size != (w, h):
            canvas = Image.new("RGB", (w, h), "white")
            canvas.paste(im, ((w - im.width) // 2, (h - im.height) // 2))
            im = canvas
        buf = io.BytesIO()
        if image_format == "webp":
            im.save(buf, format="webp", quality=_WEBP_QUALITY, method=4)
        else:  # no text chunks: the bytes do not name the versions that wrote them
            im.save(buf, format="png", optimize=True)
        out.append(buf.getvalue())
    return out, (w, h)


def slider(
    render: Callable[..., Any],
    values: Iterable[Any] | Mapping[str, Iterable[Any]],
    *,
    label: str = "value",
    fmt: Callable[[Any], str] | str | None = None,
    initial: Any = None,
    alt: str | None = None,
    caption: str | None = None,
    dpi: float | None = None,
    min_width: int = FRAME_WIDTH,
    max_frames: int = 40,
    image_format: str = "webp",
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
    alt : str, optional
        What the figure shows, for readers who cannot see it (default: ``caption``).
        Each frame's alternative text adds the parameter values and the titles drawn
        in the frame.
    caption : str, optional
        A sentence shown under the frames.
    dpi : float, optional
        Resolution of the frames; at least :data:`~regkit.viz.layout.DPI` (a lower value
        is raised to it) and raised further where a frame would be narrower than
        ``min_width``.
    min_width : int
        Narrowest frame in pixels (default :data:`FRAME_WIDTH`); ``0`` keeps ``dpi`` as is.
    max_frames : int
        Refuse more frames than this (the product of the value counts), to keep
        pages small.
    image_format : {"webp", "png"}
        Encoding of the frames: lossy WebP (quality 90, about a fifth of the bytes; see the
        module's Convention) or lossless PNG.
    continuous_update : bool
        Whether the live widget updates while dragging.

    Returns
    -------
    Slider

    Convention
    ----------
    Frames are stored row-major: for ``{"a": [..], "b": [..]}`` the frame of
    ``(a_i, b_j)`` is number ``i * len(b) + j``. All frames share the resolution chosen
    for the first one. The ``text/plain`` representation is
    ``<regkit slider over a x b: N frames>``.

    Examples
    --------
    >>> def render(k):
    ...     fig, ax = plt.subplots(figsize=(2, 1.5))
    ...     ax.plot([0, k])
    ...     ax.set_title(f"slope {k}")
    ...     return fig
    >>> s = slider(render, [1, 2, 3], label="k", caption="A line of slope k.")
    >>> s
    <regkit slider over k: 3 frames>
    >>> s.size[0] >= FRAME_WIDTH, s.alt[2]
    (True, 'A line of slope k. (k = 3). Panels: slope 3')
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
    max_frames = check_positive_int(max_frames, "max_frames")
    if total > max_frames:
        raise ValueError(
            f"values give {total} frames, more than max_frames={max_frames}; use fewer values or raise max_frames"
        )
    base_dpi = max(DPI, check_positive_float(dpi, "dpi")) if dpi is not None else DPI
    if image_format not in ("webp", "png"):
        raise ValueError(f"image_format must be 'webp' or 'png', got {image_format!r}")
    if not features.check("webp"):
        image_format = "png"
    min_width = check_positive_int(min_width, "min_width", allow_zero=True)

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

    what = alt if alt is not None else (caption or "")
    images: list[Image.Image] = []
    alts: list[str] = []
    frame_dpi: float | None = None
    for combo, combo_labels in zip(itertools.product(*vals), itertools.product(*labels)):
        before = set(plt.get_fignums())
        try:
            result = render(**dict(zip(names, combo))) if multi else render(combo[0])
            fig = _to_figure(result, before)
            if frame_dpi is None:
                frame_dpi = _frame_dpi(fig, base_dpi, int(min_width))
            images.append(_rgb(fig, frame_dpi))
            titles = _titles(fig)
            text = frame_alt(what, list(zip(names, combo_labels)))
            alts.append(f"{text}. Panels: {titles}" if titles else text)
            plt.close(fig)
        finally:
            for num in set(plt.get_fignums()) - before:
                plt.close(num)
    frames, size = _encode(images, image_format)
    return Slider(frames, names, vals, labels, start, alts, continuous_update, caption=caption, size=size,
                  image_format=image_format, dpi=frame_dpi)
