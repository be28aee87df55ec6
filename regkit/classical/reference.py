r"""Reference implementations from other libraries, behind the same :func:`regkit.register` protocol.

These wrappers exist so that regkit's own methods can be checked against established tools on
the same pairs, with the same metrics, in the same table. Each one converts **once**, here, at the
edge:

=================  ===============================  ==========================================
method             library call                     what is converted
=================  ===============================  ==========================================
``sitk_demons``    SimpleITK                        fixed first; the output field is already
                   ``FastSymmetricForcesDemons``    x-then-y, pixels (spacing 1), pull on the
                   ``RegistrationFilter``           fixed grid: used as it is.
``ants_syn``       ANTsPy ``registration``          fixed first; ANTs' physical axis 0 is the
                   (``SyNOnly``)                    numpy row (y), so the components swap.
``skimage_tvl1``   ``optical_flow_tvl1``            fixed (reference) first; flow is (row,
                                                    col) = (y, x), so the channels swap.
``cv2_farneback``  ``calcOpticalFlowFarneback``     prev = fixed, next = moving, 8-bit input;
                                                    flow is already (x, y) and pulls.
``cv2_affine``     SIFT + ``estimateAffine2D``      keypoints are (x, y); the affine is fitted
                   (RANSAC)                         from fixed to moving points, which is the
                                                    pull matrix.
=================  ===============================  ==========================================

Convention
----------
Inputs ``(moving, fixed)``, both ``N,C,H,W`` in [0, 1] (channels are averaged to grey). Outputs
follow regkit: ``disp`` ``N,2,H,W`` in pixels, channel 0 = x, pull on the fixed grid, on the
inputs' device; ``warped = regkit.spatial.warp(moving, disp)``. Pairs are processed one at a
time on the CPU (these libraries are not batched). ``extras["seconds"]`` holds the time spent in
the library call itself, summed over the batch.

The sign conventions are checked in ``tests/test_classical_reference.py`` with known shifts: a
moving image whose content sits 3 px to the right of the fixed one must give ``disp[:, 0] = +3``.

Bad input
---------
Every setting is checked here, the way regkit's own methods check theirs (finite numbers, the
right types, documented choices), before the library is called, so a bad setting is a
``ValueError``/``TypeError`` that names it rather than a library crash or a silently different
run. Each method states its smallest image (:data:`MIN_SIZE`, and in its docstring): below it
the library fails or its answer is meaningless. Images must be in [0, 1] (checked in the same pass
as finiteness), so the 8-bit conversion for OpenCV never clips. A library failure that the checks
cannot foresee is turned into a ``ValueError`` that says what to change, and a field with NaN or
infinite values is refused rather than returned.

Example
-------
>>> import torch, regkit
>>> yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
>>> blob = lambda cx: torch.exp(-((xx - cx) ** 2 + (yy - 32) ** 2) / 100)[None, None]
>>> fixed, moving = blob(30.0), blob(32.0)          # the moving blob sits 2 px to the right
>>> res = regkit.register(moving, fixed, method="skimage_tvl1")
>>> round(float(res.disp[0, 0, 32, 30]), 1)          # so the fixed centre reads 2 px to the right
2.0
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings

import numpy as np
import torch
from torch import Tensor

from .. import spatial
from .._checks import check_bool, check_choice, check_interval, check_pair, check_positive
from ..registry import RegResult, method

__all__ = ["sitk_demons", "ants_syn", "skimage_tvl1", "cv2_farneback", "cv2_affine", "MIN_SIZE"]

#: Smallest image side (pixels) each wrapper accepts. Dense methods: 4, as regkit's own Demons
#: and Horn-Schunck (a central difference and a smoothing step need a neighbour on each side).
#: ``ants_syn``: 2 px on its coarsest level, i.e. ``2 ** len(iterations)`` (8 for the default
#: three levels; ANTs fails below that), and at least 4. ``cv2_farneback``: the
#: ``2 poly_n + 1`` pixel window of its polynomial expansion (15 for the default ``poly_n=7``;
#: smaller images gave shifts off by more than a pixel). ``cv2_affine``: 16, the width of a SIFT
#: descriptor's 4 x 4 cells of 4 x 4 pixels.
MIN_SIZE = {"sitk_demons": 4, "skimage_tvl1": 4, "ants_syn": 4, "cv2_farneback": 15, "cv2_affine": 16}


# ---------------------------------------------------------------------------------------- edge


def _check_images(name: str, moving, fixed, min_size: int, why: str = "") -> None:
    """Both images valid and in [0, 1] (one pass each), and at least ``min_size`` px a side."""
    check_pair("moving", moving, "fixed", fixed, unit_range=True)
    h, w = fixed.shape[-2:]
    if min(h, w) < min_size:
        raise ValueError(
            f"{name} needs moving and fixed images of at least {min_size} x {min_size} pixels{why}, got {h} x {w}"
        )


def _grey_numpy(x: Tensor) -> list[np.ndarray]:
    """``N,C,H,W`` tensor -> list of ``H,W`` float32 arrays (channels averaged), on the CPU."""
    return [a for a in x.detach().float().mean(1).cpu().numpy().astype(np.float32)]


def _to_uint8(a: np.ndarray) -> np.ndarray:
    """[0, 1] -> 0..255. Inputs were checked to lie in [0, 1] up to ``RANGE_TOL`` (a quarter of a
    grey level), so the clip only absorbs that rounding, never a value."""
    return np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)


def _check_field(name: str, fields: list[np.ndarray]) -> None:
    bad = [i for i, f in enumerate(fields) if not np.isfinite(f).all()]
    if bad:
        raise ValueError(
            f"{name} returned NaN or infinite displacements for pair(s) {bad}; check its settings "
            "(smaller steps, less smoothing) and that the images have contrast"
        )


def _first_line(err: Exception) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    return f"{type(err).__name__}: {lines[-1] if lines else ''}"


def _result(name: str, moving: Tensor, disp_np: list[np.ndarray], seconds: float, params=None, **extras) -> RegResult:
    """Stack per-pair ``2,H,W`` (x, y) fields, move them to the inputs' device and warp."""
    _check_field(name, disp_np)
    disp = torch.from_numpy(np.stack(disp_np).astype(np.float32)).to(moving.device)
    warped = spatial.warp(moving.float(), disp)
    return RegResult(warped=warped, disp=disp, params=params, extras={"seconds": seconds, **extras})


