r"""Does it really register? Controls and structural tests for any method behind :func:`regkit.register`.

A deformation-free model (GPEReg-Net, SAS-Net) draws its output's spatial structure from the
*moving* image; the fixed image reaches it only through a 32-number appearance code. Scores
such as SSIM and PSNR against the fixed image cannot tell "the output is aligned with the fixed
image" from "the output looks like the fixed image". This module puts numbers on the
difference, the same way for every method:

Controls (registered methods of kind ``"control"``; the unregistered pair is ``"identity"``)
    - ``appearance_transfer``: the moving image given the fixed image's global intensity
      statistics (histogram or mean/std matching, per pair, no learning). It changes how the
      image looks and nothing about where anything is (its ``disp`` is zero).
    - ``fixed_oracle``: the fixed image itself, the upper bound of every score.

Shuffled-fixed test (:func:`shuffled_pairing`)
    Each moving image is registered to *another* pair's fixed image and the output is scored
    against its *true* fixed image. A method that uses the fixed image's geometry loses most of
    its score (the oracle loses all of its advantage); a method that only borrows appearance
    barely notices. Because another pair's image also *looks* different, a second variant
    gives the other pair's fixed image histogram-matched to the true fixed image: the wrong
    geometry with the right appearance. A method that only borrows appearance then loses
    (almost) nothing at all.

Moved-fixed test (:func:`shift_test`)
    Move the fixed image by a few pixels and register again: the output of a method that
    registers moves with it; the output of a method that only borrows appearance stays where
    the moving image put it. The shift of the output is read off by cross-correlation
    (:func:`estimate_shift`).

Structural alignment
    - vessel-mask Dice: the output and the fixed image are segmented with the same simple
      vesselness threshold (:func:`vessel_mask`), and so is the moving image; Dice(output, fixed)
      is compared with Dice(moving, fixed). Where the data have ground-truth vessel masks the
      output's segmentation is also compared with the fixed image's true mask, and a method with
      a displacement also warps the moving image's true mask;
    - landmark error (TRE, pixels), only for methods with a displacement: a deformation-free
      output has no correspondence to carry a landmark with.

Convention
----------
- Images ``N,1,H,W`` in [0, 1]; masks ``N,1,H,W`` bool; displacements ``N,2,H,W`` in pixels.
- A method is described by a :class:`MethodSpec` (a row label, a registered method name, its
  keyword arguments, and whether it takes the pair's ``frame``).
- Every score is one number per pair; tables hold means over pairs.

Example
-------
>>> import torch
>>> m, f = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32) ** 2
>>> out = histogram_match(m, f)
>>> bool(torch.allclose(out.flatten(1).sort(1).values, f.flatten(1).sort(1).values))
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import metrics, spatial
from .._checks import check_image, check_mask, check_pair, check_positive
from ..filters import gaussian_blur
from ..registry import RegResult, method, register

__all__ = [
    "histogram_match",
    "meanstd_match",
    "vessel_mask",
    "shuffled_pairing",
    "MethodSpec",
    "CONTROLS",
    "iter_batches",
    "resize_batch",
    "run_method",
    "score_pairs",
    "does_it_register",
    "metric_probe",
    "estimate_shift",
    "shift_test",
    "VESSEL_RADIUS",
    "VESSEL_FRACTION",
]

VESSEL_RADIUS = 5
"""Half-size (pixels) of the square closing of :func:`vessel_mask`: vessels up to about 10 px wide."""
VESSEL_FRACTION = 0.10
"""Share of (field-of-view) pixels :func:`vessel_mask` calls vessel: about the true share in FIRE-Reg-256."""


# ----------------------------------------------------------------------------------------------
# Appearance transfer alone
# ----------------------------------------------------------------------------------------------


def _interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """1-D linear interpolation like ``numpy.interp`` (``xp`` increasing), clamped at the ends."""
    idx = torch.searchsorted(xp, x).clamp(1, xp.numel() - 1)
    x0, x1, f0, f1 = xp[idx - 1], xp[idx], fp[idx - 1], fp[idx]
    t = ((x - x0) / (x1 - x0).clamp_min(1e-12)).clamp(0, 1)
    return f0 + t * (f1 - f0)


def _match_one(src: Tensor, tmpl: Tensor) -> Tensor:
    s_vals, s_idx, s_cnt = torch.unique(src, return_inverse=True, return_counts=True)
    t_vals, t_cnt = torch.unique(tmpl, return_counts=True)
    s_q = torch.cumsum(s_cnt, 0).double() / src.numel()
    t_q = torch.cumsum(t_cnt, 0).double() / tmpl.numel()
    if t_vals.numel() == 1:
        return torch.full_like(src, float(t_vals[0]))
    return _interp(s_q, t_q, t_vals.double()).to(src.dtype)[s_idx]


@torch.no_grad()
def histogram_match(moving: Tensor, fixed: Tensor) -> Tensor:
    """The moving image with the fixed image's intensity histogram, per pair and channel.

    Quantile mapping as in ``skimage.exposure.match_histograms``: each distinct moving value is
    replaced by the fixed value at the same quantile (linear interpolation between quantiles).
    The map is monotone, so the spatial layout is the moving image's; with images of the same
    size and no ties the output's sorted values are exactly the fixed image's.
    """
    check_pair("moving", moving, "fixed", fixed)
    out = torch.empty_like(moving, dtype=torch.float32)
    for i in range(moving.shape[0]):
        for c in range(moving.shape[1]):
            out[i, c] = _match_one(moving[i, c].float().flatten(), fixed[i, c].float().flatten()).view(moving.shape[-2:])
    return out


@torch.no_grad()
def meanstd_match(moving: Tensor, fixed: Tensor) -> Tensor:
    r"""The moving image with the fixed image's mean and standard deviation, per pair and channel.

    :math:`(m - \mu_m)\,\sigma_f / \sigma_m + \mu_f`, then clipped to [0, 1] (the one place
    where values are clipped: the result must stay an image). A flat moving image gives a flat
    image at the fixed mean.

    >>> m = torch.linspace(0, 1, 16).view(1, 1, 4, 4)
    >>> out = meanstd_match(m, 0.5 * m + 0.2)
    >>> round(float(out.mean()), 4), round(float(out.std()), 4)
    (0.45, 0.1587)
    """
    check_pair("moving", moving, "fixed", fixed)
    m, f = moving.float(), fixed.float()
    mu_m, mu_f = m.mean((2, 3), keepdim=True), f.mean((2, 3), keepdim=True)
    sd_m, sd_f = m.std((2, 3), keepdim=True), f.std((2, 3), keepdim=True)
    scale = torch.where(sd_m > 1e-6, sd_f / sd_m.clamp_min(1e-6), torch.zeros_like(sd_m))
    return ((m - mu_m) * scale + mu_f).clamp(0, 1)


_MATCHERS = {"histogram": histogram_match, "meanstd": meanstd_match}


@method(
    "appearance_transfer",
    kind="control",
    summary="Control: the moving image given the fixed image's global intensity statistics "
    "(histogram or mean/std matching, per pair, no learning); geometry untouched (disp = 0).",
)
def _appearance_transfer(moving: Tensor, fixed: Tensor, mode: str = "histogram") -> RegResult:
    if mode not in _MATCHERS:
        raise ValueError(f"mode must be one of {sorted(_MATCHERS)}, got {mode!r}")
    disp = torch.zeros(moving.shape[0], 2, *moving.shape[-2:], device=moving.device)
    return RegResult(warped=_MATCHERS[mode](moving, fixed), disp=disp, extras={"mode": mode})


@method(
    "fixed_oracle",
    kind="control",
    summary="Control: the fixed image itself, the upper bound of every score (no displacement).",
)
def _fixed_oracle(moving: Tensor, fixed: Tensor) -> RegResult:
    return RegResult(warped=fixed.float().clone(), disp=None)


# ----------------------------------------------------------------------------------------------
# Vessel segmentation (the same for fixed, moving and output images)
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def vessel_mask(
    image: Tensor, fov: Tensor | None = None, radius: int = VESSEL_RADIUS, fraction: float = VESSEL_FRACTION,
    sigma: float = 1.0, min_response: float = 1e-3,
) -> Tensor:
    r"""Dark thin structures (vessels) of ``N,1,H,W`` images as a bool mask ``N,1,H,W``.

    1. smooth with a Gaussian of ``sigma`` pixels (noise);
    2. black top-hat: morphological closing with a ``(2 radius + 1)`` square minus the image,
       which is large on dark structures narrower than the square and near 0 elsewhere;
    3. keep the ``fraction`` of pixels with the largest response (inside ``fov`` when given),
       and of those only the ones at least ``min_response`` darker than their closing (so a
       flat image has no vessels rather than arbitrary ones).

    A fixed *share* rather than a fixed level makes the threshold blind to contrast and
    brightness, so a fixed image, a moving image and a model's output, whatever their
    appearance, are segmented alike; differences in Dice then come from *where* the vessels
    are. With the defaults the fixed images of the FIRE-Reg-256 proxy are segmented with a
    Dice of about 0.73 against their true vessel masks.

    >>> img = torch.ones(1, 1, 32, 32); img[..., 15:17, :] = 0.2     # one dark horizontal line
    >>> m = vessel_mask(img, fraction=2 / 32)
    >>> m[0, 0, 15:17].all().item(), int(m.sum())
    (True, 64)
    """
    check_image("image", image)
    if image.shape[1] != 1:
        raise ValueError(f"image must have one channel (grey level), got shape {tuple(image.shape)}")
    check_positive("radius", radius, integer=True)
    check_positive("sigma", sigma)
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction!r}")
    fov_f = check_mask("fov", fov, image)
    with torch.autocast(device_type=image.device.type, enabled=False):
        x = gaussian_blur(image.float(), sigma)
        k = 2 * radius + 1
        dil = F.max_pool2d(F.pad(x, (radius,) * 4, mode="replicate"), k, 1)
        closed = -F.max_pool2d(F.pad(-dil, (radius,) * 4, mode="replicate"), k, 1)
        response = closed - x
    inside = fov_f > 0.5 if fov_f is not None else torch.ones_like(response, dtype=torch.bool)
    out = torch.zeros_like(response, dtype=torch.bool)
    for i in range(image.shape[0]):
        vals = response[i][inside[i]]
        if vals.numel() == 0:
            raise ValueError("fov must select at least one pixel in every image")
        keep = max(1, int(round(fraction * vals.numel())))
        level = torch.topk(vals, keep).values[-1]
        out[i] = (response[i] >= level.clamp_min(min_response)) & inside[i]
    return out


# ----------------------------------------------------------------------------------------------
# Shuffled pairing
# ----------------------------------------------------------------------------------------------


def shuffled_pairing(n: int, groups: Sequence[int] | Tensor | None = None, generator=None) -> Tensor:
    """A permutation ``perm`` of ``range(n)`` with ``perm[i] != i``, and ``groups[perm[i]] != groups[i]``
    when ``groups`` is given (e.g. the image pair a patch was cut from: patches of one pair
    overlap, so a fixed image from the same pair would still share its geometry).

    Items are shuffled, sorted by group, and each takes the item ``max group size`` places on
    (cyclically), which leaves every group when no group holds more than half of the items.

    >>> perm = shuffled_pairing(6, groups=[0, 0, 0, 1, 1, 2], generator=torch.Generator().manual_seed(0))
    >>> all(g[int(p)] != g[i] for g in [[0, 0, 0, 1, 1, 2]] for i, p in enumerate(perm))
    True
    """
    check_positive("n", n, integer=True)
    if n < 2:
        raise ValueError(f"n must be at least 2 to shuffle pairs, got {n}")
    g = torch.as_tensor(groups if groups is not None else range(n), dtype=torch.long).flatten()
    if g.numel() != n:
        raise ValueError(f"groups must have {n} entries, got {g.numel()}")
    sizes = torch.bincount(g - g.min())
    shift = int(sizes.max())
    if 2 * shift > n:
        raise ValueError(f"one group holds {shift} of {n} items: no pairing can move every item to another group")
    order = torch.randperm(n, generator=generator)
    # stable sort by group keeps the random order inside groups; random group labels mix groups
    relabel = torch.randperm(int(sizes.numel()), generator=generator)[g - g.min()]
    order = order[torch.sort(relabel[order], stable=True).indices]
    perm = torch.empty(n, dtype=torch.long)
    perm[order] = order.roll(-shift)
    return perm


# ----------------------------------------------------------------------------------------------
# Running methods over data
# ----------------------------------------------------------------------------------------------


@dataclass
class MethodSpec:
    """One row of a "does it register" table.

    Attributes
    ----------
    label : str
        Row name in tables.
    method : str
        Registered method name (:func:`regkit.methods`).
    params : dict
        Keyword arguments of the method (e.g. ``{"model": trained_net}``).
    frame : bool
        Pass the pair's ``frame`` index and its ``sequence`` (the batch's ``pair``, the image pair
        it was cut from): GPEReg-Net's temporal context.
    """

    label: str
    method: str
    params: dict = field(default_factory=dict)
    frame: bool = False


CONTROLS = (
    MethodSpec("Unregistered", "identity"),
    MethodSpec("Appearance transfer (histogram)", "appearance_transfer", {"mode": "histogram"}),
    MethodSpec("Fixed image (upper bound)", "fixed_oracle"),
)
"""The three controls, in table order."""


def _collate(items: Sequence[Mapping]) -> dict:
    from ..data.pairs import collate_pairs

    return collate_pairs(list(items))


def iter_batches(data, batch_size: int = 8, size: tuple[int, int] | None = None, device=None) -> Iterable[dict]:
    """Batches (dicts of ``N,...`` tensors) of a data set of pair dicts, in order.

    A batch never mixes two image ``pair`` s when items carry one, so that consecutive frames of
    a sequence meet in one batch (GPEReg-Net's window) and a new sequence starts a new batch.
    ``size`` resizes images (bilinear), masks (nearest), displacements (values rescaled) and
    landmarks on the fly (see :func:`resize_batch`). ``data`` may also be one batch dict.
    """
    check_positive("batch_size", batch_size, integer=True)
    if isinstance(data, Mapping):
        batches = [dict(data)]
    else:
        def gen():
            chunk, last = [], None
            for i in range(len(data)):
                item = data[i]
                pair = item.get("pair")
                if chunk and (len(chunk) == batch_size or (pair is not None and pair != last)):
                    yield _collate(chunk)
                    chunk = []
                chunk.append(item)
                last = pair
            if chunk:
                yield _collate(chunk)

        batches = gen()
    for b in batches:
        if size is not None:
            b = resize_batch(b, size)
        if device is not None:
            b = {k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in b.items()}
        yield b


def resize_batch(batch: Mapping, size) -> dict:
    """Resize a batch to ``size = (H, W)``: images bilinear, bool masks nearest, ``disp`` with
    :func:`regkit.spatial.resize_disp`, landmarks (pixels, x then y) scaled with the grid."""
    h, w = size
    out = dict(batch)
    h0, w0 = batch["moving"].shape[-2:]
    if (h0, w0) == (h, w):
        return out
    sx, sy = (w - 1) / (w0 - 1), (h - 1) / (h0 - 1)
    for k, v in batch.items():
        if not isinstance(v, Tensor):
            continue
        if k == "disp":
            out[k] = spatial.resize_disp(v, (h, w))
        elif k.startswith("landmarks_") and v.is_floating_point() and v.shape[-1] == 2:
            out[k] = v * torch.tensor([sx, sy], dtype=v.dtype, device=v.device)
        elif v.ndim == 4 and v.shape[-2:] == (h0, w0):
            if v.dtype == torch.bool:
                out[k] = spatial.resize_image(v.float(), (h, w), mode="nearest") > 0.5
            else:
                out[k] = spatial.resize_image(v.float(), (h, w)).clamp(0, 1)
    return out


def run_method(spec: MethodSpec, batch: Mapping, fixed: Tensor | None = None) -> RegResult:
    """Register ``batch["moving"]`` to ``fixed`` (default ``batch["fixed"]``) with ``spec``."""
    fx = batch["fixed"] if fixed is None else fixed
    params = dict(spec.params)
    if spec.frame and "frame" in batch:
        params["frame"] = batch["frame"]
        if "pair" in batch:
            params["sequence"] = batch["pair"]
    return register(batch["moving"], fx, method=spec.method, **params)


@torch.no_grad()
def score_pairs(result: RegResult, batch: Mapping, *, radius: int = VESSEL_RADIUS, fraction: float = VESSEL_FRACTION) -> dict:
    """Per-pair scores of one result against the batch's (true) fixed image.

    Keys: ``ncc``, ``ssim``, ``psnr`` (output vs fixed; PSNR of the output clamped to [0, 1]);
    ``dice_vessels`` (segmented output vs segmented fixed, :func:`vessel_mask` inside the fixed
    field of view when the batch has ``fov_fixed``); ``dice_vessels_gt`` (segmented output vs the
    true ``mask_fixed``) when the batch has it; for methods with a displacement,
    ``dice_warped_gt`` (the true ``mask_moving`` warped by ``disp`` vs ``mask_fixed``) and
    ``tre`` (pixels) when the batch has landmarks. Missing ones are absent.
    """
    out, fixed = result.warped.float(), batch["fixed"].float()
    fov = batch.get("fov_fixed")
    seg = lambda x: vessel_mask(x, fov, radius=radius, fraction=fraction)  # noqa: E731
    seg_fixed, seg_out = seg(fixed), seg(out.clamp(0, 1))
    s = {
        "ncc": metrics.ncc(out, fixed),
        "ssim": metrics.ssim(out, fixed),
        "psnr": metrics.psnr(out.clamp(0, 1), fixed),
        "dice_vessels": metrics.dice(seg_out, seg_fixed),
    }
    if "mask_fixed" in batch:
        s["dice_vessels_gt"] = metrics.dice(seg_out, batch["mask_fixed"])
    if result.disp is not None:
        if "mask_fixed" in batch and "mask_moving" in batch:
            warped = spatial.warp_labels(batch["mask_moving"].to(torch.uint8), result.disp.float())
            s["dice_warped_gt"] = metrics.dice(warped.bool(), batch["mask_fixed"])
        if "landmarks_fixed" in batch and "landmarks_moving" in batch:
            s["tre"] = metrics.tre(batch["landmarks_moving"], batch["landmarks_fixed"], result.disp.float(),
                                   valid=batch.get("landmarks_valid"))
    return {k: v.float().cpu() for k, v in s.items()}


def _mean(values: list[Tensor]) -> float | None:
    if not values:
        return None
    v = torch.cat(values)
    v = v[~torch.isnan(v)]  # PSNR of identical images is +inf, and so is its mean
    return float(v.mean()) if v.numel() else None


@torch.no_grad()
def does_it_register(
    specs: Sequence[MethodSpec], data, *, batch_size: int = 8, size=None, seed: int = 0, device=None,
    radius: int = VESSEL_RADIUS, fraction: float = VESSEL_FRACTION, progress: bool = False,
) -> list[dict]:
    """The chapter's table: for each spec, scores with true and with shuffled fixed images.

    The data are read once (in order, batches never mixing image pairs). The shuffled pairing is
    :func:`shuffled_pairing` over the whole set, seeded with ``seed``, avoiding the same image
    ``pair`` when items carry one; each moving image keeps its own ``frame``. Models are reset
    (``reset_cache``) before each pass.

    Returns one dict per spec: ``label``, ``method``, ``deformation_free`` (no ``disp``), means of
    every :func:`score_pairs` key, the same scores of the shuffled run with a ``shuffled_``
    prefix (against the *true* fixed image), ``drop_ssim`` / ``drop_psnr`` / ``drop_ncc`` (true
    minus shuffled), plus one row ``"Moving vs fixed"`` holding the unregistered vessel Dice
    (the same segmentation applied to the moving image) for reference. The second shuffled run
    (prefix ``geometry_shuffled_``, drops ``geometry_drop_*``) gives each moving image the other
    pair's fixed image histogram-matched to its true fixed image: wrong geometry, right
    appearance.
    """
    batches = list(iter_batches(data, batch_size, size=size, device=device))
    if not batches:
        raise ValueError("data is empty")
    n = sum(b["moving"].shape[0] for b in batches)
    groups = None
    if all(isinstance(b.get("pair"), Tensor) for b in batches):
        groups = torch.cat([b["pair"].cpu() for b in batches])
    perm = shuffled_pairing(n, groups, generator=torch.Generator().manual_seed(seed))
    all_fixed = torch.cat([b["fixed"] for b in batches])
    shuffled = all_fixed[perm.to(all_fixed.device)]
    shuffled_geometry = histogram_match(shuffled, all_fixed)  # other geometry, own appearance
    offsets = [0]
    for b in batches:
        offsets.append(offsets[-1] + b["moving"].shape[0])

    rows = []
    if progress:
        from tqdm.auto import tqdm

        specs_iter = tqdm(specs, desc="methods")
    else:
        specs_iter = specs
    for spec in specs_iter:
        scores: dict[str, dict[str, list]] = {"": {}, "shuffled_": {}, "geometry_shuffled_": {}}
        given = {"": None, "shuffled_": shuffled, "geometry_shuffled_": shuffled_geometry}
        deformation_free = False
        for prefix, store in scores.items():
            model = spec.params.get("model")
            if hasattr(model, "reset_cache"):
                model.reset_cache()
            for bi, b in enumerate(batches):
                fx = None if given[prefix] is None else given[prefix][offsets[bi] : offsets[bi + 1]]
                res = run_method(spec, b, fixed=fx)
                if not prefix:
                    deformation_free = deformation_free or res.disp is None
                for k, v in score_pairs(res, b, radius=radius, fraction=fraction).items():
                    store.setdefault(k, []).append(v)
        row = {"label": spec.label, "method": spec.method, "deformation_free": deformation_free, "pairs": n}
        row.update({k: _mean(v) for k, v in scores[""].items()})
        for prefix in ("shuffled_", "geometry_shuffled_"):
            row.update({f"{prefix}{k}": _mean(v) for k, v in scores[prefix].items()
                        if k in ("ncc", "ssim", "psnr", "dice_vessels")})
            drop = "drop_" if prefix == "shuffled_" else "geometry_drop_"
            for k in ("ssim", "psnr", "ncc", "dice_vessels"):
                a, b_ = row.get(k), row.get(f"{prefix}{k}")
                row[f"{drop}{k}"] = a - b_ if a is not None and b_ is not None else None
        rows.append(row)
    moving_dice = [metrics.dice(vessel_mask(b["moving"].float(), b.get("fov_fixed"), radius=radius, fraction=fraction),
                                vessel_mask(b["fixed"].float(), b.get("fov_fixed"), radius=radius, fraction=fraction)).cpu()
                   for b in batches]
    ref = {"label": "Moving vs fixed", "method": None, "deformation_free": None, "pairs": n,
           "dice_vessels": _mean(moving_dice)}
    if all("mask_fixed" in b for b in batches):
        ref["dice_vessels_gt"] = _mean([
            metrics.dice(vessel_mask(b["moving"].float(), b.get("fov_fixed"), radius=radius, fraction=fraction),
                         b["mask_fixed"]).cpu() for b in batches])
    rows.append(ref)
    return rows


# ----------------------------------------------------------------------------------------------
# What SSIM and PSNR reward
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def metric_probe(moving: Tensor, fixed: Tensor, shifts: Sequence[float] = (2.0, 4.0, 8.0), blur: float = 2.0,
                 fov: Tensor | None = None) -> list[dict]:
    """SSIM, PSNR, NCC and vessel Dice of simple stand-ins for an output, against ``fixed``.

    Rows: the fixed image shifted by each of ``shifts`` pixels (right appearance, wrong place);
    the fixed image blurred with a Gaussian of ``blur`` pixels (right place, detail gone); a flat
    image at the fixed mean (no structure at all); the moving image with the fixed histogram
    (:func:`histogram_match`: right appearance, the moving geometry); the unregistered moving
    image. Means over the batch.
    """
    check_pair("moving", moving, "fixed", fixed)
    check_positive("blur", blur)
    n = fixed.shape[0]
    cands = []
    for s in shifts:
        u = torch.zeros(n, 2, *fixed.shape[-2:], device=fixed.device)
        u[:, 0] = float(s) / math.sqrt(2)
        u[:, 1] = float(s) / math.sqrt(2)
        cands.append((f"fixed shifted {s:g} px", spatial.warp(fixed.float(), u)))
    cands.append((f"fixed blurred (sigma {blur:g} px)", gaussian_blur(fixed.float(), blur)))
    cands.append(("flat image at the fixed mean", fixed.float().mean((2, 3), keepdim=True).expand_as(fixed).contiguous()))
    cands.append(("moving with the fixed histogram", histogram_match(moving, fixed)))
    cands.append(("moving (unregistered)", moving.float()))
    seg_f = vessel_mask(fixed.float(), fov)
    rows = []
    for name, img in cands:
        rows.append({
            "output": name,
            "ssim": float(metrics.ssim(img, fixed).mean()),
            "psnr": float(metrics.psnr(img.clamp(0, 1), fixed).mean()),
            "ncc": float(metrics.ncc(img, fixed).mean()),
            "dice_vessels": float(metrics.dice(vessel_mask(img, fov), seg_f).mean()),
        })
    return rows


# ----------------------------------------------------------------------------------------------
# Moved-fixed test
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def estimate_shift(a: Tensor, b: Tensor, max_shift: int = 8) -> Tensor:
    """Integer shift ``d = (dx, dy)`` (pixels, ``N,2``) with ``b(p) ≈ a(p - d)``: how far the content of
    ``b`` lies from that of ``a``, by the best NCC over the central crop, ``|dx|, |dy| <= max_shift``.

    >>> a = torch.rand(1, 1, 32, 32)
    >>> estimate_shift(a, torch.roll(a, (2, -3), (2, 3)), 4).tolist()
    [[-3, 2]]
    """
    check_pair("a", a, "b", b)
    check_positive("max_shift", max_shift, integer=True)
    h, w = a.shape[-2:]
    k = max_shift
    if min(h, w) <= 2 * k + 2:
        raise ValueError(f"a and b must be larger than 2 * max_shift + 2 = {2 * k + 2} px, got {(h, w)}")
    core = b[..., k : h - k, k : w - k].float()
    best = torch.full((a.shape[0],), -2.0, device=a.device)
    arg = torch.zeros(a.shape[0], 2, dtype=torch.long, device=a.device)
    for dy in range(-k, k + 1):
        for dx in range(-k, k + 1):
            cand = a[..., k - dy : h - k - dy, k - dx : w - k - dx].float()
            score = metrics.ncc(cand, core)
            better = score > best
            best = torch.where(better, score, best)
            arg[better] = torch.tensor([dx, dy], device=a.device)
    return arg


def shift_test(specs: Sequence[MethodSpec], batch: Mapping, shift=(4, 0), max_shift: int | None = None) -> list[dict]:
    """Move the fixed image by ``shift = (sx, sy)`` pixels and see whether each output follows.

    The fixed image's content is moved by ``shift`` (a pull warp by ``-shift`` with border
    padding); each spec registers the same moving images to the original and to the moved fixed
    images, and :func:`estimate_shift` measures how far the second output lies from the first.
    Returns one dict per spec: ``label``, ``shift`` (applied), ``followed`` (mean measured
    ``[dx, dy]``) and ``followed_fraction`` (mean of the measured shift projected on the applied
    one, divided by its length: 1 follows fully, 0 not at all).
    """
    sx, sy = (float(v) for v in shift)
    length = math.hypot(sx, sy)
    if length == 0:
        raise ValueError("shift must move the fixed image, got (0, 0)")
    k = max_shift if max_shift is not None else int(math.ceil(max(abs(sx), abs(sy)))) + 2
    fixed = batch["fixed"].float()
    u = torch.zeros(fixed.shape[0], 2, *fixed.shape[-2:], device=fixed.device)
    u[:, 0], u[:, 1] = -sx, -sy
    moved = spatial.warp(fixed, u)
    rows = []
    for spec in specs:
        outs = []
        for fx in (fixed, moved):
            model = spec.params.get("model")
            if hasattr(model, "reset_cache"):
                model.reset_cache()
            outs.append(run_method(spec, batch, fixed=fx).warped.float())
        d = estimate_shift(outs[0], outs[1], k).float()
        frac = (d[:, 0] * sx + d[:, 1] * sy) / length**2
        rows.append({"label": spec.label, "shift": [sx, sy], "followed": d.mean(0).tolist(),
                     "followed_fraction": float(frac.mean())})
    return rows
