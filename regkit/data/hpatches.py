"""HPatches-Reg-256: textured patch pairs related by a random affine transform.

Convention
----------
Items: ``moving``, ``fixed`` float32 ``(1, P, P)`` in [0, 1] (``P = size``, 256 by default);
``disp`` ``(2, P, P)`` pixels, the exact pull field of the affine (``spatial.warp(moving, disp) ≈
fixed`` up to the appearance shift and noise); ``theta`` ``(2, 3)`` the affine in pixels (fixed
point ``p`` -> moving point ``A p + t``, see :func:`regkit.spatial.affine_matrix`);
``landmarks_fixed`` / ``landmarks_moving`` ``(10, 2)`` pixels (x, y) with ``landmarks_valid``;
``appearance`` ``(gain, bias, gamma)`` of the moving image; ``texture`` (which texture).

What the paper says and what we chose
-------------------------------------
GPEReg-Net describes HPatches-Reg-256 as "synthetic textured image patches with Gaussian blob
structures and structured noise patterns", paired by random affine transforms (rotation,
translation, scaling, shear), 8,000 / 500 / 500 pairs at 256x256. Its ranges were lost from our
copy of the paper; :data:`PARAMS` holds ours: rotation uniform in +-30 degrees, scale in
0.9-1.1, shear in +-10 degrees, translation in +-25 px per axis (pixels of a 256 patch; they
scale with ``size``), calibrated with the texture and noise so that the unregistered test row
matches its Table 3 (NCC 0.312, SSIM 0.241, PSNR 14.87 dB) within 10%
(:mod:`regkit.data.calibration`). It is not the HPatches image set (Balntas et al. 2017),
which no package here ships.

- ``variant="synthetic"``: a ``2P x 2P`` texture canvas, the sum of Gaussian blobs (random
  positions, widths and signed amplitudes) and band-limited ("structured") noise, normalised to
  [0, 1]; the fixed image is its central window, the moving image the same window of the canvas
  under the inverse affine (so no border is ever read), with a global appearance shift; both get
  white noise. Every pair has its own canvas, drawn from a split-specific seed, so no texture is
  in two splits.
- ``variant="textures"``: the canvas is a real texture photograph that scikit-image ships,
  randomly mirrored and turned by multiples of 90 degrees, with the same affine and appearance
  model. Each split has its own photographs (:data:`TEXTURE_SPLITS`: train brick and grass,
  val moon, test gravel), so the test measures generalisation to an unseen texture. Not
  calibrated: its unregistered row is reported in the book.

Items are made many at once (``dataset.batch``, ``dataset.materialize(device)``): every random
number is drawn on the CPU from the item's own generator and the images are computed on the
requested device, so the data do not depend on the device or the batching.

>>> ds = hpatches_reg256("test", size=64, limit=2)
>>> b = ds.batch([0, 1])
>>> tuple(b["moving"].shape), tuple(b["theta"].shape), ds.source
((2, 1, 64, 64), (2, 2, 3), 'synthetic')
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from .. import spatial
from . import appearance
from .pairs import PairDataset, item_seed, merge_params

__all__ = ["hpatches_reg256", "synth_texture", "PAPER_SPLITS", "PARAMS", "TEXTURES", "TEXTURE_SPLITS"]

PAPER_SPLITS = {"train": 8000, "val": 500, "test": 500}
"""HPatches-Reg-256 split sizes stated by the GPEReg-Net paper."""

PARAMS = {
    "rotation": 30.0, "scale": 0.1, "shear": 10.0, "translation": 25.0,      # deg, relative, deg, px at 256
    "blobs": (60, 140), "blob_sigma": (6.0, 28.0), "noise_cells": 24, "noise_weight": 0.6,
    "contrast": 0.7, "gain": (0.85, 1.15), "bias": (-0.05, 0.05), "gamma": (0.8, 1.25),
    "noise": 0.035, "landmarks": 10,
}
"""Our ranges for HPatches-Reg-256 (the paper's were lost): affine uniform in rotation ±30°,
scale 0.9–1.1, shear ±10°, translation ±25 px per axis (at 256 px); texture and noise as calibrated."""

TEXTURE_SPLITS = {"train": ("brick", "grass"), "val": ("moon",), "test": ("gravel",)}
"""The scikit-image photographs of the ``textures`` variant, per split (none in two splits)."""

TEXTURES = tuple(t for names in TEXTURE_SPLITS.values() for t in names)


def _draw_texture(canvas: int, g, p: dict) -> dict:
    """The random numbers of one synthetic canvas (CPU)."""
    n = int(torch.randint(p["blobs"][0], p["blobs"][1] + 1, (1,), generator=g))
    k = canvas / 512.0
    centres = torch.rand(n, 2, generator=g) * (canvas - 1)
    lo, hi = np.log(p["blob_sigma"][0] * k), np.log(p["blob_sigma"][1] * k)
    sigma = torch.exp(lo + (hi - lo) * torch.rand(n, generator=g))
    amp = (torch.rand(n, generator=g) * 0.7 + 0.3) * torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    cells = max(4, int(round(p["noise_cells"] * k)))
    return {"centres": centres, "sigma": sigma, "amp": amp, "coarse": torch.randn(1, cells, cells, generator=g)}


def _render_textures(draws: list, canvas: int, p: dict, device) -> torch.Tensor:
    """Synthetic canvases ``B,1,canvas,canvas`` from :func:`_draw_texture` draws, at once.

    The blob sum is separable per blob, so it is one matrix product per canvas:
    :math:`\\sum_n a_n\\, g_n(y)\\, g_n(x) = G_y^\\top \\mathrm{diag}(a)\\, G_x`.
    """
    b = len(draws)
    n = max(len(d["amp"]) for d in draws)
    cen = torch.zeros(b, n, 2)
    sig = torch.ones(b, n)
    amp = torch.zeros(b, n)
    for j, d in enumerate(draws):
        m = len(d["amp"])
        cen[j, :m], sig[j, :m], amp[j, :m] = d["centres"], d["sigma"], d["amp"]
    cen, sig, amp = cen.to(device), sig.to(device), amp.to(device)
    axis = torch.arange(canvas, dtype=torch.float32, device=device)
    gx = torch.exp(-0.5 * ((axis[None, None] - cen[..., :1]) / sig[..., None]) ** 2)    # B, n, W
    gy = torch.exp(-0.5 * ((axis[None, None] - cen[..., 1:]) / sig[..., None]) ** 2)    # B, n, H
    blobs = torch.einsum("bnh,bn,bnw->bhw", gy, amp, gx)[:, None]
    blobs = blobs / blobs.abs().flatten(1).amax(1).clamp_min(1e-6).view(b, 1, 1, 1)
    coarse = torch.stack([d["coarse"] for d in draws]).to(device)
    noise = spatial.resize_image(coarse, (canvas, canvas), mode="bicubic")
    noise = noise - noise.mean((2, 3), keepdim=True)
    noise = noise / noise.abs().flatten(1).amax(1).clamp_min(1e-6).view(b, 1, 1, 1)
    tex = blobs + p["noise_weight"] * noise
    flat = tex.flatten(1)
    tex = (tex - flat.mean(1).view(b, 1, 1, 1)) / flat.std(1).clamp_min(1e-6).view(b, 1, 1, 1)
    return (0.5 + 0.5 * p["contrast"] * tex / 2.5).clamp(0, 1)


def synth_texture(size: int, generator, params: dict | None = None) -> torch.Tensor:
    """A ``(1, size, size)`` texture in [0, 1]: Gaussian blobs plus band-limited noise.

    >>> t = synth_texture(64, torch.Generator().manual_seed(0))
    >>> t.shape, 0 <= float(t.min()) <= float(t.max()) <= 1
    (torch.Size([1, 64, 64]), True)
    """
    p = merge_params(PARAMS, params)
    return _render_textures([_draw_texture(size, generator, p)], size, p, "cpu")[0]


@lru_cache(maxsize=8)
def _texture_image(name: str, size: int) -> torch.Tensor:
    from skimage import data

    img = getattr(data, name)()
    img = img.mean(-1) if img.ndim == 3 else img
    t = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)[None, None]
    if t.shape[-1] != size or t.shape[-2] != size:
        s = min(t.shape[-2:])
        t = spatial.resize_image(t[..., :s, :s], (size, size), antialias=size < s)
    return t[0].clamp(0, 1)


def _draw_pair(index_seed: int, variant: str, split: str, p: dict, size: int) -> dict:
    """Every random number of one pair (CPU), from the item's generator."""
    g = torch.Generator().manual_seed(index_seed)
    k = size / 256.0
    canvas = 2 * size
    d = {}
    # the affine and the appearance first, so that they do not depend on the size
    d["theta"] = spatial.random_affine(1, (size, size), rotation=p["rotation"], scale=p["scale"], shear=p["shear"],
                                       translation=p["translation"] * k, generator=g)[0]
    d["appearance"] = appearance.draw(p["gain"], p["bias"], p["gamma"], generator=g)
    if variant == "synthetic":
        d["texture"] = "synthetic"
        d["draw"] = _draw_texture(canvas, g, p)
    else:
        names = TEXTURE_SPLITS[split]
        d["texture"] = names[int(torch.randint(len(names), (1,), generator=g))]
        d["rot90"] = int(torch.randint(4, (1,), generator=g))
        d["flip"] = bool(torch.rand((), generator=g) < 0.5)
    d["noise"] = torch.randn(2, 1, size, size, generator=g)
    kk = p["landmarks"]
    d["landmarks"] = 16 * k + torch.rand(kk, 2, generator=g) * (size - 1 - 32 * k)
    return d


@torch.no_grad()
def _render_pairs(draws: list, variant: str, p: dict, size: int, device) -> dict:
    """The pairs of ``draws`` as one batch dict on ``device``."""
    b = len(draws)
    cs = 2 * size
    lo = (cs - size) // 2
    if variant == "synthetic":
        canvas = _render_textures([d["draw"] for d in draws], cs, p, device)
    else:
        canvas = []
        for d in draws:
            c = torch.rot90(_texture_image(d["texture"], cs), d["rot90"], dims=(-2, -1))
            canvas.append(c.flip(-1) if d["flip"] else c)
        canvas = torch.stack(canvas).to(device)
    theta = torch.stack([d["theta"] for d in draws]).to(device)                       # B,2,3 (patch pixels)
    theta_canvas = theta.clone()
    theta_canvas[:, :, 2] += lo - theta[:, :, :2] @ torch.full((2,), float(lo), device=device)
    grid = spatial.identity_grid((size, size), device).flatten(2).transpose(1, 2) + lo     # 1, P*P, 2
    inv = spatial.invert_affine(theta_canvas)
    pts = grid @ inv[:, :, :2].transpose(1, 2) + inv[:, None, :, 2]                   # B, P*P, 2
    moving = spatial.sample_points(canvas, pts)[..., 0].reshape(b, 1, size, size)
    app = torch.stack([d["appearance"] for d in draws]).to(device)
    noise = torch.stack([d["noise"] for d in draws]).to(device)                        # B,2,1,P,P
    sigma = p["noise"] * min(1.0, size / 256.0)
    moving = appearance.add_noise(appearance.apply(moving, app), sigma, noise=noise[:, 0])
    fixed = appearance.add_noise(canvas[..., lo:lo + size, lo:lo + size], sigma, noise=noise[:, 1])
    disp = spatial.affine_to_disp(theta, (size, size))
    q = torch.stack([d["landmarks"] for d in draws]).to(device)
    m = q @ theta[:, :, :2].transpose(1, 2) + theta[:, None, :, 2]
    return {
        "moving": moving, "fixed": fixed, "disp": disp, "theta": theta,
        "landmarks_moving": m, "landmarks_fixed": q,
        "landmarks_valid": torch.ones(b, q.shape[1], dtype=torch.bool, device=device),
        "appearance": app, "texture": [d["texture"] for d in draws],
    }


def hpatches_reg256(split: str, seed: int = 0, variant: str = "synthetic", *, limit: int | None = None,
                    params: dict | None = None, sizes: dict | None = None, size: int = 256,
                    device=None) -> PairDataset:
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
    size : int
        Patch side in pixels (even, at least 32); translations scale with ``size / 256``.
    device : torch.device or str, optional
        Where the images are made and returned (default: the CPU).
    """
    if split not in PAPER_SPLITS:
        raise ValueError(f"split must be one of {tuple(PAPER_SPLITS)}, got {split!r}")
    if variant not in ("synthetic", "textures"):
        raise ValueError(f"variant must be 'synthetic' or 'textures', got {variant!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 32 or size % 2:
        raise ValueError(f"size must be an even integer of at least 32, got {size!r}")
    p = merge_params(PARAMS, params)
    n_sizes = dict(PAPER_SPLITS, **(sizes or {}))
    name = f"hpatches_reg256_{variant}"
    dev = torch.device(device) if device is not None else torch.device("cpu")
    keys = ("moving", "fixed", "disp", "theta", "landmarks_moving", "landmarks_fixed", "landmarks_valid",
            "appearance", "texture", "index")

    def draw(index: int) -> dict:
        return _draw_pair(item_seed(name, split, seed, index), variant, split, p, size)

    def make(index: int, g: torch.Generator) -> dict:
        out = _render_pairs([draw(index)], variant, p, size, dev)
        return {k: (v[0] if isinstance(v, (torch.Tensor, list)) else v) for k, v in out.items()}

    def make_batch(indices, device_=None) -> dict:
        indices = list(indices)
        where = torch.device(device_) if device_ is not None else dev
        chunk = 2 if where.type == "cpu" else 128          # big CPU batches only thrash the caches
        out = {}
        for s0 in range(0, len(indices), chunk):
            part = _render_pairs([draw(i) for i in indices[s0:s0 + chunk]], variant, p, size, where)
            for k, v in part.items():
                out.setdefault(k, []).append(v)
        out = {k: (torch.cat(v) if isinstance(v[0], torch.Tensor) else [x for part in v for x in part])
               for k, v in out.items()}
        out["index"] = torch.tensor(indices, dtype=torch.long, device=where)
        return {k: out[k] for k in keys}

    info = {"dataset": "HPatches-Reg-256", "variant": variant, "params": p, "split_sizes": n_sizes, "size": size,
            "source": "synthetic" if variant == "synthetic" else "textures",
            "description": "procedural blob textures" if variant == "synthetic"
            else f"scikit-image texture photographs {TEXTURE_SPLITS[split]}",
            "textures": None if variant == "synthetic" else list(TEXTURE_SPLITS[split])}
    return PairDataset(name, split, n_sizes[split], make, seed=seed, limit=limit, info=info, make_batch=make_batch)