# ------------------------------------------------------------------------------------- SimpleITK


@method(
    "sitk_demons",
    kind="reference",
    summary="SimpleITK FastSymmetricForcesDemons (Thirion's demons, ESM forces), single resolution.",
)
def sitk_demons(
    moving: Tensor,
    fixed: Tensor,
    iterations: int = 100,
    sigma: float = 1.0,
    max_step: float = 0.5,
    threads: int | None = None,
) -> RegResult:
    """SimpleITK's ``FastSymmetricForcesDemonsRegistrationFilter``.

    Parameters
    ----------
    moving, fixed : Tensor ``N,C,H,W`` in [0, 1]
        At least 4 x 4 pixels.
    iterations : int
        Demons iterations (default 100).
    sigma : float
        Standard deviation (pixels) of the Gaussian that smooths the displacement field after
        each iteration (SimpleITK's own default, 1.0).
    max_step : float
        ``MaximumUpdateStepLength`` in pixels (SimpleITK's default, 0.5).
    threads : int, optional
        Number of ITK threads, at least 1 (default: ITK's choice).

    The filter takes ``(fixed, moving)`` and returns a displacement field ``T(p) = p + d(p)``
    mapping fixed to moving points in physical units, x first. With unit spacing and zero origin
    that is exactly regkit's pull field, so nothing is swapped.
    """
    import SimpleITK as sitk

    _check_images("sitk_demons", moving, fixed, MIN_SIZE["sitk_demons"])
    check_positive("iterations", iterations, integer=True)
    check_positive("sigma", sigma, allow_zero=True)
    check_positive("max_step", max_step)
    if threads is not None:
        check_positive("threads", threads, integer=True)
    fields, seconds = [], 0.0
    for m, f in zip(_grey_numpy(moving), _grey_numpy(fixed)):
        flt = sitk.FastSymmetricForcesDemonsRegistrationFilter()
        flt.SetNumberOfIterations(iterations)
        flt.SetStandardDeviations(float(sigma))
        flt.SetSmoothDisplacementField(sigma > 0)
        flt.SetMaximumUpdateStepLength(float(max_step))
        if threads is not None:
            flt.SetNumberOfThreads(int(threads))
        t0 = time.perf_counter()
        try:
            field = flt.Execute(sitk.GetImageFromArray(f), sitk.GetImageFromArray(m))
        except RuntimeError as err:
            raise ValueError(
                f"sitk_demons: SimpleITK failed on pair {len(fields)} ({_first_line(err)}); check the settings "
                f"(iterations={iterations}, sigma={sigma}, max_step={max_step}, threads={threads})"
            ) from err
        seconds += time.perf_counter() - t0
        fields.append(np.moveaxis(sitk.GetArrayFromImage(field), -1, 0))  # H,W,2 (x, y) -> 2,H,W
    return _result("sitk_demons", moving, fields, seconds)


