r"""Feature-based affine registration: SIFT keypoints, ratio-test matching, RANSAC.

Three steps, each a public function:

1. :func:`detect` -- SIFT keypoints (x, y pixels) and 128-D descriptors from OpenCV, per image.
2. :func:`match` -- nearest neighbours in descriptor space (``torch.cdist``), kept when the
   nearest is clearly closer than the second nearest (Lowe's ratio test, ``d1 < ratio * d2``).
3. :func:`ransac_affine` -- our own RANSAC, batched over hypotheses: draw ``hypotheses`` minimal
   samples of 3 matches at once, solve each 3-point affine exactly, count the matches within
   ``threshold`` pixels for all hypotheses in one tensor operation, keep the best, then refit
   by least squares on its inliers (twice).

Convention
----------
``(moving, fixed)``, ``N,C,H,W`` in [0, 1] (channels averaged to grey). The affine ``params``
(``N,2,3``, pixels) maps a *fixed* point to the *moving* point it samples, as in
:func:`regkit.spatial.affine_matrix`: matches are fitted from fixed to moving keypoints. ``disp``
is :func:`regkit.spatial.affine_to_disp` of it (pull, x first). Detection runs per image on the
CPU (OpenCV); matching and RANSAC run on the inputs' device.

Example
-------
>>> import torch
>>> g = torch.Generator().manual_seed(0)
>>> src = torch.rand(50, 2, generator=g) * 100
>>> theta = torch.tensor([[1.1, 0.1, 3.0], [-0.05, 0.95, -2.0]])
>>> dst = src @ theta[:, :2].T + theta[:, 2]
>>> dst[:10] += 30                                    # 20% gross outliers
>>> est, inliers = ransac_affine(src, dst, threshold=1.0, generator=g)
>>> bool(torch.allclose(est, theta, atol=1e-3)), int(inliers.sum())
(True, 40)
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import torch
from torch import Tensor

from .. import spatial
from .._checks import check_image, check_interval, check_pair, check_positive, check_tensor
from ..registry import RegResult, method

__all__ = ["detect", "match", "ransac_affine", "sift_ransac", "MIN_SIZE"]

#: Smallest image side (pixels) :func:`sift_ransac` accepts: the width of one SIFT descriptor
#: (4 x 4 cells of 4 x 4 pixels). Smaller images yield a few keypoints at best.
MIN_SIZE = 16


def _to_uint8(a: np.ndarray) -> np.ndarray:
    """[0, 1] -> 0..255. Callers check the range first (up to ``RANGE_TOL``, a quarter of a grey
    level), so the clip only absorbs rounding and never a value."""
    return np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)


def detect(image: Tensor, n_features: int = 0, contrast_threshold: float = 0.04) -> list[tuple[Tensor, Tensor]]:
    """SIFT keypoints and descriptors of every image in a batch ``N,C,H,W`` (OpenCV, on the CPU).

    Returns a list of ``(points K,2 (x, y) pixels, descriptors K,128)`` float32 tensors on the
    image's device (``K`` may be 0). ``n_features = 0`` keeps every keypoint. The image must be in
    [0, 1] (it is converted to 8 bits, and the range is checked so that nothing is clipped).

    >>> pts, desc = detect(torch.full((1, 1, 32, 32), 0.5))[0]   # a flat image has no keypoints
    >>> tuple(pts.shape), tuple(desc.shape)
    ((0, 2), (0, 128))
    """
    import cv2

    check_image("image", image, unit_range=True)
    check_positive("n_features", n_features, integer=True, allow_zero=True)
    check_positive("contrast_threshold", contrast_threshold)
    sift = cv2.SIFT_create(nfeatures=n_features, contrastThreshold=contrast_threshold)
    out = []
    for a in image.detach().float().mean(1).cpu().numpy():
        kps, desc = sift.detectAndCompute(_to_uint8(a), None)
        pts = cv2.KeyPoint_convert(kps).reshape(-1, 2) if kps else np.zeros((0, 2), np.float32)
        desc = np.zeros((0, 128), np.float32) if desc is None else desc.astype(np.float32)
        out.append((torch.from_numpy(pts).to(image.device), torch.from_numpy(desc).to(image.device)))
    return out


def match(desc_a: Tensor, desc_b: Tensor, ratio: float = 0.75) -> Tensor:
    """Ratio-test matches from ``desc_a`` (``Ka,D``) to ``desc_b`` (``Kb,D``): ``M,2`` long indices.

    A descriptor of ``a`` is matched to its nearest neighbour in ``b`` when that one is closer
    than ``ratio`` times the second nearest (Euclidean distances).

    >>> a = torch.eye(4); b = torch.eye(4)[[2, 0, 3, 1]]
    >>> match(a, b).tolist()
    [[0, 1], [1, 3], [2, 0], [3, 2]]
    """
    check_tensor("desc_a", desc_a, ndim=2)
    check_tensor("desc_b", desc_b, ndim=2)
    if desc_a.shape[1] != desc_b.shape[1]:
        raise ValueError(f"desc_a and desc_b must have the same length, got {desc_a.shape[1]} and {desc_b.shape[1]}")
    check_interval("ratio", ratio, 0, 1, closed="high")
    if desc_a.shape[0] == 0 or desc_b.shape[0] < 2:
        return torch.zeros(0, 2, dtype=torch.long, device=desc_a.device)
    d = torch.cdist(desc_a.float()[None], desc_b.float()[None])[0]
    best, idx = d.topk(2, dim=1, largest=False)
    keep = best[:, 0] < ratio * best[:, 1]
    ia = torch.nonzero(keep)[:, 0]
    return torch.stack((ia, idx[keep, 0]), 1)


def ransac_affine(
    src: Tensor,
    dst: Tensor,
    threshold: float = 3.0,
    hypotheses: int = 2000,
    refine: int = 2,
    generator: torch.Generator | None = None,
    confidence: float = 0.999,
    chunk: int = 256,
) -> tuple[Tensor, Tensor]:
    r"""Robust affine fit ``dst ≈ A src + t`` by RANSAC, batched over hypotheses.

    Parameters
    ----------
    src, dst : Tensor ``M,2`` (pixels, x then y), ``M >= 3``
    threshold : float
        Inlier distance in pixels.
    hypotheses : int
        Most minimal samples drawn. They are drawn and evaluated ``chunk`` at a time
        (``chunk x M`` residuals in one tensor operation) until enough have been drawn for
        ``confidence`` given the best inlier ratio so far (the adaptive stop OpenCV uses too).
    refine : int
        Least-squares refits on the inliers of the current estimate.
    generator : torch.Generator, optional
        For reproducible sampling (a CPU generator; indices are moved to the data's device).
    confidence : float
        Probability of having drawn at least one all-inlier sample before stopping.
    chunk : int
        Hypotheses per batch.

    Returns
    -------
    (theta ``2,3``, inliers ``M`` bool)

    Notes
    -----
    With an inlier ratio :math:`w`, a sample is all-inlier with probability :math:`w^3`, so
    ``hypotheses`` samples miss every time with probability :math:`(1 - w^3)^{\text{hypotheses}}`:
    for 2000 samples that is below 1e-6 down to :math:`w \approx 0.19`.
    """
    check_tensor("src", src, ndim=2)
    check_tensor("dst", dst, ndim=2)
    if src.shape != dst.shape or src.shape[1] != 2:
        raise ValueError(f"src and dst must both have shape (M, 2), got {tuple(src.shape)} and {tuple(dst.shape)}")
    m = src.shape[0]
    if m < 3:
        raise ValueError(f"ransac_affine needs at least 3 matches, got {m}")
    check_positive("threshold", threshold)
    check_positive("hypotheses", hypotheses, integer=True)
    check_positive("refine", refine, integer=True, allow_zero=True)
    check_positive("chunk", chunk, integer=True)
    check_interval("confidence", confidence, 0, 1)
    dev = src.device
    s, d = src.double(), dst.double()
    s1 = torch.cat((s, torch.ones(m, 1, dtype=torch.float64, device=dev)), 1)  # M,3
    best_score, best_theta, best_inl, drawn, needed = -math.inf, None, None, 0, hypotheses
    while drawn < min(needed, hypotheses):
        k = min(chunk, hypotheses - drawn)
        drawn += k
        # drawn where the generator lives (the CPU without one), whatever the default device
        where = generator.device if generator is not None else "cpu"
        idx = torch.randint(m, (k, 3), generator=generator, device=where).to(dev)
        p, q = s[idx], d[idx]  # k,3,2 each
        # closed-form 3-point affine: [q2-q1, q3-q1] = A [p2-p1, p3-p1], t = q1 - A p1
        dp, dq = p[:, 1:] - p[:, :1], q[:, 1:] - q[:, :1]  # k,2,2 (rows: the two edge vectors)
        det = dp[:, 0, 0] * dp[:, 1, 1] - dp[:, 0, 1] * dp[:, 1, 0]
        ok = det.abs() > 1.0  # twice the triangle's area in px^2: rejects repeated or collinear draws
        if not bool(ok.any()):
            continue
        dp, dq, det, p, q = dp[ok], dq[ok], det[ok], p[ok], q[ok]
        inv = torch.stack((torch.stack((dp[:, 1, 1], -dp[:, 0, 1]), -1), torch.stack((-dp[:, 1, 0], dp[:, 0, 0]), -1)), -2)
        lin = dq.transpose(1, 2) @ (inv / det[:, None, None]).transpose(1, 2)  # k',2,2
        t = q[:, 0] - (lin @ p[:, 0, :, None])[..., 0]
        sol = torch.cat((lin.transpose(1, 2), t[:, None]), 1)  # k',3,2 with [x y 1] @ sol = dst
        err2 = ((s1[None] @ sol - d[None]) ** 2).sum(-1)  # k',M squared residuals
        inl = err2 < threshold**2
        # Most inliers; among equals, the smallest summed squared error (MSAC-style tie break).
        score = inl.sum(1).double() * threshold**2 - torch.where(inl, err2, 0.0).sum(1) / (m + 1)
        i = int(score.argmax())
        if float(score[i]) > best_score:
            best_score, best_theta, best_inl = float(score[i]), sol[i], inl[i]
            w = float(best_inl.sum()) / m  # adaptive stop, as in OpenCV: enough all-inlier draws?
            if w >= 1:
                needed = 0
            elif w > 0:
                needed = math.ceil(math.log(1 - confidence) / math.log(1 - w**3))
    if best_theta is None:
        raise ValueError("ransac_affine: every sample was degenerate (collinear or repeated points)")
    theta = best_theta.T.float()
    inliers = best_inl
    for _ in range(refine):
        if int(inliers.sum()) < 3:
            break
        theta = spatial.fit_affine(src, dst, inliers).float()
        pred = src.float() @ theta[:, :2].T + theta[:, 2]
        new = ((pred - dst.float()) ** 2).sum(1) < threshold**2
        if int(new.sum()) < 3:
            break
        inliers = new
    return theta, inliers


@method(
    "sift_ransac",
    kind="classical",
    summary="OpenCV SIFT keypoints, ratio-test matching and our batched RANSAC affine (torch).",
)
def sift_ransac(
    moving: Tensor,
    fixed: Tensor,
    ratio: float = 0.75,
    threshold: float = 3.0,
    hypotheses: int = 2000,
    n_features: int = 0,
    seed: int = 0,
) -> RegResult:
    """Affine registration from SIFT matches and RANSAC.

    Parameters
    ----------
    moving, fixed : Tensor ``N,C,H,W`` in [0, 1]
        Converted to 8 bits for OpenCV's detector (the range is checked, so nothing is clipped);
        at least :data:`MIN_SIZE` (16) pixels a side.
    ratio : float
        Lowe's ratio-test threshold (0, 1].
    threshold : float
        RANSAC inlier distance in pixels (finite, positive).
    hypotheses : int
        RANSAC minimal samples, evaluated in one batch.
    n_features : int
        Keep the strongest ``n_features`` keypoints per image (0: all).
    seed : int
        Seeds RANSAC's sampling (one CPU generator for the batch).

    Returns
    -------
    RegResult with ``params`` (``N,2,3`` pixels, fixed -> moving), ``disp`` and ``warped``;
    ``extras`` holds per pair: ``points`` (fixed ``M,2``, moving ``M,2``) of the matches,
    ``inliers`` (``M`` bool), ``n_matches``, ``n_inliers``, ``ok`` (False where fewer than 3
    matches were found: that pair gets the identity, with a warning) and ``seconds``.
    """
    check_pair("moving", moving, "fixed", fixed, unit_range=True)
    h, w = fixed.shape[-2:]
    if min(h, w) < MIN_SIZE:
        raise ValueError(
            f"sift_ransac needs moving and fixed images of at least {MIN_SIZE} x {MIN_SIZE} pixels "
            f"(one SIFT descriptor), got {h} x {w}"
        )
    check_interval("ratio", ratio, 0, 1, closed="high")
    check_positive("threshold", threshold)
    check_positive("hypotheses", hypotheses, integer=True)
    check_positive("n_features", n_features, integer=True, allow_zero=True)
    check_positive("seed", seed, integer=True, allow_zero=True)
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    feats = detect(torch.cat((fixed, moving)), n_features)  # one detector object for the batch
    feats_f, feats_m = feats[: fixed.shape[0]], feats[fixed.shape[0] :]
    thetas, points, inlier_masks, ok = [], [], [], []
    eye = torch.eye(2, 3, device=fixed.device)
    for (pf, df), (pm, dm) in zip(feats_f, feats_m):
        pairs = match(df, dm, ratio)
        src, dst = pf[pairs[:, 0]], pm[pairs[:, 1]]
        points.append((src, dst))
        if pairs.shape[0] < 3:
            thetas.append(eye)
            inlier_masks.append(torch.zeros(pairs.shape[0], dtype=torch.bool, device=fixed.device))
            ok.append(False)
            continue
        try:
            theta, inl = ransac_affine(src, dst, threshold=threshold, hypotheses=hypotheses, generator=gen)
        except ValueError:  # only degenerate samples
            theta, inl = eye, torch.zeros(pairs.shape[0], dtype=torch.bool, device=fixed.device)
        ok.append(int(inl.sum()) >= 3)
        thetas.append(theta if ok[-1] else eye)
        inlier_masks.append(inl)
    if not all(ok):
        warnings.warn(
            f"sift_ransac: no affine found for pairs {[i for i, o in enumerate(ok) if not o]} "
            "(fewer than 3 consistent matches); they get the identity",
            RuntimeWarning,
            stacklevel=2,
        )
    theta = torch.stack(thetas).float()
    disp = spatial.affine_to_disp(theta, (h, w))
    warped = spatial.warp(moving.float(), disp)
    extras = {
        "points": points,
        "inliers": inlier_masks,
        "n_matches": [p[0].shape[0] for p in points],
        "n_inliers": [int(i.sum()) for i in inlier_masks],
        "ok": ok,
        "seconds": time.perf_counter() - t0,
    }
    return RegResult(warped=warped, disp=disp, params=theta, extras=extras)
