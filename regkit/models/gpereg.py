r"""GPEReg-Net: deformation-free cross-domain registration by scene-appearance factorisation.

The model never estimates a displacement. It encodes the *moving* image into a 64-channel scene
map (spatial structure, intensity statistics removed by instance normalisation), encodes the
*fixed* image into a 32-number appearance code (global average pooling removes every spatial
position), optionally adds temporal context from neighbouring frames (the GPE module), and
decodes the scene with the fixed image's appearance through AdaIN:

.. math::

    \hat y = D\big(S(m) + \alpha\, g(t),\; A(f)\big),
    \qquad \mathrm{AdaIN}(x, a) = \gamma(a)\,\frac{x - \mu(x)}{\sigma(x)} + \beta(a).

Convention
----------
- ``forward(moving, fixed, frame=None)`` takes ``N,C,H,W`` images in [0, 1] (``C`` =
  ``in_channels``, 1 by default; ``H`` and ``W`` at least 9) and returns
  ``RegResult(warped=output, disp=None)``, the output ``N,C,H,W`` in [0, 1] (sigmoid): there is
  no displacement to return, so nothing downstream may assume one. ``frame`` is the index of
  each pair in its sequence, an ``int`` or a long tensor ``N``; ``None`` means frame 0, a
  sequence start with no neighbours. ``sequence`` (optional, one id per pair) says which
  sequence each pair belongs to, so that frames of different sequences never attend to each
  other.
- The registered method ``"gpereg"`` runs a trained model the same way (eval mode, no grad).
- The output's spatial layout comes from the moving image alone; the fixed image reaches the
  output only through the 32-number code. :mod:`regkit.experiments.controls` tests what that
  implies.

Values the paper leaves open (its extraction lost some, others it never states) are our
choices, all arguments of :class:`GPERegNet` with these defaults:

- scene-encoder widths ``(32, 64, 128, 248)`` with two residual blocks at the bottleneck and
  stride-2 residual blocks for downsampling, chosen so that the whole model has about the
  paper's 3.40 M parameters (3.42 M with ``num_frames=128``);
- appearance-encoder widths ``(16, 32, 64, 128)``, 3x3 kernels, LeakyReLU(0.2), no
  normalisation (normalising would erase the statistics it must capture), FC 128-128-32;
- GPE: frame table ``T = num_frames = 128`` (every window of a FIRE pair, at most 11 x 11 = 121
  in our cut, has its own row; the offline proxy has 9 per pair), sliding window
  ``window = 4`` preceding frames, 4 attention heads, fusion MLP 192-128-64, scale
  ``alpha = 0.1`` (a fixed hyper-parameter);
- past ``T`` frames the learned embedding is *clamped* to its last row (frame ``T - 1``), while
  the sinusoidal encoding and the cross-frame attention keep working at any index (see
  :class:`GPE`);
- the factorisation term compares *instance-normalised* scene maps, because AdaIN normalises
  the decoder's input and the raw maps could otherwise shrink to zero to satisfy it for free.

Example
-------
>>> import torch
>>> net = GPERegNet()
>>> res = net(torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32), frame=torch.tensor([0, 1]))
>>> res.warped.shape, res.disp
(torch.Size([2, 1, 32, 32]), None)
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_pair
from ..registry import RegResult, method
from .blocks import run_model
from .factorised import AppearanceEncoder, ImageDecoder, SceneEncoder, normalised_scene_distance
from .gpe import GPE, frame_indices, sequence_ids

__all__ = ["GPERegNet", "GPERegObjective", "UncertaintyWeighting", "PAPER_PARAMS_M"]

PAPER_PARAMS_M = 3.40
"""GPEReg-Net's parameter count in the paper (millions)."""


# ----------------------------------------------------------------------------------------------
# The network
# ----------------------------------------------------------------------------------------------


class GPERegNet(nn.Module):
    """Scene encoder (moving) + appearance encoder (fixed) + GPE + AdaIN decoder.

    Parameters
    ----------
    in_channels : int
        Image channels (1 for the book's grey images).
    scene_widths, appearance_widths, decoder_widths : tuples of int
        Channel widths (our choices, see the module docstring; the decoder's are the paper's).
    scene_channels, code_dim : int
        64 and 32 in the paper.
    gpe : bool
        ``False`` gives the ablation without temporal context (no GPE parameters at all).
    num_frames, window, heads, alpha :
        GPE settings (:class:`GPE`).
    """

    def __init__(
        self,
        in_channels: int = 1,
        scene_widths=(32, 64, 128, 248),
        appearance_widths=(16, 32, 64, 128),
        decoder_widths=(64, 32, 16),
        scene_channels: int = 64,
        code_dim: int = 32,
        bottleneck: int = 2,
        gpe: bool = True,
        num_frames: int = 128,
        window: int = 4,
        heads: int = 4,
        alpha: float = 0.1,
    ):
        super().__init__()
        self.config = {  # constructor arguments, stored in checkpoints (rebuilt by blocks.as_model)
            "in_channels": in_channels, "scene_widths": list(scene_widths),
            "appearance_widths": list(appearance_widths), "decoder_widths": list(decoder_widths),
            "scene_channels": scene_channels, "code_dim": code_dim, "bottleneck": bottleneck, "gpe": gpe,
            "num_frames": num_frames, "window": window, "heads": heads, "alpha": alpha,
        }
        self.in_channels = in_channels
        self.scene = SceneEncoder(in_channels, scene_widths, scene_channels, bottleneck)
        self.appearance = AppearanceEncoder(in_channels, appearance_widths, code_dim)
        self.gpe = GPE(scene_channels, num_frames, window, heads, alpha=alpha) if gpe else None
        self.decoder = ImageDecoder(scene_channels, code_dim, decoder_widths, in_channels)

    def reset_cache(self) -> None:
        """Forget the GPE's running frame cache (no-op without GPE)."""
        if self.gpe is not None:
            self.gpe.reset_cache()

    def _check(self, moving: Tensor, fixed: Tensor) -> None:
        check_pair("moving", moving, "fixed", fixed)
        if moving.shape[1] != self.in_channels:
            raise ValueError(f"moving must have {self.in_channels} channel(s), got shape {tuple(moving.shape)}")
        if min(moving.shape[-2:]) < 9:  # the scene encoder's 1/8 level needs more than one pixel
            raise ValueError(f"moving must be at least 9x9 pixels, got {tuple(moving.shape[-2:])}")

    def parts(self, moving: Tensor, fixed: Tensor, frame=None, sequence=None) -> dict:
        """Every intermediate the objective needs: ``output``, ``scene`` (before GPE), ``code``."""
        self._check(moving, fixed)
        frames = frame_indices(frame, moving.shape[0], moving.device)
        seqs = sequence_ids(sequence, moving.shape[0], moving.device)
        scene = self.scene(moving)
        code = self.appearance(fixed)
        ctx = self.gpe(scene, frames, seqs) if self.gpe is not None else scene
        return {"output": self.decoder(ctx, code), "scene": scene, "code": code}

    def forward(self, moving: Tensor, fixed: Tensor, frame=None, sequence=None) -> RegResult:
        return RegResult(warped=self.parts(moving, fixed, frame, sequence)["output"], disp=None)


