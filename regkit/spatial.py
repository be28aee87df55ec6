r"""Grids, warps and displacement fields: the one place where regkit resamples anything.

Convention
----------
- Images are ``N,C,H,W`` float tensors with intensities in [0, 1].
- A displacement ``u`` is ``N,2,H,W`` **in pixels**; channel 0 is x (columns), channel 1 is y (rows).
- Warping is backward (pull): :math:`\text{warped}(p) = \text{moving}(p + u(p))`; ``u`` lives on
  the fixed grid.
- Pixel ``(x, y) = (0, 0)`` is the centre of the top-left pixel and ``(W-1, H-1)`` the centre of
  the bottom-right one, which is ``grid_sample``'s ``align_corners=True``. Every call of
  ``grid_sample``/``interpolate`` in regkit goes through this module with ``align_corners=True``.
- Warps sample in the inputs' floating dtype (float32 by default, float64 when given float64,
  e.g. for ``torch.autograd.gradcheck``) and stay on the inputs' device. Float16/bfloat16 inputs
  are sampled with float32 coordinates (an 8- or 11-bit mantissa cannot address the pixels of a
  256 px image to 0.01 px) and returned in their dtype. Identity and integer-shift warps are exact
  to 1e-5 of the intensity range up to 257 px: the coordinates are normalised as
  :math:`p / c - 1` with :math:`c = (\text{size} - 1) / 2`, the form whose round trip through
  ``grid_sample`` lands within 7.6e-6 px of an integer :math:`p` at those sizes.
- The identity grid is built once per (size, device, dtype) and cached.
- Public functions check their inputs; regkit's own inner loops (iterative methods, training
  steps) pass ``check=False`` to skip the checks they have already made once.

Example
-------
>>> import torch
>>> from regkit import spatial
>>> img = torch.rand(1, 1, 8, 8)
>>> bool(torch.allclose(spatial.warp(img, torch.zeros(1, 2, 8, 8)), img, atol=1e-5, rtol=0))
True
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import check_disp, check_image, check_positive, check_size, check_tensor

__all__ = [
    "identity_grid",
    "warp",
    "warp_labels",
    "affine_matrix",
    "random_affine",
    "invert_affine",
    "affine_to_disp",
    "disp_to_affine",
    "fit_affine",
    "compose",
    "integrate_velocity",
    "resize_image",
    "resize_disp",
    "jacobian_determinant",
    "inside_mask",
    "sample_points",
    "random_smooth_disp",
    "bspline_basis",
    "bspline_upsample",
]

_MODES = ("bilinear", "nearest", "bicubic")
_PADDINGS = ("border", "zeros", "reflection")


@lru_cache(maxsize=32)
def _identity_grid_cached(h: int, w: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    ys, xs = torch.meshgrid(
        torch.arange(h, device=device, dtype=dtype), torch.arange(w, device=device, dtype=dtype), indexing="ij"
    )
    grid = torch.stack((xs, ys))[None]
    grid.requires_grad_(False)
    return grid


def identity_grid(size, device=None, dtype=torch.float32) -> Tensor:
    """Pixel coordinates of an ``H x W`` grid, shape ``1,2,H,W`` (channel 0 = x, channel 1 = y).

    The tensor is cached per (size, device, dtype): treat it as read-only.

    >>> identity_grid((2, 3))[0, 0]
    tensor([[0., 1., 2.],
            [0., 1., 2.]])
    """
    h, w = check_size("size", size)
    return _identity_grid_cached(h, w, torch.device(device) if device is not None else torch.device("cpu"), dtype)


#: On the CPU a warp is split into chunks of about this many output pixels, so that the sampling
#: grid of a chunk stays in cache instead of being a fresh allocation as large as the batch
#: (at 64 x 256^2 that allocation alone cost as much as half the sampling).
_CPU_CHUNK_PIXELS = 1 << 17


@lru_cache(maxsize=32)
def _half_size(h: int, w: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """``c = ((W-1)/2, (H-1)/2)`` as ``1,2,1,1``: grid_sample reads pixel ``(n + 1) c`` at ``n``."""
    return torch.tensor([(w - 1) / 2.0, (h - 1) / 2.0], device=device, dtype=dtype).view(1, 2, 1, 1)


def _sampling_dtype(*tensors: Tensor) -> torch.dtype:
    """The dtype the sampling runs in: the inputs' common floating dtype, at least float32."""
    dtype = torch.float32
    for t in tensors:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def _normalise(points: Tensor, h: int, w: int) -> Tensor:
    """Pixel coordinates (..., 2) in x, y order to grid_sample's [-1, 1] (align_corners=True).

    ``p / c - 1`` with ``c = (size - 1) / 2``: of the algebraically equal forms, the one whose
    round trip through grid_sample's ``(n + 1) c`` lands closest to integer ``p`` in float32
    (within 1e-5 px for every size up to 257 px, checked size by size; ``(p - c) / c`` and
    ``2p / (size - 1) - 1`` miss by up to 1.5e-5 px on a quarter of those sizes).
    """
    c = torch.tensor([(w - 1) / 2.0, (h - 1) / 2.0], device=points.device, dtype=points.dtype)
    return points / c - 1


