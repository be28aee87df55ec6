"""Self-contained HTML for a precomputed image slider (no kernel, no network).

This module only builds HTML text; :func:`regkit.viz.slider` renders the frames and wraps them
together with a live ``ipywidgets`` control.

The snippet holds every frame as a base64 image (PNG or WebP), one ``<input type="range">`` per parameter, an
``<output>`` showing the current value of each parameter, the image in a ``<figure>`` with an
optional caption, and a few lines of inline JavaScript that swap the image's ``src`` and
``alt``. It loads no external script, style sheet or font, so it works in a static HTML page
opened from disk.

Convention
----------
* Frames are in row-major order over the parameters (the last one varies fastest), as
  :func:`itertools.product` yields them; :func:`frame_index` maps positions to a frame.
* The initial frame is stored once, as the ``src`` of the image; the script keeps it.
* Every frame has its own alternative text (by default ``"<alt> (<name> = <value>, ...)"``),
  swapped with the image, so a reader who cannot see it still learns what it shows and for
  which setting.
"""

from __future__ import annotations

import hashlib
import html
import itertools
import json
import re
from typing import Sequence

__all__ = ["static_slider_html", "frame_index", "frame_alt"]

# Per-process counter so that two sliders with identical frames on one page
# still get distinct element ids. It restarts with the process, so a seeded
# notebook run produces the same ids every time.
_COUNTER = itertools.count()


def frame_index(positions: Sequence[int], sizes: Sequence[int]) -> int:
    """Row-major (C order) flat index of ``positions`` in a grid of ``sizes``.

    Parameters
    ----------
    positions : sequence of int
        Position of each parameter, ``0 <= positions[k] < sizes[k]``.
    sizes : sequence of int
        Number of values of each parameter.

    Returns
    -------
    int
        The frame number; the last parameter varies fastest, as in :func:`itertools.product`.

    Examples
    --------
    >>> frame_index([1, 2], [2, 3])
    5
    """
    if len(positions) != len(sizes):
        raise ValueError("positions and sizes must have the same length")
    flat = 0
    for pos, size in zip(positions, sizes):
        if not 0 <= pos < size:
            raise ValueError(f"position {pos} out of range for a parameter with {size} values")
        flat = flat * size + int(pos)
    return flat


def frame_alt(alt: str, settings: Sequence[tuple[str, str]]) -> str:
    """Alternative text of one frame: the figure's description and the parameter values.

    Parameters
    ----------
    alt : str
        What the figure shows.
    settings : sequence of (name, value label)
        The parameters of this frame.

    Returns
    -------
    str

    Examples
    --------
    >>> frame_alt("Demons field", [("iterations", "40")])
    'Demons field (iterations = 40)'
    """
    values = ", ".join(f"{name} = {label}" for name, label in settings)
    return f"{alt} ({values})" if alt else values


def _uid(frames_b64: Sequence[str]) -> str:
    digest = hashlib.sha1()
    for frame in frames_b64:
        digest.update(frame.encode("ascii"))
    return f"regkit-slider-{digest.hexdigest()[:10]}-{next(_COUNTER)}"


def _script_json(value) -> str:
    # "<" is escaped so that no label can close the <script> element early.
    return json.dumps(value).replace("<", "\\u003c")


