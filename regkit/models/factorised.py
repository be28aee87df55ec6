r"""The factorised encoder-decoder shared by SAS-Net and GPEReg-Net.

A *scene* encoder (residual U-Net with instance normalisation) turns the moving image into a
scene map that keeps its spatial structure and drops its intensity statistics; an *appearance*
encoder turns the fixed image into a small code with no spatial position left (global pooling);
an AdaIN decoder paints the scene with the appearance:

.. math::

    \hat y = D\big(S(m),\; A(f)\big), \qquad
    \mathrm{AdaIN}(x, a) = \gamma(a)\,\frac{x - \mu(x)}{\sigma(x)} + \beta(a).

Convention
----------
Images ``N,C,H,W`` in [0, 1]; scene maps ``N,S,H,W`` at the input's resolution; appearance codes
``N,D``. Feature resizing goes through :mod:`regkit.spatial`.

Example
-------
>>> import torch
>>> scene, code = SceneEncoder(widths=(8, 16, 32, 64), out_channels=16), AppearanceEncoder(widths=(8, 16, 32, 64))
>>> x = torch.rand(2, 1, 32, 32)
>>> s, a = scene(x), code(x)
>>> s.shape, a.shape, ImageDecoder(16, 32, (16, 8))(s, a).shape
(torch.Size([2, 16, 32, 32]), torch.Size([2, 32]), torch.Size([2, 1, 32, 32]))
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .. import spatial
from .blocks import ConvBlock

__all__ = [
    "ResBlock",
    "SceneEncoder",
    "AppearanceEncoder",
    "AdaIN",
    "AdaINConvBlock",
    "ImageDecoder",
    "normalised_scene_distance",
]

_ACT_SLOPE = 0.2


# ----------------------------------------------------------------------------------------------
# Scene encoder: residual U-Net with instance normalisation
# ----------------------------------------------------------------------------------------------


class ResBlock(nn.Module):
    """Residual block: conv3x3-IN-LeakyReLU-conv3x3-IN plus a (1x1 conv) shortcut, then LeakyReLU.

    ``stride=2`` halves the resolution (in the first conv and in the shortcut). Instance norms
    have no affine parameters and no running statistics, so train and eval behave the same.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        self.conv1 = ConvBlock(in_ch, out_ch, stride=stride, norm="instance")
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.norm2 = nn.InstanceNorm2d(out_ch)
        self.skip = (
            nn.Identity() if in_ch == out_ch and stride == 1 else nn.Conv2d(in_ch, out_ch, 1, stride=stride)
        )
        self.act = nn.LeakyReLU(_ACT_SLOPE)

    def forward(self, x: Tensor) -> Tensor:
        y = self.norm2(self.conv2(self.conv1(x)))
        return self.act(y + self.skip(x))


class SceneEncoder(nn.Module):
    """U-Net scene encoder ``N,C,H,W -> N,out_channels,H,W`` with four encoding levels.

    Levels run at ``H, H/2, H/4, H/8`` with ``widths`` channels (stride-2 residual blocks between
    them, ``bottleneck`` residual blocks at the deepest one); the decoder upsamples bilinearly
    (through :func:`regkit.spatial.resize_image`), concatenates the skip of the same level and
    applies a residual block. A final 1x1 convolution gives the scene map. Every block is
    instance-normalised, which strips per-image intensity statistics.
    """

    def __init__(self, in_channels: int = 1, widths=(32, 64, 128, 256), out_channels: int = 64, bottleneck: int = 2):
        super().__init__()
        if len(widths) != 4:
            raise ValueError(f"widths must give four encoding levels, got {widths!r}")
        c1, c2, c3, c4 = widths
        self.stem = ConvBlock(in_channels, c1, norm="instance")
        self.enc1 = ResBlock(c1, c1)
        self.enc2 = ResBlock(c1, c2, stride=2)
        self.enc3 = ResBlock(c2, c3, stride=2)
        self.enc4 = nn.Sequential(ResBlock(c3, c4, stride=2), *[ResBlock(c4, c4) for _ in range(bottleneck - 1)])
        self.dec3 = ResBlock(c4 + c3, c3)
        self.dec2 = ResBlock(c3 + c2, c2)
        self.dec1 = ResBlock(c2 + c1, out_channels)
        self.head = nn.Conv2d(out_channels, out_channels, 1)
        self.out_channels = out_channels

    @staticmethod
    def _up_cat(x: Tensor, skip: Tensor) -> Tensor:
        return torch.cat((spatial.resize_image(x, skip.shape[-2:]), skip), 1)

    def forward(self, x: Tensor) -> Tensor:
        s1 = self.enc1(self.stem(x))
        s2 = self.enc2(s1)
        s3 = self.enc3(s2)
        s4 = self.enc4(s3)
        y = self.dec3(self._up_cat(s4, s3))
        y = self.dec2(self._up_cat(y, s2))
        y = self.dec1(self._up_cat(y, s1))
        return self.head(y)


