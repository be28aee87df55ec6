"""FIRE-Reg-256: retinal fundus patch pairs, from the real FIRE data set or the offline proxy.

Convention
----------
Items are dicts (see :mod:`regkit.data.pairs`): ``moving``, ``fixed`` float32 ``(1, P, P)`` in
[0, 1] (grey level: the green channel of the photographs), ``P = size`` (256 by default);
``landmarks_fixed``, ``landmarks_moving`` ``(K, 2)`` pixels (x, y) with ``landmarks_valid``
``(K,)`` bool (a fixed landmark ``q`` maps to ``q + disp(q)`` = its moving landmark); ``frame``
(the patch's order within its image pair, the temporal position of the GPEReg-Net chapter);
``pair`` (which image pair); ``category`` (FIRE's S, P or A); ``fov_fixed`` / ``fov_moving``.
The proxy adds the exact ``disp`` and more (:mod:`regkit.data.fire_proxy`). The returned data
set says which source it is: ``dataset.source`` is ``"fire"`` or ``"proxy"``.

Real FIRE (Hernandez-Matas et al. 2017)
---------------------------------------
134 pairs of 2912x2912 fundus photographs in three categories (S: 71 pairs with large overlap,
P: 49 with small overlap, A: 14 with anatomical change), laid out as ``FIRE/Images/<C><NN>_1.jpg``
and ``_2.jpg``, ``FIRE/Ground Truth/control_points_<C><NN>_1_2.txt`` (10 rows ``x1 y1 x2 y2`` in
pixels of image 1 and image 2) and ``FIRE/Masks/mask.png`` (the field of view). ``root`` may
hold that layout, its ``FIRE/`` folder, or the archive ``FIRE.7z`` / ``FIRE.zip`` (extracted on
first use, after its SHA-256 is checked against :data:`FIRE_SHA256`; while that is unknown,
only with ``allow_unverified=True``). :func:`download_fire` fetches the archive on request.
With ``root=None`` the folder named by the environment variable ``REGKIT_DATA_ROOT`` is used.

How we cut FIRE-Reg-256 (the paper gives only "134 pairs, 256x256 patches, 8,018 / 978 / 973")
-----------------------------------------------------------------------------------------------
Our choices, stated once here and in the book:

1. Image 1 is *fixed*, image 2 is *moving*; both as green channel, downsampled by ``scale`` (0.5:
   1456 px, where a 256 patch is about a sixth of the field of view).
2. Pre-alignment (the paper calls the pairs "highly overlapping, well-aligned"):
   ``prealign="sift"`` (default) fits an affine to SIFT matches with RANSAC
   (:mod:`regkit.classical.sift_ransac`) on the downsampled images inside their fields of view,
   and resamples image 2 on the fixed grid with it. It does not look at the control points, so
   the landmark error (TRE) stays an independent measurement. ``prealign="control_points"`` fits
   the affine to the 10 control points instead; the TRE is then measured on the very points that
   aligned the pair (``info["landmarks_aligned_the_pair"]`` says so). ``prealign=None`` cuts
   image 2 where image 1 is cut.
3. Patches are a grid of 256x256 windows with stride ``stride`` (96 px) centred on the image;
   a window is kept when at least ``min_coverage`` (95%, as in the proxy) of it lies inside both
   fields of view, so a field-of-view border is at most a sliver of a patch.
   ``frame`` is the window's raster order among the kept ones of its pair.
4. Splits are by image pair (no pair, hence no photograph, in two splits): pairs are shuffled
   with ``seed`` and fill test, then val, then train, each cut at the paper's size; the windows
   of the pair that overflows a split are dropped, not moved. If a copy yields fewer windows
   than the paper's 9,969, every split shrinks in proportion and a warning says so.
5. Control points are moved into each window's pixel frame; a window holds the points of its
   pair that fall inside it (padded to 10 with ``landmarks_valid=False``).

:func:`control_point_residuals` measures what an affine leaves of each pair's control points:
the natural target of the proxy's residual geometry.

Example
-------
>>> ds = fire_reg256("test", source="proxy", size=64, limit=2)
>>> ds.source, tuple(ds[0]["moving"].shape)
('proxy', (1, 64, 64))
"""

from __future__ import annotations