# ------------------------------------------------------------------------------------------ ANTs


def _import_ants():
    """ANTsPy, imported on first use: it is an optional extra of its own (``regkit[ants]``)."""
    try:
        import ants
    except ImportError as err:
        raise ModuleNotFoundError(
            'ants_syn needs ANTsPy, which regkit does not install by default: pip install "regkit[ants]" '
            "(or pip install antspyx). antspyx 0.6.3 pins numpy<2.4 and scipy<1.16, so where newer ones "
            "are installed (as on Colab) it downgrades them: restart the runtime after installing it.",
            name="ants",
        ) from err
    return ants


def _remove_files(paths) -> None:
    for p in set(paths):
        try:
            os.remove(p)
        except FileNotFoundError:
            pass


@method(
    "ants_syn",
    kind="reference",
    summary="ANTsPy SyNOnly (symmetric diffeomorphic normalisation, no affine stage).",
)
def ants_syn(
    moving: Tensor,
    fixed: Tensor,
    metric: str = "mattes",
    iterations=(40, 20, 0),
    flow_sigma: float = 3.0,
    total_sigma: float = 0.0,
    grad_step: float = 0.2,
    seed: int | None = 0,
    return_inverse: bool = False,
) -> RegResult:
    """ANTsPy ``ants.registration(fixed, moving, type_of_transform="SyNOnly")``.

    Parameters
    ----------
    moving, fixed : Tensor ``N,C,H,W`` in [0, 1]
        Neither image of a pair may be constant (ANTs' metrics are undefined on a flat image). At
        least ``2 ** len(iterations)`` pixels a side (and 4): ANTs halves the images once per
        level after the first and fails when the coarsest is below 2 px (8 px for the default).
    metric : {"mattes", "MI", "CC", "meansquares", "demons", "GC"}
        ANTs' ``syn_metric`` (case does not matter; ANTsPy's default, Mattes mutual
        information). ANTsPy passes its ``syn_sampling`` (32) as the metric's parameter: 32 bins
        for mattes/MI, but a radius of 32 px for CC, which is slow on large images.
    iterations : int or sequence of int
        ANTs' ``reg_iterations``, coarse to fine (ANTsPy's default ``(40, 20, 0)``); an int is a
        single level. Non-negative, not all zero, at most 10 levels (ANTsPy writes each level's
        smoothing sigma as one digit).
    flow_sigma, total_sigma : float
        ANTs' update-field and total-field smoothing (voxels), finite, non-negative.
    grad_step : float
        ANTs' gradient step, finite, positive.
    seed : int or None
        ANTs' ``--random-seed`` (Mattes samples randomly). ANTsPy reads the seed only from
        ``ants.config``, so it is set there for the duration of the call and restored after.
        ANTs' thread count follows ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS``.
    return_inverse : bool
        Also return the inverse field as ``extras["inverse_disp"]`` (same conventions).

    Conversion: ``ants.from_numpy`` puts numpy axis 0 (rows) on ANTs' first physical axis, so the
    warp's component 0 is the row (y) displacement and component 1 the column (x) one; they are
    swapped once here. The initial transform is forced to the identity, and the affine file that
    ANTs still writes is checked to be the identity (otherwise it would have to be composed).
    Everything ANTs writes goes to a private temporary folder that is removed afterwards, and the
    files it lists in ``fwdtransforms``/``invtransforms`` are deleted explicitly as well.
    """
    ants = _import_ants()

    iterations = _ants_schedule(iterations)
    min_size = max(MIN_SIZE["ants_syn"], 2 ** len(iterations))
    _check_images("ants_syn", moving, fixed, min_size,
                  f" for {len(iterations)} level(s) (2 px on the coarsest, after halving {len(iterations) - 1} times)")
    metric = check_choice("metric", metric, _ANTS_METRICS, case_sensitive=False)
    for name, v in (("flow_sigma", flow_sigma), ("total_sigma", total_sigma)):
        check_positive(name, v, allow_zero=True)
    check_positive("grad_step", grad_step)
    if seed is not None:
        check_positive("seed", seed, integer=True, allow_zero=True)
    check_bool("return_inverse", return_inverse)
    ms, fs = _grey_numpy(moving), _grey_numpy(fixed)
    for which, images in (("moving", ms), ("fixed", fs)):
        for i, a in enumerate(images):
            if float(a.max()) - float(a.min()) <= 0:
                raise ValueError(
                    f"ants_syn needs contrast in both images, but {which} is constant (all {float(a.flat[0]):.4g}) "
                    f"in pair {i}: ANTs' metrics are undefined on a flat image"
                )
    fields, inverses, seconds = [], [], 0.0
    saved_seed = ants.config._random_seed
    try:
        ants.config._random_seed = seed
        for i, (m, f) in enumerate(zip(ms, fs)):
            try:
                fields_i, inverse_i, dt = _ants_syn_pair(
                    ants, m, f, metric, iterations, flow_sigma, total_sigma, grad_step, return_inverse
                )
            except RuntimeError as err:
                if "Registration failed" not in str(err):
                    raise
                raise ValueError(
                    f"ants_syn: ANTs failed on pair {i} ({err}). Its checks passed (size {m.shape[0]} x "
                    f"{m.shape[1]}, iterations={iterations}, metric={metric!r}, flow_sigma={flow_sigma}, "
                    f"total_sigma={total_sigma}, grad_step={grad_step}); try fewer levels in iterations, "
                    "metric='meansquares', or images with more contrast"
                ) from err
            fields.append(fields_i)
            inverses.append(inverse_i)
            seconds += dt
    finally:
        ants.config._random_seed = saved_seed
    extras = {}
    if return_inverse:
        extras["inverse_disp"] = torch.from_numpy(np.stack(inverses).astype(np.float32)).to(moving.device)
    return _result("ants_syn", moving, fields, seconds, **extras)


