"""Input validation shared by every public function.

Each check raises a ``ValueError`` or ``TypeError`` whose message names the offending argument
and says what was expected, so that bad input fails loudly at the boundary instead of being
silently broadcast, clipped or turned into NaNs.
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_tensor(name: str, x, *, ndim: int | None = None, floating: bool = True) -> Tensor:
    """Check that ``x`` is a finite tensor of rank ``ndim`` (floating point unless told otherwise)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(x.shape)}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.is_floating_point() and not _all_finite(x):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _all_finite(x: Tensor) -> bool:
    """True if no element is NaN or infinite.

    For float16/bfloat16/float32 a float64 sum is used: it cannot overflow for finite inputs, any
    NaN or infinity makes it non-finite, and it is several times faster than ``isfinite(x).all()``.
    """
    if x.dtype == torch.float64:
        return bool(torch.isfinite(x).all())
    return bool(torch.isfinite(x.sum(dtype=torch.float64)))


def check_image(name: str, x) -> Tensor:
    """Check an image batch: floating tensor ``N,C,H,W``, finite, non-empty."""
    check_tensor(name, x, ndim=4)
    if min(x.shape) == 0:
        raise ValueError(f"{name} must be non-empty, got shape {tuple(x.shape)}")
    return x


def check_disp(name: str, u, *, like: Tensor | None = None) -> Tensor:
    """Check a displacement batch ``N,2,H,W`` (pixels), optionally against an image's N, H, W."""
    check_tensor(name, u, ndim=4)
    if u.shape[1] != 2:
        raise ValueError(
            f"{name} must have 2 channels (x, y displacement in pixels), got shape {tuple(u.shape)}"
        )
    if like is not None:
        if u.shape[0] != like.shape[0] or u.shape[-2:] != like.shape[-2:]:
            raise ValueError(
                f"{name} must match the image batch and size: expected N={like.shape[0]}, "
                f"H,W={tuple(like.shape[-2:])}, got shape {tuple(u.shape)}"
            )
    return u


def check_pair(a_name: str, a, b_name: str, b) -> tuple[Tensor, Tensor]:
    """Check two image batches of identical shape (``N,C,H,W``) on the same device."""
    check_image(a_name, a)
    check_image(b_name, b)
    if a.shape != b.shape:
        raise ValueError(
            f"{a_name} and {b_name} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.device != b.device:
        raise ValueError(f"{a_name} and {b_name} must be on the same device, got {a.device} and {b.device}")
    return a, b


def check_mask(name: str, mask, like: Tensor) -> Tensor | None:
    """Check an optional mask broadcastable over channels: ``N,1,H,W`` or ``N,C,H,W``; returns float."""
    if mask is None:
        return None
    check_tensor(name, mask, ndim=4, floating=False)
    if mask.shape[0] != like.shape[0] or mask.shape[-2:] != like.shape[-2:] or mask.shape[1] not in (1, like.shape[1]):
        raise ValueError(
            f"{name} must have shape (N,1,H,W) or (N,C,H,W) matching {tuple(like.shape)}, got {tuple(mask.shape)}"
        )
    return mask.to(device=like.device, dtype=like.dtype if like.is_floating_point() else torch.float32)


def check_size(name: str, size) -> tuple[int, int]:
    """Check a spatial size ``(H, W)`` of positive integers (at least 2 each for align_corners=True)."""
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a pair of integers (H, W), got {size!r}") from None
    if h < 2 or w < 2:
        raise ValueError(f"{name} must be at least (2, 2), got {(h, w)}")
    return h, w


def check_positive(name: str, value, *, integer: bool = False, allow_zero: bool = False, allow_inf: bool = False):
    """Check a finite positive (or non-negative) number, optionally an integer.

    NaN is always refused; infinity only passes with ``allow_inf=True``.
    """
    if integer and (isinstance(value, bool) or not isinstance(value, int)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {value!r}")
    kind = "non-negative" if allow_zero else "positive"
    if value != value or (value < 0 if allow_zero else value <= 0):
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    if value == float("inf") and not allow_inf:
        raise ValueError(f"{name} must be a finite {kind} number, got {value!r}")
    return value
