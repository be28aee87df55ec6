r"""One :class:`Trainer` for every learned model of the book.

The Trainer optimises a model together with a pluggable *objective* (which may have learnable
parameters of its own), validates each epoch with :mod:`regkit.metrics`, keeps a metric history,
writes an atomic checkpoint every epoch and resumes from it exactly, shows ``tqdm.auto`` progress
bars (clean one-line-per-epoch logs outside notebooks), and runs unchanged under ``torchrun``
with DistributedDataParallel (gloo on the CPU, NCCL on GPUs).

Convention
----------
- A *batch* is a dict with at least ``moving`` and ``fixed`` (``N,1,H,W`` float in [0, 1]) and
  any optional keys (``disp``, ``label``, ``frame``, masks, ...). A data set yields such dicts per
  sample (``1,H,W`` tensors, collated by the DataLoader), or is a dict of batch tensors
  (``N,1,H,W`` each), wrapped by :class:`PairDataset`.
- A model's ``forward(moving, fixed, **kwargs)`` returns a :class:`regkit.RegResult`
  (``disp=None`` for deformation-free models).
- An *objective* is called ``objective(model, batch) -> (loss, logs)`` where ``loss`` is a scalar
  tensor and ``logs`` a ``dict[str, float]``; it may return a third element, the
  :class:`~regkit.RegResult` it computed, which validation then reuses instead of running the
  model again. If the objective is an ``nn.Module``, its parameters are optimised with the
  model's (without weight decay). :class:`RegistrationObjective` is the standard one.
- Validation metrics compare ``RegResult.warped`` with ``fixed``, one value per pair, averaged
  over the validation set (and over processes under DDP).

Reproducibility
---------------
``fit`` seeds Python, NumPy and torch with ``config.seed`` (so seed the model's initialisation
yourself, with :func:`regkit.seed_everything`, before building it). Each epoch's shuffling uses
its own generator seeded from ``(seed, epoch)`` and DataLoader workers are seeded from it, so an
epoch's batches do not depend on what ran before. A checkpoint holds the model, objective,
optimiser, scheduler, the global RNG states, epoch, step and history, so ``fit(..., resume=True)``
after an interruption ends bit-for-bit where the uninterrupted run ends (on the CPU; GPU kernels
may be non-deterministic). A run is resumed at the last completed epoch; a partial epoch is redone.

Example
-------
>>> import torch, regkit
>>> from regkit import spatial
>>> from regkit.train import PairDataset, RegistrationObjective, TrainConfig, Trainer
>>> g = torch.Generator().manual_seed(0)
>>> fixed = torch.rand(8, 1, 16, 16, generator=g)
>>> moving = spatial.warp(fixed, spatial.random_smooth_disp(8, (16, 16), max_disp=2.0, generator=g))
>>> class Shift(torch.nn.Module):   # a toy "model": one learnable translation
...     def __init__(self):
...         super().__init__(); self.t = torch.nn.Parameter(torch.zeros(2))
...     def forward(self, moving, fixed):
...         disp = self.t.view(1, 2, 1, 1).expand(moving.shape[0], 2, *moving.shape[-2:])
...         return regkit.RegResult(warped=spatial.warp(moving, disp), disp=disp)
>>> cfg = TrainConfig(epochs=2, batch_size=4, lr=1e-2, progress=False, log=False)
>>> trainer = Trainer(Shift(), RegistrationObjective("mse", weight=0.0), cfg, device="cpu")
>>> history = trainer.fit(PairDataset(moving=moving, fixed=fixed), PairDataset(moving=moving, fixed=fixed))
>>> sorted(history[-1])
['epoch', 'loss', 'lr', 'sim', 'smooth', 'step', 'time', 'val_folding', 'val_loss', 'val_mse', 'val_ncc', 'val_psnr', 'val_ssim']
>>> history[-1]["val_mse"] < history[0]["val_mse"]
True
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Callable, Mapping

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler

from . import losses, metrics
from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .registry import RegResult
from .runtime import default_device, seed_everything

__all__ = [
    "TrainConfig",
    "Trainer",
    "RegistrationObjective",
    "PairDataset",
    "METRICS",
    "distributed_info",
]

CHECKPOINT_NAME = "last.pt"
"""File name of the checkpoint written at the end of every epoch (in ``config.checkpoint_dir``)."""


# ----------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------


@dataclass
class TrainConfig:
    """Every knob of a training run; nothing is hidden in the Trainer.

    Attributes
    ----------
    epochs : int
        Length of the run; the cosine schedule spans all of it.
    batch_size : int
        Per process (under DDP the global batch is ``batch_size * world_size``).
    lr, weight_decay : float
        Adam/AdamW learning rate and weight decay (decay applies to the model's parameters only,
        not to the objective's, e.g. uncertainty weights).
    optimizer : {"adam", "adamw"}
    betas : tuple of float
    scheduler : {"cosine", "none"}
        Cosine annealing from ``lr`` to ``min_lr`` over all steps of the run (stepped per batch).
    min_lr : float
    grad_clip : float or None
        Clip the global gradient norm to this value (``None``: no clipping).
    amp : {"auto", "bf16", "off"}
        Mixed precision: ``"auto"`` is bf16 autocast on CUDA devices that support it and off
        elsewhere. Warps, losses and metrics run in float32 regardless.
    seed : int
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
        Validation metrics, names in :data:`METRICS` (``"folding"`` is skipped for models
        without displacements).
    progress : bool or None
        ``tqdm.auto`` bars for epochs and steps; ``None``: on in notebooks and terminals, off when
        output is redirected (logs then get one clean line per epoch).
    log : bool
        Print one summary line per epoch when bars are off.
    find_unused_parameters : bool
        Passed to DistributedDataParallel (for models with branches that some batches skip).
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
        if self.optimizer not in ("adam", "adamw"):
            raise ValueError(f"optimizer must be 'adam' or 'adamw', got {self.optimizer!r}")
        if self.scheduler not in ("cosine", "none"):
            raise ValueError(f"scheduler must be 'cosine' or 'none', got {self.scheduler!r}")
        if self.amp not in ("auto", "bf16", "off"):
            raise ValueError(f"amp must be 'auto', 'bf16' or 'off', got {self.amp!r}")
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        for name in ("steps_per_epoch", "val_batch_size", "keep_every"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} must be None or a positive integer, got {v!r}")
        if isinstance(self.num_workers, bool) or not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise ValueError(f"num_workers must be a non-negative integer, got {self.num_workers!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be non-negative, got {self.weight_decay!r}")
        if self.grad_clip is not None and not (isinstance(self.grad_clip, (int, float)) and self.grad_clip > 0):
            raise ValueError(f"grad_clip must be None or positive, got {self.grad_clip!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown:
            raise ValueError(f"metrics must be names in {sorted(METRICS)}, got unknown {unknown}")
        self.betas = tuple(float(b) for b in self.betas)
        self.metrics = tuple(self.metrics)

    def to_dict(self) -> dict:
        """Plain-Python form (stored in checkpoints and results files)."""
        d = asdict(self)
        d["betas"], d["metrics"] = list(self.betas), list(self.metrics)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: (tuple(v) if k in ("betas", "metrics") else v) for k, v in d.items() if k in names})


