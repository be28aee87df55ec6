r"""Building blocks shared by the learned registration models.

Conv blocks, a 2x nearest upsampler, padding to a size a network can take, and the plumbing
that every model's registered method shares (:func:`as_model`, :func:`run_model`). DIRNet's cubic
B-spline field upsampler is :func:`regkit.spatial.bspline_upsample`.

Convention
----------
- Feature maps are ``N,C,H,W``; displacement fields are ``N,2,H,W`` in pixels (x then y).
- Nothing here resamples images: image warps and field resizes go through :mod:`regkit.spatial`.
  :func:`upsample2` repeats pixels (what 2x nearest interpolation does, exactly).

Example
-------
>>> import torch
>>> x = torch.arange(4.).view(1, 1, 2, 2)
>>> upsample2(x)[0, 0]
tensor([[0., 0., 1., 1.],
        [0., 0., 1., 1.],
        [2., 2., 3., 3.],
        [2., 2., 3., 3.]])
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_pair
from ..checkpoint import load_checkpoint
from ..registry import RegResult
from ..runtime import eval_mode

__all__ = [
    "ConvBlock",
    "upsample2",
    "pad_to_multiple",
    "crop_to",
    "count_parameters",
    "as_model",
    "run_model",
]


class ConvBlock(nn.Module):
    """``conv k x k (stride s) -> [norm] -> activation`` (LeakyReLU(0.2) by default, as in VoxelMorph)."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, norm: str | None = None,
                 act: str = "leaky"):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)
        if norm is None:
            self.norm = nn.Identity()
        elif norm == "batch":
            self.norm = nn.BatchNorm2d(cout)
        elif norm == "instance":
            self.norm = nn.InstanceNorm2d(cout)
        else:
            raise ValueError(f"norm must be None, 'batch' or 'instance', got {norm!r}")
        acts = {"leaky": lambda: nn.LeakyReLU(0.2), "elu": nn.ELU, "relu": nn.ReLU, "gelu": nn.GELU}
        if act not in acts:
            raise ValueError(f"act must be one of {sorted(acts)}, got {act!r}")
        self.act = acts[act]()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(x)))


def upsample2(x: Tensor) -> Tensor:
    """2x nearest-neighbour upsampling of ``N,C,H,W`` by repeating pixels (no interpolation call)."""
    return x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)


def pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Pad ``N,C,H,W`` at the bottom/right, replicating the border, to the next multiple of ``multiple``.

    Returns the padded tensor and the original ``(H, W)`` (for :func:`crop_to`). Replicating the
    border matches the ``padding="border"`` convention of :func:`regkit.spatial.warp`.

    >>> y, hw = pad_to_multiple(torch.zeros(1, 1, 28, 30), 16)
    >>> tuple(y.shape), hw
    ((1, 1, 32, 32), (28, 30))
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, (h, w)


def crop_to(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Undo :func:`pad_to_multiple`: keep the top-left ``size``."""
    return x[..., : size[0], : size[1]]


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``model``.

    >>> count_parameters(nn.Linear(3, 2))
    8
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def as_model(model, cls, device) -> nn.Module:
    """Turn the ``model=`` argument of a registered method into a module of class ``cls``.

    Parameters
    ----------
    model : nn.Module, str or PathLike
        A trained ``cls``; the name of a shipped trained model (:func:`regkit.models.pretrained`,
        e.g. ``"air-mnist"``); or the path of a :class:`regkit.train.Trainer` checkpoint
        (``last.pt``), which records the model's class (``model_class``, checked before anything
        is built) and constructor arguments (``model_config``), loaded with ``weights_only=True``.
    cls : type
        The class the registered method expects.
    device : torch.device

    Returns
    -------
    nn.Module of class ``cls`` (a path or name is loaded onto ``device``).
    """
    if model is None:
        raise ValueError(
            f"model must be a trained {cls.__name__}, the name of a shipped model or the path of a checkpoint: "
            f"train one with regkit.train.Trainer(regkit.models.{cls.__module__.rsplit('.', 1)[-1]}.{cls.__name__}(...))"
            f".fit(...), then call register(moving, fixed, method=..., model=trainer.model) or "
            f"model='checkpoints/last.pt'"
        )
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.exists(path):
            from .zoo import pretrained, pretrained_names

            if path in pretrained_names():
                model = pretrained(path, device=device)
            else:
                raise FileNotFoundError(
                    f"model {path!r} is neither a checkpoint file nor a shipped model ({pretrained_names()})"
                )
        else:
            return _from_checkpoint(path, cls, device)
    if not isinstance(model, cls):
        raise TypeError(f"model must be a {cls.__name__} (or a checkpoint path), got {type(model).__name__}")
    return model


def _from_checkpoint(path: str, cls, device) -> nn.Module:
    state = load_checkpoint(path, map_location=device)
    config = state.get("model_config") if isinstance(state, dict) else None
    if not config:
        raise ValueError(f"checkpoint {path!r} has no model_config; build the model and use regkit.checkpoint.load_model")
    stored = state.get("model_class")
    if stored is not None and stored.rsplit(".", 1)[-1] != cls.__name__:
        raise ValueError(f"model {path!r} holds a {stored.rsplit('.', 1)[-1]}, but this method needs a {cls.__name__}")
    try:
        with torch.device("cpu"):   # built on the CPU whatever the caller's default device, then moved
            net = cls(**config)
        net.load_state_dict(state["model"])
    except (TypeError, RuntimeError) as err:
        raise ValueError(
            f"model {path!r} does not fit a {cls.__name__}: {str(err).splitlines()[0]}"
        ) from err
    return net.to(device)


@torch.no_grad()
def run_model(model, cls, moving: Tensor, fixed: Tensor, **kwargs) -> RegResult:
    """Run a trained model on ``(moving, fixed)`` in eval mode without gradients, then restore its mode.

    The one runner behind every learned method's :func:`regkit.register` entry.

    Parameters
    ----------
    model : see :func:`as_model`
    cls : type
        The class the method expects.
    moving, fixed : Tensor ``N,C,H,W`` in [0, 1], on the model's device
        Floating inputs of another dtype (float16, bfloat16, float64) are cast to the model's.
    **kwargs : passed to ``forward`` (e.g. ``frame``, ``sequence``)

    Returns
    -------
    RegResult with float32 ``warped`` (and ``disp`` where the model has one).
    """
    check_pair("moving", moving, "fixed", fixed)
    net = as_model(model, cls, moving.device)
    param = next(net.parameters(), None)
    if param is not None:
        if param.device != moving.device:
            raise ValueError(f"model is on {param.device} but moving and fixed are on {moving.device}; move one of them")
        moving, fixed = moving.to(param.dtype), fixed.to(param.dtype)
    with eval_mode(net):
        out = net(moving, fixed, **{k: v for k, v in kwargs.items() if v is not None})
    if not isinstance(out, RegResult):
        raise TypeError(f"{cls.__name__}.forward returned {type(out).__name__}, expected RegResult")
    disp = out.disp.float() if out.disp is not None else None
    return RegResult(warped=out.warped.float(), disp=disp, params=out.params, extras=out.extras)
