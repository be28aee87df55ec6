r"""The offline FIRE-Reg-256 proxy: procedural fundus patch pairs shaped like pre-aligned FIRE.

Convention
----------
Items as :mod:`regkit.data.fire` describes (``moving``, ``fixed``, ``landmarks_*``, ``frame``,
``pair``, ``category``), plus the exact ``disp`` ``(2, P, P)`` (pull field on the fixed grid:
``spatial.warp(moving, disp) ≈ fixed`` up to the appearance change), vessel masks
``mask_fixed`` / ``mask_moving``, field-of-view masks ``fov_fixed`` / ``fov_moving`` and the
global ``appearance`` ``(gain, bias, gamma)`` of the moving image. ``P`` is ``size`` (256 by
default); every length below is given for ``P = 256`` and scales with ``P / 256``, so a smaller
``size`` gives the same pairs at a lower resolution (noise and fine texture as if downsampled).

What a proxy pair is
--------------------
One image pair ("scene") is a window of ``2P x 2P`` pixels on a large virtual fundus whose field
of view (FOV) is ``fov_diameter`` patch widths across (5.5: FIRE's 2912 px photographs at our
real-FIRE scale 0.5 are about 1,400 px across their FOV), so a patch sees about a sixth of the
fundus, as a real FIRE-Reg-256 patch does. The window is cut into a ``3 x 3`` grid of ``P x P``
frames with stride ``P / 2`` (9 items per pair, ``frame`` in raster order). Every split draws
its own scenes (seeds are namespaced by split): no scene, and no photograph, is in two splits.

- **Anatomy.** A vessel tree rooted at an optic disc (FOV-scale), a dark macula, a smooth
  background with choroidal texture (:mod:`regkit.data.fundus`).
- **Geometry: what is left after pre-alignment.** The moving image shows the scene under
  :math:`\phi(p) = p + u(p)` with :math:`u` = a residual affine (translation ``translation``
  px per axis, rotation, scale, shear) + a quadratic term (``curvature`` px at the window's
  corner: the eye's curvature that an affine cannot remove) + a smooth local B-spline
  deformation (``local_disp`` px). Target: mean :math:`|u|` of 3-5 px per patch on the test
  split, 95th percentile below FIRE's 25-px success threshold at full resolution (12.5 px here),
  most of it locally affine (:data:`regkit.data.calibration.DISPLACEMENT_TARGET` says where
  the target comes from; the measured values are in ``results/data_calibration.json``).
- **Appearance carries the rest.** Each camera has its own vignetting about its own optical
  centre and a smooth illumination field (``illumination``), the moving image a global
  gain/bias/gamma, one image of the pair a blur (``blur``), both white noise (``noise``).
- **FOV border.** After pre-alignment the moving camera's FOV is offset from the fixed one by
  the original view change (S pairs: up to a fifth of the FOV diameter, i.e. more than 75%
  overlap; P pairs: a fifth to two fifths). A frame is kept only with at least ``min_coverage``
  (95%) of it inside both FOVs (as for real FIRE), and the two borders lie in different places,
  so a black corner does not correlate across the pair: translating the moving image by 35 px
  drops the NCC from 0.75 to about 0.4 on the test split.
- **Categories** in FIRE's proportions per image pair (S 71, P 49, A 14 of 134): P pairs have
  the larger FOV offset (small overlap) and ``p_factor`` times the residual geometry; A pairs add
  local anatomical change to the moving image (bright and dark lesions, ``lesions``; vessel
  contrast changing by up to ``vessel_change``).
- **Landmarks**: ``landmarks`` points on the fixed frame's vessel centre lines (or anywhere in
  both FOVs where a frame has too few), carried to the moving frame by the exact field.

Speed
-----
A scene is made at once for all its frames, and many scenes at once on the caller's ``device``
(:func:`render_pairs`). All random numbers are drawn on the CPU from per-scene and per-item
generators, so the data do not depend on the device or on how items are batched (up to float
rounding). ``dataset.batch(indices)`` and ``dataset.materialize(device)`` use this path;
``dataset[i]`` keeps the last few scenes so that frames read in order cost a ninth of a scene.

>>> ds = fire_proxy("test", size=64, limit=9)
>>> b = ds.batch(range(9))
>>> tuple(b["moving"].shape), b["frame"].tolist() == list(range(9)), ds.source
((9, 1, 64, 64), True, 'proxy')
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict

import numpy as np
import torch

from .. import spatial
from . import appearance
from .fundus import render_vessels, smooth_field, vessel_points, vessel_tree
from .pairs import PairDataset, item_seed, merge_params

__all__ = ["fire_proxy", "render_pairs", "draw_scene", "category_of", "PROXY_PARAMS", "PAPER_SPLITS", "CATEGORIES"]

PAPER_SPLITS = {"train": 8018, "val": 978, "test": 973}
"""FIRE-Reg-256 split sizes stated by the GPEReg-Net paper."""

CATEGORIES = {"S": 71, "P": 49, "A": 14}
"""FIRE's image pairs per category (Hernandez-Matas et al. 2017): S large overlap, P small
overlap, A anatomical change."""

PROXY_PARAMS = {
    # layout
    "grid": 3, "fov_diameter": 5.5, "min_coverage": 0.95,
    "offset_S": (0.0, 0.2), "offset_P": (0.2, 0.4),          # moving FOV offset / FOV diameter
    # geometry after pre-alignment (pixels of a 256 patch; degrees; relative)
    "translation": 3.5, "rotation": 0.5, "scale": 0.006, "shear": 0.4,
    "curvature": 2.0, "local_disp": 0.8, "local_control": 6, "p_factor": 1.6,
    # anatomy
    "calibre": (0.017, 0.021), "vessel_depth": (0.3, 0.4), "branch_depth": 4, "branch_spacing": (0.07, 0.14),
    "background": 0.25, "choroid": 0.1, "choroid_cell": 64.0, "texture": 0.03, "texture_length": 1.0,
    # appearance
    "illumination": 0.06, "vignetting": (0.15, 0.3),
    "gain": (0.85, 1.15), "bias": (-0.06, 0.06), "gamma": (0.8, 1.25),
    "blur": 0.6, "noise": 0.006,
    # A pairs
    "lesions": (6, 18), "lesion_size": (2.0, 8.0), "lesion_amplitude": (0.08, 0.25), "vessel_change": 0.3,
    "landmarks": 10,
}
"""Parameters of the FIRE proxy (pixels of a 256 patch); calibrated, see :mod:`regkit.data.calibration`."""

_SPLITS = ("train", "val", "test")
_NAME = "fire_reg256_proxy"


def category_of(split: str, seed: int, pair: int) -> str:
    """FIRE category (``"S"``, ``"P"`` or ``"A"``) of proxy image pair ``pair``.

    A golden-ratio sequence with a split- and seed-dependent start, cut at FIRE's proportions
    (71, 49, 14 of 134), so any run of consecutive pairs holds the three categories in nearly
    those proportions.

    >>> "".join(category_of("test", 0, j) for j in range(12)).count("S") in (6, 7)
    True
    """
    start = item_seed("fire_proxy_category", split, seed) / 2.0**63
    u = (start + (pair + 1) * 0.6180339887498949) % 1.0
    n = sum(CATEGORIES.values())
    return "S" if u < CATEGORIES["S"] / n else ("P" if u < (CATEGORIES["S"] + CATEGORIES["P"]) / n else "A")


def _u(g, lo, hi) -> float:
    return float(lo + (hi - lo) * torch.rand((), generator=g, dtype=torch.float64))


def _layout(p: dict, size: int) -> dict:
    k = size / 256.0
    stride = size // 2
    window = size + (p["grid"] - 1) * stride
    margin = int(math.ceil(24 * k))
    return {"k": k, "stride": stride, "window": window, "margin": margin, "render": window + 2 * margin,
            "radius": p["fov_diameter"] * size / 2.0}


def _place(lay: dict, offset: np.ndarray, p: dict, g) -> np.ndarray:
    """Centre of the scene window (virtual FOV coordinates) with every frame inside both FOVs enough."""
    rv, size, stride, grid = lay["radius"], lay["window"] - (p["grid"] - 1) * lay["stride"], lay["stride"], p["grid"]
    c = (np.arange(grid) - (grid - 1) / 2) * stride
    s = ((np.arange(8) + 0.5) / 8 - 0.5) * size
    fy, fx, sy, sx = np.meshgrid(c, c, s, s, indexing="ij")
    rel = np.stack((fx + sx, fy + sy), -1).reshape(grid * grid, 64, 2)
    for _ in range(8):
        r = rv * torch.rand(64, generator=g, dtype=torch.float64).sqrt().numpy()
        a = 2 * math.pi * torch.rand(64, generator=g, dtype=torch.float64).numpy()
        z = np.stack((r * np.cos(a), r * np.sin(a)), 1)                         # 64 candidates
        pts = z[:, None, None] + rel[None]                                      # 64, frames, 64, 2
        inside = (np.hypot(pts[..., 0], pts[..., 1]) <= rv) & (
            np.hypot(pts[..., 0] - offset[0], pts[..., 1] - offset[1]) <= rv)
        ok = inside.mean(-1).min(-1) >= p["min_coverage"]
        if ok.any():
            return z[int(np.argmax(ok))]
    return offset / 2.0


def draw_scene(split: str, seed: int, pair: int, params: dict | None = None, size: int = 256) -> dict:
    """Every random number of proxy image pair ``pair`` (CPU), from its own generator.

    Returns a dict of NumPy arrays and CPU tensors that :func:`render_pairs` turns into images.

    >>> spec = draw_scene("train", 0, 5, size=64)
    >>> spec["category"] in CATEGORIES, tuple(spec["theta"].shape)
    (True, (2, 3))
    """
    p = merge_params(PROXY_PARAMS, params)
    lay = _layout(p, size)
    k, rv, ren = lay["k"], lay["radius"], lay["render"]

    def gen(part):  # one generator per part: changing one part's parameters leaves the others' draws alone
        return torch.Generator().manual_seed(item_seed("fire_proxy_scene", part, split, seed, pair))

    cat = category_of(split, seed, pair)
    f = p["p_factor"] if cat == "P" else 1.0
    g = gen("layout")
    lo, hi = p["offset_P"] if cat == "P" else p["offset_S"]
    dist, ang = 2 * rv * _u(g, lo, hi), _u(g, 0, 2 * math.pi)
    offset = np.array([dist * math.cos(ang), dist * math.sin(ang)])
    centre = _place(lay, offset, p, g)
    origin = centre - (ren - 1) / 2.0                                    # virtual coords of render pixel 0
    g = gen("geometry")
    spec = {
        "split": split, "seed": seed, "pair": pair, "category": cat, "size": size, "params": p,
        "offset": offset, "origin": origin, "fov_fixed": -origin, "fov_moving": offset - origin,
        "theta": spatial.affine_matrix((ren, ren), rotation=_u(g, -1, 1) * p["rotation"] * f,
                                       scale=1 + _u(g, -1, 1) * p["scale"] * f, shear=_u(g, -1, 1) * p["shear"] * f,
                                       tx=_u(g, -1, 1) * p["translation"] * f * k,
                                       ty=_u(g, -1, 1) * p["translation"] * f * k)[0],
        "quad": (torch.rand(2, 3, generator=g) * 2 - 1) * p["curvature"] * f * k,
        "local": torch.randn(2, p["local_control"], p["local_control"], generator=g) * p["local_disp"] * f * k,
    }
    g = gen("appearance")
    spec.update({
        "illum": (torch.rand(2, 4, 4, generator=g) * 2 - 1) * p["illumination"],
        "vignetting": torch.tensor([_u(g, *p["vignetting"]), _u(g, *p["vignetting"])]),
        "appearance": appearance.draw(p["gain"], p["bias"], p["gamma"], generator=g),
        "blur": torch.tensor([1.0, 0.0] if _u(g, 0, 1) < 0.5 else [0.0, 1.0]) * _u(g, 0, 1),
    })
    g = gen("anatomy")
    side = 1.0 if _u(g, 0, 1) < 0.5 else -1.0
    disc = np.array([side * _u(g, 0.46, 0.62) * rv, _u(g, -0.08, 0.08) * rv])
    disc_r = _u(g, 0.125, 0.155) * rv
    macula = np.array([disc[0] - side * 5 * disc_r, disc[1] + _u(g, 0.0, 0.06) * rv])
    n_ch = int(math.ceil(ren / (p["choroid_cell"] * k))) + 3
    spec.update({
        "disc": disc - origin, "disc_r": disc_r, "macula": macula - origin,
        "base": _u(g, 0.42, 0.55), "disc_gain": _u(g, 0.25, 0.35), "cup_gain": _u(g, 0.1, 0.2),
        "macula_depth": _u(g, 0.08, 0.14), "vessel_depth": _u(g, *p["vessel_depth"]),
        "large": (torch.rand(1, 4, 4, generator=g) * 2 - 1) * p["background"],
        "choroid": torch.randn(1, n_ch, n_ch, generator=g) * p["choroid"],
    })
    g = gen("change")
    if cat == "A":
        n = int(torch.randint(p["lesions"][0], p["lesions"][1] + 1, (1,), generator=g))
        lo_s, hi_s = math.log(p["lesion_size"][0] * k), math.log(p["lesion_size"][1] * k)
        sign = torch.where(torch.rand(n, generator=g) < 0.6, 1.0, -1.0)
        spec["lesions"] = torch.cat((
            lay["margin"] + torch.rand(n, 2, generator=g) * lay["window"],
            torch.exp(lo_s + (hi_s - lo_s) * torch.rand(n, 1, generator=g)),
            (sign * (p["lesion_amplitude"][0] + (p["lesion_amplitude"][1] - p["lesion_amplitude"][0])
                     * torch.rand(n, generator=g)))[:, None]), 1)
        spec["vessel_change"] = (torch.rand(1, 4, 4, generator=g) * 2 - 1) * p["vessel_change"]
    else:
        spec["lesions"] = torch.zeros(0, 4)
        spec["vessel_change"] = torch.zeros(1, 4, 4)
    g = gen("vessels")
    tree = vessel_tree(rv, disc, side, _u(g, *p["calibre"]) * rv, g, depth=p["branch_depth"],
                       branch_spacing=p["branch_spacing"], step=max(1.0, 2.0 * k), min_width=max(0.5, k))
    spec["vessels"] = vessel_points(tree, origin, ren)
    g = gen("noise")                    # the large arrays: fine texture and the two images' noise
    spec["texture"] = torch.randn(1, ren, ren, generator=g)
    spec["noise"] = torch.randn(2, ren, ren, generator=g)
    return spec


def _texture(spec: list, lay: dict, p: dict, device) -> torch.Tensor:
    """Fine texture of std ``texture`` and correlation length ``texture_length`` (pixels at 256), as if downsampled."""
    from ..filters import gaussian_blur, gaussian_kernel1d

    k = lay["k"]
    ell = p["texture_length"]
    sig_aa = 0.4 / k if k < 1 else 0.0                         # what antialiased downsampling adds (256-px units)
    ell_eff = math.sqrt(ell**2 + sig_aa**2)
    sigma = ell_eff * k
    white = torch.stack([s["texture"] for s in spec]).to(device)
    taps = gaussian_kernel1d(sigma, 3.0)
    std = float((taps**2).sum())                               # std of blurred unit white noise (separable)
    return gaussian_blur(white, sigma) * (p["texture"] * ell / ell_eff / std)


@torch.no_grad()
def render_pairs(specs: list, device=None) -> dict:
    """Images of proxy scenes drawn by :func:`draw_scene` (same params and size), all at once.

    Returns a dict of tensors on ``device`` with the ``B`` scenes' frames stacked in scene order
    (``B * grid**2`` items): ``moving``, ``fixed``, ``disp``, ``mask_*``, ``fov_*``; and the per-scene
    ``scene_disp`` ``B,2,W,W`` (the whole window's field, for landmarks).

    >>> out = render_pairs([draw_scene("test", 0, j, size=64) for j in range(2)])
    >>> tuple(out["moving"].shape), tuple(out["disp"].shape)
    ((18, 1, 64, 64), (18, 2, 64, 64))
    """
    device = torch.device(device) if device is not None else torch.device("cpu")
    p, size = specs[0]["params"], specs[0]["size"]
    lay = _layout(p, size)
    k, ren, m, rv = lay["k"], lay["render"], lay["margin"], lay["radius"]
    b = len(specs)
    ys, xs = torch.meshgrid(torch.arange(ren, dtype=torch.float32, device=device),
                            torch.arange(ren, dtype=torch.float32, device=device), indexing="ij")

    def dist(key):
        c = torch.tensor(np.stack([s[key] for s in specs]), dtype=torch.float32, device=device).view(b, 2, 1, 1)
        return torch.sqrt((xs - c[:, 0:1]) ** 2 + (ys - c[:, 1:2]) ** 2)

    def col(key, dtype=torch.float32):
        return torch.tensor([float(s[key]) for s in specs], dtype=dtype, device=device).view(b, 1, 1, 1)

    # --- anatomy, on the fixed grid -------------------------------------------------------------
    bg = col("base") + smooth_field(torch.stack([s["large"] for s in specs]).to(device), (ren, ren))
    bg = bg + smooth_field(torch.stack([s["choroid"] for s in specs]).to(device), (ren, ren))
    bg = bg + _texture(specs, lay, p, device)

    def near(key, reach):  # does any scene's disc / macula reach into its window?
        return any(float(np.abs(np.clip(s[key], 0, ren - 1) - s[key]).max()) < reach * s["disc_r"] for s in specs)

    if near("disc", 3.0):
        dd = (dist("disc") / col("disc_r")) ** 2
        bg = bg + col("disc_gain") * torch.exp(-(dd**3)) + col("cup_gain") * torch.exp(-dd / 0.12)
    if near("macula", 6.0):
        bg = bg - col("macula_depth") * torch.exp(-((dist("macula") / (1.6 * col("disc_r"))) ** 2))

    def strength(w):
        return np.minimum(1.0, 0.2 + 0.1 * w / k) * np.minimum(1.0, w / 1.2)

    prof = render_vessels([s["vessels"] for s in specs], ren, strength, device)
    scene = (bg - col("vessel_depth") * prof).clamp(0, 1)
    # the moving acquisition's anatomy (A pairs: lesions, vessel contrast)
    change = smooth_field(torch.stack([s["vessel_change"] for s in specs]).to(device), (ren, ren))
    source = (bg - col("vessel_depth") * prof * (1 + change))
    n_les = max(len(s["lesions"]) for s in specs)
    if n_les:
        les = torch.zeros(b, n_les, 4, device=device)
        for j, s in enumerate(specs):
            les[j, : len(s["lesions"])] = s["lesions"].to(device)
        ax = torch.arange(ren, dtype=torch.float32, device=device)
        gx = torch.exp(-0.5 * ((ax[None, None] - les[..., 0:1]) / les[..., 2:3].clamp_min(1e-3)) ** 2)
        gy = torch.exp(-0.5 * ((ax[None, None] - les[..., 1:2]) / les[..., 2:3].clamp_min(1e-3)) ** 2)
        source = source + torch.einsum("bnh,bn,bnw->bhw", gy, les[..., 3], gx)[:, None]
    source = source.clamp(0, 1)

    # --- geometry: u on the fixed grid, its inverse for rendering the moving image ---------------
    theta = torch.stack([s["theta"] for s in specs]).to(device)
    u = spatial.affine_to_disp(theta, (ren, ren))
    d = torch.stack(((xs - (ren - 1) / 2) / (lay["window"] / 2), (ys - (ren - 1) / 2) / (lay["window"] / 2)))
    basis = torch.stack((d[0] ** 2, d[0] * d[1], d[1] ** 2))                           # 3,R,R
    quad = torch.stack([s["quad"] for s in specs]).to(device)                           # B,2,3
    u = u + torch.einsum("bij,jhw->bihw", quad, basis)
    u = u + smooth_field(torch.stack([s["local"] for s in specs]).to(device), (ren, ren))
    v = -u
    for _ in range(3):                                                                  # v(x) = -u(x + v(x))
        v = -spatial.warp(u, v)
    content, prof_m = spatial.warp(torch.cat((source, prof), 1), v).split(1, 1)

    # --- cameras: FOV, vignetting, illumination; appearance; blur; noise --------------------------
    r_f, r_m = dist("fov_fixed"), dist("fov_moving")
    soft = 0.75 * k
    fov_f, fov_m = torch.sigmoid((rv - r_f) / soft), torch.sigmoid((rv - r_m) / soft)
    vig = torch.stack([s["vignetting"] for s in specs]).to(device)
    illum = 1 + smooth_field(torch.stack([s["illum"] for s in specs]).to(device), (ren, ren))   # B,2,R,R
    ill_f = appearance.vignetting(r_f, rv, vig[:, 0].view(b, 1, 1, 1)) * illum[:, 0:1]
    ill_m = appearance.vignetting(r_m, rv, vig[:, 1].view(b, 1, 1, 1)) * illum[:, 1:2]
    fixed = fov_f * (ill_f * scene).clamp(0, 1)
    app = torch.stack([s["appearance"] for s in specs]).to(device)
    moving = fov_m * appearance.apply((ill_m * content).clamp(0, 1), app)
    blur = torch.stack([s["blur"] for s in specs]).to(device)
    fixed = appearance.blur_mix(fixed, blur[:, 0], p["blur"] * k)
    moving = appearance.blur_mix(moving, blur[:, 1], p["blur"] * k)
    sigma_n = p["noise"] * min(1.0, k)
    noise = torch.stack([s["noise"] for s in specs]).to(device)
    fixed = appearance.add_noise(fixed, sigma_n, noise=noise[:, 0:1])
    moving = appearance.add_noise(moving, sigma_n, noise=noise[:, 1:2])

    # --- frames ----------------------------------------------------------------------------------
    full = {
        "moving": moving, "fixed": fixed, "disp": u,
        "mask_moving": (prof_m > 0.2) & (r_m <= rv), "mask_fixed": (prof > 0.2) & (r_f <= rv),
        "fov_moving": r_m <= rv, "fov_fixed": r_f <= rv,
    }
    out = {}
    grid, st = p["grid"], lay["stride"]
    for key, x in full.items():
        frames = [x[..., m + r * st: m + r * st + size, m + c * st: m + c * st + size]
                  for r in range(grid) for c in range(grid)]
        out[key] = torch.stack(frames, 1).flatten(0, 1).contiguous()
    out["appearance"] = app.repeat_interleave(grid * grid, 0)
    out["scene_disp"] = u[..., m: m + lay["window"], m: m + lay["window"]]
    return out


def _landmarks(spec: dict, frame: int, g: torch.Generator) -> torch.Tensor:
    """``K,2`` fixed landmarks (pixels of the frame): on vessel centre lines inside both FOVs."""
    p, size = spec["params"], spec["size"]
    lay = _layout(p, size)
    kk, k, rv = p["landmarks"], lay["k"], lay["radius"]
    r, c = divmod(frame, p["grid"])
    x0, y0 = lay["margin"] + c * lay["stride"], lay["margin"] + r * lay["stride"]
    mg = 16 * k

    def ok(pts):
        x, y = pts[:, 0], pts[:, 1]
        inside = (x >= x0 + mg) & (x <= x0 + size - 1 - mg) & (y >= y0 + mg) & (y <= y0 + size - 1 - mg)
        for key in ("fov_fixed", "fov_moving"):
            ctr = spec[key]
            inside &= np.hypot(x - ctr[0], y - ctr[1]) <= rv - 2 * mg
        return inside

    ves = spec["vessels"]
    cand = ves[ok(ves) & (ves[:, 2] >= 1.5 * k), :2] if len(ves) else np.zeros((0, 2))
    pick = torch.randperm(len(cand), generator=g)[:kk].numpy()
    pts = cand[pick]
    if len(pts) < kk:
        extra = np.stack((x0 + mg + torch.rand(64 * kk, generator=g).numpy() * (size - 1 - 2 * mg),
                          y0 + mg + torch.rand(64 * kk, generator=g).numpy() * (size - 1 - 2 * mg)), 1)
        good = extra[ok(extra)]
        if len(good) < kk - len(pts):
            good = extra
        pts = np.concatenate((pts, good[: kk - len(pts)]))
    return torch.from_numpy(pts - np.array([x0, y0])).float()


def _batch(specs_for: callable, indices: list, frames_per_pair: int, seed: int, split: str, device) -> dict:
    """The items ``indices`` as one batch dict.

    On the CPU scenes are rendered one at a time (large batches only thrash the caches); on an
    accelerator 32 at a time, their random numbers drawn by a pool of CPU threads.
    """
    pairs = sorted({i // frames_per_pair for i in indices})
    parts = []
    cpu = torch.device(device).type == "cpu"
    chunk = 1 if cpu else 32
    pool = None
    if not cpu and len(pairs) > 1:
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1))
    for s0 in range(0, len(pairs), chunk):
        group = pairs[s0: s0 + chunk]
        specs = list(pool.map(specs_for, group)) if pool is not None else [specs_for(j) for j in group]
        out = render_pairs(specs, device)
        parts.append((group, specs, out))
    if pool is not None:
        pool.shutdown()
    keys = ("moving", "fixed", "disp", "landmarks_moving", "landmarks_fixed", "landmarks_valid", "mask_moving",
            "mask_fixed", "fov_moving", "fov_fixed", "appearance", "frame", "pair", "category", "source", "index")
    lookup = {}
    for group, specs, out in parts:
        for jj, (pair, spec) in enumerate(zip(group, specs)):
            lookup[pair] = (spec, out, jj)
    sel = {k: [] for k in keys}
    for index in indices:
        pair, frame = divmod(index, frames_per_pair)
        spec, out, jj = lookup[pair]
        row = jj * frames_per_pair + frame
        g = torch.Generator().manual_seed(item_seed(_NAME, split, seed, index))
        q = _landmarks(spec, frame, g).to(out["disp"].device)
        for key in ("moving", "fixed", "disp", "mask_moving", "mask_fixed", "fov_moving", "fov_fixed", "appearance"):
            sel[key].append(out[key][row])
        sel["landmarks_fixed"].append(q)
        sel["landmarks_valid"].append(torch.ones(len(q), dtype=torch.bool, device=q.device))
        sel["frame"].append(frame)
        sel["pair"].append(pair)
        sel["category"].append(spec["category"])
        sel["source"].append("procedural")
        sel["index"].append(index)
    batch = {}
    for key in keys:
        v = sel[key]
        if key == "landmarks_moving":
            continue
        if isinstance(v[0], torch.Tensor):
            batch[key] = torch.stack(v)
        elif isinstance(v[0], int):
            batch[key] = torch.tensor(v, dtype=torch.long, device=torch.device(device))
        else:
            batch[key] = v
    q = batch["landmarks_fixed"]
    batch["landmarks_moving"] = q + spatial.sample_points(batch["disp"], q)
    return {key: batch[key] for key in keys}


def fire_proxy(split: str, seed: int = 0, *, limit: int | None = None, params: dict | None = None,
               sizes: dict | None = None, size: int = 256, device=None) -> PairDataset:
    """The FIRE-Reg-256 proxy split (see the module docstring).

    Parameters
    ----------
    split : {"train", "val", "test"}
    seed : int
        Same seed, same data.
    limit : int, optional
        The first ``limit`` items.
    params : dict, optional
        Overrides of :data:`PROXY_PARAMS`.
    sizes : dict, optional
        Split sizes other than the paper's.
    size : int
        Patch side in pixels (even, at least 32); lengths scale with ``size / 256``.
    device : torch.device or str, optional
        Where images are made and returned (default: the CPU).

    Returns
    -------
    PairDataset with ``source == "proxy"``, ``batch`` and ``materialize``.
    """
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 32 or size % 2:
        raise ValueError(f"size must be an even integer of at least 32, got {size!r}")
    p = merge_params(PROXY_PARAMS, params)
    if isinstance(p["grid"], bool) or not isinstance(p["grid"], int) or p["grid"] < 1:
        raise ValueError(f"params['grid'] must be a positive integer, got {p['grid']!r}")
    n_sizes = dict(PAPER_SPLITS, **(sizes or {}))
    frames = p["grid"] ** 2
    dev = torch.device(device) if device is not None else torch.device("cpu")
    cache: OrderedDict = OrderedDict()

    def spec_for(pair: int) -> dict:
        return draw_scene(split, seed, pair, p, size)

    def scene(pair: int):
        if pair in cache:
            cache.move_to_end(pair)
            return cache[pair]
        spec = spec_for(pair)
        cache[pair] = (spec, render_pairs([spec], dev))
        while len(cache) > 4:
            cache.popitem(last=False)
        return cache[pair]

    def make(index: int, g: torch.Generator) -> dict:
        pair, frame = divmod(index, frames)
        spec, out = scene(pair)
        q = _landmarks(spec, frame, g).to(dev)
        disp = out["disp"][frame]
        m = q + spatial.sample_points(disp[None], q[None])[0]
        item = {k: out[k][frame].clone() for k in ("moving", "fixed", "disp")}
        item.update({
            "landmarks_moving": m, "landmarks_fixed": q, "landmarks_valid": torch.ones(len(q), dtype=torch.bool, device=dev),
            **{k: out[k][frame].clone() for k in ("mask_moving", "mask_fixed", "fov_moving", "fov_fixed", "appearance")},
            "frame": frame, "pair": pair, "category": spec["category"], "source": "procedural",
        })
        return item

    def make_batch(indices, device_=None) -> dict:
        return _batch(spec_for, list(indices), frames, seed, split, device_ if device_ is not None else dev)

    info = {"dataset": "FIRE-Reg-256", "source": "proxy",
            "description": "procedural fundus scenes shaped like pre-aligned FIRE pairs (no photograph)",
            "params": p, "size": size, "frames_per_pair": frames, "split_sizes": n_sizes,
            "categories": dict(CATEGORIES), "device": str(dev)}
    return PairDataset(_NAME, split, n_sizes[split], make, seed=seed, limit=limit, info=info, make_batch=make_batch)
