"""regkit: image registration in PyTorch, from Demons to attention.

Conventions (see :mod:`regkit.spatial`): images ``N,C,H,W`` float in [0, 1]; displacements
``N,2,H,W`` in pixels (x then y); backward (pull) warps; arguments in ``(moving, fixed)`` order;
every method returns a :class:`RegResult` through :func:`register`.
"""

from . import losses, metrics, spatial
from .registry import RegResult, describe, methods, register
from .runtime import by_profile, default_device, profile, seed_everything

__version__ = "0.1.0"

__all__ = [
    "RegResult",
    "register",
    "methods",
    "describe",
    "seed_everything",
    "default_device",
    "profile",
    "by_profile",
    "spatial",
    "metrics",
    "losses",
    "__version__",
]