import json
import os
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from .. import spatial
from ..files import atomic_write, sha256sum
from .download import download, extract
from .fire_proxy import PAPER_SPLITS, PROXY_PARAMS, fire_proxy
from .mnist import DataNotFoundError
from .pairs import PairDataset, item_seed

__all__ = ["fire_reg256", "fire_pairs", "download_fire", "prepare_fire", "build_fire_index",
           "control_point_residuals", "PAPER_SPLITS", "PROXY_PARAMS", "FIRE_URL", "FIRE_SHA256", "DATA_ROOT_ENV"]

FIRE_URL = "https://projects.ics.forth.gr/cvrl/fire/FIRE.7z"
"""Where FIRE's authors publish the archive (a 7z file; extracting it needs ``py7zr``).
Not checked here: there was no network when this was written."""

FIRE_SHA256 = None
"""SHA-256 of ``FIRE.7z``: unknown to us (the archive could not be fetched offline). Until it is
recorded here, an archive is used only with ``allow_unverified=True``, and its digest is shown
so that it can be recorded."""

DATA_ROOT_ENV = "REGKIT_DATA_ROOT"
"""Environment variable naming the data folder used when ``root=None``."""

ARCHIVE_NAMES = ("FIRE.7z", "FIRE.zip")
_SPLITS = ("train", "val", "test")
_PREALIGN = ("sift", "control_points", None)


def _check_split(split: str) -> str:
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    return split


def _root(root):
    if root is None:
        root = os.environ.get(DATA_ROOT_ENV) or None
    return None if root is None else Path(root)


def _fire_dir(root) -> Path | None:
    root = _root(root)
    if root is None:
        return None
    for cand in (root, root / "FIRE"):
        if (cand / "Images").is_dir() and (cand / "Ground Truth").is_dir():
            return cand
    return None


def _archive(root) -> Path | None:
    root = _root(root)
    if root is None:
        return None
    for name in ARCHIVE_NAMES:
        if (root / name).is_file():
            return root / name
    return None


def prepare_fire(root, *, allow_unverified: bool = False, sha256: str | None = FIRE_SHA256) -> Path:
    """The FIRE folder under ``root``, extracting ``root/FIRE.7z`` (or ``FIRE.zip``) if needed.

    The archive's SHA-256 is checked against ``sha256`` (default :data:`FIRE_SHA256`); while that
    is ``None`` the archive is extracted only with ``allow_unverified=True``, and a warning shows
    its digest so that it can be recorded. Returns the folder holding ``Images/``.
    """
    d = _fire_dir(root)
    if d is not None:
        return d
    archive = _archive(root)
    if archive is None:
        raise DataNotFoundError(
            f"no FIRE layout under {str(root)!r}: expected Images/ and 'Ground Truth/' (or FIRE/Images ...) or "
            f"an archive named {' or '.join(ARCHIVE_NAMES)}. Get it with regkit.data.download_fire(root) "
            "(needs the network and py7zr), or use source='proxy'."
        )
    digest = sha256sum(archive)
    if sha256 is None:
        if not allow_unverified:
            raise ValueError(
                f"{archive.name}: no SHA-256 is recorded for the FIRE archive (FIRE_SHA256 is None), so it cannot "
                f"be verified; its digest is {digest}. Pass allow_unverified=True to use it anyway, or "
                "sha256=<the digest you trust>"
            )
        warnings.warn(f"using {archive.name} without a recorded checksum; its SHA-256 is {digest} "
                      "(record it in regkit.data.fire.FIRE_SHA256)", UserWarning, stacklevel=2)
    elif digest != sha256.lower():
        raise ValueError(f"checksum mismatch for {archive.name}: expected sha256 {sha256.lower()}, got {digest}")
    extract(archive, archive.parent)
    d = _fire_dir(archive.parent)
    if d is None:
        raise ValueError(f"{archive.name} did not contain the FIRE layout (Images/, 'Ground Truth/')")
    return d


