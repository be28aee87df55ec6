r"""SAS-Net: scene-appearance separation network, GPEReg-Net's strongest baseline.

Like GPEReg-Net, SAS-Net registers without a displacement: the moving image's scene map is
decoded with the fixed image's appearance code. It has no temporal module; it is trained with
three extra losses that push the factorisation apart:

.. math::

    L = L_{rec} + w_{sc} L_{scene} + w_{da} L_{domain} + w_{cyc} L_{cycle}

- :math:`L_{rec} = \lVert D(S(m), A(f)) - f\rVert_1`, the output against the fixed image;
- scene consistency :math:`L_{scene}`: the scene maps of moving and fixed agree
  (:func:`~regkit.models.factorised.normalised_scene_distance`);
- domain alignment :math:`L_{domain} = \lVert A(\hat y) - \mathrm{sg}[A(f)]\rVert_1`: the
  output's appearance code is the fixed image's (``sg`` = stop-gradient);
- cycle consistency :math:`L_{cycle} = \lVert D(S(\hat y), A(m)) - m\rVert_1`: re-encoding the
  output's scene and decoding it with the moving image's appearance gives the moving image back.

Convention
----------
- ``forward(moving, fixed, frame=None)`` takes ``N,C,H,W`` images in [0, 1] and returns
  ``RegResult(warped=output, disp=None)`` with the output ``N,C,H,W`` in [0, 1]; ``frame`` is
  accepted for a uniform call and ignored.
- The registered method ``"sasnet"`` runs a trained model the same way (eval mode, no grad).

The SAS-Net paper is not available to us; GPEReg-Net's paper gives its parameter count
(3.35 M) and says GPEReg-Net is faster "due to its simpler AdaIN-based decoding". Our reading,
all of it our choice: the same scene and appearance encoders as GPEReg-Net (:mod:`regkit.models.factorised`)
(scene widths ``(32, 64, 128, 240)``, 3.36 M parameters in all), and a heavier decoder of two AdaIN
*residual* blocks at 64 channels before the 32- and 16-channel AdaIN-conv blocks, all at full
resolution. Loss weights ``w_sc = 0.5, w_da = 0.1, w_cyc = 0.5``.

Example
-------
>>> import torch
>>> net = SASNet()
>>> net(torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32)).warped.shape
torch.Size([1, 1, 32, 32])
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_pair, check_positive
from ..registry import RegResult, method
from .blocks import run_model
from .factorised import AdaIN, AppearanceEncoder, ImageDecoder, SceneEncoder, normalised_scene_distance

__all__ = ["AdaINResBlock", "SASDecoder", "SASNet", "SASNetObjective", "PAPER_PARAMS_M"]

PAPER_PARAMS_M = 3.35
"""SAS-Net's parameter count as given in GPEReg-Net's paper (millions)."""


class AdaINResBlock(nn.Module):
    """Residual block conv-AdaIN-LeakyReLU-conv-AdaIN plus identity, then LeakyReLU."""

    def __init__(self, channels: int, code_dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.ada1 = AdaIN(channels, code_dim)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.ada2 = AdaIN(channels, code_dim)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: Tensor, code: Tensor) -> Tensor:
        y = self.act(self.ada1(self.conv1(x), code))
        return self.act(x + self.ada2(self.conv2(y), code))


class SASDecoder(ImageDecoder):
    """``res_blocks`` AdaIN residual blocks at the scene width, then GPEReg-Net's decoder
    (AdaIN-conv blocks, 1x1 conv, sigmoid; the last two in float32, also under autocast)."""

    def __init__(self, in_channels: int = 64, code_dim: int = 32, res_blocks: int = 2, widths=(32, 16), out_channels: int = 1):
        super().__init__(in_channels, code_dim, widths, out_channels)
        self.res = nn.ModuleList(AdaINResBlock(in_channels, code_dim) for _ in range(res_blocks))

    def forward(self, scene: Tensor, code: Tensor) -> Tensor:
        x = scene
        for block in self.res:
            x = block(x, code)
        return super().forward(x, code)


class SASNet(nn.Module):
    """Scene encoder (moving) + appearance encoder (fixed) + AdaIN residual decoder; no temporal module."""

    def __init__(
        self,
        in_channels: int = 1,
        scene_widths=(32, 64, 128, 240),
        appearance_widths=(16, 32, 64, 128),
        scene_channels: int = 64,
        code_dim: int = 32,
        bottleneck: int = 2,
        res_blocks: int = 2,
        decoder_widths=(32, 16),
    ):
        super().__init__()
        self.config = {  # constructor arguments, stored in checkpoints (rebuilt by blocks.as_model)
            "in_channels": in_channels, "scene_widths": list(scene_widths),
            "appearance_widths": list(appearance_widths), "scene_channels": scene_channels,
            "code_dim": code_dim, "bottleneck": bottleneck, "res_blocks": res_blocks,
            "decoder_widths": list(decoder_widths),
        }
        self.in_channels = in_channels
        self.scene = SceneEncoder(in_channels, scene_widths, scene_channels, bottleneck)
        self.appearance = AppearanceEncoder(in_channels, appearance_widths, code_dim)
        self.decoder = SASDecoder(scene_channels, code_dim, res_blocks, decoder_widths, in_channels)

    def reset_cache(self) -> None:
        """No temporal state (present so that callers can treat both models alike)."""

    def parts(self, moving: Tensor, fixed: Tensor, frame=None) -> dict:
        """``output``, ``scene`` (of the moving image) and ``code`` (of the fixed image)."""
        check_pair("moving", moving, "fixed", fixed)
        if moving.shape[1] != self.in_channels:
            raise ValueError(f"moving must have {self.in_channels} channel(s), got shape {tuple(moving.shape)}")
        if min(moving.shape[-2:]) < 9:  # the scene encoder's 1/8 level needs more than one pixel
            raise ValueError(f"moving must be at least 9x9 pixels, got {tuple(moving.shape[-2:])}")
        scene = self.scene(moving)
        code = self.appearance(fixed)
        return {"output": self.decoder(scene, code), "scene": scene, "code": code}

    def forward(self, moving: Tensor, fixed: Tensor, frame=None) -> RegResult:
        return RegResult(warped=self.parts(moving, fixed)["output"], disp=None)


class SASNetObjective(nn.Module):
    """SAS-Net's loss (module docstring): ``objective(model, batch) -> (loss, logs, result)``.

    The terms run in float32; ``result`` is the model's :class:`~regkit.RegResult`.
    """

    def __init__(self, scene_weight: float = 0.5, domain_weight: float = 0.1, cycle_weight: float = 0.5):
        super().__init__()
        for name, v in (("scene_weight", scene_weight), ("domain_weight", domain_weight), ("cycle_weight", cycle_weight)):
            check_positive(name, v, allow_zero=True)
        self.scene_weight, self.domain_weight, self.cycle_weight = scene_weight, domain_weight, cycle_weight

    def forward(self, model: SASNet, batch: dict):
        moving, fixed = batch["moving"], batch["fixed"]
        parts = model.parts(moving, fixed)
        out = parts["output"]
        scene_fixed = model.scene(fixed)
        code_moving = model.appearance(moving)
        code_out = model.appearance(out)
        cycle = model.decoder(model.scene(out), code_moving)
        with torch.autocast(device_type=moving.device.type, enabled=False):
            rec = F.l1_loss(out.float(), fixed.float())
            scene = normalised_scene_distance(parts["scene"], scene_fixed)
            domain = F.l1_loss(code_out.float(), parts["code"].detach().float())
            cyc = F.l1_loss(cycle.float(), moving.float())
            loss = rec + self.scene_weight * scene + self.domain_weight * domain + self.cycle_weight * cyc
        logs = {
            "loss": float(loss.detach()),
            "rec": float(rec.detach()),
            "scene": float(scene.detach()),
            "domain": float(domain.detach()),
            "cycle": float(cyc.detach()),
        }
        return loss, logs, RegResult(warped=out, disp=None)


@method(
    "sasnet",
    kind="learned",
    summary="SAS-Net: scene-appearance separation (scene, domain-alignment and cycle losses), "
    "AdaIN decoding of the moving scene with the fixed appearance; no displacement.",
)
def _sasnet(moving: Tensor, fixed: Tensor, model: SASNet | None = None, frame=None) -> RegResult:
    """``frame`` is accepted so that every deformation-free method is called alike; SAS-Net ignores it."""
    res = run_model(model, SASNet, moving, fixed)
    res.extras["deformation_free"] = True
    return res