# ----------------------------------------------------------------------------------------------
# Appearance encoder and AdaIN decoder
# ----------------------------------------------------------------------------------------------


class AppearanceEncoder(nn.Module):
    """Global appearance code ``N,C,H,W -> N,code_dim``: four stride-2 convs, global average pool, two FCs.

    No normalisation layers: the code must keep the image's intensity statistics. Global average
    pooling throws away where anything is, so the code carries no spatial layout (translating the
    image changes it only through what enters or leaves at the borders).
    """

    def __init__(self, in_channels: int = 1, widths=(16, 32, 64, 128), code_dim: int = 32, hidden: int = 128):
        super().__init__()
        if len(widths) != 4:
            raise ValueError(f"widths must give four stride-2 convolutions, got {widths!r}")
        layers, prev = [], in_channels
        for w in widths:
            layers.append(ConvBlock(prev, w, stride=2))
            prev = w
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Linear(prev, hidden), nn.LeakyReLU(_ACT_SLOPE), nn.Linear(hidden, code_dim))
        self.code_dim = code_dim

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.convs(x).mean(dim=(2, 3)))


class AdaIN(nn.Module):
    r"""Adaptive instance normalisation :math:`\gamma(a)\,\mathrm{IN}(x) + \beta(a)`, with
    :math:`(\gamma, \beta)` an affine function of the code ``a`` (``N,code_dim``).

    :math:`\gamma` is parametrised as ``1 + linear(a)`` so that a zero code is the identity
    modulation at initialisation.
    """

    def __init__(self, channels: int, code_dim: int):
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.affine = nn.Linear(code_dim, 2 * channels)

    def forward(self, x: Tensor, code: Tensor) -> Tensor:
        gamma, beta = self.affine(code).chunk(2, dim=1)
        return (1 + gamma[..., None, None]) * self.norm(x) + beta[..., None, None]


class AdaINConvBlock(nn.Module):
    """conv3x3 -> AdaIN(code) -> LeakyReLU."""

    def __init__(self, in_ch: int, out_ch: int, code_dim: int):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.adain = AdaIN(out_ch, code_dim)
        self.act = nn.LeakyReLU(_ACT_SLOPE)

    def forward(self, x: Tensor, code: Tensor) -> Tensor:
        return self.act(self.adain(self.conv(x), code))


def _to_image(head: nn.Module, x: Tensor) -> Tensor:
    """The last 1x1 convolution and the sigmoid, in float32 even under autocast (the output is an image)."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        return torch.sigmoid(head(x.float()))


class ImageDecoder(nn.Module):
    """Scene map + appearance code -> image: AdaIN-conv blocks (64, 32, 16 channels), 1x1 conv, sigmoid.

    The last convolution and the sigmoid run in float32, also under autocast.
    """

    def __init__(self, in_channels: int = 64, code_dim: int = 32, widths=(64, 32, 16), out_channels: int = 1):
        super().__init__()
        blocks, prev = [], in_channels
        for w in widths:
            blocks.append(AdaINConvBlock(prev, w, code_dim))
            prev = w
        self.blocks = nn.ModuleList(blocks)
        self.out = nn.Conv2d(prev, out_channels, 1)

    def forward(self, scene: Tensor, code: Tensor) -> Tensor:
        x = scene
        for block in self.blocks:
            x = block(x, code)
        return _to_image(self.out, x)


def normalised_scene_distance(a: Tensor, b: Tensor) -> Tensor:
    """Mean squared difference of two scene maps after instance normalisation (float32, scalar).

    Instance normalisation makes the term blind to a common shrinking of the maps, which AdaIN
    would not notice either; 0 means the same spatial pattern in every channel.
    """
    with torch.autocast(device_type=a.device.type, enabled=False):
        return F.mse_loss(F.instance_norm(a.float()), F.instance_norm(b.float()))
