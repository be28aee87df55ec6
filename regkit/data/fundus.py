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
- The pieces of the FIRE proxy's zoomed-in scenes (:mod:`regkit.data.fire_proxy`), which see a
  part of a large virtual fundus: :func:`vessel_tree` draws a whole vessel tree as centre-line
  points (NumPy, from a ``torch.Generator``), :func:`vessel_points` keeps and densifies the
  points that fall into one window, :func:`render_vessels` rasterises many windows at once on
  any device (splat per calibre class, then one Gaussian blur per class, wide classes on a
  coarser grid), and :func:`smooth_field` evaluates cubic B-spline control grids (smooth
  backgrounds, illumination). Vessel widths are full widths at half maximum in pixels.

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
from ..filters import gaussian_blur

__all__ = ["synth_fundus", "retina_photo", "smooth_noise", "vessel_tree", "vessel_points", "render_vessels",
           "smooth_field"]


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


# ----------------------------------------------------------------------------------------------
# Zoomed-in scenes of a large virtual fundus (the FIRE proxy)
# ----------------------------------------------------------------------------------------------


def vessel_tree(radius: float, disc, side: float, calibre: float, generator, *, depth: int = 3,
                max_paths: int = 120, step: float = 2.0, min_width: float = 1.0,
                branch_spacing=(0.1, 0.2)) -> np.ndarray:
    """Centre lines of a vessel tree in a circular field of view, as points ``(n, 4)``.

    Columns: x, y (pixels, the field of view centred at the origin with radius ``radius``),
    full width at half maximum (pixels) and the index of the polyline the point belongs to.
    Points along a polyline are ``step`` pixels apart. Four arcades leave the disc at ``disc``
    (two wrap round the macula, which lies on the ``-side`` of the disc along x, two go the
    other way) and branch up to ``depth`` times, each branch narrower; a vessel ends at the rim or
    below ``min_width``; a vessel branches every ``branch_spacing`` (a range, in units of the FOV
    diameter) of its length. The polylines of one branching level are drawn together (one random
    walk per row of an array). Same generator state, same tree.

    >>> t = vessel_tree(300.0, (120.0, 0.0), 1.0, 9.0, torch.Generator().manual_seed(0))
    >>> t.shape[1], bool((np.hypot(t[:, 0], t[:, 1]) <= 300).all())
    (4, True)
    """
    from scipy.signal import lfilter

    g = generator
    size = 2.08 * radius                      # the image side the arcade curvature was tuned on
    k = 1.0 / (0.33 * size)
    to_mac = math.pi if side > 0 else 0.0
    away = 0.0 if side > 0 else math.pi
    roots = np.array([(to_mac - side * 1.45, side * k, 1.0), (to_mac + side * 1.45, -side * k, 1.0),
                      (away - side * 0.8, -side * 0.3 * k, 0.75), (away + side * 0.8, side * 0.3 * k, 0.75)])

    def rand(*shape):
        return torch.rand(*shape, generator=g, dtype=torch.float64).numpy()

    r4 = rand(3, 4)
    # rows: x0, y0, heading, width, bend
    level = np.stack((np.full(4, float(disc[0])), np.full(4, float(disc[1])), roots[:, 0] + (r4[0] * 0.4 - 0.2),
                      calibre * roots[:, 2] * (0.85 + 0.3 * r4[1]), roots[:, 1] * (0.7 + 0.6 * r4[2])), 1)
    n = int(1.2 * size / step)
    t = np.arange(n, dtype=np.float64) * step
    a = math.exp(-step / 12.0)
    curve = (1 - 0.993**t) / (1 - 0.993)
    decay = (1 - 1.2 / size) ** t
    paths, count = [], 0
    for d in range(depth + 1):
        if len(level) == 0 or count >= max_paths:
            break
        level = level[: max_paths - count]
        m = len(level)
        noise = torch.randn(m, n, generator=g, dtype=torch.float64).numpy()
        wander = lfilter([1 - a], [1, -a], noise, axis=1) * 0.05 * math.sqrt(step)
        ang = level[:, 2:3] + level[:, 4:5] * curve + np.cumsum(wander, 1)
        x = level[:, 0:1] + np.cumsum(np.cos(ang), 1) * step
        y = level[:, 1:2] + np.cumsum(np.sin(ang), 1) * step
        w = level[:, 3:4] * decay
        out = (x * x + y * y > (0.985 * radius) ** 2) | (w < min_width)
        stop = np.where(out.any(1), out.argmax(1), n)
        children = []
        for i in range(m):
            s_ = int(stop[i])
            if s_ < 3:
                continue
            paths.append(np.stack((x[i, :s_], y[i, :s_], w[i, :s_], np.full(s_, float(count))), 1))
            count += 1
            if d == depth:
                continue
            nb = int(s_ * step / ((branch_spacing[0] + (branch_spacing[1] - branch_spacing[0]) * rand(1)[0]) * size))
            if nb == 0:
                continue
            r = rand(5, nb)
            j = (0.05 + 0.9 * r[0]) * (s_ - 1)
            j = j.astype(int)
            cw = w[i, j] * (0.5 + 0.3 * r[1])
            turn = (0.45 + 0.55 * r[2]) * np.where(r[3] < 0.5, 1.0, -1.0)
            keep = cw >= min_width
            children.append(np.stack((x[i, j], y[i, j], ang[i, j] + turn, cw, (r[4] - 0.5) * k), 1)[keep])
        level = np.concatenate(children) if children else np.zeros((0, 5))
    return np.concatenate(paths) if paths else np.zeros((0, 4))


