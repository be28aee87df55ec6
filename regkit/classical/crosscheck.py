"""Cross-checks of classical methods against references on pairs with a known field.

Used by ``benchmarks/classical.py`` (the full table in ``results/classical_benchmark.json``) and
by the book's chapters for a small live run of the same code.

- :func:`scikit_images` -- the real pictures scikit-image ships, grey, 256x256.
- :func:`synthetic_pairs` -- seeded pairs with a smooth diffeomorphic or an affine true field.
- :func:`fire_proxy_pairs` -- the FIRE-Reg-256 offline proxy test pairs with their exact field.
- :func:`pair_metrics` -- EPE and MSE on the valid region, folding fraction, per pair.
- :func:`compare` -- two methods on the same pairs, interleaved pair by pair, with times.
- :func:`verdict` -- targets: accuracy within 10% of the reference or better, time no worse.

Convention
----------
``fixed = spatial.warp(moving, true_disp)``: the true field is the pull field on the fixed grid
that a method should return. The *valid region* is where ``p + true_disp(p)`` lies inside the
moving image (:func:`regkit.spatial.inside_mask`).

>>> m, f, u = synthetic_pairs("affine", 2, seed=0, size=(64, 64))
>>> m.shape, u.shape
(torch.Size([2, 1, 64, 64]), torch.Size([2, 2, 64, 64]))
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import torch

from .. import metrics, spatial
from ..registry import register

__all__ = ["IMAGES", "scikit_images", "synthetic_pairs", "fire_proxy_pairs", "load_dataset", "pair_metrics",
           "compare", "verdict"]

IMAGES = ("retina", "camera", "brick", "moon")


def scikit_images(size=(256, 256)) -> torch.Tensor:
    """The real pictures scikit-image ships, grey, resized (anti-aliased) to ``size``: ``4,1,H,W``."""
    from skimage import color, data

    out = []
    for name in IMAGES:
        a = getattr(data, name)()
        a = color.rgb2gray(a) if a.ndim == 3 else a / 255.0
        t = torch.from_numpy(np.asarray(a, np.float32))[None, None]
        out.append(spatial.resize_image(t, size, antialias=True).clamp(0, 1))
    return torch.cat(out)


def synthetic_pairs(kind: str, n: int, seed: int, size=(256, 256)):
    """``n`` seeded pairs ``(moving, fixed, true_disp)``: fixed = warp(moving, true_disp)."""
    g = torch.Generator().manual_seed(seed)
    pics = scikit_images(size)
    moving = pics[torch.arange(n) % len(pics)]
    if kind == "smooth":
        disp = spatial.random_smooth_disp(n, size, max_disp=6.0, generator=g)
    elif kind == "affine":
        theta = spatial.random_affine(n, size, rotation=15.0, scale=0.1, shear=5.0, translation=10.0, generator=g)
        disp = spatial.affine_to_disp(theta, size)
    else:
        raise ValueError(f"kind must be 'smooth' or 'affine', got {kind!r}")
    return moving, spatial.warp(moving, disp), disp


def fire_proxy_pairs(n: int, seed: int):
    """The first ``n`` FIRE-Reg-256 proxy test pairs of data seed ``seed`` as stacked tensors
    ``(moving, fixed, disp)``: images ``n,1,256,256`` in [0, 1] and the exact pull field
    ``n,2,256,256`` in pixels."""
    from regkit.data.fire import fire_reg256

    ds = fire_reg256("test", source="proxy", seed=seed, limit=n)
    items = [ds[i] for i in range(len(ds))]
    return tuple(torch.stack([it[k] for it in items]) for k in ("moving", "fixed", "disp"))


def load_dataset(name: str, n: int, seed: int):
    if name == "fire_proxy":
        return fire_proxy_pairs(n, seed)
    return synthetic_pairs(name, n, seed)


def pair_metrics(result, fixed, true_disp) -> dict:
    """EPE and MSE over the valid region, folding fraction; one value per pair."""
    valid = spatial.inside_mask(true_disp)
    return {
        "epe": metrics.epe(result.disp, true_disp, valid),
        "mse": metrics.mse(result.warped, fixed, mask=valid),
        "folding": metrics.folding_fraction(result.disp),
    }


def compare(ours: str, ref: str, moving, fixed, true_disp, repeats: int = 1) -> dict:
    """Run both methods pair by pair, interleaved (ours first on even pairs, the reference first
    on odd ones); return mean metrics and seconds per pair of each.

    With ``repeats > 1`` every pair is run that many times per method (still interleaved) and
    the fastest run counts: on a shared CPU the minimum is the steadiest estimate of the cost.
    """
    rows = {ours: [], ref: []}
    seconds = {ours: 0.0, ref: 0.0}
    for i in range(moving.shape[0]):
        best = {ours: float("inf"), ref: float("inf")}
        for r in range(repeats):
            for name in (ours, ref) if (i + r) % 2 == 0 else (ref, ours):
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    res = register(moving[i : i + 1], fixed[i : i + 1], method=name)
                best[name] = min(best[name], time.perf_counter() - t0)
                if r == 0:
                    rows[name].append(pair_metrics(res, fixed[i : i + 1], true_disp[i : i + 1]))
        for name in best:
            seconds[name] += best[name]
    out = {}
    for name in (ours, ref):
        m = {k: torch.cat([r[k] for r in rows[name]]) for k in ("epe", "mse", "folding")}
        out[name] = {
            "epe": float(m["epe"].mean()),
            "epe_median": float(m["epe"].median()),
            "mse": float(m["mse"].mean()),
            "folding": float(m["folding"].mean()),
            "seconds_per_pair": seconds[name] / moving.shape[0],
        }
    return out


def verdict(o: dict, r: dict, tol: float = 0.10) -> dict:
    """Targets: EPE and MSE within ``tol`` of the reference or better; time no worse."""
    return {
        "epe_ok": o["epe"] <= (1 + tol) * r["epe"],
        "mse_ok": o["mse"] <= (1 + tol) * r["mse"],
        "time_ok": o["seconds_per_pair"] <= r["seconds_per_pair"],
        "epe_ratio": o["epe"] / max(r["epe"], 1e-12),
        "mse_ratio": o["mse"] / max(r["mse"], 1e-12),
        "time_ratio": o["seconds_per_pair"] / r["seconds_per_pair"],
    }
