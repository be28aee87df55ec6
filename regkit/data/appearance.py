"""Global appearance shifts: the intensity change between two acquisitions of the same scene.

Convention
----------
``shift(x) = clip(gain * x**gamma + bias, 0, 1)``, one ``(gain, bias, gamma)`` per image, drawn
uniformly from the given ranges with a ``torch.Generator``. The map is pointwise and monotone,
so it changes how a scene looks, not where anything is; :func:`invert` undoes it where no
clipping happened.

>>> import torch
>>> x = torch.linspace(0.1, 0.9, 5)
>>> p = torch.tensor([1.1, -0.05, 0.8])
>>> torch.allclose(invert(apply(x, p), p), x, atol=1e-5)
True
"""

from __future__ import annotations

import torch

__all__ = ["draw", "apply", "invert", "add_noise"]


def draw(gain=(0.8, 1.2), bias=(-0.05, 0.05), gamma=(0.75, 1.33), generator=None) -> torch.Tensor:
    """Random ``(gain, bias, gamma)``; ``gamma`` is drawn log-uniformly."""
    u = torch.rand(3, generator=generator, dtype=torch.float64)
    lo_g, hi_g = torch.log(torch.tensor(gamma[0], dtype=torch.float64)), torch.log(torch.tensor(gamma[1], dtype=torch.float64))
    return torch.stack((
        gain[0] + (gain[1] - gain[0]) * u[0],
        bias[0] + (bias[1] - bias[0]) * u[1],
        torch.exp(lo_g + (hi_g - lo_g) * u[2]),
    )).float()


def apply(x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Apply ``(gain, bias, gamma)`` to intensities in [0, 1]; result clipped to [0, 1]."""
    gain, bias, gamma = (float(v) for v in params)
    return (gain * x.clamp(0, 1) ** gamma + bias).clamp(0, 1)


def invert(y: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Undo :func:`apply` (exact where it did not clip)."""
    gain, bias, gamma = (float(v) for v in params)
    return ((y - bias) / gain).clamp(0, 1) ** (1.0 / gamma)


def add_noise(x: torch.Tensor, sigma: float, generator=None) -> torch.Tensor:
    """Add white Gaussian noise of standard deviation ``sigma``, clip to [0, 1]."""
    if sigma <= 0:
        return x
    return (x + sigma * torch.randn(x.shape, generator=generator)).clamp(0, 1)
