"""Seeds, devices and the run-size switch.

``REGKIT_PROFILE=quick|cpu|full`` chooses the size of every experiment:

- *quick* keeps every code path but shrinks data and epochs so that a chapter runs on two CPU
  cores in minutes: a smoke run, never a reproduction;
- *cpu* trains the paper's architectures at a stated reduced size (resolution, width) until their
  validation loss flattens, in at most about 30 minutes per table on two CPU cores;
- *full* reproduces a paper's protocol (a GPU, or the CPU where the models are small).

Unset, it is *full* where CUDA is available and *quick* elsewhere.

>>> from regkit import runtime
>>> runtime.by_profile(quick=2, full=30, which="quick"), runtime.by_profile(quick=2, full=30, which="cpu")
(2, 30)
>>> runtime.by_profile(quick=2, cpu=10, full=30, which="cpu")
10
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["seed_everything", "default_device", "profile", "by_profile", "eval_mode", "PROFILES"]

PROFILES = ("quick", "cpu", "full")


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


def by_profile(*, quick, full, cpu=None, which: str | None = None):
    """Pick the value for the current profile (or for ``which``).

    ``by_profile(quick=2, cpu=10, full=30)``; without ``cpu`` the cpu profile takes ``full``'s
    value (for experiments whose full protocol already fits a CPU).
    """
    chosen = profile() if which is None else which
    if chosen not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {chosen!r}")
    if chosen == "quick":
        return quick
    if chosen == "cpu" and cpu is not None:
        return cpu
    return full


class eval_mode:
    """Context manager: put a module (or ``None``) in eval mode and restore its mode after.

    >>> net = torch.nn.Dropout(); net.training
    True
    >>> with eval_mode(net):
    ...     net.training
    False
    >>> net.training
    True
    """

    def __init__(self, module):
        self.module = module if isinstance(module, torch.nn.Module) else None

    def __enter__(self):
        if self.module is not None:
            self.was_training = self.module.training
            self.module.eval()
        return self.module

    def __exit__(self, *exc):
        if self.module is not None:
            self.module.train(self.was_training)
        return False
