r"""Does it really register? Controls and structural tests for any method behind :func:`regkit.register`.

A deformation-free model (GPEReg-Net, SAS-Net) draws its output's spatial structure from the
*moving* image; the fixed image reaches it only through a 32-number appearance code. Scores
such as SSIM and PSNR against the fixed image cannot tell "the output is aligned with the fixed
image" from "the output looks like the fixed image". This module puts numbers on the
difference, the same way for every method:

Controls (kind ``"control"``, :mod:`regkit.baselines`; unregistered: ``"identity"``)
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
    the moving image put it. The shift of the output is read off by phase correlation
    (:func:`estimate_shift`, scikit-image's ``phase_cross_correlation``).

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
- A method is described by a :class:`regkit.evaluation.MethodSpec`; every run goes through
  :func:`regkit.evaluation.evaluate`, the one evaluation path of every table.
- Every score is one number per pair; tables hold means over pairs (failed pairs counted).

Example
-------
>>> import torch
>>> perm = shuffled_pairing(4, generator=torch.Generator().manual_seed(0))
>>> sorted(perm.tolist()), any(int(p) == i for i, p in enumerate(perm))
([0, 1, 2, 3], False)
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import metrics, spatial
from .._checks import check_image, check_mask, check_pair, check_positive
from ..evaluation import MethodSpec, evaluate, iter_batches, run_method, summarise
from ..filters import gaussian_blur
from ..runtime import eval_mode

__all__ = [
    "vessel_mask",
    "vessel_metrics",
    "shuffled_pairing",
    "CONTROLS",
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
# Scores beyond the image metrics, as evaluation metrics fn(result, batch, mask)
# ----------------------------------------------------------------------------------------------


CONTROLS = (
    MethodSpec("Unregistered", "identity"),
    MethodSpec("Appearance transfer (histogram)", "appearance_transfer", {"mode": "histogram"}),
    MethodSpec("Fixed image (upper bound)", "fixed_oracle"),
)
"""The three controls, in table order."""

IMAGE_SCORES = ("ncc", "ssim", "psnr")


def vessel_metrics(radius: int = VESSEL_RADIUS, fraction: float = VESSEL_FRACTION) -> dict:
    """Structural scores as :func:`regkit.evaluation.evaluate` metrics ``fn(result, batch, mask)``.

    - ``dice_vessels``: the output segmented with :func:`vessel_mask` against the fixed image
      segmented the same way (inside the fixed field of view when the batch has ``fov_fixed``);
    - ``dice_vessels_gt``: the segmented output against the true ``mask_fixed`` (when present);
    - ``dice_warped_gt``: for methods with a displacement, the true ``mask_moving`` warped by
      ``disp`` against ``mask_fixed``.

    Each returns ``None`` where it does not apply.
    """
    def seg(x, b):
        return vessel_mask(x.float().clamp(0, 1), b.get("fov_fixed"), radius=radius, fraction=fraction)

    def dice_vessels(res, b, m):
        return metrics.dice(seg(res.warped, b), seg(b["fixed"], b))

    def dice_vessels_gt(res, b, m):
        return metrics.dice(seg(res.warped, b), b["mask_fixed"]) if "mask_fixed" in b else None

    def dice_warped_gt(res, b, m):
        if res.disp is None or "mask_fixed" not in b or "mask_moving" not in b:
            return None
        warped = spatial.warp_labels(b["mask_moving"].to(torch.uint8), res.disp.float())
        return metrics.dice(warped.bool(), b["mask_fixed"])

    return {"dice_vessels": dice_vessels, "dice_vessels_gt": dice_vessels_gt, "dice_warped_gt": dice_warped_gt}


def _with_fixed_input(batches: list[dict], fixed_input: Tensor) -> list[dict]:
    out, start = [], 0
    for b in batches:
        n = b["moving"].shape[0]
        out.append({**b, "fixed_input": fixed_input[start : start + n]})
        start += n
    return out


@torch.no_grad()
def does_it_register(
    specs: Sequence[MethodSpec], data, *, batch_size: int = 8, size=None, seed: int = 0, device=None,
    radius: int = VESSEL_RADIUS, fraction: float = VESSEL_FRACTION, progress: bool = False,
) -> list[dict]:
    """The chapter's table: for each spec, scores with the true and with shuffled fixed images.

    Three passes of :func:`regkit.evaluation.evaluate` over the same batches (read once, never
    mixing image pairs): the true fixed images; each pair given *another* pair's fixed image
    (:func:`shuffled_pairing` over the whole set, seeded with ``seed``, avoiding the same image
    ``pair``); and that other image histogram-matched to the true fixed image (wrong geometry,
    right appearance). Every output is scored against its *true* fixed image.

    Returns
    -------
    list of dict, one per spec: ``label``, ``method``, ``deformation_free``, ``pairs``, the means of
    NCC, SSIM, PSNR, TRE and :func:`vessel_metrics` (``None`` where one does not apply), the
    image scores and vessel Dice of the two shuffled passes (prefixes ``shuffled_`` and
    ``geometry_shuffled_``), their drops (``drop_*``, ``geometry_drop_*``: true minus shuffled)
    and ``failed`` (pairs whose score was NaN, per score); plus a last row ``"Moving vs fixed"``
    with the vessel Dice of the unregistered moving image.
    """
    from ..baselines import histogram_match

    batches = list(iter_batches(data, batch_size, size=size, device=device))
    if not batches:
        raise ValueError("data is empty")
    n = sum(b["moving"].shape[0] for b in batches)
    groups = None
    if all(isinstance(b.get("pair"), (Tensor, list)) for b in batches):
        from ..models.gpe import sequence_ids

        groups = torch.cat([sequence_ids(b["pair"], b["moving"].shape[0], "cpu") for b in batches])
    perm = shuffled_pairing(n, groups, generator=torch.Generator().manual_seed(seed))
    all_fixed = torch.cat([b["fixed"] for b in batches])
    shuffled = all_fixed[perm.to(all_fixed.device)]
    passes = {
        "": batches,
        "shuffled_": _with_fixed_input(batches, shuffled),
        "geometry_shuffled_": _with_fixed_input(batches, histogram_match(shuffled, all_fixed)),
    }
    scores = {**{k: None for k in IMAGE_SCORES}, "tre": None, **vessel_metrics(radius, fraction)}
    runs = {p: evaluate(None, specs, metrics=scores, batches=bs, progress=progress) for p, bs in passes.items()}
    rows = []
    for spec in specs:
        true = runs[""]["methods"][spec.label]
        row = {"label": spec.label, "method": spec.method, "deformation_free": true["deformation_free"], "pairs": n}
        row.update(true["mean"])
        row["failed"] = {k: v for k, v in true["failed"].items() if v}
        for prefix, drop in (("shuffled_", "drop_"), ("geometry_shuffled_", "geometry_drop_")):
            other = runs[prefix]["methods"][spec.label]["mean"]
            for k in (*IMAGE_SCORES, "dice_vessels"):
                row[f"{prefix}{k}"] = other[k]
                a, b_ = row.get(k), other[k]
                row[f"{drop}{k}"] = a - b_ if a is not None and b_ is not None else None
        rows.append(row)
    seg = lambda x, b: vessel_mask(x.float(), b.get("fov_fixed"), radius=radius, fraction=fraction)  # noqa: E731
    ref = {"label": "Moving vs fixed", "method": None, "deformation_free": None, "pairs": n,
           "dice_vessels": summarise(torch.cat([metrics.dice(seg(b["moving"], b), seg(b["fixed"], b)).cpu()
                                                for b in batches]).tolist())["mean"]}
    if all("mask_fixed" in b for b in batches):
        ref["dice_vessels_gt"] = summarise(torch.cat([metrics.dice(seg(b["moving"], b), b["mask_fixed"]).cpu()
                                                      for b in batches]).tolist())["mean"]
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
    from ..baselines import histogram_match

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
    """Integer shift ``d = (dx, dy)`` (pixels, ``N,2``) with ``b(p) ≈ a(p - d)``: how far the content
    of ``b`` lies from that of ``a``.

    scikit-image's ``phase_cross_correlation`` per pair (grey level, channel-averaged), rounded
    to whole pixels; shifts beyond ``max_shift`` in either axis are clipped to it.

    Parameters
    ----------
    a, b : Tensor ``N,C,H,W``, same shape
    max_shift : int

    Returns
    -------
    Tensor ``N,2`` long on ``a``'s device, (dx, dy).

    >>> a = torch.rand(1, 1, 32, 32)
    >>> estimate_shift(a, torch.roll(a, (2, -3), (2, 3)), 4).tolist()
    [[-3, 2]]
    """
    from skimage.registration import phase_cross_correlation

    check_pair("a", a, "b", b)
    check_positive("max_shift", max_shift, integer=True)
    ga = a.detach().float().mean(1).cpu().numpy()
    gb = b.detach().float().mean(1).cpu().numpy()
    out = []
    for x, y in zip(ga, gb):
        (dy, dx), _, _ = phase_cross_correlation(x, y, normalization=None)
        out.append([-int(round(float(dx))), -int(round(float(dy)))])
    d = torch.tensor(out, dtype=torch.long).clamp(-max_shift, max_shift)
    return d.to(a.device)


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
            with eval_mode(model):
                outs.append(run_method(spec, batch, fixed=fx).warped.float())
        d = estimate_shift(outs[0], outs[1], k).float()
        frac = (d[:, 0] * sx + d[:, 1] * sy) / length**2
        rows.append({"label": spec.label, "shift": [sx, sy], "followed": d.mean(0).tolist(),
                     "followed_fraction": float(frac.mean())})
    return rows
