"""One protocol for every registration method, classical or learned.

``register(moving, fixed, method=..., **params) -> RegResult``. Methods add themselves with the
:func:`method` decorator; the modules that define them are imported on first use, so
``import regkit`` stays light.

Example
-------
>>> import torch, regkit
>>> x = torch.rand(1, 1, 16, 16)
>>> res = regkit.register(x, x, method="identity")
>>> res.disp.abs().max().item()
0.0
"""

from __future__ import annotations

import functools
import importlib
import inspect
from dataclasses import dataclass, field
from typing import Callable

from torch import Tensor

from ._checks import check_pair

__all__ = ["RegResult", "register", "methods", "method", "describe"]


@dataclass
class RegResult:
    """What every method returns.

    Attributes
    ----------
    warped : Tensor ``N,C,H,W``
        The moving image brought onto the fixed grid (or, for deformation-free models, the
        image the model outputs in the fixed image's frame).
    disp : Tensor ``N,2,H,W`` in pixels, or None
        The pull displacement on the fixed grid; ``None`` for deformation-free models.
    params : Tensor or None
        Parametric transforms where the method has them (e.g. affine ``N,2,3`` in pixels).
    extras : dict
        Anything else worth keeping (iterations, inverse field, timings, matches, ...).
    """

    warped: Tensor
    disp: Tensor | None = None
    params: Tensor | None = None
    extras: dict = field(default_factory=dict)


@dataclass(frozen=True)
class _Method:
    name: str
    fn: Callable[..., RegResult]
    kind: str
    summary: str


_METHODS: dict[str, _Method] = {}
# Packages whose import registers their methods.
_PROVIDERS: list[str] = ["regkit.baselines", "regkit.classical", "regkit.models"]
_loaded = False


def method(name: str, *, kind: str, summary: str):
    """Decorator that adds ``fn(moving, fixed, **params) -> RegResult`` under ``name``.

    ``kind`` groups methods in tables (e.g. "baseline", "classical", "reference", "learned").
    """

    def add(fn):
        if name in _METHODS and _METHODS[name].fn is not fn:
            raise ValueError(f"a method named {name!r} is already registered")
        _METHODS[name] = _Method(name, fn, kind, summary)
        return fn

    return add


def _load_providers() -> None:
    global _loaded
    if not _loaded:
        for module in _PROVIDERS:
            importlib.import_module(module)
        _loaded = True


def methods(kind: str | None = None) -> list[str]:
    """Names of the registered methods (optionally of one ``kind``), sorted."""
    _load_providers()
    return sorted(n for n, m in _METHODS.items() if kind is None or m.kind == kind)


def describe() -> dict[str, dict[str, str]]:
    """``{name: {"kind": ..., "summary": ...}}`` for every registered method."""
    _load_providers()
    return {n: {"kind": m.kind, "summary": m.summary} for n, m in sorted(_METHODS.items())}


@functools.lru_cache(maxsize=None)
def _settings(fn) -> tuple[str, ...] | None:
    """The keyword settings ``fn`` takes after ``(moving, fixed)``; None if it takes ``**kwargs``."""
    ps = list(inspect.signature(fn).parameters.values())[2:]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in ps):
        return None
    return tuple(p.name for p in ps if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


def _check_settings(name: str, fn, params: dict) -> None:
    known = _settings(fn)
    unknown = sorted(set(params) - set(known)) if known is not None else []
    if unknown:
        raise TypeError(f"method {name!r} has no setting {unknown[0]!r}; its settings are {list(known)}")


def register(moving: Tensor, fixed: Tensor, method: str = "identity", **params) -> RegResult:
    """Register ``moving`` to ``fixed`` (both ``N,C,H,W`` in [0, 1]) with the named method.

    Parameters
    ----------
    moving, fixed : Tensor ``N,C,H,W``
        Same shape and device, floating point, finite, intensities in [0, 1].
    method : str
        One of :func:`methods`.
    **params
        The method's own settings (each method checks them).

    Raises
    ------
    TypeError
        For an image that is not a floating-point tensor (an 8-bit image needs ``x.float() / 255``).
    ValueError
        For an unknown method (listing the known ones), mismatched shapes or devices, NaN or
        infinite values, or intensities outside [0, 1] (the message gives the range found).

    Notes
    -----
    This boundary check is the same for every method, and cheap: one ``aminmax`` pass per image.

    *Dtype.* Any floating dtype passes; each method handles its own (the classical ones compute
    in float32, a learned model's runner casts the inputs to the model's dtype). Integer and bool
    images are refused: their scale (0-255 or 0-1) cannot be told from the dtype alone.

    *Range.* Values outside [0, 1] (beyond ``RANGE_TOL`` of rounding) are an
    error, not a warning, for every method: the defaults of every method assume that scale
    (Demons' matched-intensity threshold, Horn-Schunck's ``alpha``, TV-L1's ``attachment``, the
    learned models' training data), and the methods that convert to 8 bits for OpenCV
    (``cv2_farneback``, ``cv2_affine``, ``sift_ransac``) would clip the rest away. A warning
    would let a table be filled with numbers computed on clipped or mis-scaled images; the
    caller's fix is one line (``x / 255``, or a min-max rescale).
    """
    check_pair("moving", moving, "fixed", fixed, unit_range=True)
    _load_providers()
    if not isinstance(method, str) or method not in _METHODS:
        raise ValueError(f"method must be one of {methods()}, got {method!r}")
    fn = _METHODS[method].fn
    _check_settings(method, fn, params)
    result = fn(moving, fixed, **params)
    if not isinstance(result, RegResult):
        raise TypeError(f"method {method!r} returned {type(result).__name__}, expected RegResult")
    return result