_ANTS_METRICS = ("mattes", "MI", "CC", "meansquares", "demons", "GC")


def _ants_schedule(iterations) -> tuple[int, ...]:
    """``iterations`` as ANTs' per-level tuple (an int is one level), checked.

    >>> _ants_schedule(10), _ants_schedule([40, 20, 0])
    ((10,), (40, 20, 0))
    """
    if isinstance(iterations, int) and not isinstance(iterations, bool):
        iterations = (iterations,)
    if isinstance(iterations, (str, bytes)) or not hasattr(iterations, "__iter__"):
        raise TypeError(
            f"iterations must be an int or a sequence of ints (one per level, coarse to fine), got {iterations!r}"
        )
    its = tuple(iterations)
    for i in its:
        check_positive("iterations", i, integer=True, allow_zero=True)
    if not its or sum(its) == 0:
        raise ValueError(f"iterations must not all be zero, got {its}")
    if len(its) > 10:
        raise ValueError(f"iterations must give at most 10 levels, got {len(its)}")
    return its


def _ants_syn_pair(ants, m, f, metric, iterations, flow_sigma, total_sigma, grad_step, return_inverse):
    """One pair through ``ants.registration``; returns ((2,H,W) x-y field, inverse or None, seconds)."""
    inverse = None
    with tempfile.TemporaryDirectory(prefix="regkit_ants_") as tmp:
        t0 = time.perf_counter()
        out = ants.registration(
            ants.from_numpy(f), ants.from_numpy(m), type_of_transform="SyNOnly", initial_transform="Identity",
            outprefix=os.path.join(tmp, "reg_"), syn_metric=metric, reg_iterations=iterations,
            flow_sigma=float(flow_sigma), total_sigma=float(total_sigma), grad_step=float(grad_step),
        )
        seconds = time.perf_counter() - t0
        try:
            warps = [p for p in out["fwdtransforms"] if p.endswith(".nii.gz")]
            for p in out["fwdtransforms"]:
                if p.endswith(".mat"):
                    tx = ants.read_transform(p)
                    if not np.allclose(tx.parameters, [1, 0, 0, 1, 0, 0], atol=1e-6):
                        raise RuntimeError(f"ANTs returned a non-identity affine stage {tx.parameters}")
            if len(warps) != 1:
                raise RuntimeError(f"expected one forward warp from ANTs, got {out['fwdtransforms']}")
            w = ants.image_read(warps[0]).numpy()  # H,W,2: component 0 along rows (y), 1 along columns (x)
            field = np.stack((w[..., 1], w[..., 0]))
            if return_inverse:
                inv = ants.image_read([p for p in out["invtransforms"] if p.endswith(".nii.gz")][0]).numpy()
                inverse = np.stack((inv[..., 1], inv[..., 0]))
        finally:
            _remove_files(list(out["fwdtransforms"]) + list(out["invtransforms"]))
    return field, inverse, seconds