# ----------------------------------------------------------------------------------------------
# Objective and metrics
# ----------------------------------------------------------------------------------------------

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

    Returns ``(loss, {"sim": ..., "smooth": ...}, result)``.

    >>> obj = RegistrationObjective("lncc", "diffusion", weight=0.5)
    >>> obj
    RegistrationObjective(similarity='lncc', smoothness='diffusion', weight=0.5)
    """

    def __init__(self, similarity: str = "mse", smoothness: str = "diffusion", weight: float = 0.01,
                 window: int = 9, on: str = "disp"):
        super().__init__()
        losses.similarity_loss(similarity)  # validates the name
        if smoothness not in _SMOOTHNESS:
            raise ValueError(f"smoothness must be one of {sorted(_SMOOTHNESS)}, got {smoothness!r}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
            raise ValueError(f"weight must be a non-negative number, got {weight!r}")
        if on not in ("disp", "velocity"):
            raise ValueError(f"on must be 'disp' or 'velocity', got {on!r}")
        self.similarity, self.smoothness, self.weight, self.window, self.on = similarity, smoothness, float(weight), window, on

    def extra_repr(self) -> str:
        return f"similarity={self.similarity!r}, smoothness={self.smoothness!r}, weight={self.weight}"

    def similarity_term(self, warped: Tensor, fixed: Tensor) -> Tensor:
        if self.similarity == "lncc":
            return losses.local_ncc_loss(warped, fixed, self.window)
        return losses.similarity_loss(self.similarity)(warped, fixed)

    def forward(self, model: nn.Module, batch: Mapping[str, Tensor]):
        result = model(batch["moving"], batch["fixed"])
        sim = self.similarity_term(result.warped, batch["fixed"])
        field_ = result.extras.get("velocity") if self.on == "velocity" else result.disp
        if field_ is None:
            field_ = result.disp
        if field_ is None:
            smooth = sim.new_zeros(())
        else:
            smooth = _SMOOTHNESS[self.smoothness](field_)
        loss = sim + self.weight * smooth
        return loss, {"sim": float(sim.detach()), "smooth": float(smooth.detach())}, result


def _needs_disp(fn):
    fn.needs_disp = True
    return fn


METRICS: dict[str, Callable[[RegResult, Mapping[str, Tensor]], Tensor]] = {
    "mse": lambda r, b: metrics.mse(r.warped, b["fixed"]),
    "psnr": lambda r, b: metrics.psnr(r.warped.clamp(0, 1), b["fixed"]),
    "ssim": lambda r, b: metrics.ssim(r.warped, b["fixed"]),
    "ncc": lambda r, b: metrics.ncc(r.warped, b["fixed"]),
    "folding": _needs_disp(lambda r, b: metrics.folding_fraction(r.disp)),
    "epe": _needs_disp(lambda r, b: metrics.epe(r.disp, b["disp"])),
}
"""Validation metrics by name: ``fn(result, batch) -> Tensor N`` (one value per pair).

