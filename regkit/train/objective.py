r"""The training objective: similarity plus weighted smoothness, and how an objective is described.

Convention
----------
An *objective* is called ``objective(model, batch) -> (loss, logs[, result])``: ``loss`` a
scalar tensor, ``logs`` a ``dict[str, float]``, and optionally the :class:`~regkit.RegResult` it
computed (validation then reuses it instead of running the model again). Images are ``N,C,H,W``
in [0, 1]; displacements ``N,2,H,W`` in pixels. If the objective is an ``nn.Module``, its
parameters are trained with the model's.

>>> obj = RegistrationObjective("lncc", "diffusion", weight=0.5)
>>> describe_objective(obj)["config"]
{'similarity': 'lncc', 'smoothness': 'diffusion', 'weight': 0.5, 'window': 9, 'on': 'disp'}
"""

from __future__ import annotations

from typing import Mapping

from torch import Tensor, nn

from .. import losses

__all__ = ["RegistrationObjective", "describe_objective"]

_SMOOTHNESS = {"diffusion": losses.diffusion_loss, "bending": losses.bending_loss}


class RegistrationObjective(nn.Module):
    r"""Similarity plus a weighted smoothness term: :math:`L = S(\text{warped}, f) + \lambda R(u)`.

    Parameters
    ----------
    similarity : {"mse", "ncc", "lncc"}
        From :mod:`regkit.losses` (``lncc`` is the windowed local NCC).
    smoothness : {"diffusion", "bending"}
        Regulariser on the displacement ``u`` (pixels); skipped for models with ``disp=None``.
    weight : float
        :math:`\lambda \ge 0`.
    window : int
        Window of the local NCC.
    on : {"disp", "velocity"}
        Regularise the displacement, or (for diffeomorphic models that put it in
        ``extras["velocity"]``) the stationary velocity field.

    Returns
    -------
    Called as ``objective(model, batch)``: ``(loss, {"sim": float, "smooth": float}, result)``.

    >>> RegistrationObjective("lncc", "diffusion", weight=0.5)
    RegistrationObjective(similarity='lncc', smoothness='diffusion', weight=0.5)
    """

    def __init__(self, similarity: str = "mse", smoothness: str = "diffusion", weight: float = 0.01,
                 window: int = 9, on: str = "disp"):
        super().__init__()
        losses.similarity_loss(similarity)  # validates the name
        if smoothness not in _SMOOTHNESS:
            raise ValueError(f"smoothness must be one of {sorted(_SMOOTHNESS)}, got {smoothness!r}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight < float("inf"):
            raise ValueError(f"weight must be a finite non-negative number, got {weight!r}")
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be a positive integer, got {window!r}")
        if on not in ("disp", "velocity"):
            raise ValueError(f"on must be 'disp' or 'velocity', got {on!r}")
        self.similarity, self.smoothness, self.weight, self.window, self.on = (
            similarity, smoothness, float(weight), window, on)

    @property
    def config(self) -> dict:
        """The constructor arguments (stored in checkpoints and compared on resume)."""
        return {"similarity": self.similarity, "smoothness": self.smoothness, "weight": self.weight,
                "window": self.window, "on": self.on}

    def extra_repr(self) -> str:
        return f"similarity={self.similarity!r}, smoothness={self.smoothness!r}, weight={self.weight}"

    def similarity_term(self, warped: Tensor, fixed: Tensor) -> Tensor:
        """The similarity loss :math:`S` of ``warped`` with ``fixed``.

        Parameters
        ----------
        warped, fixed : Tensor
            ``N,C,H,W`` images.

        Returns
        -------
        Tensor
            A scalar.
        """
        if self.similarity == "lncc":
            return losses.local_ncc_loss(warped, fixed, self.window)
        return losses.similarity_loss(self.similarity)(warped, fixed)

    def forward(self, model: nn.Module, batch: Mapping[str, Tensor]):
        result = model(batch["moving"], batch["fixed"])
        sim = self.similarity_term(result.warped, batch["fixed"])
        field_ = result.extras.get("velocity") if self.on == "velocity" else result.disp
        if field_ is None:
            field_ = result.disp
        smooth = sim.new_zeros(()) if field_ is None else _SMOOTHNESS[self.smoothness](field_)
        loss = sim + self.weight * smooth
        return loss, {"sim": float(sim.detach()), "smooth": float(smooth.detach())}, result


def _name(obj) -> str:
    kind = obj if isinstance(obj, type) or (callable(obj) and hasattr(obj, "__qualname__")) else type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


def _plain(x):
    """``x`` as data a ``weights_only`` checkpoint holds: containers, numbers, strings; else its repr."""
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    return repr(x)


def describe_objective(objective) -> dict:
    """A plain-data description of an objective, stored in checkpoints and compared on resume.

    Parameters
    ----------
    objective : callable or nn.Module

    Returns
    -------
    dict
        ``{"class": "module.QualName", "config": ...}``: ``config`` is the objective's
        ``config`` mapping when it has one (as plain data: lists, numbers, strings), else its
        module ``repr`` (settings and submodules) for an ``nn.Module``, else ``None`` (a plain
        function is described by its name).
    """
    config = getattr(objective, "config", None)
    if isinstance(config, Mapping):
        config = _plain(config)
    elif isinstance(objective, nn.Module):
        config = repr(objective)
    else:
        config = None
    return {"class": _name(objective), "config": config}
