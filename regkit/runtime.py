"""Seeds, devices and the run-size switch.

``REGKIT_PROFILE=quick|full`` chooses the size of every experiment: *full* reproduces a paper's
protocol, *quick* keeps every code path but shrinks data and epochs so that a chapter runs on two
CPU cores in minutes. Unset, it is *full* where CUDA is available and *quick* elsewhere.

>>> from regkit import runtime
>>> runtime.by_profile(quick=2, full=30, which="quick")
2
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["seed_everything", "default_device", "profile", "by_profile", "PROFILES"]

PROFILES = ("quick", "full")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python's, NumPy's and torch's global generators; return a fresh seeded CPU generator.

    Data synthesis should use explicit generators (the returned one, or its own) rather than the
    global state.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def default_device() -> torch.device:
    """``cuda`` when available, else ``cpu``. Library code follows its inputs' device instead."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def profile() -> str:
    """The run size, from ``REGKIT_PROFILE`` (``quick`` or ``full``), else by the hardware."""
    value = os.environ.get("REGKIT_PROFILE", "").strip().lower()
    if not value:
        return "full" if torch.cuda.is_available() else "quick"
    if value not in PROFILES:
        raise ValueError(f"REGKIT_PROFILE must be one of {PROFILES}, got {value!r}")
    return value


def by_profile(*, quick, full, which: str | None = None):
    """Pick the value for the current profile (or for ``which``): ``by_profile(quick=2, full=30)``."""
    chosen = profile() if which is None else which
    if chosen not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {chosen!r}")
    return quick if chosen == "quick" else full