def vessel_points(tree: np.ndarray, origin, size: int, spacing: float = 0.5) -> np.ndarray:
    """The tree's centre-line points near one square window, densified: ``(n, 4)`` x, y, width, weight.

    ``origin`` is the window's top-left pixel in the tree's coordinates; returned x, y are pixels
    of the window (``0 .. size - 1``). Consecutive points of a polyline are joined by points
    ``spacing`` apart at most; ``weight`` is the line length each point stands for, so that a
    rasterised line has unit density per pixel.

    >>> tree = np.array([[0.0, 5.0, 2.0, 0], [4.0, 5.0, 2.0, 0], [8.0, 5.0, 2.0, 0]])
    >>> pts = vessel_points(tree, (0.0, 0.0), 16)
    >>> len(pts), float(pts[:, 3].sum())
    (16, 8.0)
    """
    if len(tree) < 2:
        return np.zeros((0, 4))
    x, y = tree[:, 0] - origin[0], tree[:, 1] - origin[1]
    pad = 3.0 * tree[:, 2] + 4.0
    near = (x > -pad) & (x < size - 1 + pad) & (y > -pad) & (y < size - 1 + pad)
    seg = np.nonzero(near[:-1] & near[1:] & (tree[:-1, 3] == tree[1:, 3]))[0]
    if len(seg) == 0:
        return np.zeros((0, 4))
    dx, dy = x[seg + 1] - x[seg], y[seg + 1] - y[seg]
    length = np.hypot(dx, dy)
    k = max(1, int(np.ceil(length.max() / spacing)))
    f = (np.arange(k) / k)[None]
    px = x[seg, None] + f * dx[:, None]
    py = y[seg, None] + f * dy[:, None]
    pw = tree[seg, 2, None] + f * (tree[seg + 1, 2] - tree[seg, 2])[:, None]
    wt = np.broadcast_to((length / k)[:, None], px.shape)
    return np.stack((px.ravel(), py.ravel(), pw.ravel(), wt.ravel()), 1)


_CLASS_EDGES = (0.0, 1.4, 2.0, 2.8, 4.0, 5.6, 8.0, 11.3, 16.0, 22.6, math.inf)


