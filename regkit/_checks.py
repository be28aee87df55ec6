r"""Input validation shared by every public function.

Each check raises a ``ValueError`` or ``TypeError`` whose message names the offending argument
and says what was expected, so that bad input fails loudly at the boundary instead of being
silently broadcast, clipped or turned into NaNs.

Convention
----------
Images are ``N,C,H,W`` floating-point tensors with intensities in [0, 1]
(:func:`check_unit_range` allows :data:`RANGE_TOL` of rounding either side). Numbers are checked
as Python numbers: ``bool`` is never taken for a number, NaN is always refused and infinity only
where a check says so.

Example
-------
>>> check_positive("sigma", 1.5)
1.5
>>> check_positive("sigma", float("inf"))
Traceback (most recent call last):
...
ValueError: sigma must be a finite positive number, got inf
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: How far (either side) image intensities may stray from [0, 1] before they are refused: float
#: rounding of resampled or rescaled images stays well inside it, and it is a quarter of an 8-bit
#: grey level, so converting an accepted image to 8 bits (``rint(255 x)``) never clips a value.
RANGE_TOL = 1e-3


def check_tensor(name: str, x, *, ndim: int | None = None, floating: bool = True, finite: bool = True) -> Tensor:
    """Check that ``x`` is a tensor of rank ``ndim`` (floating point unless told otherwise), finite
    unless ``finite=False`` (for callers that check finiteness in their own pass)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(x.shape)}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if finite and x.is_floating_point() and not _all_finite(x):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _all_finite(x: Tensor) -> bool:
    """True if no element is NaN or infinite.

    One ``aminmax`` pass: NaN propagates to both ends and an infinity shows at one of them. It
    reads the tensor once in its own dtype, about 20x faster on the CPU than a float64 sum and
    10x faster than ``isfinite(x).all()``.
    """
    if x.numel() == 0:
        return True
    lo, hi = torch.aminmax(x)
    return bool(torch.isfinite(lo) & torch.isfinite(hi))


def check_unit_range(name: str, x: Tensor, *, tol: float = RANGE_TOL) -> Tensor:
    """Check that a floating tensor is finite with values in [0, 1] (``tol`` either side).

    One ``aminmax`` pass gives both answers (NaN propagates to both ends, an infinity shows at
    one of them), read back with one device synchronisation. The ``ValueError`` names the
    argument and the range found, and says how to rescale.

    >>> check_unit_range("fixed", torch.tensor([0.0, 255.0]))
    Traceback (most recent call last):
    ...
    ValueError: fixed must have intensities in [0, 1], got values in [0, 255]; rescale it first (x / 255 for 8-bit data, or (x - x.min()) / (x.max() - x.min()))
    """
    if x.numel() == 0:
        return x
    lo, hi = torch.stack(torch.aminmax(x.detach())).tolist()
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if lo < -tol or hi > 1 + tol:
        raise ValueError(
            f"{name} must have intensities in [0, 1], got values in [{lo:.4g}, {hi:.4g}]; rescale it first "
            "(x / 255 for 8-bit data, or (x - x.min()) / (x.max() - x.min()))"
        )
    return x


def check_image(name: str, x, *, unit_range: bool = False) -> Tensor:
    """Check an image batch: floating tensor ``N,C,H,W``, finite, non-empty; with
    ``unit_range=True`` also intensities in [0, 1] (:func:`check_unit_range`, in the same pass as
    the finiteness check)."""
    if isinstance(x, Tensor) and not x.is_floating_point():
        hint = "x.float() / 255 for 8-bit data" if x.dtype == torch.uint8 else "x.float()"
        raise TypeError(
            f"{name} must be a floating-point tensor with intensities in [0, 1], got dtype {x.dtype} "
            f"(convert it first: {hint})"
        )
    check_tensor(name, x, ndim=4, finite=not unit_range)
    if min(x.shape) == 0:
        raise ValueError(f"{name} must be non-empty, got shape {tuple(x.shape)}")
    if unit_range:
        check_unit_range(name, x)
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


def check_pair(a_name: str, a, b_name: str, b, *, unit_range: bool = False) -> tuple[Tensor, Tensor]:
    """Check two image batches of identical shape (``N,C,H,W``) on the same device (and, with
    ``unit_range=True``, with intensities in [0, 1]; see :func:`check_image`)."""
    check_image(a_name, a, unit_range=unit_range)
    if b is not a:
        check_image(b_name, b, unit_range=unit_range)
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

    >>> check_positive("threads", 0, integer=True)
    Traceback (most recent call last):
    ...
    ValueError: threads must be positive, got 0
    """
    if integer and (isinstance(value, bool) or not isinstance(value, int)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {value!r}")
    kind = "non-negative" if allow_zero else "positive"
    if value != value:
        raise ValueError(f"{name} must be a finite {kind} number, got {value!r}")
    if value < 0 if allow_zero else value <= 0:
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    if value == float("inf") and not allow_inf:
        raise ValueError(f"{name} must be a finite {kind} number, got {value!r}")
    return value


def check_interval(name: str, value, low: float, high: float, *, closed: str = "neither") -> float:
    """Check a number in the interval from ``low`` to ``high``; ``closed`` says which ends belong to
    it: ``"neither"`` (open), ``"low"``, ``"high"`` or ``"both"``. NaN is refused.

    >>> check_interval("ratio", 0.75, 0, 1, closed="high")
    0.75
    >>> check_interval("ratio", 0, 0, 1, closed="high")
    Traceback (most recent call last):
    ...
    ValueError: ratio must be in (0, 1], got 0
    """
    if closed not in ("neither", "low", "high", "both"):
        raise ValueError(f"closed must be 'neither', 'low', 'high' or 'both', got {closed!r}")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {value!r}")
    lo_in, hi_in = closed in ("low", "both"), closed in ("high", "both")
    above = value >= low if lo_in else value > low
    below = value <= high if hi_in else value < high
    if not (above and below):  # NaN fails both
        interval = f"{'[' if lo_in else '('}{low}, {high}{']' if hi_in else ')'}"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return value


def check_bool(name: str, value) -> bool:
    """Check a ``bool`` (a truthy string such as ``"false"`` is refused rather than taken as True).

    >>> check_bool("prefilter", True)
    True
    """
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def check_choice(name: str, value, choices, *, case_sensitive: bool = True):
    """Check that ``value`` is one of ``choices``; returns the matching choice (its own spelling
    when ``case_sensitive=False``).

    >>> check_choice("metric", "cc", ("mattes", "CC"), case_sensitive=False)
    'CC'
    """
    for c in choices:
        if value == c or (not case_sensitive and isinstance(value, str) and isinstance(c, str)
                          and value.lower() == c.lower()):
            return c
    raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
