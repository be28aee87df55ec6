"""Input conversion and argument checks shared by the plots of :mod:`regkit.viz`.

Every plot converts a torch tensor or numpy array here, so that one rule says which item of a
batch is shown and one message names a bad argument.

Convention
----------
* Images: ``N,C,H,W``, ``C,H,W`` or ``H,W`` with ``C = 1`` (grey) or ``C = 3`` (RGB), float
  intensities in ``[0, 1]``; the *first* item of a batch is shown, as ``H,W`` or ``H,W,3``.
* Displacements: ``N,2,H,W`` or ``2,H,W`` in pixels, channel 0 = x (columns), channel 1 = y
  (rows); the first item is returned as ``2,H,W``.
* Arrays come back as finite ``float64`` numpy arrays on the CPU; NaN or inf is refused.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from regkit._checks import check_interval, check_positive

__all__ = [
    "as_numpy",
    "as_image",
    "as_gray",
    "as_disp",
    "batch_item",
    "check_same_size",
    "check_positive_int",
    "check_positive_float",
    "normalise",
]


def as_numpy(x: Any, name: str) -> np.ndarray:
    """Tensor or array as a finite float64 numpy array (detached, on the CPU).

    Parameters
    ----------
    x : Tensor or ndarray
        Real numbers.
    name : str
        Argument name used in error messages.

    Returns
    -------
    ndarray
        ``float64`` copy or view of ``x``.

    Examples
    --------
    >>> as_numpy(np.ones(2, dtype=np.float32), "x").dtype
    dtype('float64')
    """
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, without importing torch
        x = x.detach().cpu()
        if x.is_complex() or str(x.dtype) == "torch.bool":
            raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
        x = x.double().numpy()
    elif not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(x).__name__}")
    if x.dtype == bool or not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be finite (found NaN or inf)")
    return x


def _first(a: np.ndarray, name: str) -> np.ndarray:
    if a.shape[0] < 1:
        raise ValueError(f"{name} has an empty batch (shape {a.shape})")
    return a[0]


def as_image(x: Any, name: str) -> np.ndarray:
    """First image of ``x`` as ``H,W`` (grey) or ``H,W,3`` (RGB).

    Parameters
    ----------
    x : Tensor or ndarray
        ``N,C,H,W``, ``C,H,W`` or ``H,W`` with 1 or 3 channels.
    name : str
        Argument name used in error messages.

    Returns
    -------
    ndarray
        ``H,W`` or ``H,W,3`` float64.

    Examples
    --------
    >>> as_image(np.zeros((2, 3, 4, 5)), "x").shape
    (4, 5, 3)
    """
    a = as_numpy(x, name)
    if a.ndim == 4:
        a = _first(a, name)
    if a.ndim == 3:
        if a.shape[0] == 1:
            a = a[0]
        elif a.shape[0] == 3:
            a = np.moveaxis(a, 0, -1)
        else:
            raise ValueError(
                f"{name} must have 1 or 3 channels (C,H,W), got {a.shape[0]} channels in shape {a.shape}"
            )
    elif a.ndim != 2:
        raise ValueError(f"{name} must be N,C,H,W, C,H,W or H,W; got shape {a.shape}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"{name} must have a non-empty spatial size, got shape {a.shape}")
    return a


def as_gray(x: Any, name: str) -> np.ndarray:
    """First image of ``x`` as ``H,W``; RGB becomes luminance ``0.299 R + 0.587 G + 0.114 B``.

    Parameters
    ----------
    x : Tensor or ndarray
        As for :func:`as_image`.
    name : str
        Argument name used in error messages.

    Returns
    -------
    ndarray
        ``H,W`` float64.

    Examples
    --------
    >>> round(float(as_gray(np.ones((3, 2, 2)), "x")[0, 0]), 6)
    1.0
    """
    a = as_image(x, name)
    if a.ndim == 3:
        a = a @ np.array([0.299, 0.587, 0.114])
    return a


def as_disp(d: Any, name: str = "disp") -> np.ndarray:
    """First displacement of ``d`` as ``2,H,W`` (x then y, in pixels).

    Parameters
    ----------
    d : Tensor or ndarray
        ``N,2,H,W`` or ``2,H,W``.
    name : str
        Argument name used in error messages.

    Returns
    -------
    ndarray
        ``2,H,W`` float64.

    Examples
    --------
    >>> as_disp(np.zeros((1, 2, 3, 4))).shape
    (2, 3, 4)
    """
    a = as_numpy(d, name)
    if a.ndim == 4:
        a = _first(a, name)
    if a.ndim != 3:
        raise ValueError(f"{name} must be N,2,H,W or 2,H,W (pixels, x then y); got shape {a.shape}")
    if a.shape[0] != 2:
        raise ValueError(
            f"{name} must have 2 channels (x, y) in dimension -3, got {a.shape[0]} in shape {a.shape}"
        )
    return a


def batch_item(x: Any, index: int, name: str) -> Any:
    """Item ``index`` of a batch ``N,...`` kept as a batch of one (``x[index:index + 1]``).

    Parameters
    ----------
    x : Tensor or ndarray
        A batch ``N,C,H,W`` (or ``N,2,H,W``); other ranks are returned unchanged.
    index : int
        ``0 <= index < N`` (negative indices count from the end).
    name : str
        Argument name used in error messages.

    Returns
    -------
    Tensor or ndarray
        ``x[index:index + 1]`` of the input's type.

    Examples
    --------
    >>> batch_item(np.zeros((4, 1, 8, 8)), 2, "x").shape
    (1, 1, 8, 8)
    """
    if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
        raise TypeError(f"index must be an int, got {type(index).__name__}")
    shape = tuple(getattr(x, "shape", ()))
    if len(shape) != 4:
        return x
    n = shape[0]
    if not -n <= index < n:
        raise ValueError(f"index {index} is out of range for {name} with a batch of {n}")
    index = int(index) % n
    return x[index : index + 1]


def check_same_size(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    """Raise ``ValueError`` unless ``a`` and ``b`` have the same ``H,W`` (their first two axes).

    Parameters
    ----------
    a, b : ndarray
        Arrays shaped ``H,W,...``.
    name_a, name_b : str
        Argument names used in the error message.

    Returns
    -------
    None

    Examples
    --------
    >>> check_same_size(np.zeros((4, 4)), np.zeros((4, 5, 3)), "warped", "fixed")
    Traceback (most recent call last):
    ...
    ValueError: warped and fixed must have the same H,W; got (4, 4) and (4, 5)
    """
    if a.shape[:2] != b.shape[:2]:
        raise ValueError(f"{name_a} and {name_b} must have the same H,W; got {a.shape[:2]} and {b.shape[:2]}")


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers (the checks in :mod:`regkit._checks` take int and float)."""
    return value.item() if isinstance(value, (np.integer, np.floating)) else value