# ---------------------------------------------------------------------------------- scikit-image


@method("skimage_tvl1", kind="reference", summary="scikit-image TV-L1 optical flow (optical_flow_tvl1).")
def skimage_tvl1(
    moving: Tensor,
    fixed: Tensor,
    attachment: float = 15.0,
    tightness: float = 0.3,
    num_warp: int = 5,
    num_iter: int = 10,
    tol: float = 1e-4,
    prefilter: bool = False,
) -> RegResult:
    """scikit-image's ``optical_flow_tvl1(reference_image=fixed, moving_image=moving)``.

    Parameters are those of scikit-image (its defaults): ``attachment`` and ``tightness``
    finite and positive, ``num_warp`` and ``num_iter`` positive integers, ``tol`` finite and
    non-negative (0: always run ``num_iter``), ``prefilter`` a bool. Images: ``N,C,H,W`` in
    [0, 1], at least 4 x 4 pixels. scikit-image's flow ``(v, u)`` is in (row, col) order and
    pulls (``moving(r + v, c + u) ≈ fixed(r, c)``), so the channels are swapped once here.
    """
    from skimage.registration import optical_flow_tvl1

    _check_images("skimage_tvl1", moving, fixed, MIN_SIZE["skimage_tvl1"])
    check_positive("attachment", attachment)
    check_positive("tightness", tightness)
    check_positive("num_warp", num_warp, integer=True)
    check_positive("num_iter", num_iter, integer=True)
    check_positive("tol", tol, allow_zero=True)
    check_bool("prefilter", prefilter)
    fields, seconds = [], 0.0
    for m, f in zip(_grey_numpy(moving), _grey_numpy(fixed)):
        t0 = time.perf_counter()
        v, u = optical_flow_tvl1(
            f, m, attachment=attachment, tightness=tightness, num_warp=num_warp, num_iter=num_iter, tol=tol,
            prefilter=prefilter, dtype=np.float32,
        )
        seconds += time.perf_counter() - t0
        fields.append(np.stack((u, v)))
    return _result("skimage_tvl1", moving, fields, seconds)


# ---------------------------------------------------------------------------------------- OpenCV


@method("cv2_farneback", kind="reference", summary="OpenCV Farneback dense optical flow.")
def cv2_farneback(
    moving: Tensor,
    fixed: Tensor,
    pyr_scale: float = 0.5,
    levels: int = 4,
    winsize: int = 21,
    iterations: int = 5,
    poly_n: int = 7,
    poly_sigma: float = 1.5,
) -> RegResult:
    """OpenCV's ``calcOpticalFlowFarneback(prev=fixed, next=moving, ...)`` on 8-bit images.

    OpenCV's flow satisfies ``prev(y, x) ≈ next(y + flow[..., 1], x + flow[..., 0])``: with the
    fixed image as ``prev`` it is regkit's pull field, x first, and needs no swap.

    Parameters
    ----------
    moving, fixed : Tensor ``N,C,H,W`` in [0, 1]
        Converted to 8 bits (the range is checked, so nothing is clipped). At least
        ``2 poly_n + 1`` pixels a side (15 for the default), the window of the polynomial
        expansion.
    pyr_scale : float in (0, 1)
        Scale between pyramid levels.
    levels, winsize, iterations : int
        Pyramid levels (1: the images only), averaging window, iterations per level; positive.
    poly_n : {5, 7}
        Half-size of the polynomial-expansion neighbourhood. Only the two values OpenCV documents
        (its GPU implementations support only these, and its ``poly_sigma`` advice is for them).
    poly_sigma : float
        Gaussian sigma of that neighbourhood, finite, positive (OpenCV suggests 1.1 for
        ``poly_n=5``, 1.5 for 7).
    """
    import cv2

    check_positive("poly_n", poly_n, integer=True)
    if poly_n not in (5, 7):
        raise ValueError(f"poly_n must be 5 or 7 (the values OpenCV documents), got {poly_n}")
    _check_images("cv2_farneback", moving, fixed, 2 * poly_n + 1, f" for poly_n={poly_n} (2 poly_n + 1)")
    check_interval("pyr_scale", pyr_scale, 0, 1)
    for name, v in (("levels", levels), ("winsize", winsize), ("iterations", iterations)):
        check_positive(name, v, integer=True)
    check_positive("poly_sigma", poly_sigma)
    fields, seconds = [], 0.0
    for m, f in zip(_grey_numpy(moving), _grey_numpy(fixed)):
        t0 = time.perf_counter()
        flow = cv2.calcOpticalFlowFarneback(
            _to_uint8(f), _to_uint8(m), None, pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, 0
        )
        seconds += time.perf_counter() - t0
        fields.append(np.moveaxis(flow, -1, 0))
    return _result("cv2_farneback", moving, fields, seconds)