def fire_pairs(root) -> list[dict]:
    """The image pairs of a FIRE folder: ``name``, ``category``, ``fixed``/``moving`` paths, ``points`` ``(K, 4)``.

    ``points`` rows are ``x1 y1 x2 y2`` (pixels of image 1 = fixed and image 2 = moving).
    """
    d = _fire_dir(root)
    if d is None:
        if _archive(root) is None:
            prepare_fire(root)                      # raises the explanatory DataNotFoundError
        raise DataNotFoundError(f"{str(root)!r} holds a FIRE archive that is not extracted yet: "
                                "call regkit.data.fire.prepare_fire(root, allow_unverified=...) first")
    out = []
    for gt in sorted((d / "Ground Truth").glob("control_points_*_1_2.txt")):
        name = gt.name[len("control_points_"):-len("_1_2.txt")]
        im1, im2 = d / "Images" / f"{name}_1.jpg", d / "Images" / f"{name}_2.jpg"
        if not (im1.is_file() and im2.is_file()):
            raise ValueError(f"FIRE pair {name}: missing {im1.name} or {im2.name} in {d / 'Images'}")
        try:
            pts = np.loadtxt(gt, ndmin=2, dtype=np.float64)
        except ValueError as err:
            raise ValueError(f"{gt.name}: control points must be rows of 'x1 y1 x2 y2' numbers ({err})") from None
        if pts.ndim != 2 or pts.shape[1] != 4 or len(pts) < 3:
            raise ValueError(f"{gt.name}: expected at least 3 rows 'x1 y1 x2 y2', got shape {pts.shape}")
        out.append({"name": name, "category": name[0], "fixed": im1, "moving": im2, "points": pts})
    if not out:
        raise DataNotFoundError(f"no control_points_*_1_2.txt files in {d / 'Ground Truth'}")
    return out


def download_fire(root, url: str = FIRE_URL, sha256: str | None = FIRE_SHA256, *, allow_unverified: bool = False,
                  overwrite: bool = False) -> Path:
    """Download the FIRE archive into ``root`` (SHA-256 checked, atomic) and extract it safely.

    Only runs when called; a ``root`` that already holds the FIRE layout is returned as it is.
    ``sha256=None`` (the default while :data:`FIRE_SHA256` is unknown) is refused unless
    ``allow_unverified=True``; the digest of what was downloaded is then shown in a warning.
    ``overwrite=True`` lets the extraction replace existing entries of the same name in ``root``.
    Returns the folder holding ``Images/``.
    """
    if sha256 is None and not allow_unverified:
        raise ValueError(
            "sha256 is unknown for the FIRE archive: pass sha256=<hex digest you trust>, or "
            "allow_unverified=True to download without a check"
        )
    root = Path(root)
    d = _fire_dir(root)
    if d is not None and not overwrite:
        return d
    name = Path(url.split("?")[0]).name or "FIRE.archive"
    archive = download(url, root / name, sha256)
    if sha256 is None:
        warnings.warn(f"downloaded {name} without a checksum; its SHA-256 is {sha256sum(archive)} "
                      "(record it in regkit.data.fire.FIRE_SHA256)", UserWarning, stacklevel=2)
    extract(archive, root, overwrite=overwrite)
    d = _fire_dir(root)
    if d is None:
        raise ValueError(f"{name} did not contain the FIRE layout (Images/, 'Ground Truth/')")
    return d


def control_point_residuals(root, scale: float = 0.5) -> list[dict]:
    """What a least-squares affine leaves of each pair's control points, in pixels at ``scale``.

    For each pair: ``name``, ``category``, ``rms`` and ``max`` of the residuals of all points
    (in-sample), and ``loo`` the mean leave-one-out residual (each point predicted by the affine
    of the other points), which does not flatter a 6-parameter fit to 10 points. This is the
    geometry that an affine pre-alignment leaves, the target of the proxy's residual field.
    """
    out = []
    for rec in fire_pairs(root):
        q = torch.from_numpy(rec["points"][:, :2] * scale)
        m = torch.from_numpy(rec["points"][:, 2:] * scale)
        theta = spatial.fit_affine(q, m)
        res = (q @ theta[:, :2].T + theta[:, 2] - m).norm(dim=1)
        loo = []
        for j in range(len(q)):
            keep = torch.arange(len(q)) != j
            if int(keep.sum()) >= 3:
                t = spatial.fit_affine(q[keep], m[keep])
                loo.append(float((q[j] @ t[:, :2].T + t[:, 2] - m[j]).norm()))
        out.append({"name": rec["name"], "category": rec["category"], "rms": float(res.pow(2).mean().sqrt()),
                    "max": float(res.max()), "loo": float(np.mean(loo)) if loo else float("nan")})
    return out


