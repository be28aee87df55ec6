r"""2D VoxelMorph (Balakrishnan et al., 2019): a U-Net maps a pair to a dense displacement field.

The moving and fixed images are stacked as two channels; a U-Net (3x3 convolutions with
LeakyReLU(0.2), 2x2 max-pooling down, 2x nearest upsampling and skip concatenations up) ends in a
3x3 convolution with two output channels: the displacement in pixels, or, with
``diffeomorphic=True``, a stationary velocity field that
:func:`regkit.spatial.integrate_velocity` exponentiates by scaling and squaring (VoxelMorph-diff),
which keeps the map (nearly) fold-free.

Convention
----------
- ``forward(moving, fixed)``: ``N,1,H,W`` each, any size of at least ``2**levels`` px. A size that
  is not a multiple of ``2**levels`` (16 by default, e.g. MNIST's 28) is **padded** at the
  bottom/right by replicating the border, the network runs on the padded pair, and the field is
  cropped back, so the result always has the input size.
- Returns :class:`regkit.RegResult` with ``disp`` ``N,2,H,W`` (pixels, x then y, pull);
  diffeomorphic models also put ``extras["velocity"]``.

The default features are **VoxelMorph-2**'s, ``enc=(16, 32, 32, 32)`` and
``dec=(32, 32, 32, 32, 32, 16, 16)`` (Balakrishnan et al. 2019; VoxelMorph-1 has the
same encoder and the smaller decoder ``(32, 32, 32, 8, 8)``), in 2D: 109,170 parameters (0.11 M,
independent of the image size); VoxelMorph-1's decoder gives 76,114 (0.08 M). The GPEReg-Net
paper's Table 2 lists 0.10 M for its VoxelMorph without giving its configuration; VoxelMorph-2
is the closer of the two, so it is our default. The last layer starts near zero (normal, std
1e-5), so training starts from about the identity.

Getting a trained model: ``Trainer(VoxelMorph(), RegistrationObjective("lncc", weight=1.0),
cfg).fit(pairs)``, then ``regkit.register(moving, fixed, method="voxelmorph",
model=trainer.model)`` or ``model="<checkpoint_dir>/last.pt"``.

>>> import torch
>>> net = VoxelMorph()
>>> res = net(torch.rand(1, 1, 28, 28), torch.rand(1, 1, 28, 28))
>>> tuple(res.disp.shape), sum(p.numel() for p in net.parameters())
((1, 2, 28, 28), 109170)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .. import spatial
from .._checks import check_pair, check_positive
from ..registry import RegResult, method
from .blocks import ConvBlock, crop_to, pad_to_multiple, run_model, upsample2

__all__ = ["VoxelMorph", "UNet"]


class UNet(nn.Module):
    """VoxelMorph's U-Net: ``len(enc)`` levels down; ``dec[:len(enc)]`` up with skips; ``dec[len(enc):]`` at full size."""

    def __init__(self, in_channels: int = 2, enc=(16, 32, 32, 32), dec=(32, 32, 32, 32, 32, 16, 16)):
        super().__init__()
        enc, dec = tuple(int(c) for c in enc), tuple(int(c) for c in dec)
        if len(dec) < len(enc):
            raise ValueError(f"dec must have at least len(enc)={len(enc)} entries, got {dec}")
        self.levels = len(enc)
        self.down = nn.ModuleList()
        cin = in_channels
        for c in enc:
            self.down.append(ConvBlock(cin, c))
            cin = c
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList()
        skips = list(reversed(enc))
        for i in range(self.levels):
            self.up.append(ConvBlock(cin, dec[i]))
            cin = dec[i] + skips[i]
        self.extra = nn.ModuleList()
        for c in dec[self.levels :]:
            self.extra.append(ConvBlock(cin, c))
            cin = c
        self.out_channels = cin

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        for conv in self.down:
            x = conv(x)
            skips.append(x)
            x = self.pool(x)
        for conv, skip in zip(self.up, reversed(skips)):
            x = torch.cat((upsample2(conv(x)), skip), 1)
        for conv in self.extra:
            x = conv(x)
        return x


class VoxelMorph(nn.Module):
    """2D VoxelMorph (optionally diffeomorphic).

    Parameters
    ----------
    enc, dec : sequences of int
        U-Net features (VoxelMorph-2 by default; VoxelMorph-1 is ``enc=(16, 32, 32, 32)``,
        ``dec=(32, 32, 32, 8, 8)``).
    diffeomorphic : bool
        Predict a velocity and integrate it with ``int_steps`` scaling-and-squaring steps.
    int_steps : int
    in_channels : int
        Channels of each input image.
    """

    def __init__(self, enc=(16, 32, 32, 32), dec=(32, 32, 32, 32, 32, 16, 16), diffeomorphic: bool = False,
                 int_steps: int = 7, in_channels: int = 1):
        super().__init__()
        check_positive("in_channels", in_channels, integer=True)
        check_positive("int_steps", int_steps, integer=True)
        self.config = dict(enc=list(enc), dec=list(dec), diffeomorphic=bool(diffeomorphic), int_steps=int_steps,
                           in_channels=in_channels)
        self.unet = UNet(2 * in_channels, enc, dec)
        self.flow = nn.Conv2d(self.unet.out_channels, 2, 3, padding=1)
        nn.init.normal_(self.flow.weight, std=1e-5)
        nn.init.zeros_(self.flow.bias)
        self.diffeomorphic, self.int_steps, self.in_channels = bool(diffeomorphic), int_steps, in_channels

    @property
    def multiple(self) -> int:
        """Input sizes are padded to a multiple of this (``2**levels``)."""
        return 2**self.unet.levels

    def forward(self, moving: Tensor, fixed: Tensor) -> RegResult:
        check_pair("moving", moving, "fixed", fixed)
        if moving.shape[1] != self.in_channels:
            raise ValueError(f"moving must have {self.in_channels} channel(s), got shape {tuple(moving.shape)}")
        if min(moving.shape[-2:]) < self.multiple:
            raise ValueError(f"moving and fixed must be at least {self.multiple} px per side, got {tuple(moving.shape[-2:])}")
        x, size = pad_to_multiple(torch.cat((moving, fixed), 1), self.multiple)
        field = crop_to(self.flow(self.unet(x)), size).float()
        extras = {}
        if self.diffeomorphic:
            extras["velocity"] = field
            disp = spatial.integrate_velocity(field, self.int_steps)
        else:
            disp = field
        return RegResult(warped=spatial.warp(moving, disp), disp=disp, extras=extras)


@method("voxelmorph", kind="learned", summary="VoxelMorph (Balakrishnan et al. 2019), 2D U-Net -> dense field (optionally diffeomorphic).")
def _voxelmorph(moving: Tensor, fixed: Tensor, model=None) -> RegResult:
    """Register with a trained :class:`VoxelMorph` (``model=`` a module or a Trainer checkpoint path)."""
    return run_model(model, VoxelMorph, moving, fixed)
