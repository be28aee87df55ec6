"""HPatches-Reg-256: textured 256x256 patch pairs related by a random affine transform.

Convention
----------
Items: ``moving``, ``fixed`` float32 ``(1, 256, 256)`` in [0, 1]; ``disp`` ``(2, 256, 256)`` pixels,
the exact pull field of the affine (``spatial.warp(moving, disp) ≈ fixed`` up to the appearance
shift and noise); ``theta`` ``(2, 3)`` the affine in pixels (fixed point ``p`` -> moving point
``A p + t``, see :func:`regkit.spatial.affine_matrix`); ``landmarks_fixed`` / ``landmarks_moving``
``(10, 2)`` pixels (x, y) with ``landmarks_valid``; ``appearance`` ``(gain, bias, gamma)`` of the
moving image; ``texture`` (which texture, for ``variant="textures"``).

What the paper says and what we chose
-------------------------------------
GPEReg-Net describes HPatches-Reg-256 as "synthetic textured image patches with Gaussian blob
structures and structured noise patterns", paired by random affine transforms (rotation,
translation, scaling, shear), 8,000 / 500 / 500 pairs at 256x256. Its ranges were lost from our
copy of the paper; :data:`PARAMS` holds ours, calibrated so that the unregistered test row
matches its Table 3 (NCC 0.312, SSIM 0.241, PSNR 14.87 dB) within 10%
(:mod:`regkit.data.calibration`). It is not the HPatches image set (Balntas et al. 2017),
which no package here ships.

- ``variant="synthetic"``: a 512x512 texture canvas, the sum of Gaussian blobs (random
  positions, widths and signed amplitudes) and band-limited ("structured") noise, normalised to
  [0, 1]; the fixed image is its central 256x256 window, the moving image the same window of
  the canvas under the inverse affine (so no border is ever read), with a global appearance
  shift; both get white noise.
- ``variant="textures"``: the canvas is one of the real textures that scikit-image ships (brick,
  grass, gravel, 512x512), randomly mirrored and turned by multiples of 90 degrees; same affine
  and appearance model. Not calibrated: its unregistered row is reported in the book.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from .. import spatial
from . import appearance
from .fundus import smooth_noise
from .pairs import PairDataset, merge_params

__all__ = ["hpatches_reg256", "synth_texture", "PAPER_SPLITS", "PARAMS", "TEXTURES"]

PAPER_SPLITS = {"train": 8000, "val": 500, "test": 500}
"""HPatches-Reg-256 split sizes stated by the GPEReg-Net paper."""

PARAMS = {
    "canvas": 512, "patch": 256,
    "rotation": 30.0, "scale": 0.1, "shear": 10.0, "translation": 25.0,      # deg, relative, deg, px
    "blobs": (60, 140), "blob_sigma": (6.0, 28.0), "noise_cells": 24, "noise_weight": 0.6,
    "contrast": 0.7, "gain": (0.85, 1.15), "bias": (-0.05, 0.05), "gamma": (0.8, 1.25),
    "noise": 0.035, "landmarks": 10,
}
"""Our ranges for HPatches-Reg-256 (the paper's were lost): affine uniform in rotation ±30°,
scale 0.9–1.1, shear ±10°, translation ±25 px per axis; texture and noise as calibrated."""

TEXTURES = ("brick", "grass", "gravel")


def _u(g, lo, hi) -> float:
    return float(lo + (hi - lo) * torch.rand((), generator=g))


def synth_texture(size: int, generator, params: dict | None = None) -> torch.Tensor:
    """A ``(1, size, size)`` texture in [0, 1]: Gaussian blobs plus band-limited noise.

    The blob sum is separable per blob, so it is one matrix product:
    :math:`\\sum_n a_n\\, g_n(y)\\, g_n(x) = G_y^\\top \\mathrm{diag}(a)\\, G_x`.

    >>> t = synth_texture(64, torch.Generator().manual_seed(0))
    >>> t.shape, 0 <= float(t.min()) <= float(t.max()) <= 1
    (torch.Size([1, 64, 64]), True)
    """
    p = dict(PARAMS, **(params or {}))
    g = generator
    n = int(torch.randint(p["blobs"][0], p["blobs"][1] + 1, (1,), generator=g))
    scale = size / p["canvas"]
    centres = torch.rand(n, 2, generator=g) * (size - 1)
    lo, hi = np.log(p["blob_sigma"][0] * scale), np.log(p["blob_sigma"][1] * scale)
    sigma = torch.exp(lo + (hi - lo) * torch.rand(n, generator=g))
    amp = (torch.rand(n, generator=g) * 0.7 + 0.3) * torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    axis = torch.arange(size, dtype=torch.float32)
    gx = torch.exp(-0.5 * ((axis[None] - centres[:, :1]) / sigma[:, None]) ** 2)    # n, W
    gy = torch.exp(-0.5 * ((axis[None] - centres[:, 1:]) / sigma[:, None]) ** 2)    # n, H
    blobs = gy.T @ (amp[:, None] * gx)
    blobs = blobs / blobs.abs().max().clamp_min(1e-6)
    cells = max(4, int(round(p["noise_cells"] * scale)))
    tex = blobs + p["noise_weight"] * smooth_noise(size, cells, g)
    tex = (tex - tex.mean()) / tex.std().clamp_min(1e-6)
    return (0.5 + 0.5 * p["contrast"] * tex / 2.5).clamp(0, 1)[None]


@lru_cache(maxsize=4)
def _texture_image(name: str) -> torch.Tensor:
    from skimage import data

    img = getattr(data, name)().astype(np.float32) / 255.0
    return torch.from_numpy(img)[None]


def hpatches_reg256(split: str, seed: int = 0, variant: str = "synthetic", *, limit: int | None = None,
                    params: dict | None = None, sizes: dict | None = None) -> PairDataset:
    """HPatches-Reg-256 pairs (see the module docstring).

    Parameters
    ----------
    split : {"train", "val", "test"}
    seed : int
        Same seed, same data.
    variant : {"synthetic", "textures"}
    limit : int, optional
        The first ``limit`` pairs.
    params : dict, optional
        Overrides of :data:`PARAMS`.
    sizes : dict, optional
        Split sizes other than the paper's.
    """
    if split not in PAPER_SPLITS:
        raise ValueError(f"split must be one of {tuple(PAPER_SPLITS)}, got {split!r}")
    if variant not in ("synthetic", "textures"):
        raise ValueError(f"variant must be 'synthetic' or 'textures', got {variant!r}")
    p = merge_params(PARAMS, params)
    n_sizes = dict(PAPER_SPLITS, **(sizes or {}))
    cs, ps = p["canvas"], p["patch"]
    lo = (cs - ps) // 2

    def make(index: int, g: torch.Generator) -> dict:
        if variant == "synthetic":
            canvas, name = synth_texture(cs, g, p), "synthetic"
        else:
            name = TEXTURES[int(torch.randint(len(TEXTURES), (1,), generator=g))]
            canvas = _texture_image(name)
            canvas = torch.rot90(canvas, int(torch.randint(4, (1,), generator=g)), dims=(-2, -1))
            if bool(torch.rand((), generator=g) < 0.5):
                canvas = canvas.flip(-1)
            if canvas.shape[-1] != cs:
                canvas = spatial.resize_image(canvas[None], (cs, cs), antialias=True)[0]
        theta = spatial.random_affine(1, (ps, ps), rotation=p["rotation"], scale=p["scale"], shear=p["shear"],
                                      translation=p["translation"], generator=g)
        theta_canvas = theta.clone()
        theta_canvas[:, :, 2] += lo - theta[:, :, :2] @ torch.full((2,), float(lo))   # same map, canvas pixels
        win = (slice(None), slice(lo, lo + ps), slice(lo, lo + ps))
        # the moving window reads the canvas through the inverse affine: sample only its own pixels
        grid = spatial.identity_grid((ps, ps)).flatten(2).transpose(1, 2) + lo            # 1, ps*ps, 2
        inv = spatial.invert_affine(theta_canvas)
        pts = grid @ inv[:, :, :2].transpose(1, 2) + inv[:, None, :, 2]
        moving = spatial.sample_points(canvas[None], pts)[0, :, 0].reshape(1, ps, ps)
        app = appearance.draw(p["gain"], p["bias"], p["gamma"], generator=g)
        moving = appearance.add_noise(appearance.apply(moving, app), p["noise"], g)
        fixed = appearance.add_noise(canvas[win].clone(), p["noise"], g)
        disp = spatial.affine_to_disp(theta, (ps, ps))[0]
        k = p["landmarks"]
        q = 16 + torch.rand(k, 2, generator=g) * (ps - 33)
        m = q @ theta[0, :, :2].T + theta[0, :, 2]
        return {
            "moving": moving, "fixed": fixed, "disp": disp, "theta": theta[0],
            "landmarks_moving": m, "landmarks_fixed": q, "landmarks_valid": torch.ones(k, dtype=torch.bool),
            "appearance": app, "texture": name,
        }

    info = {"dataset": "HPatches-Reg-256", "variant": variant, "params": p, "split_sizes": n_sizes,
            "source": "synthetic (procedural)" if variant == "synthetic" else "scikit-image textures"}
    return PairDataset(f"hpatches_reg256_{variant}", split, n_sizes[split], make, seed=seed, limit=limit, info=info)