def _read_green(path: Path, scale: float) -> torch.Tensor:
    from skimage import io

    img = io.imread(path)
    g = img[..., 1] if img.ndim == 3 else img
    x = torch.from_numpy(np.asarray(g, dtype=np.float32) / (255.0 if g.dtype == np.uint8 else float(g.max() or 1)))
    x = x[None, None]
    if scale != 1.0:
        h, w = x.shape[-2:]
        x = spatial.resize_image(x, (round(h * scale), round(w * scale)), antialias=scale < 1)
    return x.clamp(0, 1)


def _fov(d: Path, img: torch.Tensor) -> torch.Tensor:
    mpath = d / "Masks" / "mask.png"
    if mpath.is_file():
        from skimage import io

        m = torch.from_numpy(np.asarray(io.imread(mpath)) > 0)
        m = m[..., 0] if m.ndim == 3 else m
        if tuple(m.shape) != tuple(img.shape[-2:]):
            m = spatial.resize_image(m[None, None].float(), img.shape[-2:], mode="nearest")[0, 0] > 0.5
        return m[None, None]
    return img > 0.04


def _sift_affine(fixed, moving, fov_f, fov_m, name: str) -> tuple[torch.Tensor, int]:
    """Affine fixed -> image 2 from SIFT + RANSAC on the images inside their fields of view."""
    try:
        from ..classical.sift_ransac import sift_ransac
    except ImportError as err:  # pragma: no cover - needs OpenCV missing
        raise ImportError(f"prealign='sift' needs OpenCV ({err}); install opencv-python-headless or pass "
                          "prealign='control_points'") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = sift_ransac(moving * fov_m, fixed * fov_f, n_features=4000, seed=0)
    ok = bool(res.extras["ok"][0])
    if not ok:
        warnings.warn(f"FIRE pair {name}: SIFT + RANSAC found no affine; the pair is left unaligned",
                      RuntimeWarning, stacklevel=3)
    return res.params[0].float(), int(res.extras["n_inliers"][0]), ok


def _load_pair(d: Path, rec: dict, scale: float, prealign, theta=None):
    """Fixed, pre-aligned moving, FOV masks, control points; and the affine used (or None)."""
    fixed, moving = _read_green(rec["fixed"], scale), _read_green(rec["moving"], scale)
    if fixed.shape != moving.shape:
        raise ValueError(f"FIRE pair {rec['name']}: images differ in size")
    fov_f = _fov(d, fixed)
    fov_m = _fov(d, moving)
    q, m = rec["points"][:, :2] * scale, rec["points"][:, 2:] * scale
    info = {"inliers": None, "ok": True}
    if prealign is not None:
        if theta is None:
            if prealign == "control_points":
                theta = spatial.fit_affine(torch.from_numpy(q), torch.from_numpy(m)).float()
            else:
                theta, info["inliers"], info["ok"] = _sift_affine(fixed, moving, fov_f.float(), fov_m.float(), rec["name"])
        disp = spatial.affine_to_disp(theta[None], fixed.shape[-2:])
        moving = spatial.warp(moving, disp)
        fov_m = spatial.warp_labels(fov_m.to(torch.uint8), disp).bool()
        inv = spatial.invert_affine(theta[None])[0].double().numpy()
        m = m @ inv[:, :2].T + inv[:, 2]                               # moving points on the resampled image
    info["theta"] = None if theta is None else theta.tolist()
    return fixed[0], moving[0], fov_f[0], fov_m[0], q, m, info


_INDEX_CACHE: dict = {}
_ALIGN_FILE = "regkit_fire_prealign.json"


