"""A procedural retinal fundus generator, and the real fundus photograph that scikit-image ships.

Convention
----------
- :func:`synth_fundus` draws one grey-level fundus (think of the green channel) of ``size x size``
  pixels from a ``torch.Generator``: a circular field of view with vignetting, a slowly varying
  background with fine choroidal texture, a bright optic disc with a brighter cup, a dark macula
  about 2.5 disc diameters to its side, and a vessel tree: four arcades leave the disc, bend
  around the macula and branch, their calibre shrinking at each branch. Vessels are drawn darker
  than the background with a Gaussian cross-section.
- It returns float32 tensors ``image (1, S, S)`` in [0, 1] and bool ``vessels``, ``fov``
  ``(1, S, S)``. All randomness comes from the generator: same generator state, same fundus.
- :func:`retina_photo` is ``skimage.data.retina()`` (a real colour fundus photograph, 1411 px),
  as its green channel resized to ``size`` with a field-of-view mask and a vessel mask from a
  Sato ridge filter; cached.

Example
-------
>>> import torch
>>> f = synth_fundus(128, torch.Generator().manual_seed(0))
>>> f["image"].shape, f["image"].dtype, bool(f["vessels"].any())
(torch.Size([1, 128, 128]), torch.float32, True)
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from .. import spatial

__all__ = ["synth_fundus", "retina_photo", "smooth_noise"]


def _u(g, lo=0.0, hi=1.0) -> float:
    return float(lo + (hi - lo) * torch.rand((), generator=g))


def smooth_noise(size: int, cells: int, generator) -> torch.Tensor:
    """Zero-mean, unit-peak smooth noise ``(size, size)``: a ``cells x cells`` Gaussian grid, upsampled."""
    coarse = torch.randn(1, 1, cells, cells, generator=generator)
    up = spatial.resize_image(coarse, (size, size), mode="bicubic")[0, 0]
    up = up - up.mean()
    return up / up.abs().max().clamp_min(1e-6)


def _vessel_path(x0, y0, ang0, w0, bend, size, g):
    """One vessel as points ``(n, 3)`` = x, y, width, one pixel apart (vectorised random walk)."""
    n = int(1.2 * size)
    noise = torch.randn(n, generator=g).numpy()
    kern = np.exp(-np.arange(40) / 12.0)
    wander = np.convolve(noise, kern / kern.sum(), mode="full")[:n] * 0.05
    t = np.arange(n, dtype=np.float64)
    decay = 0.993
    ang = ang0 + bend * (1 - decay**t) / (1 - decay) + np.cumsum(wander)
    x = x0 + np.cumsum(np.cos(ang))
    y = y0 + np.cumsum(np.sin(ang))
    w = w0 * (1 - 1.2 / size) ** t
    c = (size - 1) / 2.0
    out = ((x - c) ** 2 + (y - c) ** 2 > (0.49 * size) ** 2) | (w < 0.7)
    stop = int(np.argmax(out)) if out.any() else n
    return np.stack((x, y, w, ang), 1)[:stop]


def _vessel_paths(size, disc, macula, g, calibre):
    """Polylines (x, y, width, angle) of a branching vessel tree rooted at the optic disc."""
    side = 1.0 if macula[0] < disc[0] else -1.0        # +1: macula to the left of the disc
    to_mac = math.pi if side > 0 else 0.0              # heading from the disc towards the macula
    away = 0.0 if side > 0 else math.pi
    k = 1.0 / (0.33 * size)                            # arcade curvature (radius about a third of the image)
    roots = [  # (heading, bend per pixel, calibre factor): temporal arcades wrap round the macula
        (to_mac - side * 1.45, side * k, 1.0),
        (to_mac + side * 1.45, -side * k, 1.0),
        (away - side * 0.8, -side * 0.3 * k, 0.75),
        (away + side * 0.8, side * 0.3 * k, 0.75),
    ]
    stack = [(disc[0], disc[1], a + _u(g, -0.2, 0.2), calibre * f * _u(g, 0.85, 1.15), b * _u(g, 0.7, 1.3), 0)
             for a, b, f in roots]
    paths = []
    while stack and len(paths) < 90:
        x, y, ang, w, bend, depth = stack.pop()
        pts = _vessel_path(x, y, ang, w, bend, size, g)
        if len(pts) < 4:
            continue
        paths.append(pts[:, :3])
        if depth >= 3:
            continue
        n_branch = int(len(pts) / (_u(g, 0.1, 0.2) * size))
        for _ in range(n_branch):
            j = int(_u(g, 0.08, 0.95) * (len(pts) - 1))
            px, py, pw, pa = pts[j]
            cw = pw * _u(g, 0.5, 0.8)
            if cw < 0.9:
                continue
            turn = _u(g, 0.45, 1.0) * (1 if torch.rand((), generator=g) < 0.5 else -1)
            stack.append((px, py, pa + turn, cw, _u(g, -0.5, 0.5) * k, depth + 1))
    return paths


def _draw_vessels(size, paths):
    """Vessel darkening profile in [0, 1] (Gaussian cross-section) and the vessel mask.

    Centre lines are rasterised per calibre class and blurred with that class's Gaussian, so
    the cost is a few convolutions rather than a stamp per point.
    """
    pts = np.concatenate(paths) if paths else np.zeros((0, 3))
    xi, yi = np.round(pts[:, 0]).astype(int), np.round(pts[:, 1]).astype(int)
    keep = (xi >= 0) & (xi < size) & (yi >= 0) & (yi < size)
    xi, yi, w = xi[keep], yi[keep], pts[keep, 2]
    edges = np.array([0.0, 1.2, 1.8, 2.6, 3.6, 5.0, 7.0, 1e9])
    prof = torch.zeros(size, size)
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (w >= lo) & (w < hi)
        if not sel.any():
            continue
        line = torch.zeros(size, size)
        line[torch.from_numpy(yi[sel]), torch.from_numpy(xi[sel])] = 1.0
        sigma = max(0.5 * float(np.median(w[sel])), 0.5)
        r = int(math.ceil(3 * sigma))
        kx = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float32) / sigma) ** 2)
        blurred = F.conv2d(F.conv2d(line[None, None], kx.view(1, 1, 1, -1), padding=(0, r)),
                           kx.view(1, 1, -1, 1), padding=(r, 0))[0, 0]
        strength = min(1.0, 0.45 + 0.2 * float(np.median(w[sel])))
        prof = torch.maximum(prof, (blurred / kx.sum()).clamp(max=1.0) * strength)
    peak = prof.amax().clamp_min(1e-6)
    return prof, (prof > 0.5 * min(float(peak), 0.45))


def synth_fundus(size: int = 512, generator: torch.Generator | None = None) -> dict:
    """One procedural fundus image (see the module docstring). ``size`` at least 64."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 64:
        raise ValueError(f"size must be an integer of at least 64, got {size!r}")
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    s = size
    c = (s - 1) / 2.0
    ys, xs = torch.meshgrid(torch.arange(s, dtype=torch.float32), torch.arange(s, dtype=torch.float32), indexing="ij")
    r_fov = 0.48 * s
    cx, cy = c + _u(g, -0.02, 0.02) * s, c + _u(g, -0.02, 0.02) * s
    rr = torch.sqrt((xs - cx) ** 2 + (ys - cy) ** 2) / r_fov
    fov = rr <= 1.0
    side = 1.0 if torch.rand((), generator=g) < 0.5 else -1.0      # left or right eye
    disc = (cx + side * _u(g, 0.22, 0.3) * s, cy + _u(g, -0.04, 0.04) * s)
    disc_r = _u(g, 0.06, 0.075) * s
    macula = (disc[0] - side * 2.5 * 2 * disc_r, disc[1] + _u(g, 0.0, 0.03) * s)

    base = _u(g, 0.42, 0.55)
    img = base + 0.06 * smooth_noise(s, 4, g) + 0.03 * smooth_noise(s, 12, g)
    fine = torch.randn(1, 1, s, s, generator=g)
    k = torch.tensor([0.25, 0.5, 0.25])
    fine = F.conv2d(F.conv2d(fine, k.view(1, 1, 1, 3), padding=(0, 1)), k.view(1, 1, 3, 1), padding=(1, 0))[0, 0]
    img = img + 0.035 * fine
    dd = ((xs - disc[0]) ** 2 + (ys - disc[1]) ** 2) / disc_r**2
    img = img + _u(g, 0.25, 0.35) * torch.exp(-(dd**3)) + _u(g, 0.1, 0.2) * torch.exp(-dd / 0.12)
    dm = ((xs - macula[0]) ** 2 + (ys - macula[1]) ** 2) / (disc_r * 1.6) ** 2
    img = img - _u(g, 0.08, 0.14) * torch.exp(-dm)

    paths = _vessel_paths(s, disc, macula, g, calibre=_u(g, 0.010, 0.013) * s)
    prof, vmask = _draw_vessels(s, paths)
    img = img - _u(g, 0.18, 0.26) * prof

    vign = 1.0 - _u(g, 0.35, 0.5) * rr.clamp(max=1.0) ** 2
    edge = torch.sigmoid((1.0 - rr) * r_fov / 1.5)                  # soft 1-2 px rim
    img = (img * vign * edge).clamp(0, 1)
    return {
        "image": img[None].float(),
        "vessels": vmask[None] & fov[None],
        "fov": fov[None],
    }