def check_positive_int(value: Any, name: str, *, allow_zero: bool = False) -> int:
    """Return ``value`` as an ``int`` if it is a positive (or, with ``allow_zero``, non-negative) integer.

    Parameters
    ----------
    value : Any
        A Python or numpy integer (not a bool).
    name : str
        Argument name used in the error message.
    allow_zero : bool
        Accept 0.

    Returns
    -------
    int

    Raises
    ------
    TypeError
        If ``value`` is not an integer.
    ValueError
        If it is not positive (non-negative).

    Examples
    --------
    >>> check_positive_int(np.int64(3), "step")
    3
    """
    return int(check_positive(name, _plain(value), integer=True, allow_zero=allow_zero))


def check_positive_float(value: Any, name: str, *, above: float = 0.0) -> float:
    """Return ``value`` as a ``float`` if it is a finite number greater than ``above``.

    Parameters
    ----------
    value : Any
        A Python or numpy real number (not a bool).
    name : str
        Argument name used in the error message.
    above : float
        Exclusive lower bound (0: a positive number).

    Returns
    -------
    float

    Raises
    ------
    TypeError
        If ``value`` is not a number.
    ValueError
        If it is NaN, infinite or not above ``above``.

    Examples
    --------
    >>> check_positive_float(np.float32(0.5), "vmax")
    0.5
    """
    value = _plain(value)
    if above == 0.0:
        return float(check_positive(name, value))
    return float(check_interval(name, value, above, math.inf))


def normalise(a: np.ndarray) -> np.ndarray:
    """Stretch ``a`` linearly to ``[0, 1]`` (all zeros when ``a`` is constant).

    Parameters
    ----------
    a : ndarray

    Returns
    -------
    ndarray
        Same shape as ``a``.

    Examples
    --------
    >>> normalise(np.array([2.0, 3.0, 4.0])).tolist()
    [0.0, 0.5, 1.0]
    """
    lo, hi = float(a.min()), float(a.max())
    if hi - lo < 1e-12:
        return np.zeros_like(a)
    return (a - lo) / (hi - lo)