def _align_cache(d: Path) -> dict:
    path = d / _ALIGN_FILE
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def build_fire_index(root, *, scale: float = 0.5, stride: int = 96, patch: int = 256, min_coverage: float = 0.95,
                     prealign="sift", seed: int = 0, sizes: dict | None = None) -> dict:
    """Cut the FIRE-Reg-256 windows and split them (see the module docstring).

    Returns ``{split: [records], "align": {pair: {"theta", "inliers"}}}``. The pre-alignment
    affines are computed once and kept in ``regkit_fire_prealign.json`` in the FIRE folder.
    """
    if prealign not in _PREALIGN:
        raise ValueError(f"prealign must be one of {_PREALIGN}, got {prealign!r}")
    d = _fire_dir(root)
    pairs = fire_pairs(root)
    key = (str(d.resolve()), scale, stride, patch, min_coverage, prealign, seed, str(sizes))
    if key in _INDEX_CACHE:
        return _INDEX_CACHE[key]
    cache = _align_cache(d)
    ckey = f"{prealign}@{scale}"
    stored = cache.get(ckey, {})
    align, per_pair = {}, []
    for rec in pairs:
        theta = stored.get(rec["name"], {}).get("theta")
        theta = None if theta is None else torch.tensor(theta, dtype=torch.float32)
        fixed, _moving, fov_f, fov_m, _q, _m, info = _load_pair(d, rec, scale, prealign, theta)
        align[rec["name"]] = stored.get(rec["name"], info) if theta is not None else info
        h, w = fixed.shape[-2:]
        both = (fov_f & fov_m)[0].float()
        wins = []
        ny, nx = (h - patch) // stride + 1, (w - patch) // stride + 1
        oy, ox = (h - patch - (ny - 1) * stride) // 2, (w - patch - (nx - 1) * stride) // 2
        for r in range(ny):
            for c in range(nx):
                y0, x0 = oy + r * stride, ox + c * stride
                if float(both[y0:y0 + patch, x0:x0 + patch].mean()) >= min_coverage:
                    wins.append((y0, x0))
        per_pair.append([{"pair": rec["name"], "category": rec["category"], "y0": y0, "x0": x0, "frame": f}
                         for f, (y0, x0) in enumerate(wins)])
    if prealign is not None and stored != align:
        try:
            with atomic_write(d / _ALIGN_FILE, "w", suffix=".json") as f:
                json.dump(dict(cache, **{ckey: align}), f)
        except OSError:  # a read-only data folder: recompute next time
            pass
    want = dict(PAPER_SPLITS, **(sizes or {}))
    total = sum(len(p) for p in per_pair)
    if total < sum(want.values()):
        factor = total / sum(want.values())
        want = {k: int(v * factor) for k, v in want.items()}
        warnings.warn(f"FIRE gave {total} windows, fewer than the paper's {sum(PAPER_SPLITS.values())}: "
                      f"splits shrunk in proportion to {want}", stacklevel=2)
    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(item_seed("fire_split", seed))).tolist()
    out = {s: [] for s in _SPLITS}
    fill = iter(("test", "val", "train"))
    current = next(fill)
    for j in order:
        while current is not None and len(out[current]) >= want[current]:
            current = next(fill, None)
        if current is None:
            break
        out[current].extend(per_pair[j][: want[current] - len(out[current])])
    out["align"] = align
    _INDEX_CACHE[key] = out
    return out


def _fire_dataset(split, seed, limit, root, scale, stride, prealign, sizes, size, min_coverage, device) -> PairDataset:
    d = _fire_dir(root)
    full = build_fire_index(root, scale=scale, stride=stride, prealign=prealign, seed=seed, sizes=sizes,
                            min_coverage=min_coverage)
    index = full[split]
    recs = {r["name"]: r for r in fire_pairs(root)}
    cache: OrderedDict = OrderedDict()
    k_max = max(len(r["points"]) for r in recs.values())
    ps = 256
    f = (size - 1) / (ps - 1)
    dev = torch.device(device) if device is not None else torch.device("cpu")

    def make(index_: int, g: torch.Generator) -> dict:
        w = index[index_]
        if w["pair"] not in cache:
            theta = full["align"].get(w["pair"], {}).get("theta")
            theta = None if theta is None else torch.tensor(theta, dtype=torch.float32)
            cache[w["pair"]] = _load_pair(d, recs[w["pair"]], scale, prealign, theta)
            while len(cache) > 2:
                cache.popitem(last=False)
        fixed, moving, fov_f, fov_m, q, m, _info = cache[w["pair"]]
        y0, x0 = w["y0"], w["x0"]
        off = np.array([x0, y0], dtype=np.float64)
        qi, mi = q - off, m - off
        inside = (qi >= 0).all(1) & (qi[:, 0] <= ps - 1) & (qi[:, 1] <= ps - 1)
        lf, lm = torch.zeros(k_max, 2), torch.zeros(k_max, 2)
        n_in = int(inside.sum())
        lf[:n_in] = torch.from_numpy(qi[inside] * f).float()
        lm[:n_in] = torch.from_numpy(mi[inside] * f).float()
        valid = torch.arange(k_max) < n_in
        win = (slice(None), slice(y0, y0 + ps), slice(x0, x0 + ps))
        mov, fix = moving[win][None], fixed[win][None]
        fm, ff = fov_m[win][None], fov_f[win][None]
        if size != ps:
            mov = spatial.resize_image(mov, (size, size), antialias=size < ps)
            fix = spatial.resize_image(fix, (size, size), antialias=size < ps)
            fm = spatial.resize_image(fm.float(), (size, size), mode="nearest") > 0.5
            ff = spatial.resize_image(ff.float(), (size, size), mode="nearest") > 0.5
        item = {
            "moving": mov[0].clamp(0, 1), "fixed": fix[0].clamp(0, 1),
            "landmarks_moving": lm, "landmarks_fixed": lf, "landmarks_valid": valid,
            "fov_moving": fm[0].clone(), "fov_fixed": ff[0].clone(),
            "frame": w["frame"], "pair": w["pair"], "category": w["category"], "source": "FIRE",
        }
        return {k: (v.to(dev) if isinstance(v, torch.Tensor) else v) for k, v in item.items()}

    cats = {c: sum(1 for r in recs.values() if r["category"] == c) for c in "SPA"}
    info = {"dataset": "FIRE-Reg-256", "source": "fire", "description": "FIRE (real photographs)",
            "root": str(d), "scale": scale, "stride": stride, "size": size, "min_coverage": min_coverage,
            "prealign": prealign, "landmarks_aligned_the_pair": prealign == "control_points",
            "prealign_failed": sorted(k for k, v in full["align"].items() if not v.get("ok", True)),
            "split_sizes": {s: len(full[s]) for s in _SPLITS}, "categories": cats}
    return PairDataset("fire_reg256", split, len(index), make, seed=seed, limit=limit, info=info)


