r"""DIRNet (de Vos et al., 2017): a CNN regresses a B-spline control grid; the AiR paper's CNN baseline.

The moving and fixed images are stacked as two channels and passed through a small CNN
(3x3 convolutions, batch norm, ELU, ``pools`` 2x2 average-pooling steps, then two 1x1
convolutions). Its output, one 2-vector per cell of the ``H/2^p x W/2^p`` feature grid, is read
as the displacements (pixels) of cubic B-spline control points spanning the image, and
:func:`regkit.spatial.bspline_upsample` turns them into a dense, :math:`C^2`-smooth field,
with which :func:`regkit.spatial.warp` pulls the moving image.

Convention
----------
- ``forward(moving, fixed)``: ``N,1,H,W`` each (any size with ``H, W >= 4 * 2**pools``).
- Returns :class:`regkit.RegResult` with ``disp`` ``N,2,H,W`` (pixels, x then y, pull) and
  ``extras["control"]``, the control grid ``N,2,H/2^p,W/2^p`` in pixels.

Our choices (neither the AiR paper nor our reading of de Vos et al. fixes them for 2D MNIST):
32 channels, two conv layers per scale, ``pools=2`` (an 8x8 control grid on the book's 32 px
digits, control spacing 31 / 5 = 6.2 px; 7x7 and 6.75 px at 28 px), a zero-initialised last
layer so training starts from the identity.

Getting a trained model: ``Trainer(DIRNet(), RegistrationObjective(...), cfg).fit(pairs)``, then
``regkit.register(moving, fixed, method="dirnet", model=trainer.model)`` or
``model="<checkpoint_dir>/last.pt"``.

>>> import torch
>>> net = DIRNet()
>>> res = net(torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32))
>>> tuple(res.disp.shape), tuple(res.extras["control"].shape), float(res.disp.detach().abs().max())
((2, 2, 32, 32), (2, 2, 8, 8), 0.0)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .. import spatial
from .._checks import check_pair, check_positive
from ..registry import RegResult, method
from .blocks import ConvBlock, run_model

__all__ = ["DIRNet"]


class DIRNet(nn.Module):
    """The DIRNet CNN with a cubic B-spline transformer.

    Parameters
    ----------
    channels : int
        Width of every conv layer.
    pools : int
        Number of 2x2 average-pooling steps: the control grid is ``H/2^pools x W/2^pools``.
    convs_per_scale : int
    in_channels : int
        Channels of each input image (1 for grey).
    """

    def __init__(self, channels: int = 32, pools: int = 2, convs_per_scale: int = 2, in_channels: int = 1):
        super().__init__()
        for name, v in (("channels", channels), ("convs_per_scale", convs_per_scale), ("in_channels", in_channels)):
            check_positive(name, v, integer=True)
        check_positive("pools", pools, integer=True, allow_zero=True)
        self.config = dict(channels=channels, pools=pools, convs_per_scale=convs_per_scale, in_channels=in_channels)
        self.pools = pools
        layers: list[nn.Module] = []
        cin = 2 * in_channels
        for scale in range(pools + 1):
            for _ in range(convs_per_scale):
                layers.append(ConvBlock(cin, channels, norm="batch", act="elu"))
                cin = channels
            if scale < pools:
                layers.append(nn.AvgPool2d(2))
        layers += [nn.Conv2d(channels, channels, 1), nn.ELU(), nn.Conv2d(channels, 2, 1)]
        self.net = nn.Sequential(*layers)
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, moving: Tensor, fixed: Tensor) -> RegResult:
        check_pair("moving", moving, "fixed", fixed)
        h, w = moving.shape[-2:]
        need = 4 * 2**self.pools
        if h < need or w < need:
            raise ValueError(
                f"moving and fixed must be at least {need}x{need} px for DIRNet with pools={self.pools} "
                f"(a control grid of at least 4x4), got {h}x{w}"
            )
        if moving.shape[1] * 2 != self.net[0].conv.in_channels:
            raise ValueError(f"moving must have {self.config['in_channels']} channel(s), got shape {tuple(moving.shape)}")
        control = self.net(torch.cat((moving, fixed), 1)).float()
        disp = spatial.bspline_upsample(control, (h, w))
        return RegResult(warped=spatial.warp(moving, disp), disp=disp, extras={"control": control})


@method("dirnet", kind="learned", summary="DIRNet (de Vos et al. 2017): CNN -> cubic B-spline control grid; AiR's CNN baseline.")
def _dirnet(moving: Tensor, fixed: Tensor, model=None) -> RegResult:
    """Register with a trained :class:`DIRNet` (``model=`` a module or a Trainer checkpoint path)."""
    return run_model(model, DIRNet, moving, fixed)
