"""Appearance changes between two acquisitions of the same scene.

Convention
----------
- The global shift ``shift(x) = clip(gain * x**gamma + bias, 0, 1)``, one ``(gain, bias, gamma)``
  per image, drawn uniformly from the given ranges with a ``torch.Generator`` (:func:`draw`).
  It is pointwise and monotone, so it changes how a scene looks, not where anything is;
  :func:`invert` undoes it where no clipping happened. ``params`` may be ``(3,)`` for one
  image or ``(N, 3)`` for a batch ``N, ...``.
- :func:`vignetting` is a camera's illumination fall-off, :func:`blur_mix` a blur difference of
  adjustable strength, :func:`add_noise` white Gaussian noise. The FIRE proxy
  (:mod:`regkit.data.fire_proxy`) combines them with a smooth illumination field
  (:func:`regkit.data.fundus.smooth_field`).

>>> import torch
>>> x = torch.linspace(0.1, 0.9, 5)
>>> p = torch.tensor([1.1, -0.05, 0.8])
>>> torch.allclose(invert(apply(x, p), p), x, atol=1e-5)
True
"""

from __future__ import annotations

import torch

from ..filters import gaussian_blur

__all__ = ["draw", "apply", "invert", "add_noise", "vignetting", "blur_mix"]


def draw(gain=(0.8, 1.2), bias=(-0.05, 0.05), gamma=(0.75, 1.33), generator=None) -> torch.Tensor:
    """Random ``(gain, bias, gamma)``; ``gamma`` is drawn log-uniformly."""
    u = torch.rand(3, generator=generator, dtype=torch.float64)
    lo_g, hi_g = torch.log(torch.tensor(gamma[0], dtype=torch.float64)), torch.log(torch.tensor(gamma[1], dtype=torch.float64))
    return torch.stack((
        gain[0] + (gain[1] - gain[0]) * u[0],
        bias[0] + (bias[1] - bias[0]) * u[1],
        torch.exp(lo_g + (hi_g - lo_g) * u[2]),
    )).float()


def _split(x: torch.Tensor, params: torch.Tensor):
    params = torch.as_tensor(params, dtype=torch.float32)
    if params.shape == (3,):
        return (float(v) for v in params)
    if params.ndim != 2 or params.shape[1] != 3 or params.shape[0] != x.shape[0]:
        raise ValueError(f"params must be (3,) or (N, 3) with N = {x.shape[0]}, got {tuple(params.shape)}")
    shape = (-1,) + (1,) * (x.ndim - 1)
    return (params[:, k].to(x.device).view(shape) for k in range(3))


def apply(x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Apply ``(gain, bias, gamma)`` to intensities in [0, 1]; result clipped to [0, 1]."""
    gain, bias, gamma = _split(x, params)
    return (gain * x.clamp(0, 1) ** gamma + bias).clamp(0, 1)


def invert(y: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Undo :func:`apply` (exact where it did not clip)."""
    gain, bias, gamma = _split(y, params)
    return ((y - bias) / gain).clamp(0, 1) ** (1.0 / gamma)


def add_noise(x: torch.Tensor, sigma: float, generator=None, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Add white Gaussian noise of standard deviation ``sigma``, clip to [0, 1].

    ``noise`` (standard normal, the shape of ``x``) is used instead of drawing it, e.g. when
    it was drawn on the CPU for an image made on another device.
    """
    if sigma <= 0:
        return x
    if noise is None:
        noise = torch.randn(x.shape, generator=generator)
    return (x + sigma * noise.to(x.device)).clamp(0, 1)


def vignetting(distance: torch.Tensor, radius: float, strength) -> torch.Tensor:
    r"""Illumination fall-off :math:`1 - s\,(r / R)^2` at ``distance`` ``r`` from the optical centre.

    ``strength`` ``s`` is a number or a tensor broadcastable to ``distance``.

    >>> vignetting(torch.tensor([0.0, 50.0, 100.0]), 100.0, 0.4)
    tensor([1.0000, 0.9000, 0.6000])
    """
    return 1.0 - torch.as_tensor(strength, device=distance.device) * (distance / radius).clamp(max=1.0) ** 2


def blur_mix(x: torch.Tensor, amount: torch.Tensor, sigma: float) -> torch.Tensor:
    """A blur difference of strength ``amount`` (per image, in [0, 1]): ``(1 - a) x + a G_sigma * x``.

    One Gaussian blur for the whole batch ``N,C,H,W``; ``amount`` is ``(N,)``.

    >>> x = torch.rand(2, 1, 8, 8)
    >>> torch.equal(blur_mix(x, torch.zeros(2), 1.0), x)
    True
    """
    amount = torch.as_tensor(amount, dtype=x.dtype, device=x.device).view(-1, 1, 1, 1)
    if sigma <= 0 or not bool((amount > 0).any()):
        return x
    return x + amount * (gaussian_blur(x, sigma) - x)