def render_vessels(points: list, size: int, strength, device=None) -> torch.Tensor:
    """Rasterise vessel centre lines of ``B`` windows at once: profiles ``B,1,size,size`` in [0, 1].

    Parameters
    ----------
    points : list of ``B`` arrays ``(n, 4)``
        x, y (pixels of the window), width (FWHM, pixels), weight, as :func:`vessel_points` gives.
    size : int
        Window side in pixels.
    strength : callable or float
        Peak darkening of a vessel as a function of its width array (NumPy), or a constant.
    device : torch.device, optional

    Each point is splatted bilinearly into the channel of its calibre class; every class is
    blurred by a Gaussian of that class's width (full width at half maximum = 2.355 sigma), wide
    classes on a grid two or four times coarser and then upsampled; classes combine by their
    maximum, so a vessel's cross-section is a Gaussian whose peak is its ``strength``.

    >>> pts = np.array([[x, 16.0, 4.0, 0.5] for x in np.arange(0, 32, 0.5)])
    >>> prof = render_vessels([pts], 32, 0.8)
    >>> round(float(prof[0, 0, 16, 16]), 2), float(prof[0, 0, 2, 16]) < 0.01
    (0.8, True)
    """
    device = torch.device(device) if device is not None else torch.device("cpu")
    b = len(points)
    edges = np.asarray(_CLASS_EDGES)
    prof = torch.zeros(b, 1, size, size, device=device)
    allp = [np.asarray(p, dtype=np.float64).reshape(-1, 4) for p in points]
    cls = [np.clip(np.searchsorted(edges, p[:, 2], side="right") - 1, 0, len(edges) - 2) for p in allp]
    for c in range(len(edges) - 1):
        lo, hi = edges[c], edges[c + 1]
        fwhm = math.sqrt(max(lo, 1.0) * hi) if math.isfinite(hi) else lo * 1.2
        sigma = fwhm / 2.355
        f = 1 if sigma < 3.0 else (2 if sigma < 6.0 else (4 if sigma < 12.0 else 8))
        n = (size - 1) // f + 1
        xs, ys, ws, bs = [], [], [], []
        for j, (p, cj) in enumerate(zip(allp, cls)):
            sel = p[cj == c]
            if len(sel):
                s_ = strength(sel[:, 2]) if callable(strength) else np.full(len(sel), float(strength))
                xs.append(sel[:, 0] * (n - 1) / (size - 1))
                ys.append(sel[:, 1] * (n - 1) / (size - 1))
                ws.append(sel[:, 3] * s_ * (n - 1) / (size - 1))
                bs.append(np.full(len(sel), j))
        if not xs:
            continue
        x = torch.from_numpy(np.concatenate(xs)).float().to(device)
        y = torch.from_numpy(np.concatenate(ys)).float().to(device)
        w = torch.from_numpy(np.concatenate(ws)).float().to(device)
        bi = torch.from_numpy(np.concatenate(bs)).long().to(device)
        x0, y0 = x.floor(), y.floor()
        fx, fy = x - x0, y - y0
        grid = torch.zeros(b * n * n, device=device)
        for dx, dy, wgt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
            xi, yi = x0.long() + dx, y0.long() + dy
            ok = (xi >= 0) & (xi < n) & (yi >= 0) & (yi < n)
            if device.type != "cpu" and torch.are_deterministic_algorithms_enabled():
                # index_add_ accumulates with atomics on GPUs; splat on the CPU when determinism is asked for
                grid = grid.cpu().index_add_(0, (bi * n * n + yi * n + xi)[ok].cpu(), (w * wgt)[ok].cpu()).to(device)
            else:
                grid.index_add_(0, (bi * n * n + yi * n + xi)[ok], (w * wgt)[ok])
        s_c = sigma / f
        line = gaussian_blur(grid.view(b, 1, n, n), s_c) * (math.sqrt(2 * math.pi) * s_c)
        if f > 1:
            line = spatial.resize_image(line, (size, size))
        prof = torch.maximum(prof, line.clamp(max=1.0))
    return prof


def smooth_field(control: torch.Tensor, size) -> torch.Tensor:
    """A smooth field ``B,C,H,W`` from cubic B-spline control values ``B,C,ny,nx`` (each at least 4).

    The control grid spans the image with one extra ring outside (:func:`regkit.spatial.bspline_basis`),
    so the field has no border effects; a constant grid gives that constant.

    >>> smooth_field(torch.full((1, 1, 4, 4), 0.3), (8, 8)).sub(0.3).abs().max().item() < 1e-6
    True
    """
    h, w = size
    by = spatial.bspline_basis(h, control.shape[-2], control.device)
    bx = spatial.bspline_basis(w, control.shape[-1], control.device)
    return torch.einsum("hj,bcjk,wk->bchw", by, control.float(), bx)
