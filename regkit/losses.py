r"""Differentiable similarity losses and regularisers (functional core, thin ``nn.Module`` wrappers).

Convention
----------
- Similarity losses take ``(warped, fixed)``, both ``N,C,H,W``, and return a scalar (mean over
  the batch) that is 0 for a perfect match and grows with mismatch.
- Regularisers take a displacement ``N,2,H,W`` in pixels and return a scalar.
- Everything runs in float32, also under autocast.

Example
-------
>>> import torch
>>> from regkit import losses
>>> x = torch.rand(2, 1, 16, 16)
>>> float(losses.ncc_loss(x, x)) < 1e-6
True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import check_disp, check_pair, check_positive

__all__ = [
    "mse_loss",
    "ncc_loss",
    "local_ncc_loss",
    "diffusion_loss",
    "bending_loss",
    "similarity_loss",
    "SIMILARITIES",
    "MSELoss",
    "NCCLoss",
    "LocalNCCLoss",
    "DiffusionLoss",
    "BendingLoss",
]

LNCC_EPS = 1e-5
"""Floor of the local variances in :func:`local_ncc_loss` (flat regions do not divide by zero)."""


def _no_autocast(x: Tensor):
    return torch.autocast(device_type=x.device.type, enabled=False)


def mse_loss(warped: Tensor, fixed: Tensor) -> Tensor:
    r"""Mean squared error :math:`\frac{1}{N|\Omega|}\sum (w - f)^2`."""
    check_pair("warped", warped, "fixed", fixed)
    with _no_autocast(warped):
        return ((warped.float() - fixed.float()) ** 2).mean()


def ncc_loss(warped: Tensor, fixed: Tensor, eps: float = 1e-8) -> Tensor:
    r"""``1 - NCC`` with the global NCC computed per image (never across the batch), averaged."""
    check_pair("warped", warped, "fixed", fixed)
    with _no_autocast(warped):
        w, f = warped.float().flatten(1), fixed.float().flatten(1)
        w = w - w.mean(1, keepdim=True)
        f = f - f.mean(1, keepdim=True)
        cc = (w * f).sum(1) / torch.sqrt((w * w).sum(1) * (f * f).sum(1) + eps)
        return (1 - cc).mean()


def local_ncc_loss(warped: Tensor, fixed: Tensor, window: int = 9) -> Tensor:
    r"""``1 - mean`` squared local NCC over ``window x window`` boxes (VoxelMorph's LNCC).

    :math:`\mathrm{cc}(p) = \frac{\mathrm{cov}_p(w,f)^2}{\max(\mathrm{var}_p w, \epsilon)\max(\mathrm{var}_p f, \epsilon)}`
    with box-filtered moments (zero padding) and :math:`\epsilon` = :data:`LNCC_EPS`. The variances
    are clamped, so flat regions neither divide by zero nor reward anything.
    """
    check_pair("warped", warped, "fixed", fixed)
    check_positive("window", window, integer=True)
    if window % 2 == 0:
        raise ValueError(f"window must be odd, got {window}")
    with _no_autocast(warped):
        w, f = warped.float(), fixed.float()
        c = w.shape[1]
        kernel = torch.ones(5 * c, 1, window, window, device=w.device) / window**2
        moments = F.conv2d(torch.cat((w, f, w * w, f * f, w * f), 1), kernel, padding=window // 2, groups=5 * c)
        mw, mf, ww, ff, wf = moments.chunk(5, dim=1)
        var_w = (ww - mw**2).clamp_min(LNCC_EPS)
        var_f = (ff - mf**2).clamp_min(LNCC_EPS)
        cov = wf - mw * mf
        return 1 - (cov**2 / (var_w * var_f)).mean()


def diffusion_loss(disp: Tensor) -> Tensor:
    r"""Diffusion regulariser :math:`\frac{1}{|\Omega|}\sum \lVert\nabla u\rVert^2` (forward differences, pixels²)."""
    check_disp("disp", disp)
    with _no_autocast(disp):
        u = disp.float()
        dx = u[..., :, 1:] - u[..., :, :-1]
        dy = u[..., 1:, :] - u[..., :-1, :]
        return (dx**2).mean() + (dy**2).mean()


def bending_loss(disp: Tensor) -> Tensor:
    r"""Bending energy :math:`\frac{1}{|\Omega|}\sum u_{xx}^2 + 2u_{xy}^2 + u_{yy}^2` (finite differences)."""
    check_disp("disp", disp)
    with _no_autocast(disp):
        u = disp.float()
        uxx = u[..., :, 2:] - 2 * u[..., :, 1:-1] + u[..., :, :-2]
        uyy = u[..., 2:, :] - 2 * u[..., 1:-1, :] + u[..., :-2, :]
        uxy = u[..., 1:, 1:] - u[..., 1:, :-1] - u[..., :-1, 1:] + u[..., :-1, :-1]
        return (uxx**2).mean() + (uyy**2).mean() + 2 * (uxy**2).mean()


SIMILARITIES = {"mse": mse_loss, "ncc": ncc_loss, "lncc": local_ncc_loss}
"""Similarity losses by name, for configuration files and experiment tables."""


def similarity_loss(name: str):
    """The similarity loss called ``name`` (one of :data:`SIMILARITIES`)."""
    if name not in SIMILARITIES:
        raise ValueError(f"similarity must be one of {sorted(SIMILARITIES)}, got {name!r}")
    return SIMILARITIES[name]


class MSELoss(nn.Module):
    """Module form of :func:`mse_loss`."""

    def forward(self, warped: Tensor, fixed: Tensor) -> Tensor:
        return mse_loss(warped, fixed)


class NCCLoss(nn.Module):
    """Module form of :func:`ncc_loss`."""

    def forward(self, warped: Tensor, fixed: Tensor) -> Tensor:
        return ncc_loss(warped, fixed)


class LocalNCCLoss(nn.Module):
    """Module form of :func:`local_ncc_loss`."""

    def __init__(self, window: int = 9):
        super().__init__()
        self.window = window

    def forward(self, warped: Tensor, fixed: Tensor) -> Tensor:
        return local_ncc_loss(warped, fixed, self.window)


class DiffusionLoss(nn.Module):
    """Module form of :func:`diffusion_loss`."""

    def forward(self, disp: Tensor) -> Tensor:
        return diffusion_loss(disp)


class BendingLoss(nn.Module):
    """Module form of :func:`bending_loss`."""

    def forward(self, disp: Tensor) -> Tensor:
        return bending_loss(disp)