@method("cv2_affine", kind="reference", summary="OpenCV SIFT, ratio-test matching and estimateAffine2D (RANSAC).")
def cv2_affine(
    moving: Tensor,
    fixed: Tensor,
    ratio: float = 0.75,
    threshold: float = 3.0,
    max_iters: int = 2000,
    confidence: float = 0.99,
    n_features: int = 0,
) -> RegResult:
    """OpenCV SIFT keypoints, brute-force 2-NN matching with Lowe's ratio test, and
    ``cv2.estimateAffine2D(fixed_points, moving_points, method=RANSAC)``.

    Fitting from fixed to moving points gives the pull matrix (``params``, ``N,2,3`` in pixels,
    mapping a fixed pixel to where it samples the moving image). With fewer than 3 matches, or
    when RANSAC fails, the pair gets the identity, ``extras["ok"]`` is False for it and a
    ``RuntimeWarning`` names it (as :func:`regkit.classical.sift_ransac.sift_ransac` does).

    Parameters
    ----------
    moving, fixed : Tensor ``N,C,H,W`` in [0, 1]
        Converted to 8 bits (the range is checked, so nothing is clipped); at least 16 x 16
        pixels, the width of one SIFT descriptor.
    ratio : float in (0, 1]
        Lowe's ratio test.
    threshold : float
        RANSAC inlier distance in pixels, finite, positive.
    max_iters : int
        Most RANSAC iterations, positive.
    confidence : float in (0, 1)
        RANSAC's confidence.
    n_features : int
        Keep the strongest ``n_features`` keypoints per image (0: all).
    """
    import cv2

    _check_images("cv2_affine", moving, fixed, MIN_SIZE["cv2_affine"])
    check_interval("ratio", ratio, 0, 1, closed="high")
    check_positive("threshold", threshold)
    check_positive("max_iters", max_iters, integer=True)
    check_interval("confidence", confidence, 0, 1)
    check_positive("n_features", n_features, integer=True, allow_zero=True)
    h, w = moving.shape[-2:]
    mats, ok, n_inliers, seconds = [], [], [], 0.0
    sift = cv2.SIFT_create(nfeatures=n_features)
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    for m, f in zip(_grey_numpy(moving), _grey_numpy(fixed)):
        t0 = time.perf_counter()
        kf, df = sift.detectAndCompute(_to_uint8(f), None)
        km, dm = sift.detectAndCompute(_to_uint8(m), None)
        mat, inl = None, None
        if df is not None and dm is not None and len(kf) >= 2 and len(km) >= 2:
            good = [a for a, b in matcher.knnMatch(df, dm, k=2) if a.distance < ratio * b.distance]
            if len(good) >= 3:
                src = np.float32([kf[g.queryIdx].pt for g in good])
                dst = np.float32([km[g.trainIdx].pt for g in good])
                mat, inl = cv2.estimateAffine2D(
                    src, dst, method=cv2.RANSAC, ransacReprojThreshold=threshold, maxIters=max_iters,
                    confidence=confidence,
                )
        seconds += time.perf_counter() - t0
        if mat is not None and not np.isfinite(mat).all():
            mat, inl = None, None
        ok.append(mat is not None)
        n_inliers.append(int(inl.sum()) if inl is not None else 0)
        mats.append(mat if mat is not None else np.eye(2, 3))
    if not all(ok):
        warnings.warn(
            f"cv2_affine: no affine found for pairs {[i for i, o in enumerate(ok) if not o]} "
            "(fewer than 3 consistent matches); they get the identity",
            RuntimeWarning,
            stacklevel=2,
        )
    theta = torch.from_numpy(np.stack(mats).astype(np.float32))
    disp = spatial.affine_to_disp(theta, (h, w)).to(moving.device)
    warped = spatial.warp(moving.float(), disp)
    return RegResult(
        warped=warped, disp=disp, params=theta.to(moving.device),
        extras={"seconds": seconds, "ok": ok, "inliers": n_inliers},
    )
