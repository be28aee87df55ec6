r"""Training: one :class:`Trainer` for every learned model of the book.

The Trainer optimises a model together with a pluggable *objective* (which may have learnable
parameters of its own), validates each epoch with :data:`regkit.evaluation.METRICS`, keeps a
metric history, writes an integrity-checked checkpoint every epoch and resumes from it exactly,
shows ``tqdm.auto`` progress bars where someone watches (clean one-line-per-epoch logs
elsewhere), and runs unchanged under ``torchrun`` with DistributedDataParallel (gloo on the CPU,
NCCL on GPUs).

One job per module:

- :mod:`~regkit.train.config` -- :class:`TrainConfig`, every knob of a run, and which of them a
  resumed run may change;
- :mod:`~regkit.train.objective` -- :class:`RegistrationObjective` (similarity + smoothness);
- :mod:`~regkit.train.data` -- :class:`TensorPairs` (a dict of batch tensors as a data set),
  epoch-seeded samplers, worker seeding;
- :mod:`~regkit.train.distributed` -- :func:`distributed_info` and the DDP helpers;
- :mod:`~regkit.train.trainer` -- :class:`Trainer`.

Convention
----------
- A *batch* is a dict with at least ``moving`` and ``fixed`` (``N,C,H,W`` float in [0, 1]) and
  any optional keys (``disp`` in pixels, ``label``, ``frame``, masks, ...). A data set yields
  such dicts per sample (``C,H,W`` tensors, collated by the DataLoader), or is a dict of batch
  tensors (``N,C,H,W`` each), wrapped by :class:`TensorPairs`.
- A model's ``forward(moving, fixed, **kwargs)`` returns a :class:`regkit.RegResult`
  (``disp=None`` for deformation-free models).
- An *objective* is called ``objective(model, batch) -> (loss, logs)`` where ``loss`` is a scalar
  tensor and ``logs`` a ``dict[str, float]``; it may return a third element, the
  :class:`~regkit.RegResult` it computed, which validation then reuses instead of running the
  model again. If the objective is an ``nn.Module``, its parameters are optimised with the
  model's (without weight decay).
- Validation metrics compare ``RegResult.warped`` (clamped to [0, 1]) with ``fixed``, one value
  per pair, averaged over the validation set (and over processes under DDP).

Reproducibility
---------------
``fit`` seeds Python, NumPy and torch with ``config.seed`` (so seed the model's initialisation
yourself, with :func:`regkit.seed_everything`, before building it). Each epoch's shuffling uses
its own generator seeded from ``(seed, epoch)`` and DataLoader workers are seeded from it, so an
epoch's batches do not depend on what ran before. A checkpoint holds the model, objective,
optimiser, scheduler, the global RNG states, epoch, step and history, so ``fit(..., resume=True)``
after an interruption ends bit-for-bit where the uninterrupted run ends (on the CPU; GPU kernels
may be non-deterministic). A run is resumed at the last completed epoch; a partial epoch is
redone. A resumed run whose settings changed is refused unless ``allow_config_change`` says so.

Example
-------
>>> import torch, regkit
>>> from regkit import spatial
>>> from regkit.train import RegistrationObjective, TensorPairs, TrainConfig, Trainer
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
>>> pairs = TensorPairs(moving=moving, fixed=fixed)
>>> history = trainer.fit(pairs, pairs)
>>> sorted(history[-1])
['epoch', 'loss', 'lr', 'sim', 'smooth', 'step', 'time', 'val_folding', 'val_loss', 'val_mse', 'val_ncc', 'val_psnr', 'val_ssim']
>>> history[-1]["val_mse"] < history[0]["val_mse"]
True
"""

from __future__ import annotations

from .config import TrainConfig
from ..data.pairs import TensorPairs
from .distributed import distributed_info
from .objective import RegistrationObjective
from .trainer import Trainer

__all__ = ["Trainer", "TrainConfig", "RegistrationObjective", "TensorPairs", "distributed_info"]

