"""FIRE-Reg-256: retinal fundus patch pairs, from the real FIRE data set or an offline proxy.

Convention
----------
Items are dicts (see :mod:`regkit.data.pairs`): ``moving``, ``fixed`` float32 ``(1, 256, 256)``
in [0, 1] (grey level: the green channel for photographs); ``landmarks_fixed``,
``landmarks_moving`` ``(K, 2)`` pixels (x, y) with ``landmarks_valid`` ``(K,)`` bool (a fixed
landmark ``q`` maps to ``q + disp(q)`` = its moving landmark); ``frame`` (the patch's order within
its image pair, the temporal position of the GPEReg-Net chapter); ``pair`` (which image pair);
``category`` (FIRE's S, P or A). The proxy adds the exact ``disp`` ``(2, H, W)`` (pull field on the
fixed grid: ``spatial.warp(moving, disp) ≈ fixed`` up to the appearance shift), vessel masks
``mask_fixed`` / ``mask_moving``, field-of-view masks ``fov_fixed`` / ``fov_moving`` and the
``appearance`` ``(gain, bias, gamma)`` applied to the moving image.

Real FIRE (Hernandez-Matas et al. 2017)
---------------------------------------
134 pairs of 2912x2912 fundus photographs in three categories (S: large overlap, P: small
overlap, A: anatomical change), laid out as ``FIRE/Images/<C><NN>_1.jpg`` and ``_2.jpg``,
``FIRE/Ground Truth/control_points_<C><NN>_1_2.txt`` (10 rows ``x1 y1 x2 y2`` in pixels of image 1
and image 2) and ``FIRE/Masks/mask.png`` (the field of view). ``root`` may hold that layout or its
``FIRE/`` folder directly. :func:`download_fire` fetches and extracts the archive on request.

How we cut FIRE-Reg-256 (the paper gives only "134 pairs, 256x256 patches, 8,018 / 978 / 973")
-----------------------------------------------------------------------------------------------
Our choices, stated once here and in the book:

1. Image 1 is *fixed*, image 2 is *moving*; both as green channel, downsampled by ``scale`` (0.5:
   1456 px, where a 256 patch is about a sixth of the field of view).
2. ``prealign="affine"``: the least-squares affine from the 10 control points maps the fixed grid
   into image 2, and image 2 is resampled on the fixed grid with it, so the patches are the
   "highly overlapping, well-aligned pairs" the paper describes (its unregistered NCC is 0.762);
   what is left to register is the residual: lens and eye-curvature distortion, control-point
   noise, and the appearance change. ``prealign=None`` cuts image 2 where image 1 is cut.
3. Patches are a grid of 256x256 windows with stride ``stride`` (112 px) centred on the image;
   a window is kept when at least ``min_coverage`` (60%) of it lies inside both fields of view.
   ``frame`` is the window's raster order among the kept ones of its pair.
4. Splits are by image pair (no pair in two splits): pairs are shuffled with ``seed`` and fill
   test, then val, then train, each cut at the paper's size (973, 978, 8,018); the windows of the
   pair that overflows a split are dropped, not moved. With 11x11 windows per pair there are
   about 80 kept per pair, enough for 9,969; if a copy yields fewer, every split shrinks in
   proportion and a warning says so. We could not run this on the real archive here, so the
   number of kept windows is an estimate.
5. Control points are moved into each window's pixel frame; a window holds the points of its
   pair that fall inside it (padded to 10 with ``landmarks_valid=False``).

Offline proxy (``source="proxy"``, used by the tests and the built book)
-----------------------------------------------------------------------
Each proxy "image pair" is a 512x512 fundus scene: every ``real_every``-th (4th) pair the real
photograph that scikit-image ships (randomly mirrored), the others a procedural fundus
(:mod:`regkit.data.fundus`). The moving scene is the scene under a semi-rigid map, an affine
(rotation, scale, shear, translation) composed with a small smooth diffeomorphism (scaling and
squaring of a random velocity), then a global appearance shift
(:mod:`regkit.data.appearance`). The 3x3 grid of 256x256 windows with stride 128 gives 9 frames
per pair, in raster order; both images get white noise. Landmarks: 10 points drawn on the fixed
window's vessels, carried to the moving window by the exact field. :data:`PROXY_PARAMS` was
calibrated so that the unregistered test row matches the paper's Table 1 (see
:mod:`regkit.data.calibration`).
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from .. import spatial
from . import appearance
from .download import download, extract
from .fundus import retina_photo, synth_fundus
from .mnist import DataNotFoundError
from .pairs import PairDataset, item_seed, merge_params

__all__ = ["fire_reg256", "fire_pairs", "download_fire", "build_fire_index", "PAPER_SPLITS", "PROXY_PARAMS",
           "FIRE_URL", "FIRE_SHA256"]

PAPER_SPLITS = {"train": 8018, "val": 978, "test": 973}
"""FIRE-Reg-256 split sizes stated by the GPEReg-Net paper."""

FIRE_URL = "https://projects.ics.forth.gr/cvrl/fire/FIRE.7z"
"""Where FIRE's authors publish the archive (a 7z file; extracting it needs ``py7zr``).
Not checked here: there was no network when this was written."""

FIRE_SHA256 = None
"""SHA-256 of ``FIRE.7z``: unknown to us (the archive could not be fetched offline). Pass the
hash you trust to :func:`download_fire`, or ``sha256=None, allow_unverified=True`` knowingly."""

PROXY_PARAMS = {
    "scene": 512, "patch": 256, "grid": 3,
    "rotation": 6.0, "scale": 0.04, "shear": 2.0, "translation": 42.0,    # degrees, relative, degrees, px
    "smooth_disp": 8.0, "smooth_control": 5,                              # px, control points per side
    "gain": (0.9, 1.1), "bias": (-0.03, 0.03), "gamma": (0.85, 1.18),     # appearance of the moving image
    "noise": 0.016, "brightness": 0.7, "real_every": 4, "landmarks": 10,
}
"""Parameters of the FIRE proxy (pixels of the 512 scene); calibrated, see :mod:`regkit.data.calibration`."""

_SPLITS = ("train", "val", "test")


def _check_split(split: str) -> str:
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    return split


# ----------------------------------------------------------------------------------------------
# Offline proxy
# ----------------------------------------------------------------------------------------------

_SCENES: OrderedDict = OrderedDict()


def _proxy_scene(split: str, seed: int, pair: int, params: dict) -> dict:
    key = (split, seed, pair, tuple(sorted((k, str(v)) for k, v in params.items())))
    if key in _SCENES:
        _SCENES.move_to_end(key)
        return _SCENES[key]
    p = params
    g = torch.Generator().manual_seed(item_seed("fire_proxy_pair", split, seed, pair))
    s = p["scene"]
    if p["real_every"] and pair % p["real_every"] == 0:
        base = retina_photo(s)
        img, ves, fov = base["image"], base["vessels"], base["fov"]
        if bool(torch.rand((), generator=g) < 0.5):
            img, ves, fov = img.flip(-1), ves.flip(-1), fov.flip(-1)
        source = "skimage_retina"
    else:
        base = synth_fundus(s, g)
        img, ves, fov = base["image"], base["vessels"], base["fov"]
        source = "procedural"
    img = img * p["brightness"]
    theta = spatial.random_affine(1, (s, s), rotation=p["rotation"], scale=p["scale"], shear=p["shear"],
                                  translation=p["translation"], generator=g)
    # the smooth part is integrated on a coarse grid (it is smooth) and upsampled; the affine part is exact
    c = max(s // 4, 32)
    v = spatial.random_smooth_disp(1, (c, c), max_disp=p["smooth_disp"] * (c - 1) / (s - 1),
                                   control=p["smooth_control"], diffeomorphic=False, generator=g)
    sm = spatial.resize_disp(spatial.integrate_velocity(v, 6), (s, s))
    sm_inv = spatial.resize_disp(spatial.integrate_velocity(-v, 6), (s, s))
    a, a_inv = spatial.affine_to_disp(theta, (s, s)), spatial.affine_to_disp(spatial.invert_affine(theta), (s, s))
    u = spatial.compose(a, sm)              # fixed p -> moving  A(p + s(p))
    d_moving = spatial.compose(sm_inv, a_inv)  # moving scene = scene pulled through the inverse map
    moving = spatial.warp(img[None], d_moving)[0]
    app = appearance.draw(p["gain"], p["bias"], p["gamma"], generator=g)
    scene = {
        "fixed": img, "moving": appearance.apply(moving, app), "disp": u[0],
        "mask_fixed": ves, "mask_moving": spatial.warp_labels(ves[None].to(torch.uint8), d_moving)[0].bool(),
        "fov_fixed": fov, "fov_moving": spatial.warp_labels(fov[None].to(torch.uint8), d_moving)[0].bool(),
        "appearance": app, "source": source,
    }
    _SCENES[key] = scene
    while len(_SCENES) > 8:
        _SCENES.popitem(last=False)
    return scene


def _sample_landmarks(mask: torch.Tensor, fallback: torch.Tensor, k: int, margin: int, g) -> torch.Tensor:
    """``k`` points (x, y) on ``mask`` (else ``fallback``, else anywhere) at least ``margin`` from the border."""
    h, w = mask.shape[-2:]
    inner = torch.zeros(h, w, dtype=torch.bool)
    inner[margin:h - margin, margin:w - margin] = True
    for cand in (mask[0] & inner, fallback[0] & inner, inner):
        ys, xs = torch.nonzero(cand, as_tuple=True)
        if len(ys) >= k:
            break
    pick = torch.randperm(len(ys), generator=g)[:k]
    jitter = torch.rand(k, 2, generator=g) - 0.5
    return torch.stack((xs[pick], ys[pick]), 1).float() + jitter


def _proxy_dataset(split: str, seed: int, limit, params: dict | None, sizes: dict | None) -> PairDataset:
    p = merge_params(PROXY_PARAMS, params)
    n_sizes = dict(PAPER_SPLITS, **(sizes or {}))
    ps, grid = p["patch"], p["grid"]
    stride = (p["scene"] - ps) // max(grid - 1, 1)
    frames = grid * grid

    def make(index: int, g: torch.Generator) -> dict:
        pair, frame = divmod(index, frames)
        sc = _proxy_scene(split, seed, pair, p)
        r, c = divmod(frame, grid)
        win = (slice(None), slice(r * stride, r * stride + ps), slice(c * stride, c * stride + ps))
        fixed = appearance.add_noise(sc["fixed"][win], p["noise"], g)
        moving = appearance.add_noise(sc["moving"][win], p["noise"], g)
        disp = sc["disp"][win].clone()
        q = _sample_landmarks(sc["mask_fixed"][win], sc["fov_fixed"][win], p["landmarks"], 16, g)
        m = q + spatial.sample_points(disp[None], q[None])[0]
        return {
            "moving": moving, "fixed": fixed, "disp": disp,
            "landmarks_moving": m, "landmarks_fixed": q, "landmarks_valid": torch.ones(len(q), dtype=torch.bool),
            "mask_moving": sc["mask_moving"][win].clone(), "mask_fixed": sc["mask_fixed"][win].clone(),
            "fov_moving": sc["fov_moving"][win].clone(), "fov_fixed": sc["fov_fixed"][win].clone(),
            "appearance": sc["appearance"].clone(), "frame": frame, "pair": pair, "category": "S",
            "source": sc["source"],
        }

    info = {"dataset": "FIRE-Reg-256", "source": "proxy (procedural fundus + skimage retina)", "params": p,
            "frames_per_pair": frames, "split_sizes": n_sizes}
    return PairDataset("fire_reg256_proxy", split, n_sizes[split], make, seed=seed, limit=limit, info=info)


# ----------------------------------------------------------------------------------------------
# Real FIRE
# ----------------------------------------------------------------------------------------------


def _fire_dir(root) -> Path | None:
    if root is None:
        return None
    root = Path(root)
    for cand in (root, root / "FIRE"):
        if (cand / "Images").is_dir() and (cand / "Ground Truth").is_dir():
            return cand
    return None


def fire_pairs(root) -> list[dict]:
    """The image pairs of a FIRE folder: ``name``, ``category``, ``fixed``/``moving`` paths, ``points`` ``(K, 4)``.

    ``points`` rows are ``x1 y1 x2 y2`` (pixels of image 1 = fixed and image 2 = moving).
    """
    d = _fire_dir(root)
    if d is None:
        raise DataNotFoundError(
            f"no FIRE layout under {root!r}: expected Images/ and 'Ground Truth/' (or FIRE/Images ...). "
            "Get it with regkit.data.download_fire(root) (needs the network and py7zr), or use source='proxy'."
        )
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


def download_fire(root, url: str = FIRE_URL, sha256: str | None = FIRE_SHA256, *, allow_unverified: bool = False) -> Path:
    """Download the FIRE archive into ``root`` (SHA-256 checked, atomic) and extract it safely.

    Only runs when called. ``sha256=None`` is refused unless ``allow_unverified=True``.
    Returns the folder holding ``Images/``.
    """
    if sha256 is None and not allow_unverified:
        raise ValueError(
            "sha256 is unknown for the FIRE archive: pass sha256=<hex digest you trust>, or "
            "allow_unverified=True to download without a check"
        )
    root = Path(root)
    name = Path(url.split("?")[0]).name or "FIRE.archive"
    archive = download(url, root / name, sha256)
    extract(archive, root)
    d = _fire_dir(root)
    if d is None:
        raise ValueError(f"{name} did not contain the FIRE layout (Images/, 'Ground Truth/')")
    return d


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


def _load_pair(d: Path, rec: dict, scale: float, prealign):
    fixed, moving = _read_green(rec["fixed"], scale), _read_green(rec["moving"], scale)
    if fixed.shape != moving.shape:
        raise ValueError(f"FIRE pair {rec['name']}: images differ in size")
    fov_f = _fov(d, fixed)
    fov_m = _fov(d, moving)
    q, m = rec["points"][:, :2] * scale, rec["points"][:, 2:] * scale
    if prealign == "affine":
        theta = spatial.fit_affine(torch.from_numpy(q), torch.from_numpy(m))[None].float()  # fixed -> image 2
        disp = spatial.affine_to_disp(theta, fixed.shape[-2:])
        moving = spatial.warp(moving, disp)
        fov_m = spatial.warp_labels(fov_m.to(torch.uint8), disp).bool()
        inv = spatial.invert_affine(theta)[0].double().numpy()
        m = m @ inv[:, :2].T + inv[:, 2]                               # moving points on the resampled image
    elif prealign is not None:
        raise ValueError(f"prealign must be 'affine' or None, got {prealign!r}")
    return fixed[0], moving[0], fov_f[0], fov_m[0], q, m


_INDEX_CACHE: dict = {}


def build_fire_index(root, *, scale: float = 0.5, stride: int = 112, patch: int = 256, min_coverage: float = 0.6,
                     prealign="affine", seed: int = 0, sizes: dict | None = None) -> dict:
    """Cut the FIRE-Reg-256 windows and split them (see the module docstring); returns ``{split: [records]}``."""
    key = (str(Path(root).resolve()), scale, stride, patch, min_coverage, prealign, seed, str(sizes))
    if key in _INDEX_CACHE:
        return _INDEX_CACHE[key]
    d = _fire_dir(root)
    pairs = fire_pairs(root)
    per_pair = []
    for rec in pairs:
        fixed, _moving, fov_f, fov_m, q, m = _load_pair(d, rec, scale, prealign)
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
    _INDEX_CACHE[key] = out
    return out


def _fire_dataset(split, seed, limit, root, scale, stride, prealign, sizes) -> PairDataset:
    d = _fire_dir(root)
    index = build_fire_index(root, scale=scale, stride=stride, prealign=prealign, seed=seed, sizes=sizes)[split]
    recs = {r["name"]: r for r in fire_pairs(root)}
    cache: OrderedDict = OrderedDict()
    k_max = max(len(r["points"]) for r in recs.values())

    def make(index_: int, g: torch.Generator) -> dict:
        w = index[index_]
        if w["pair"] not in cache:
            cache[w["pair"]] = _load_pair(d, recs[w["pair"]], scale, prealign)
            while len(cache) > 2:
                cache.popitem(last=False)
        fixed, moving, fov_f, fov_m, q, m = cache[w["pair"]]
        y0, x0, ps = w["y0"], w["x0"], 256
        off = np.array([x0, y0], dtype=np.float64)
        qi, mi = q - off, m - off
        inside = (qi >= 0).all(1) & (qi[:, 0] <= ps - 1) & (qi[:, 1] <= ps - 1)
        lf, lm = torch.zeros(k_max, 2), torch.zeros(k_max, 2)
        n_in = int(inside.sum())
        lf[:n_in] = torch.from_numpy(qi[inside]).float()
        lm[:n_in] = torch.from_numpy(mi[inside]).float()
        valid = torch.arange(k_max) < n_in
        win = (slice(None), slice(y0, y0 + ps), slice(x0, x0 + ps))
        return {
            "moving": moving[win].clone(), "fixed": fixed[win].clone(),
            "landmarks_moving": lm, "landmarks_fixed": lf, "landmarks_valid": valid,
            "fov_moving": fov_m[win].clone(), "fov_fixed": fov_f[win].clone(),
            "frame": w["frame"], "pair": w["pair"], "category": w["category"], "source": "FIRE",
        }

    info = {"dataset": "FIRE-Reg-256", "source": "FIRE (real)", "scale": scale, "stride": stride,
            "prealign": prealign, "split_sizes": {s: len(v) for s, v in build_fire_index(
                root, scale=scale, stride=stride, prealign=prealign, seed=seed, sizes=sizes).items()}}
    return PairDataset("fire_reg256", split, len(index), make, seed=seed, limit=limit, info=info)


def fire_reg256(split: str, source: str = "auto", root=None, seed: int = 0, *, limit: int | None = None,
                params: dict | None = None, sizes: dict | None = None, scale: float = 0.5, stride: int = 112,
                prealign="affine") -> PairDataset:
    """FIRE-Reg-256 patch pairs (see the module docstring).

    Parameters
    ----------
    split : {"train", "val", "test"}
    source : {"auto", "fire", "proxy"}
        ``"auto"`` uses the real FIRE under ``root`` when it is there, else the proxy.
    root : path, optional
        Folder holding FIRE's layout (``Images/``, ``Ground Truth/``) or a ``FIRE/`` folder.
    seed : int
        Same seed, same data (for the real set: the pair-level split).
    limit : int, optional
        The first ``limit`` items (a small run); ``regkit.by_profile`` picks it in chapters.
    params : dict, optional
        Overrides of :data:`PROXY_PARAMS` (proxy only).
    sizes : dict, optional
        Split sizes other than the paper's (e.g. for a small copy of FIRE).
    scale, stride, prealign
        How the real images are cut (see the module docstring).
    """
    _check_split(split)
    if source not in ("auto", "fire", "proxy"):
        raise ValueError(f"source must be 'auto', 'fire' or 'proxy', got {source!r}")
    if source == "fire" or (source == "auto" and _fire_dir(root) is not None):
        if params:
            raise ValueError("params applies to the proxy only")
        if _fire_dir(root) is None:
            fire_pairs(root)  # raises the explanatory DataNotFoundError
        return _fire_dataset(split, seed, limit, root, scale, stride, prealign, sizes)
    return _proxy_dataset(split, seed, limit, params, sizes)
