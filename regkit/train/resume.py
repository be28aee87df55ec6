"""What a resumed run must match: the checks behind ``Trainer.fit(..., resume=True)``.

A checkpoint records the run's configuration, the model's class and constructor arguments
(``model.config``) and a description of the objective. Resuming compares them with the current
run; a changed setting is refused unless explicitly accepted, and weights that do not fit the
model (another width or architecture) are refused with a message that says so, never a raw
size-mismatch error.

Convention
----------
A change is ``{name: (stored, current)}``; names are the run-defining
:class:`~regkit.train.TrainConfig` fields, ``model_class``, ``model_config`` and ``objective``
(:data:`RESUMABLE_CHANGES`).

>>> describe_changes({"lr": (0.001, 0.002), "model_config": ({"width": 8}, {"width": 16})})
'lr 0.001 -> 0.002, model_config.width 8 -> 16'
"""

from __future__ import annotations

from dataclasses import fields
from typing import Mapping

from torch import Tensor, nn

from .config import RESUME_FREE, TrainConfig, config_changes
from .objective import describe_objective

__all__ = ["RESUMABLE_CHANGES", "OPTIMISER_CHANGES", "run_description", "run_changes", "allowed_changes",
           "describe_changes", "shape_mismatches"]

RESUMABLE_CHANGES = tuple(f.name for f in fields(TrainConfig) if f.name not in RESUME_FREE) + (
    "model_class", "model_config", "objective")
"""Names that ``fit(..., resume=True, allow_config_change=...)`` may accept as changed: the
run-defining :class:`~regkit.train.TrainConfig` fields, the model's class and constructor
arguments, and the objective."""

OPTIMISER_CHANGES = frozenset({"lr", "weight_decay", "optimizer", "betas", "scheduler", "min_lr", "epochs",
                               "batch_size", "drop_last", "steps_per_epoch", "objective"})
"""Changes after which the optimiser and the schedule are rebuilt with the current settings."""


def run_description(model: nn.Module, objective) -> dict:
    """The model's class and constructor arguments and the objective's description.

    Parameters
    ----------
    model : nn.Module
        Its ``config`` mapping, if any, is taken as its constructor arguments.
    objective : callable

    Returns
    -------
    dict
        ``{"model_class": "module.QualName", "model_config": dict, "objective": dict}``.
    """
    config = getattr(model, "config", None)
    return {
        "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
        "model_config": dict(config) if isinstance(config, Mapping) else {},
        "objective": describe_objective(objective),
    }


def run_changes(state: Mapping, config: TrainConfig, model: nn.Module, objective) -> dict:
    """What differs between the run that wrote ``state`` and the current one.

    Parameters
    ----------
    state : mapping
        A Trainer checkpoint (``config``, ``model_class``, ``model_config``, ``objective_spec``);
        what an older checkpoint does not record is not compared.
    config : TrainConfig
    model : nn.Module
    objective : callable

    Returns
    -------
    dict
        ``{name: (stored, current)}``, empty for the same run.
    """
    changes = config_changes(state.get("config") or {}, config)
    stored = {"model_class": state.get("model_class"), "model_config": state.get("model_config"),
              "objective": state.get("objective_spec")}
    for name, value in run_description(model, objective).items():
        if stored[name] is not None and stored[name] != value:
            changes[name] = (stored[name], value)
    return changes


def allowed_changes(allow) -> frozenset:
    """The names ``allow_config_change`` accepts.

    Parameters
    ----------
    allow : bool, str or sequence of str
        ``True``: every name of :data:`RESUMABLE_CHANGES`; ``False``/``None``: none.

    Returns
    -------
    frozenset of str

    >>> sorted(allowed_changes(["epochs", "lr"]))
    ['epochs', 'lr']
    """
    if allow is True:
        return frozenset(RESUMABLE_CHANGES)
    if allow is False or allow is None:
        return frozenset()
    names = [allow] if isinstance(allow, str) else list(allow)
    unknown = [n for n in names if n not in RESUMABLE_CHANGES]
    if unknown:
        raise ValueError(f"allow_config_change must be a bool or names from {list(RESUMABLE_CHANGES)}, got {unknown}")
    return frozenset(names)


def describe_changes(changes: Mapping) -> str:
    """Changes as text, one ``name old -> new`` per changed field (per key for mappings).

    Parameters
    ----------
    changes : mapping of name to (stored, current)

    Returns
    -------
    str
    """
    parts = []
    for name, (old, new) in changes.items():
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            keys = [k for k in sorted(set(old) | set(new), key=str) if old.get(k) != new.get(k)]
            parts += [f"{name}.{k} {old.get(k)!r} -> {new.get(k)!r}" for k in keys]
        else:
            parts.append(f"{name} {old!r} -> {new!r}")
    return ", ".join(parts)


def shape_mismatches(module: nn.Module, state: Mapping, limit: int = 5) -> list[str]:
    """Why ``state`` cannot load into ``module``: wrong shapes, missing and unexpected keys.

    Parameters
    ----------
    module : nn.Module
    state : mapping of str to Tensor
        A state dict.
    limit : int
        At most this many problems (and keys per list) are named.

    Returns
    -------
    list of str
        Empty when ``module.load_state_dict(state)`` would succeed.

    >>> shape_mismatches(nn.Linear(2, 3), nn.Linear(2, 4).state_dict())
    ['weight: (4, 2) in the checkpoint, (3, 2) here', 'bias: (4,) in the checkpoint, (3,) here']
    """
    own = module.state_dict()
    problems = [f"{k}: {tuple(state[k].shape)} in the checkpoint, {tuple(v.shape)} here" for k, v in own.items()
                if k in state and isinstance(state[k], Tensor) and state[k].shape != v.shape]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    more = " ..."
    if missing:
        problems.append(f"missing in the checkpoint: {missing[:limit]}{more if len(missing) > limit else ''}")
    if unexpected:
        problems.append(f"not in this module: {unexpected[:limit]}{more if len(unexpected) > limit else ''}")
    return problems[:limit]