# ----------------------------------------------------------------------------------------------
# Objective: reconstruction + lambda * factorisation, lambda by uncertainty weighting
# ----------------------------------------------------------------------------------------------

class UncertaintyWeighting(nn.Module):
    r"""Homoscedastic-uncertainty multi-task weighting (Kendall, Gal and Cipolla, 2018).

    With learned log-variances :math:`s_i`:
    :math:`L = \sum_i \tfrac12 e^{-s_i} L_i + \tfrac12 s_i`. The effective weight of task ``i``
    relative to task 0 is :math:`e^{s_0 - s_i}`. The log-variances start at 0 (equal weights).

    >>> w = UncertaintyWeighting(2)
    >>> float(w(torch.tensor([1.0, 3.0])).detach())
    2.0
    """

    def __init__(self, tasks: int):
        super().__init__()
        self.log_vars = nn.Parameter(torch.zeros(tasks))

    def forward(self, losses: Tensor) -> Tensor:
        s = self.log_vars.float()
        return (0.5 * torch.exp(-s) * losses.float() + 0.5 * s).sum()

    def relative_weights(self) -> Tensor:
        """:math:`e^{s_0 - s_i}` for each task (1 for task 0)."""
        s = self.log_vars.detach().float()
        return torch.exp(s[0] - s)


class GPERegObjective(nn.Module):
    r"""GPEReg-Net's loss :math:`L_{rec} + \lambda L_{fact}` with :math:`\lambda` learned.

    - :math:`L_{rec}` = L1 between the output and the fixed image (our choice of pixel loss);
    - :math:`L_{fact}` = :func:`normalised_scene_distance` between the scene maps of the moving
      and of the fixed image (the same scene encoder, before GPE);
    - the two are balanced by :class:`UncertaintyWeighting`, whose log-variances are this
      module's parameters (give them to the optimiser); :math:`\lambda = e^{s_{rec} - s_{fact}}`.

    Called as ``objective(model, batch) -> (loss, logs, result)`` with ``batch`` a dict holding
    ``moving``, ``fixed`` (``N,C,H,W``) and optionally ``frame`` and ``sequence`` (else
    ``pair``, the image pair a FIRE patch comes from, serves as the sequence id); ``result`` is
    the model's :class:`~regkit.RegResult` (the Trainer's validation reuses it). The terms run
    in float32.
    """

    def __init__(self):
        super().__init__()
        self.weighting = UncertaintyWeighting(2)

    def forward(self, model: GPERegNet, batch: dict):
        moving, fixed = batch["moving"], batch["fixed"]
        parts = model.parts(moving, fixed, batch.get("frame"), batch.get("sequence", batch.get("pair")))
        with torch.autocast(device_type=moving.device.type, enabled=False):
            rec = F.l1_loss(parts["output"].float(), fixed.float())
            fact = normalised_scene_distance(parts["scene"], model.scene(fixed))
            loss = self.weighting(torch.stack((rec, fact)))
        logs = {
            "loss": float(loss.detach()),
            "rec": float(rec.detach()),
            "fact": float(fact.detach()),
            "lambda": float(self.weighting.relative_weights()[1]),
        }
        return loss, logs, RegResult(warped=parts["output"], disp=None)


# ----------------------------------------------------------------------------------------------
# The registered method
# ----------------------------------------------------------------------------------------------


@method(
    "gpereg",
    kind="learned",
    summary="GPEReg-Net: scene of the moving image decoded with the fixed image's 32-number "
    "appearance code (AdaIN) plus position-encoded cross-frame attention; no displacement.",
)
def _gpereg(moving: Tensor, fixed: Tensor, model: GPERegNet | None = None, frame=None, sequence=None) -> RegResult:
    """``frame``: each pair's index in its sequence; ``sequence``: which sequence (e.g. the FIRE pair)."""
    res = run_model(model, GPERegNet, moving, fixed, frame=frame, sequence=sequence)
    res.extras["deformation_free"] = True
    return res