def _grid_of(disp: Tensor, h: int, w: int) -> Tensor:
    """grid_sample's normalised grid ``N,H,W,2`` of the sample points ``id + disp`` (see :func:`_normalise`)."""
    c = _half_size(h, w, disp.device, disp.dtype)
    # one temporary, updated in place: autograd-safe (neither add nor div saves its output)
    grid = torch.add(_identity_grid_cached(h, w, disp.device, disp.dtype), disp).div_(c).sub_(1.0)
    return grid.permute(0, 2, 3, 1)


def _sample_grid(image: Tensor, disp: Tensor, mode: str, padding: str) -> Tensor:
    """Unchecked pull warp of ``image`` by ``disp`` (same N, disp ``N,2,H,W``).

    Samples in :func:`_sampling_dtype`; returns the inputs' common dtype.
    """
    out_dtype = torch.promote_types(image.dtype, disp.dtype)
    dtype = _sampling_dtype(image, disp)
    image, disp = image.to(dtype), disp.to(dtype)
    n, _, h, w = disp.shape
    step = n
    if disp.device.type == "cpu":
        step = max(torch.get_num_threads(), _CPU_CHUNK_PIXELS // (h * w), 1)
    if step >= n:
        return F.grid_sample(image, _grid_of(disp, h, w), mode=mode, padding_mode=padding,
                             align_corners=True).to(out_dtype)

    def chunk(i):
        return F.grid_sample(image[i : i + step], _grid_of(disp[i : i + step], h, w), mode=mode,
                             padding_mode=padding, align_corners=True)

    if torch.is_grad_enabled() and (image.requires_grad or disp.requires_grad):
        return torch.cat([chunk(i) for i in range(0, n, step)]).to(out_dtype)
    # the output is allocated first and filled chunk by chunk: with torch.cat the large result
    # came after the chunks' temporaries and was often fresh memory (page faults: +40%)
    out = torch.empty((n, image.shape[1], h, w), dtype=out_dtype, device=image.device)
    for i in range(0, n, step):
        out[i : i + step] = chunk(i)
    return out


def _check_warp_args(image: Tensor, disp: Tensor, mode: str, padding: str) -> None:
    check_image("image", image)
    check_disp("disp", disp, like=image)
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if padding not in _PADDINGS:
        raise ValueError(f"padding must be one of {_PADDINGS}, got {padding!r}")
    if image.device != disp.device:
        raise ValueError(f"image and disp must be on the same device, got {image.device} and {disp.device}")
    if min(disp.shape[-2:]) < 2:
        raise ValueError(f"disp must be at least 2 x 2 pixels (align_corners=True), got {tuple(disp.shape[-2:])}")


def warp(image: Tensor, disp: Tensor, mode: str = "bilinear", padding: str = "border", *, check: bool = True) -> Tensor:
    r"""Pull-warp an image batch: :math:`\text{out}(p) = \text{image}(p + \text{disp}(p))`.

    Parameters
    ----------
    image : Tensor ``N,C,H,W`` float
        The moving image (or any multi-channel field, e.g. another displacement).
    disp : Tensor ``N,2,H,W`` float, pixels
        Displacement on the output (fixed) grid; channel 0 = x, channel 1 = y. At least 2 x 2.
    mode : {"bilinear", "nearest", "bicubic"}
    padding : {"border", "zeros", "reflection"}
        What is read outside the image. Images use ``"border"``; labels use
        :func:`warp_labels` (nearest + zeros).
    check : bool
        Validate the inputs (shapes, finiteness, options). ``False`` is for inner loops whose
        inputs were checked once; bad input then gives undefined results.

    Returns
    -------
    Tensor ``N,C,H,W`` on the inputs' device, in their common dtype (``torch.promote_types``);
    sampled in float32, or float64 for float64 inputs.

    Convention
    ----------
    Pixel units, channel 0 = x; ``align_corners=True``: pixel ``(0, 0)`` is the centre of the
    top-left pixel. Identity and integer shifts are exact to 1e-5 up to 256 px.

    Example
    -------
    >>> img = torch.arange(16.).reshape(1, 1, 4, 4)
    >>> shift = torch.zeros(1, 2, 4, 4); shift[:, 0] = 1.0   # read one pixel to the right
    >>> warp(img, shift)[0, 0, 0].tolist()
    [1.0, 2.0, 3.0, 3.0]
    """
    if check:
        _check_warp_args(image, disp, mode, padding)
    return _sample_grid(image, disp, mode, padding)


def warp_labels(labels: Tensor, disp: Tensor) -> Tensor:
    """Warp a label map ``N,C,H,W`` (any dtype) with nearest-neighbour lookup and zero padding.

    The result keeps the dtype of ``labels``.

    >>> lab = torch.zeros(1, 1, 4, 4, dtype=torch.long); lab[..., 1:3, 1:3] = 2
    >>> warp_labels(lab, torch.zeros(1, 2, 4, 4)).equal(lab)
    True
    """
    check_tensor("labels", labels, ndim=4, floating=False)
    check_disp("disp", disp, like=labels)
    out = _sample_grid(labels.float(), disp, "nearest", "zeros")
    return out.round().to(labels.dtype) if not labels.is_floating_point() else out.to(labels.dtype)


# ----------------------------------------------------------------------------------------------
# Affine transforms (pixel coordinates)
# ----------------------------------------------------------------------------------------------


def affine_matrix(size, rotation=0.0, scale=1.0, shear=0.0, tx=0.0, ty=0.0) -> Tensor:
    r"""Affine matrices ``N,2,3`` in pixel coordinates, built about the image centre.

    The matrix maps a fixed-grid point :math:`p` to the moving-image point
    :math:`A(p - c) + c + t` with :math:`c = ((W-1)/2, (H-1)/2)`,
    :math:`A = R(\text{rotation})\,\mathrm{Sh}(\text{shear})\,\text{scale}`, angles in degrees,
    :math:`t = (t_x, t_y)` in pixels. Each argument is a number or a 1-D tensor of length N
    (numbers are broadcast to the tensors' N).

    Because warping pulls, the matrix moves the *sampling points*: with a positive rotation they
    turn clockwise on screen (y points down), so the warped content turns counter-clockwise;
    ``scale > 1`` reads farther from the centre, so the content shrinks; ``tx > 0`` reads to the
    right, so the content moves left.

    >>> affine_matrix((5, 5), tx=2.0)
    tensor([[[1., 0., 2.],
             [0., 1., 0.]]])
    """
    h, w = check_size("size", size)
    values = [torch.as_tensor(v, dtype=torch.float32) for v in (rotation, scale, shear, tx, ty)]
    for name, v in zip(("rotation", "scale", "shear", "tx", "ty"), values):
        if v.ndim > 1:
            raise ValueError(f"{name} must be a number or a 1-D tensor, got shape {tuple(v.shape)}")
        if not bool(torch.isfinite(v).all()):
            raise ValueError(f"{name} must be finite, got {v}")
    if bool((values[1] <= 0).any()):
        raise ValueError(f"scale must be positive, got {values[1]}")
    rot, sc, sh, tx_, ty_ = torch.broadcast_tensors(*[v.reshape(-1) for v in values])
    a, s = torch.deg2rad(rot), torch.deg2rad(sh)
    cos, sin = torch.cos(a), torch.sin(a)
    rot_m = torch.stack((torch.stack((cos, -sin), -1), torch.stack((sin, cos), -1)), -2)
    shear_m = torch.stack(
        (torch.stack((torch.ones_like(s), torch.tan(s)), -1), torch.stack((torch.zeros_like(s), torch.ones_like(s)), -1)),
        -2,
    )
    lin = rot_m @ shear_m * sc[:, None, None]
    c = torch.tensor([(w - 1) / 2.0, (h - 1) / 2.0])
    t = c + torch.stack((tx_, ty_), -1) - (lin @ c)
    return torch.cat((lin, t[..., None]), -1)


def random_affine(n: int, size, *, rotation=15.0, scale=0.1, shear=5.0, translation=10.0, generator=None) -> Tensor:
    """Seeded random affine matrices ``n,2,3`` (pixels), uniform in the given ranges.

    rotation and shear in degrees (uniform in ``[-r, r]``), scale as a relative change (uniform
    in ``[1 - s, 1 + s]``), translation in pixels per axis (uniform in ``[-t, t]``).

    >>> g = torch.Generator().manual_seed(0)
    >>> random_affine(4, (64, 64), generator=g).shape
    torch.Size([4, 2, 3])
    """
    check_positive("n", n, integer=True)
    for name, v in (("rotation", rotation), ("scale", scale), ("shear", shear), ("translation", translation)):
        check_positive(name, v, allow_zero=True)
    if scale >= 1:
        raise ValueError(f"scale must be below 1 (a relative change), got {scale}")

    def uniform(r):
        return (torch.rand(n, generator=generator) * 2 - 1) * r

    return affine_matrix(
        size, rotation=uniform(rotation), scale=1 + uniform(scale), shear=uniform(shear),
        tx=uniform(translation), ty=uniform(translation),
    )


def invert_affine(theta: Tensor) -> Tensor:
    """Inverse of affine matrices ``N,2,3`` (pixel coordinates)."""
    check_tensor("theta", theta, ndim=3)
    if theta.shape[1:] != (2, 3):
        raise ValueError(f"theta must have shape (N, 2, 3), got {tuple(theta.shape)}")
    lin_inv = torch.linalg.inv(theta[:, :, :2])
    return torch.cat((lin_inv, -(lin_inv @ theta[:, :, 2:])), -1)


def affine_to_disp(theta: Tensor, size) -> Tensor:
    r"""Displacement ``N,2,H,W`` (pixels) of affine matrices ``N,2,3`` given in pixel coordinates.

    :math:`u(p) = A p + t - p`, so ``warp(moving, affine_to_disp(theta, size))`` reads the moving
    image at :math:`A p + t`.

    >>> u = affine_to_disp(affine_matrix((4, 4), tx=1.5), (4, 4))
    >>> bool((u[:, 0] == 1.5).all() and (u[:, 1] == 0).all())
    True
    """
    check_tensor("theta", theta, ndim=3)
    if theta.shape[1:] != (2, 3):
        raise ValueError(f"theta must have shape (N, 2, 3), got {tuple(theta.shape)}")
    h, w = check_size("size", size)
    grid = identity_grid((h, w), theta.device, theta.dtype)  # 1,2,H,W
    pts = grid.flatten(2)  # 1,2,HW
    moved = theta[:, :, :2] @ pts + theta[:, :, 2:]
    return (moved - pts).reshape(theta.shape[0], 2, h, w)


def fit_affine(src: Tensor, dst: Tensor, weight: Tensor | None = None) -> Tensor:
    r"""Least-squares affine map with :math:`\text{dst} \approx A\,\text{src} + t`.

    The one affine fit of regkit (RANSAC refits, FIRE pre-alignment, :func:`disp_to_affine`);
    solved in float64.

    Parameters
    ----------
    src, dst : Tensor ``K,2`` or ``N,K,2``
        Corresponding points in pixels, (x, y) order; at least 3 per batch item, not collinear.
    weight : Tensor ``K`` or ``N,K``, optional
        Non-negative weights per point (a bool mask keeps only the true points).

    Returns
    -------
    Tensor ``2,3`` (or ``N,2,3``), the dtype of ``src``: ``[A | t]`` in pixels.

    Example
    -------
    >>> src = torch.tensor([[0., 0.], [1., 0.], [0., 1.], [1., 1.]])
    >>> fit_affine(src, src * 2 + torch.tensor([3., -1.])).round(decimals=4).abs().tolist()
    [[2.0, 0.0, 3.0], [0.0, 2.0, 1.0]]
    """
    check_tensor("src", src)
    check_tensor("dst", dst)
    if src.shape != dst.shape or src.ndim not in (2, 3) or src.shape[-1] != 2:
        raise ValueError(f"src and dst must both be (K, 2) or (N, K, 2), got {tuple(src.shape)} and {tuple(dst.shape)}")
    x = torch.cat((src.double(), torch.ones_like(src[..., :1], dtype=torch.float64)), -1)
    y = dst.double()
    if weight is not None:
        if weight.shape != src.shape[:-1]:
            raise ValueError(f"weight must have shape {tuple(src.shape[:-1])}, got {tuple(weight.shape)}")
        if weight.dtype == torch.bool and src.ndim == 2:
            x, y = x[weight], y[weight]
        else:
            wgt = weight.to(torch.float64).sqrt().unsqueeze(-1)
            x, y = x * wgt, y * wgt
    if x.shape[-2] < 3:
        raise ValueError(f"fit_affine needs at least 3 points, got {x.shape[-2]}")
    sol = torch.linalg.lstsq(x, y).solution  # ...,3,2
    return sol.transpose(-1, -2).to(src.dtype)


def disp_to_affine(disp: Tensor, mask: Tensor | None = None) -> Tensor:
    """Least-squares affine ``N,2,3`` (pixels) closest to a displacement field, optionally masked.

    Exact for fields made by :func:`affine_to_disp`.

    >>> theta = affine_matrix((16, 16), rotation=10.0, tx=2.0)
    >>> torch.allclose(disp_to_affine(affine_to_disp(theta, (16, 16))), theta, atol=1e-5)
    True
    """
    check_disp("disp", disp)
    n, _, h, w = disp.shape
    grid = identity_grid((h, w), disp.device, disp.dtype).flatten(2).transpose(1, 2)  # 1,HW,2
    src = grid.expand(n, h * w, 2)
    dst = src + disp.flatten(2).transpose(1, 2)  # N,HW,2
    weight = None if mask is None else mask.reshape(n, h * w).to(disp.dtype)
    return fit_affine(src, dst, weight)


# ----------------------------------------------------------------------------------------------
# Dense fields
# ----------------------------------------------------------------------------------------------


def compose(u: Tensor, v: Tensor, *, check: bool = True) -> Tensor:
    r"""Compose two displacements: ``warp(image, compose(u, v)) ≈ warp(warp(image, u), v)``.

    :math:`w(p) = v(p) + u(p + v(p))` (``u`` is sampled bilinearly with border padding), in the
    fields' common dtype. ``check=False`` skips the input checks (inner loops).

    >>> u = torch.randn(1, 2, 8, 8, generator=torch.Generator().manual_seed(0))
    >>> zero = torch.zeros_like(u)
    >>> torch.allclose(compose(u, zero), u, atol=1e-5) and torch.allclose(compose(zero, u), u, atol=1e-5)
    True
    """
    if check:
        check_disp("u", u)
        check_disp("v", v, like=u)
        if min(u.shape[-2:]) < 2:
            raise ValueError(f"u must be at least 2 x 2 pixels, got {tuple(u.shape[-2:])}")
    return v + _sample_grid(u, v, "bilinear", "border")


def integrate_velocity(velocity: Tensor, steps: int = 7, *, check: bool = True) -> Tensor:
    r"""Exponentiate a stationary velocity field by scaling and squaring.

    :math:`u_0 = v / 2^{K}`, then ``K`` times :math:`u \leftarrow u + u \circ (\mathrm{id} + u)`;
    the result is (approximately) diffeomorphic for smooth ``v``. ``steps=0`` returns ``v``.
    Runs in the velocity's dtype; ``check=False`` skips the input checks (inner loops).

    >>> integrate_velocity(torch.zeros(1, 2, 8, 8)).abs().max().item()
    0.0
    """
    if check:
        check_disp("velocity", velocity)
        check_positive("steps", steps, integer=True, allow_zero=True)
        if min(velocity.shape[-2:]) < 2:
            raise ValueError(f"velocity must be at least 2 x 2 pixels, got {tuple(velocity.shape[-2:])}")
    u = velocity / (2**steps)
    for _ in range(steps):
        u = u + _sample_grid(u, u, "bilinear", "border")
    return u


def resize_image(image: Tensor, size, mode: str = "bilinear", antialias: bool = False, *, check: bool = True) -> Tensor:
    """Resize images ``N,C,H,W`` to ``size = (H', W')`` (``align_corners=True`` for (bi)linear/cubic).

    Runs in the image's dtype (float16/bfloat16 through float32); ``check=False`` skips the checks.

    >>> resize_image(torch.rand(2, 1, 16, 16), (8, 8)).shape
    torch.Size([2, 1, 8, 8])
    """
    if check:
        check_image("image", image)
        size = check_size("size", size)
        if mode not in ("bilinear", "bicubic", "nearest"):
            raise ValueError(f"mode must be 'bilinear', 'bicubic' or 'nearest', got {mode!r}")
    h, w = size
    x = image.to(_sampling_dtype(image))
    if mode == "nearest":
        out = F.interpolate(x, size=(h, w), mode="nearest")
    else:
        out = F.interpolate(x, size=(h, w), mode=mode, align_corners=True, antialias=antialias)
    return out.to(image.dtype)


def resize_disp(disp: Tensor, size, *, check: bool = True) -> Tensor:
    """Resize a displacement ``N,2,H,W`` to ``size`` and rescale its values (pixels of the new grid).

    A field that moves by half the image width still does after resizing: x values are scaled by
    :math:`(W'-1)/(W-1)`, y values by :math:`(H'-1)/(H-1)` (``align_corners=True``). Runs in the
    field's dtype (float16/bfloat16 through float32); ``check=False`` skips the input checks.

    >>> u = torch.full((1, 2, 5, 5), 2.0)
    >>> resize_disp(u, (9, 9)).mean().item()
    4.0
    """
    if check:
        check_disp("disp", disp)
        size = check_size("size", size)
        check_size("disp's size", disp.shape[-2:])
    h, w = size
    h0, w0 = disp.shape[-2:]
    dtype = _sampling_dtype(disp)
    out = F.interpolate(disp.to(dtype), size=(h, w), mode="bilinear", align_corners=True)
    scale = torch.tensor([(w - 1) / (w0 - 1), (h - 1) / (h0 - 1)], device=disp.device, dtype=dtype)
    return (out * scale.view(1, 2, 1, 1)).to(disp.dtype)


def jacobian_determinant(disp: Tensor) -> Tensor:
    r"""Determinant of the Jacobian of :math:`\phi(p) = p + u(p)`, shape ``N,H,W``.

    Central differences inside, one-sided at the border, so it is exact for affine fields.
    Values :math:`\le 0` mark folding.

    >>> theta = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 1.5, 0.0]]])
    >>> jacobian_determinant(affine_to_disp(theta, (6, 6))).mean().item()
    3.0
    """
    check_disp("disp", disp)
    dux_dy, dux_dx = torch.gradient(disp[:, 0].float(), dim=(1, 2))
    duy_dy, duy_dx = torch.gradient(disp[:, 1].float(), dim=(1, 2))
    return (1 + dux_dx) * (1 + duy_dy) - dux_dy * duy_dx


def inside_mask(disp: Tensor) -> Tensor:
    """Mask ``N,1,H,W`` (bool) of fixed pixels whose sample point ``p + u(p)`` lies inside the image."""
    check_disp("disp", disp)
    h, w = disp.shape[-2:]
    pts = identity_grid((h, w), disp.device) + disp.float()
    inside = (pts[:, 0] >= 0) & (pts[:, 0] <= w - 1) & (pts[:, 1] >= 0) & (pts[:, 1] <= h - 1)
    return inside[:, None]


def sample_points(field: Tensor, points: Tensor) -> Tensor:
    """Bilinearly sample ``field`` ``N,C,H,W`` at ``points`` ``N,K,2`` (pixels, x then y) -> ``N,K,C``.

    >>> f = identity_grid((4, 4)).clone()
    >>> sample_points(f, torch.tensor([[[1.5, 2.0]]]))
    tensor([[[1.5000, 2.0000]]])
    """
    check_image("field", field)
    check_tensor("points", points, ndim=3)
    if points.shape[0] != field.shape[0] or points.shape[2] != 2:
        raise ValueError(f"points must have shape (N={field.shape[0]}, K, 2), got {tuple(points.shape)}")
    dtype = _sampling_dtype(field, points)
    h, w = field.shape[-2:]
    grid = _normalise(points.to(dtype)[:, :, None, :], h, w)  # N,K,1,2
    out = F.grid_sample(field.to(dtype), grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out[..., 0].transpose(1, 2).to(torch.promote_types(field.dtype, points.dtype))  # N,K,C


def random_smooth_disp(
    n: int, size, *, max_disp: float = 4.0, control: int = 5, diffeomorphic: bool = True, generator=None
) -> Tensor:
    """Seeded random smooth displacements ``n,2,H,W`` (pixels).

    Gaussian noise on a ``control x control`` grid is upsampled bicubically and scaled so that its
    largest vector is ``max_disp`` pixels. With ``diffeomorphic=True`` that field is used as a
    stationary velocity and integrated (:func:`integrate_velocity`), which keeps it invertible; the
    integrated field's peak is then close to, not exactly, ``max_disp``.

    >>> g = torch.Generator().manual_seed(0)
    >>> u = random_smooth_disp(2, (32, 32), max_disp=3.0, diffeomorphic=False, generator=g)
    >>> round(u.norm(dim=1).amax().item(), 4)
    3.0
    """
    check_positive("n", n, integer=True)
    h, w = check_size("size", size)
    check_positive("max_disp", max_disp, allow_zero=True)
    check_positive("control", control, integer=True)
    if control < 2:
        raise ValueError(f"control must be at least 2, got {control}")
    coarse = torch.randn(n, 2, control, control, generator=generator)
    u = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)
    peak = u.norm(dim=1).flatten(1).amax(1).clamp_min(1e-12).view(n, 1, 1, 1)
    u = u * (max_disp / peak)
    if diffeomorphic:
        u = integrate_velocity(u, steps=max(4, int(math.ceil(math.log2(max(max_disp, 1.0)))) + 4))
    return u


# ----------------------------------------------------------------------------------------------
# Cubic B-spline fields (free-form deformations)
# ----------------------------------------------------------------------------------------------


def _bspline3(t: Tensor) -> Tensor:
    """Uniform cubic B-spline kernel, support (-2, 2), partition of unity."""
    a = t.abs()
    return torch.where(
        a < 1, (4 - 6 * a**2 + 3 * a**3) / 6, torch.where(a < 2, (2 - a) ** 3 / 6, torch.zeros_like(a))
    )


@lru_cache(maxsize=32)
def _basis_cached(n_points: int, n_ctrl: int, dtype: torch.dtype) -> Tensor:
    spacing = (n_points - 1) / (n_ctrl - 3)
    x = torch.arange(n_points, dtype=torch.float64, device="cpu")[:, None]
    pos = (torch.arange(n_ctrl, dtype=torch.float64, device="cpu")[None, :] - 1) * spacing
    return _bspline3((x - pos) / spacing).to(dtype)


def bspline_basis(n_points: int, n_ctrl: int, device=None, dtype=torch.float32) -> Tensor:
    r"""Cubic B-spline weights ``n_points x n_ctrl`` of control points spanning ``n_points`` pixels.

    Control point ``j`` sits at pixel :math:`(j - 1)\,s` with spacing :math:`s = (n_p - 1)/(n_c - 3)`:
    the first and last lie one spacing outside the image, so every pixel has its four supporting
    control points. Each row sums to one (a constant control grid gives the same constant field).

    >>> B = bspline_basis(9, 6)
    >>> tuple(B.shape), bool(torch.allclose(B.sum(1), torch.ones(9)))
    ((9, 6), True)
    """
    check_positive("n_points", n_points, integer=True)
    check_positive("n_ctrl", n_ctrl, integer=True)
    if n_points < 2 or n_ctrl < 4:
        raise ValueError(f"need n_points >= 2 and n_ctrl >= 4, got {n_points} and {n_ctrl}")
    return _basis_cached(n_points, n_ctrl, dtype).to(device if device is not None else "cpu")


def bspline_upsample(control: Tensor, size) -> Tensor:
    r"""Dense displacement ``N,2,H,W`` from a cubic B-spline control grid ``N,2,n_y,n_x`` (free-form deformation).

    :math:`u(x, y) = \sum_{i,j} B_i(y)\,c_{ij}\,B_j(x)` with the bases of :func:`bspline_basis`
    (control points spanning the image with one extra ring outside). Control values are
    displacements in pixels of the output grid. The field is :math:`C^2`-smooth, and because a
    cubic B-spline *approximates* its control points, a constant grid gives exactly that constant
    field but single control points are smoothed out. Runs in float32 under autocast.

    Convention: ``control`` channel 0 = x, channel 1 = y, as every displacement in regkit.

    >>> c = torch.zeros(1, 2, 6, 6); c[:, 0] = 1.5
    >>> u = bspline_upsample(c, (16, 16))
    >>> tuple(u.shape), bool(torch.allclose(u[:, 0], torch.full((1, 16, 16), 1.5)))
    ((1, 2, 16, 16), True)
    """
    check_disp("control", control)
    h, w = check_size("size", size)
    by = bspline_basis(h, control.shape[-2], control.device)
    bx = bspline_basis(w, control.shape[-1], control.device)
    with torch.autocast(device_type=control.device.type, enabled=False):
        return torch.einsum("hi,ncij,wj->nchw", by, control.float(), bx)