def static_slider_html(
    frames_b64: Sequence[str],
    params: Sequence[tuple[str, Sequence[str]]],
    *,
    initial: Sequence[int] | None = None,
    alt: str | Sequence[str] = "",
    caption: str | None = None,
    size: tuple[int, int] | None = None,
    image_format: str = "png",
    uid: str | None = None,
) -> str:
    """Return an HTML snippet that flips through precomputed PNG frames.

    Parameters
    ----------
    frames_b64 : sequence of str
        Base64-encoded images, one per combination of parameter values,
        in row-major order (last parameter fastest).
    params : sequence of (name, labels)
        One entry per slider: its name and the text shown for each value.
        ``prod(len(labels))`` must equal ``len(frames_b64)``.
    initial : sequence of int, optional
        Starting position of each slider (default: all 0).
    alt : str or sequence of str
        Alternative text: one string per frame, or one description of the figure to which
        each frame adds its parameter values (:func:`frame_alt`).
    caption : str, optional
        Text shown under the image (a ``<figcaption>``).
    size : (int, int), optional
        ``(width, height)`` of the frames in pixels, written on the image so that the page
        reserves its place before the image loads.
    image_format : {"png", "webp"}
        Encoding of the frames (their ``data:image/<format>`` type).
    uid : str, optional
        Prefix of the element ids. Default: derived from the frames' hash and a
        per-process counter, unique on a page.

    Returns
    -------
    str
        The HTML snippet (a single ``<div class="regkit-slider">``).

    Examples
    --------
    >>> snippet = static_slider_html(["AAAA", "BBBB"], [("k", ["1", "2"])], alt="demo", uid="s")
    >>> 'alt="demo (k = 1)"' in snippet, snippet.count("AAAA")
    (True, 1)
    """
    frames_b64 = list(frames_b64)
    if not frames_b64:
        raise ValueError("frames_b64 must hold at least one frame")
    if not params:
        raise ValueError("params must describe at least one slider")
    names = [str(name) for name, _ in params]
    labels = [[str(label) for label in labs] for _, labs in params]
    sizes = [len(labs) for labs in labels]
    if min(sizes) < 1:
        raise ValueError("every parameter in params needs at least one value")
    total = 1
    for n in sizes:
        total *= n
    if total != len(frames_b64):
        raise ValueError(f"params describe {total} frames but frames_b64 holds {len(frames_b64)}")
    initial = [0] * len(sizes) if initial is None else list(initial)
    if len(initial) != len(sizes):
        raise ValueError("initial needs one position per parameter")
    start = frame_index(initial, sizes)
    if isinstance(alt, str):
        alts = [frame_alt(alt, list(zip(names, combo))) for combo in itertools.product(*labels)]
    else:
        alts = [str(a) for a in alt]
        if len(alts) != total:
            raise ValueError(f"alt must be a string or hold one text per frame ({total}), got {len(alts)}")
    if image_format not in ("png", "webp"):
        raise ValueError(f"image_format must be 'png' or 'webp', got {image_format!r}")
    prefix = f"data:image/{image_format};base64,"
    if uid is None:
        uid = _uid(frames_b64)
    elif not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", uid):
        raise ValueError(f"uid must be letters, digits, '-' or '_' (starting with a letter), got {uid!r}")

    esc = html.escape
    controls = []
    for k, (name, labs, pos) in enumerate(zip(names, labels, initial)):
        input_id = f"{uid}-in{k}"
        controls.append(
            '<div class="regkit-slider-control" style="display:flex;align-items:center;gap:0.5em;margin:0.2em 0">'
            f'<label for="{input_id}" style="min-width:4em">{esc(name)}</label>'
            f'<input type="range" id="{input_id}" min="0" max="{len(labs) - 1}" step="1" '
            f'value="{pos}" aria-label="{esc(name)}" style="flex:1 1 auto;max-width:24em">'
            f'<output id="{uid}-out{k}" for="{input_id}" style="min-width:4em;font-family:monospace">'
            f"{esc(labs[pos])}</output></div>"
        )
    # The initial frame lives only in the <img>; the script reads it back from there.
    frames_js = [f if j != start else "" for j, f in enumerate(frames_b64)]
    script = (
        "(function(){"
        f"var uid={json.dumps(uid)};"
        f"var prefix={json.dumps(prefix)};"
        f"var frames={json.dumps(frames_js)};"
        f"var labels={_script_json(labels)};"
        f"var alts={_script_json(alts)};"
        "var img=document.getElementById(uid+'-img');"
        "var first=img.getAttribute('src');"
        "var ins=[],outs=[];"
        "for(var k=0;k<labels.length;k++){"
        "ins.push(document.getElementById(uid+'-in'+k));"
        "outs.push(document.getElementById(uid+'-out'+k));}"
        "function update(){var flat=0;"
        "for(var k=0;k<ins.length;k++){var p=parseInt(ins[k].value,10);"
        "flat=flat*labels[k].length+p;outs[k].value=labels[k][p];outs[k].textContent=labels[k][p];}"
        "img.src=frames[flat]?prefix+frames[flat]:first;"
        "img.alt=alts[flat];"
        "img.setAttribute('data-frame',String(flat));}"
        "for(var k=0;k<ins.length;k++){"
        "ins[k].addEventListener('input',update);ins[k].addEventListener('change',update);}"
        "})();"
    )
    dims = f'width="{int(size[0])}" height="{int(size[1])}" ' if size is not None else ""
    cap = f"<figcaption>{esc(str(caption))}</figcaption>" if caption else ""
    return (
        f'<div class="regkit-slider" id="{uid}" data-frames="{len(frames_b64)}">'
        + "".join(controls)
        + '<figure class="regkit-slider-figure" style="margin:0.3em 0">'
        + f'<img id="{uid}-img" data-frame="{start}" alt="{esc(alts[start])}" {dims}'
        f'style="max-width:100%;height:auto" src="{prefix}{frames_b64[start]}">'
        + cap
        + "</figure>"
        + f"<script>{script}</script></div>"
    )
