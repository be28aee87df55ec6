"""Self-contained HTML for a precomputed image slider (no kernel, no network).

This private module only builds HTML text; :func:`regkit.viz.slider` renders the
frames and wraps them together with a live ``ipywidgets`` control.

The snippet holds every frame as a base64 PNG ``data:`` URI, one
``<input type="range">`` per parameter, an ``<output>`` showing the current
value of each parameter and a few lines of inline JavaScript that swap the
``src`` of a single ``<img>``. It loads no external script, style sheet or
font, so it works in a static HTML page opened from disk.
"""

from __future__ import annotations

import hashlib
import html
import itertools
import json
import re
from typing import Sequence

__all__ = ["static_slider_html", "frame_index"]

# Per-process counter so that two sliders with identical frames on one page
# still get distinct element ids. It restarts with the process, so a seeded
# notebook run produces the same ids every time.
_COUNTER = itertools.count()


def frame_index(positions: Sequence[int], sizes: Sequence[int]) -> int:
    """Row-major (C order) flat index of ``positions`` in a grid of ``sizes``.

    The last parameter varies fastest, as in :func:`itertools.product`.

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
        flat = flat * size + pos
    return flat


def _uid(frames_b64: Sequence[str]) -> str:
    digest = hashlib.sha1()
    for frame in frames_b64:
        digest.update(frame.encode("ascii"))
    return f"regkit-slider-{digest.hexdigest()[:10]}-{next(_COUNTER)}"


def static_slider_html(
    frames_b64: Sequence[str],
    params: Sequence[tuple[str, Sequence[str]]],
    *,
    initial: Sequence[int] | None = None,
    alt: str = "",
    uid: str | None = None,
) -> str:
    """Return an HTML snippet that flips through precomputed PNG frames.

    Parameters
    ----------
    frames_b64 : sequence of str
        Base64-encoded PNG images, one per combination of parameter values,
        in row-major order (last parameter fastest).
    params : sequence of (name, labels)
        One entry per slider: its name and the text shown for each value.
        ``prod(len(labels))`` must equal ``len(frames_b64)``.
    initial : sequence of int, optional
        Starting position of each slider (default: all 0).
    alt : str
        Alternative text of the image.
    uid : str, optional
        Prefix of the element ids. Default: derived from the frames' hash and a
        per-process counter, unique on a page.

    Returns
    -------
    str
        The HTML snippet (a single ``<div>``).
    """
    frames_b64 = list(frames_b64)
    if not frames_b64:
        raise ValueError("frames_b64 must hold at least one frame")
    if not params:
        raise ValueError("params must describe at least one slider")
    sizes = [len(labels) for _, labels in params]
    total = 1
    for size in sizes:
        if size < 1:
            raise ValueError("every parameter in params needs at least one value")
        total *= size
    if total != len(frames_b64):
        raise ValueError(
            f"params describe {total} frames but frames_b64 holds {len(frames_b64)}"
        )
    if initial is None:
        initial = [0] * len(sizes)
    if len(initial) != len(sizes):
        raise ValueError("initial needs one position per parameter")
    start = frame_index(list(initial), sizes)
    if uid is None:
        uid = _uid(frames_b64)
    elif not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", uid):
        raise ValueError(f"uid must be letters, digits, '-' or '_' (starting with a letter), got {uid!r}")

    esc = html.escape
    controls = []
    for k, ((name, labels), pos) in enumerate(zip(params, initial)):
        input_id = f"{uid}-in{k}"
        controls.append(
            f'<div class="regkit-slider-control" style="display:flex;align-items:center;gap:0.5em;margin:0.2em 0">'
            f'<label for="{input_id}" style="min-width:4em">{esc(str(name))}</label>'
            f'<input type="range" id="{input_id}" min="0" max="{len(labels) - 1}" step="1" '
            f'value="{pos}" aria-label="{esc(str(name))}" style="flex:1 1 auto;max-width:24em">'
            f'<output id="{uid}-out{k}" for="{input_id}" style="min-width:4em;font-family:monospace">'
            f"{esc(str(labels[pos]))}</output></div>"
        )
    # "<" is escaped so that no label can close the <script> element early.
    labels_json = json.dumps([list(map(str, labels)) for _, labels in params]).replace("<", "\\u003c")
    frames_json = json.dumps(frames_b64)
    # Inline script: finds its elements by id, needs nothing from the page.
    script = (
        "(function(){"
        f"var uid={json.dumps(uid)};"
        f"var frames={frames_json};"
        f"var labels={labels_json};"
        "var img=document.getElementById(uid+'-img');"
        "var ins=[],outs=[];"
        "for(var k=0;k<labels.length;k++){"
        "ins.push(document.getElementById(uid+'-in'+k));"
        "outs.push(document.getElementById(uid+'-out'+k));}"
        "function update(){var flat=0;"
        "for(var k=0;k<ins.length;k++){var p=parseInt(ins[k].value,10);"
        "flat=flat*labels[k].length+p;outs[k].value=labels[k][p];outs[k].textContent=labels[k][p];}"
        "img.src='data:image/png;base64,'+frames[flat];"
        "img.setAttribute('data-frame',String(flat));}"
        "for(var k=0;k<ins.length;k++){"
        "ins[k].addEventListener('input',update);ins[k].addEventListener('change',update);}"
        "})();"
    )
    return (
        f'<div class="regkit-slider" id="{uid}" data-frames="{len(frames_b64)}">'
        + "".join(controls)
        + f'<img id="{uid}-img" data-frame="{start}" alt="{esc(alt)}" '
        f'style="max-width:100%;height:auto" src="data:image/png;base64,{frames_b64[start]}">'
        + f"<script>{script}</script></div>"
    )