@lru_cache(maxsize=2)
def _retina_cached(size: int):
    from skimage import data, filters, transform

    rgb = data.retina().astype(np.float32) / 255.0
    green = rgb[..., 1]
    fov = rgb.sum(-1) > 0.12
    green = transform.resize(green, (size, size), anti_aliasing=True, order=1)
    fov_s = transform.resize(fov.astype(np.float32), (size, size), order=1) > 0.5
    ridges = filters.sato(green, sigmas=[max(1.0, size / 512), max(2.0, size / 256)], black_ridges=True)
    ridges[~fov_s] = 0
    thr = np.quantile(ridges[fov_s], 0.88)
    vessels = (ridges > thr) & fov_s
    green = np.clip(green / max(float(np.quantile(green[fov_s], 0.995)), 1e-3), 0, 1)
    return (torch.from_numpy(green.astype(np.float32))[None], torch.from_numpy(vessels)[None],
            torch.from_numpy(fov_s)[None])


def retina_photo(size: int = 512) -> dict:
    """The real fundus photograph of ``skimage.data.retina()`` as green channel, FOV and vessel masks.

    Returned tensors are cached and shared: clone before writing into them.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 64:
        raise ValueError(f"size must be an integer of at least 64, got {size!r}")
    img, ves, fov = _retina_cached(size)
    return {"image": img, "vessels": ves, "fov": fov}