def fire_reg256(split: str, source: str = "auto", root=None, seed: int = 0, *, limit: int | None = None,
                params: dict | None = None, sizes: dict | None = None, size: int = 256, device=None,
                scale: float = 0.5, stride: int = 96, prealign="sift", min_coverage: float = 0.95,
                allow_unverified: bool = False) -> PairDataset:
    """FIRE-Reg-256 patch pairs (see the module docstring).

    Parameters
    ----------
    split : {"train", "val", "test"}
    source : {"auto", "fire", "proxy"}
        ``"auto"`` uses the real FIRE under ``root`` when it is there (extracted, or as an
        archive), else the proxy. The result's ``source`` attribute says which it is.
    root : path, optional
        Folder holding FIRE's layout (``Images/``, ``Ground Truth/``), a ``FIRE/`` folder, or
        ``FIRE.7z``; default: the environment variable ``REGKIT_DATA_ROOT``.
    seed : int
        Same seed, same data (for the real set: the pair-level split).
    limit : int, optional
        The first ``limit`` items (a small run); ``regkit.by_profile`` picks it in chapters.
    params : dict, optional
        Overrides of :data:`PROXY_PARAMS` (proxy only).
    sizes : dict, optional
        Split sizes other than the paper's (e.g. for a small copy of FIRE).
    size : int
        Patch side of the items (the 256 windows are resized for the real set; the proxy is made
        at that size).
    device : torch.device or str, optional
        Where items are made (proxy) and returned.
    scale, stride, prealign, min_coverage
        How the real images are cut (see the module docstring).
    allow_unverified : bool
        Extract a FIRE archive found under ``root`` although no SHA-256 is recorded for it.
    """
    _check_split(split)
    if source not in ("auto", "fire", "proxy"):
        raise ValueError(f"source must be 'auto', 'fire' or 'proxy', got {source!r}")
    if prealign not in _PREALIGN:
        raise ValueError(f"prealign must be one of {_PREALIGN}, got {prealign!r}")
    real = source == "fire" or (source == "auto" and (_fire_dir(root) is not None or _archive(root) is not None))
    if real:
        if params:
            raise ValueError("params applies to the proxy only")
        if isinstance(size, bool) or not isinstance(size, int) or size < 8:
            raise ValueError(f"size must be an integer of at least 8, got {size!r}")
        prepare_fire(_root(root), allow_unverified=allow_unverified)
        return _fire_dataset(split, seed, limit, root, scale, stride, prealign, sizes, size, min_coverage, device)
    return fire_proxy(split, seed, limit=limit, params=params, sizes=sizes, size=size, device=device)
