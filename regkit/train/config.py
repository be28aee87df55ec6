"""Training configuration: every knob of a run, and what a resumed run may change.

:class:`TrainConfig` holds all settings of a training run (nothing is hidden in the Trainer).
:func:`config_changes` compares a checkpoint's stored configuration with the current one, the
check behind ``Trainer.fit(..., resume=True)``.

Convention
----------
- Learning rates, weight decay and clipping norms are plain non-negative finite floats; counts
  (epochs, batch sizes, steps) are positive integers; ``None`` means "not used" where allowed.
- :data:`RESUME_FREE` names the fields that do not change what a run computes (where files go,
  how it is logged, what validation reports); every other field defines the run, and a resumed
  run refuses to change it unless told so.

>>> cfg = TrainConfig(epochs=3, lr=1e-3)
>>> config_changes(cfg.to_dict(), TrainConfig(epochs=5, lr=1e-3, log=False))
{'epochs': (3, 5)}
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Mapping

from ..evaluation import METRICS

__all__ = ["TrainConfig", "config_changes", "RESUME_FREE"]

RESUME_FREE = (
    "checkpoint_dir",
    "keep_every",
    "num_workers",
    "val_batch_size",
    "metrics",
    "progress",
    "log",
    "find_unused_parameters",
)
"""Fields a resumed run may change freely: they move files, logs and validation reports, not the
trained weights (``num_workers`` included: workers are seeded from the epoch's generator)."""


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass
class TrainConfig:
    """Every knob of a training run; nothing is hidden in the Trainer.

    Parameters
    ----------
    epochs : int
        Length of the run; the cosine schedule spans all of it.
    batch_size : int
        Per process (under DDP the global batch is ``batch_size * world_size``).
    lr : float
        Adam/AdamW learning rate (finite, positive).
    weight_decay : float
        Applies to the model's parameters only, not to the objective's (e.g. uncertainty
        weights).
    optimizer : {"adam", "adamw"}
    betas : tuple of float
        Adam's moment decay rates, each in [0, 1).
    scheduler : {"cosine", "none"}
        Cosine annealing from ``lr`` to ``min_lr`` over all steps of the run (stepped per batch).
    min_lr : float
    grad_clip : float or None
        Clip the global gradient norm to this value (``None``: no clipping).
    amp : {"auto", "bf16", "off"}
        Mixed precision: ``"auto"`` is bf16 autocast on CUDA devices that support it and off
        elsewhere. Warps, losses and metrics run in float32 regardless.
    seed : int
        Seeds Python, NumPy and torch at the start of ``fit`` and every epoch's shuffling.
    checkpoint_dir : str or None
        Where ``last.pt`` is written (atomically) after every epoch; ``None``: no checkpoints.
    keep_every : int or None
        Also keep ``epoch_XXXX.pt`` every this many epochs.
    num_workers : int
        DataLoader workers (seeded from the epoch's generator).
    shuffle, drop_last : bool
    steps_per_epoch : int or None
        Cap the number of batches per epoch (quick profiles); ``None``: the whole data set.
    val_batch_size : int or None
        Defaults to ``batch_size``.
    metrics : tuple of str
        Validation metrics, names in :data:`regkit.evaluation.METRICS`; a metric that does not
        apply (``folding``/``epe`` without a displacement, ``epe`` without a ground-truth
        ``disp``) is left out of the history.
    progress : bool or None
        ``tqdm.auto`` bars for epochs and steps. ``None``: on only where someone watches -- a
        terminal (stderr is a TTY) or a notebook frontend that takes input (Jupyter, Colab,
        VS Code); off under ``nbclient``/``nbval`` execution and when output is redirected
        (logs then get one clean line per epoch).
    log : bool
        Print one summary line per epoch when bars are off.
    find_unused_parameters : bool
        Passed to DistributedDataParallel (for models with branches that some batches skip).

    Raises
    ------
    ValueError
        On a setting out of range, naming the field.

    Examples
    --------
    >>> TrainConfig(epochs=2, batch_size=4).scheduler
    'cosine'
    """

    epochs: int = 10
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    betas: tuple = (0.9, 0.999)
    scheduler: str = "cosine"
    min_lr: float = 0.0
    grad_clip: float | None = 1.0
    amp: str = "auto"
    seed: int = 0
    checkpoint_dir: str | None = None
    keep_every: int | None = None
    num_workers: int = 0
    shuffle: bool = True
    drop_last: bool = False
    steps_per_epoch: int | None = None
    val_batch_size: int | None = None
    metrics: tuple = ("mse", "psnr", "ssim", "ncc", "folding")
    progress: bool | None = None
    log: bool = True
    find_unused_parameters: bool = False

    def __post_init__(self):
        choices = {"optimizer": ("adam", "adamw"), "scheduler": ("cosine", "none"), "amp": ("auto", "bf16", "off")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if not _is_int(v) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        for name in ("steps_per_epoch", "val_batch_size", "keep_every"):
            v = getattr(self, name)
            if v is not None and (not _is_int(v) or v < 1):
                raise ValueError(f"{name} must be None or a positive integer, got {v!r}")
        for name in ("num_workers", "seed"):
            v = getattr(self, name)
            if not _is_int(v) or v < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
        if not (_is_number(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite positive number, got {self.lr!r}")
        for name in ("weight_decay", "min_lr"):
            v = getattr(self, name)
            if not (_is_number(v) and v >= 0):
                raise ValueError(f"{name} must be a finite non-negative number, got {v!r}")
        if self.grad_clip is not None and not (_is_number(self.grad_clip) and self.grad_clip > 0):
            raise ValueError(f"grad_clip must be None or a finite positive number, got {self.grad_clip!r}")
        betas = tuple(self.betas) if isinstance(self.betas, (tuple, list)) else ()
        if len(betas) != 2 or not all(_is_number(b) and 0 <= b < 1 for b in betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        self.betas = tuple(float(b) for b in betas)
        for name in ("shuffle", "drop_last", "log", "find_unused_parameters"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {type(getattr(self, name)).__name__}")
        if self.progress is not None and not isinstance(self.progress, bool):
            raise TypeError(f"progress must be None or a bool, got {type(self.progress).__name__}")
        if isinstance(self.metrics, str):
            self.metrics = (self.metrics,)
        self.metrics = tuple(self.metrics)
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown:
            raise ValueError(f"metrics must be names in {sorted(METRICS)}, got unknown {unknown}")

    def to_dict(self) -> dict:
        """Plain-Python form (stored in checkpoints and results files).

        Returns
        -------
        dict
            Field name to value; tuples become lists.
        """
        d = asdict(self)
        d["betas"], d["metrics"] = list(self.betas), list(self.metrics)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "TrainConfig":
        """Rebuild a configuration from :meth:`to_dict`'s output (unknown keys are ignored).

        Parameters
        ----------
        d : mapping

        Returns
        -------
        TrainConfig
        """
        names = {f.name for f in fields(cls)}
        return cls(**{k: (tuple(v) if k in ("betas", "metrics") else v) for k, v in d.items() if k in names})


def _plain(v):
    return list(v) if isinstance(v, tuple) else v


def config_changes(stored: Mapping, current: TrainConfig, ignore=RESUME_FREE) -> dict:
    """The run-defining fields that differ between a stored configuration and ``current``.

    Parameters
    ----------
    stored : mapping
        A configuration as stored in a checkpoint (:meth:`TrainConfig.to_dict`). Fields it does
        not hold (a file from an older version) are not compared.
    current : TrainConfig
    ignore : sequence of str
        Fields not compared (default :data:`RESUME_FREE`).

    Returns
    -------
    dict
        ``{field: (stored value, current value)}`` in field order; empty when the run is the same.
    """
    now = current.to_dict()
    out = {}
    for f in fields(TrainConfig):
        name = f.name
        if name in ignore or name not in stored:
            continue
        old, new = _plain(stored[name]), now[name]
        if old != new:
            out[name] = (tuple(old) if isinstance(old, list) else old, tuple(new) if isinstance(new, list) else new)
    return out