``epe`` (mean end-point error in pixels) needs a ground-truth ``disp`` in the batch; ``folding``
and ``epe`` are skipped for deformation-free models. PSNR is computed on the warped image
clamped to [0, 1]."""


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------


class PairDataset(Dataset):
    """A dict of batch tensors (``moving=N,1,H,W``, ``fixed=...``, any other ``N,...`` keys) as a data set.

    >>> ds = PairDataset(moving=torch.zeros(3, 1, 8, 8), fixed=torch.ones(3, 1, 8, 8))
    >>> len(ds), sorted(ds[0]), tuple(ds[0]["moving"].shape)
    (3, ['fixed', 'moving'], (1, 8, 8))
    """

    def __init__(self, data: Mapping[str, Tensor] | None = None, **tensors: Tensor):
        tensors = {**(dict(data) if data is not None else {}), **tensors}
        for key in ("moving", "fixed"):
            if key not in tensors:
                raise ValueError(f"PairDataset needs a {key!r} tensor, got keys {sorted(tensors)}")
        n = None
        for key, value in tensors.items():
            if not isinstance(value, Tensor):
                raise TypeError(f"{key} must be a torch.Tensor, got {type(value).__name__}")
            if n is None:
                n = value.shape[0]
            if value.shape[0] != n:
                raise ValueError(f"all tensors must have the same length, got {key} with {value.shape[0]} != {n}")
        for key in ("moving", "fixed"):
            if tensors[key].ndim != 4:
                raise ValueError(f"{key} must be N,C,H,W, got shape {tuple(tensors[key].shape)}")
        self.tensors = tensors

    @classmethod
    def from_dataset(cls, dataset, keys=("moving", "fixed"), limit: int | None = None) -> "PairDataset":
        """Read ``dataset`` (items are dicts of tensors) once into memory, keeping ``keys``.

        Lazy data sets that synthesise every item on access (the FIRE and HPatches proxies) are
        then generated once instead of once per epoch.
        """
        n = len(dataset) if limit is None else min(limit, len(dataset))
        items = [dataset[i] for i in range(n)]
        missing = [k for k in keys if k not in items[0]] if items else []
        if missing:
            raise ValueError(f"dataset items have no keys {missing}; they have {sorted(items[0])}")
        return cls({k: torch.stack([item[k] for item in items]) for k in keys})

    def __len__(self) -> int:
        return self.tensors["moving"].shape[0]

    def __getitem__(self, i):
        return {k: v[i] for k, v in self.tensors.items()}


def _as_dataset(data, name: str) -> Dataset:
    if isinstance(data, Mapping):
        return PairDataset(data)
    if isinstance(data, Dataset) or (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        return data
    raise TypeError(f"{name} must be a Dataset of dict samples or a dict of batch tensors, got {type(data).__name__}")


def _seed_worker(worker_id: int) -> None:
    # torch seeds each worker from the loader's generator; derive NumPy's and Python's from it.
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


class _StridedSampler(Sampler):
    """Indices ``rank, rank + world, ...`` in order: every sample exactly once over all ranks."""

    def __init__(self, n: int, rank: int, world: int):
        self.indices = list(range(rank, n, world))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self):
        return len(self.indices)


class _EpochShuffleSampler(Sampler):
    """Shuffled (or ordered) indices for one process; the permutation depends on (seed, epoch) only.

    Under DDP each rank takes a strided share of one permutation (padded by wrapping, like
    ``DistributedSampler``, so that all ranks run the same number of steps).
    """

    def __init__(self, n: int, seed: int, shuffle: bool, rank: int = 0, world: int = 1):
        self.n, self.seed, self.shuffle, self.rank, self.world = n, seed, shuffle, rank, world
        self.epoch = 0
        self.per_rank = math.ceil(n / world)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        total = self.per_rank * self.world
        order = (order * math.ceil(total / self.n))[:total]
        return iter(order[self.rank : total : self.world])

    def __len__(self):
        return self.per_rank


# ----------------------------------------------------------------------------------------------
# Distributed
# ----------------------------------------------------------------------------------------------


def distributed_info() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from ``torchrun``'s environment (``(0, 1, 0)`` without it)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython

        shell = get_ipython()
        return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"
    except Exception:
        return False


class _Bundle(nn.Module):
    """Model + objective as one module, so DDP synchronises both sets of gradients."""

    def __init__(self, model: nn.Module, objective):
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, batch):
        return self.objective(self.model, batch)


# ----------------------------------------------------------------------------------------------
# Trainer
# ----------------------------------------------------------------------------------------------


class Trainer:
    """Train a registration model (or any ``forward(moving, fixed) -> RegResult`` model).

    Parameters
    ----------
    model : nn.Module
    objective : callable or nn.Module, optional
        ``objective(model, batch) -> (loss, logs[, result])``; default
        ``RegistrationObjective("mse", "diffusion", 0.01)``. Its parameters, if any, are trained.
    config : TrainConfig, optional
    device : str or torch.device, optional
        Default :func:`regkit.default_device`; under ``torchrun`` on CUDA, ``cuda:LOCAL_RANK``.
    collate_fn : callable, optional
        Batches a list of sample dicts; default :func:`regkit.data.collate_pairs` (stacks
        tensors of equal shape, keeps ragged values such as landmark lists as lists).

    Attributes
    ----------
    history : list of dict
        One entry per completed epoch: ``epoch``, ``step``, ``lr``, ``loss`` and the objective's
        logs (training means), ``val_loss`` and ``val_<metric>`` (validation means), ``time`` (s).
    epoch, step : int
        Completed epochs and optimiser steps.

    Under ``torchrun`` (``RANK``/``WORLD_SIZE`` set) the Trainer initialises the process group
    (gloo on the CPU, NCCL on CUDA) if needed, wraps model and objective in
    DistributedDataParallel, shards batches by rank, averages logs and metrics over processes,
    and lets only rank 0 write checkpoints and logs.
    """

    def __init__(self, model: nn.Module, objective=None, config: TrainConfig | None = None, device=None,
                 collate_fn: Callable | None = None):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if objective is None:
            objective = RegistrationObjective()
        if not callable(objective):
            raise TypeError(f"objective must be callable as objective(model, batch), got {type(objective).__name__}")
        if collate_fn is None:
            from .data.pairs import collate_pairs as collate_fn
        self.collate_fn = collate_fn
        self.config = config if config is not None else TrainConfig()
        if not isinstance(self.config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(self.config).__name__}")
        self._own_group = False
        self.rank, self.world_size, self.local_rank = distributed_info()
        if device is None:
            device = default_device()
            if device.type == "cuda" and self.world_size > 1:
                device = torch.device("cuda", self.local_rank)
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is not None:
            torch.cuda.set_device(self.device)
        self.model = model.to(self.device)
        if isinstance(objective, nn.Module):
            objective = objective.to(self.device)
        self.objective = objective
        self.history: list[dict] = []
        self.epoch = 0
        self.step = 0
        self.optimizer = self._make_optimizer()
        self.scheduler = None  # built in fit (needs the number of steps)

    # -- setup ---------------------------------------------------------------------------------

    @property
    def is_main(self) -> bool:
        """True on the process that writes checkpoints and logs (rank 0)."""
        return self.rank == 0

    @property
    def amp_dtype(self):
        """The autocast dtype in use (``torch.bfloat16``) or ``None``."""
        amp = self.config.amp
        if amp == "off":
            return None
        if amp == "bf16":
            return torch.bfloat16
        if self.device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None

    def parameters(self):
        """The trained parameters: the model's, then the objective's."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        if isinstance(self.objective, nn.Module):
            params += [p for p in self.objective.parameters() if p.requires_grad]
        return params

    def _make_optimizer(self):
        cfg = self.config
        model_params = [p for p in self.model.parameters() if p.requires_grad]
        obj_params = (
            [p for p in self.objective.parameters() if p.requires_grad] if isinstance(self.objective, nn.Module) else []
        )
        if not model_params and not obj_params:
            raise ValueError("model and objective have no trainable parameters")
        groups = [{"params": model_params, "weight_decay": cfg.weight_decay}]
        if obj_params:
            groups.append({"params": obj_params, "weight_decay": 0.0})
        cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        return cls(groups, lr=cfg.lr, betas=cfg.betas)

    def _make_scheduler(self, steps_per_epoch: int):
        if self.config.scheduler == "none":
            return None
        total = max(1, steps_per_epoch * self.config.epochs)
        return torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=total, eta_min=self.config.min_lr)

    def _init_distributed(self):
        if self.world_size > 1 and dist.is_available() and not dist.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            dist.init_process_group(backend=backend)
            self._own_group = True
        self.rank, self.world_size, self.local_rank = distributed_info()

    def _loader(self, dataset, *, train: bool, epoch: int) -> DataLoader:
        cfg = self.config
        bs = cfg.batch_size if train else (cfg.val_batch_size or cfg.batch_size)
        if train:
            sampler = _EpochShuffleSampler(len(dataset), cfg.seed, cfg.shuffle, self.rank, self.world_size)
            sampler.set_epoch(epoch)
        else:
            sampler = _StridedSampler(len(dataset), self.rank, self.world_size)
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch * 2 + (0 if train else 1))
        return DataLoader(
            dataset, batch_size=bs, sampler=sampler, num_workers=cfg.num_workers, generator=g, collate_fn=self.collate_fn,
            worker_init_fn=_seed_worker if cfg.num_workers else None, drop_last=train and cfg.drop_last,
            pin_memory=self.device.type == "cuda", persistent_workers=False,
        )

    def _to_device(self, batch):
        if not isinstance(batch, Mapping):
            raise TypeError(f"batches must be dicts with 'moving' and 'fixed', got {type(batch).__name__}")
        for key in ("moving", "fixed"):
            if key not in batch:
                raise ValueError(f"batches must have a {key!r} key, got keys {sorted(batch)}")
        return {k: (v.to(self.device, non_blocking=True) if isinstance(v, Tensor) else v) for k, v in batch.items()}

    def _autocast(self):
        dtype = self.amp_dtype
        return torch.autocast(device_type=self.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)

    # -- checkpoints ---------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Everything needed to resume exactly (plain types and tensors only)."""
        return {
            "format": "regkit.train/1",
            "model": self.model.state_dict(),
            "objective": self.objective.state_dict() if isinstance(self.objective, nn.Module) else {},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "rng": rng_state(),
            "epoch": self.epoch,
            "step": self.step,
            "history": self.history,
            "config": self.config.to_dict(),
            "model_class": f"{type(self.model).__module__}.{type(self.model).__qualname__}",
            "model_config": dict(getattr(self.model, "config", {}) or {}),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        if isinstance(self.objective, nn.Module) and state.get("objective"):
            self.objective.load_state_dict(state["objective"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.history = [dict(h) for h in state["history"]]

    @property
    def checkpoint_path(self) -> str | None:
        d = self.config.checkpoint_dir
        return os.path.join(d, CHECKPOINT_NAME) if d else None

    def save(self, path=None) -> str:
        """Write the checkpoint (rank 0 only; other ranks return at once)."""
        path = path or self.checkpoint_path
        if path is None:
            raise ValueError("no path given and config.checkpoint_dir is None")
        if self.is_main:
            save_checkpoint(self.state_dict(), path)
        return path

    def resume(self, path=None) -> bool:
        """Load a checkpoint (default ``checkpoint_dir/last.pt``) if it exists; True if one was loaded.

        Call it through ``fit(..., resume=True)``, which builds the scheduler first.
        """
        path = path or self.checkpoint_path
        if path is None or not os.path.isfile(path):
            return False
        self.load_state_dict(load_checkpoint(path, map_location=self.device))
        return True

    # -- loops ---------------------------------------------------------------------------------

    def _reduce_mean(self, sums: dict[str, float], count: float) -> dict[str, float]:
        keys = sorted(sums)
        if self.world_size > 1 and dist.is_initialized():
            t = torch.tensor([sums[k] for k in keys] + [count], dtype=torch.float64, device=self._comm_device())
            dist.all_reduce(t)
            vals, count = t[:-1].tolist(), float(t[-1])
        else:
            vals = [sums[k] for k in keys]
        return {k: v / max(count, 1) for k, v in zip(keys, vals)}

    def _comm_device(self):
        return self.device if (dist.is_initialized() and dist.get_backend() == "nccl") else torch.device("cpu")

    def _progress(self) -> bool:
        if not self.is_main:
            return False
        if self.config.progress is not None:
            return bool(self.config.progress)
        return _in_notebook() or sys.stderr.isatty()

    @torch.no_grad()
    def evaluate(self, data, metric_names=None) -> dict[str, float]:
        """Mean validation loss and metrics over ``data`` (``{"val_loss": ..., "val_mse": ...}``)."""
        dataset = _as_dataset(data, "data")
        names = tuple(metric_names) if metric_names is not None else self.config.metrics
        was_training = self.model.training
        self.model.eval()
        if isinstance(self.objective, nn.Module):
            self.objective.eval()
        sums: dict[str, float] = {}
        count = 0.0
        try:
            for batch in self._loader(dataset, train=False, epoch=self.epoch):
                batch = self._to_device(batch)
                n = batch["moving"].shape[0]
                with self._autocast():
                    out = self.objective(self.model, batch)
                loss, logs = out[0], out[1]
                result = out[2] if len(out) > 2 else None
                if not isinstance(result, RegResult):
                    with self._autocast():
                        result = self.model(batch["moving"], batch["fixed"])
                sums["val_loss"] = sums.get("val_loss", 0.0) + float(loss) * n
                for name in names:
                    fn = METRICS[name]
                    if getattr(fn, "needs_disp", False) and (result.disp is None or (name == "epe" and "disp" not in batch)):
                        continue
                    sums[f"val_{name}"] = sums.get(f"val_{name}", 0.0) + float(fn(result, batch).float().sum())
                count += n
        finally:
            self.model.train(was_training)
            if isinstance(self.objective, nn.Module):
                self.objective.train(was_training)
        return self._reduce_mean(sums, count)

    def fit(self, train_data, val_data=None, *, resume: bool = False, stop_after: int | None = None) -> list[dict]:
        """Train for ``config.epochs`` epochs (from the last checkpoint if ``resume``); return the history.

        Parameters
        ----------
        train_data, val_data : Dataset of dict samples, or dict of batch tensors
        resume : bool
            Continue from ``checkpoint_dir/last.pt`` if it exists (else start fresh).
        stop_after : int, optional
            Stop once this many epochs are complete (the schedule still spans ``config.epochs``):
            an interruption on purpose, for tests and for splitting a run across sessions.
        """
        cfg = self.config
        train_set = _as_dataset(train_data, "train_data")
        val_set = _as_dataset(val_data, "val_data") if val_data is not None else None
        if len(train_set) == 0:
            raise ValueError("train_data is empty")
        self._init_distributed()
        try:
            return self._fit(train_set, val_set, resume, stop_after)
        finally:
            if self._own_group and dist.is_initialized():
                dist.barrier()
                dist.destroy_process_group()
                self._own_group = False

    def _fit(self, train_set, val_set, resume, stop_after):
        cfg = self.config
        seed_everything(cfg.seed)
        per_rank = math.ceil(len(train_set) / self.world_size)
        steps = per_rank // cfg.batch_size if cfg.drop_last else math.ceil(per_rank / cfg.batch_size)
        if steps == 0:
            raise ValueError(f"batch_size {cfg.batch_size} is larger than the {per_rank} samples per process with drop_last")
        if cfg.steps_per_epoch is not None:
            steps = min(steps, cfg.steps_per_epoch)
        self.scheduler = self._make_scheduler(steps)
        if resume and self.resume():
            if self.is_main and cfg.log and not self._progress():
                print(f"resumed from {self.checkpoint_path} at epoch {self.epoch}", flush=True)
        elif resume is False and self.epoch:
            pass  # a second fit() call on the same Trainer continues in memory
        bundle = _Bundle(self.model, self.objective)
        if self.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            runner = DDP(bundle, device_ids=ids, find_unused_parameters=cfg.find_unused_parameters)
        else:
            runner = bundle
        last = cfg.epochs if stop_after is None else min(cfg.epochs, stop_after)
        show = self._progress()
        from tqdm.auto import tqdm

        epochs_bar = tqdm(range(self.epoch, last), total=last, initial=self.epoch, desc="epochs",
                          disable=not show, dynamic_ncols=True)
        for epoch in epochs_bar:
            t0 = time.perf_counter()
            self.model.train()
            if isinstance(self.objective, nn.Module):
                self.objective.train()
            if callable(getattr(train_set, "set_epoch", None)):
                train_set.set_epoch(epoch)  # e.g. pairs re-drawn each epoch, seeded by (seed, epoch)
            loader = self._loader(train_set, train=True, epoch=epoch)
            sums: dict[str, float] = {}
            count = 0.0
            steps_bar = tqdm(total=steps, desc=f"epoch {epoch + 1}", leave=False, disable=not show, dynamic_ncols=True)
            for i, batch in enumerate(loader):
                if i >= steps:
                    break
                batch = self._to_device(batch)
                n = batch["moving"].shape[0]
                with self._autocast():
                    out = runner(batch)
                loss, logs = out[0], out[1]
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"non-finite loss {float(loss)} at epoch {epoch + 1}, step {i + 1}")
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(self.parameters(), cfg.grad_clip)
                self.optimizer.step()
                if self.scheduler is not None:
                    self.scheduler.step()
                self.step += 1
                sums["loss"] = sums.get("loss", 0.0) + float(loss.detach()) * n
                for k, v in logs.items():
                    sums[k] = sums.get(k, 0.0) + float(v) * n
                count += n
                steps_bar.update(1)
                steps_bar.set_postfix(loss=f"{float(loss.detach()):.4g}", refresh=False)
            steps_bar.close()
            entry = {"epoch": epoch + 1, "step": self.step, "lr": float(self.optimizer.param_groups[0]["lr"])}
            entry.update(self._reduce_mean(sums, count))
            if val_set is not None:
                entry.update(self.evaluate(val_set))
            entry["time"] = time.perf_counter() - t0
            self.history.append(entry)
            self.epoch = epoch + 1
            if cfg.checkpoint_dir:
                self.save()
                if cfg.keep_every and self.epoch % cfg.keep_every == 0:
                    self.save(os.path.join(cfg.checkpoint_dir, f"epoch_{self.epoch:04d}.pt"))
            if self.world_size > 1 and dist.is_initialized():
                dist.barrier()
            summary = " ".join(f"{k}={v:.4g}" for k, v in entry.items() if k not in ("epoch", "step", "time", "lr"))
            epochs_bar.set_postfix_str(summary, refresh=True)
            if self.is_main and cfg.log and not show:
                print(f"epoch {self.epoch}/{cfg.epochs} step {self.step} lr={entry['lr']:.3g} {summary} ({entry['time']:.1f}s)",
                      flush=True)
        epochs_bar.close()
        return self.history

    def curves(self) -> dict[str, list[float]]:
        """The history as ``{"epoch": [...], "loss": [...], "val_mse": [...], ...}`` for plotting."""
        keys = sorted({k for h in self.history for k in h})
        return {k: [h.get(k, float("nan")) for h in self.history] for k in keys}
