r"""The :class:`Trainer`: one training loop for every learned model of the book.

It optimises a model together with a pluggable objective (:mod:`regkit.train.objective`),
validates each epoch with the one metric table :data:`regkit.evaluation.METRICS`, keeps a
metric history, writes an integrity-checked checkpoint every epoch (:mod:`regkit.checkpoint`)
and resumes from it exactly, shows ``tqdm.auto`` progress where someone watches, and runs
unchanged under ``torchrun`` (:mod:`regkit.train.distributed`).

Convention
----------
- A batch is a dict with ``moving`` and ``fixed`` (``N,C,H,W`` in [0, 1]) and optional keys; a
  model's ``forward(moving, fixed)`` returns a :class:`regkit.RegResult` (``disp=None`` for
  deformation-free models).
- The model is put in train mode at the start of every epoch and in eval mode (then restored)
  for validation; it is left in train mode after ``fit``.
- A checkpoint records the configuration, the model's class and constructor arguments and the
  objective's description; ``fit(..., resume=True)`` refuses to continue a run whose settings
  changed unless ``allow_config_change`` accepts the change.

>>> Trainer(torch.nn.Conv2d(2, 2, 1), config=TrainConfig(epochs=1), device="cpu").epoch
0
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from typing import Callable, Mapping

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from ..checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from ..evaluation import METRICS
from ..registry import RegResult
from ..runtime import default_device, eval_mode, seed_everything
from . import distributed
from .config import TrainConfig
from .data import EpochShuffleSampler, StridedSampler, as_dataset, seed_worker
from .objective import RegistrationObjective
from .resume import OPTIMISER_CHANGES, allowed_changes, describe_changes, run_changes, run_description, shape_mismatches

__all__ = ["Trainer", "CHECKPOINT_NAME", "watched"]

CHECKPOINT_NAME = "last.pt"
"""File name of the checkpoint written at the end of every epoch (in ``config.checkpoint_dir``)."""


def watched() -> bool:
    """Whether progress bars would be seen live: the rule behind ``TrainConfig(progress=None)``.

    - In a Jupyter kernel: True when the running cell came from a frontend that accepts
      ``input()`` (JupyterLab, Notebook, Colab, VS Code send ``allow_stdin=True``); False when a
      headless executor runs it (``nbclient``, hence ``jupyter-book`` and the chapter script,
      and ``nbval`` send ``allow_stdin=False``), so executed chapters store no stale bars.
    - Elsewhere (a script, terminal IPython): True when stderr, where ``tqdm`` writes, is a
      terminal; False when it is redirected to a file or pipe.

    The kernel's flag is ipykernel's record of the running request's ``allow_stdin`` (the
    attribute ``_allow_stdin``, present since ipykernel 4); a kernel without it counts as
    headless.

    Returns
    -------
    bool

    >>> watched() in (True, False)
    True
    """
    ipython = sys.modules.get("IPython")  # never imported here: outside IPython it is absent
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    kernel = getattr(shell, "kernel", None)
    if kernel is not None:
        return bool(getattr(kernel, "_allow_stdin", False))
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # no stderr, or a closed one
        return False


class Trainer:
    """Train a registration model (or any ``forward(moving, fixed) -> RegResult`` model).

    Parameters
    ----------
    model : nn.Module
    objective : callable or nn.Module, optional
        ``objective(model, batch) -> (loss, logs[, result])``; default
        ``RegistrationObjective("mse", "diffusion", 0.01)``. Its parameters, if any, are trained
        (without weight decay).
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
    optimizer, scheduler
        The torch optimiser (Adam or AdamW) and learning-rate scheduler (built by ``fit``).

    Under ``torchrun`` (``RANK``/``WORLD_SIZE`` set) the Trainer starts the process group (gloo
    on the CPU, NCCL on CUDA) if needed, wraps model and objective in DistributedDataParallel,
    shards batches by rank, averages logs and metrics over processes, and lets only rank 0 write
    checkpoints and logs.
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
            from ..data.pairs import collate_pairs as collate_fn
        if not callable(collate_fn):
            raise TypeError(f"collate_fn must be callable, got {type(collate_fn).__name__}")
        self.collate_fn = collate_fn
        self.config = config if config is not None else TrainConfig()
        if not isinstance(self.config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(self.config).__name__}")
        self.rank, self.world_size, self.local_rank = distributed.distributed_info()
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
        self._steps_per_epoch: int | None = None

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

    def parameters(self) -> list[nn.Parameter]:
        """The trained parameters: the model's, then the objective's.

        Returns
        -------
        list of nn.Parameter
        """
        params = [p for p in self.model.parameters() if p.requires_grad]
        if isinstance(self.objective, nn.Module):
            params += [p for p in self.objective.parameters() if p.requires_grad]
        return params

    def _make_optimizer(self) -> torch.optim.Optimizer:
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

    def _make_scheduler(self, steps_per_epoch: int, at: int = 0):
        """The schedule over the whole run, positioned after ``at`` optimiser steps."""
        cfg = self.config
        if cfg.scheduler == "none":
            return None
        total = max(1, steps_per_epoch * cfg.epochs)
        if at > 0:  # the closed form at step ``at``, which the recursive updates then follow
            lr = cfg.min_lr + (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * at / total)) / 2
            for group in self.optimizer.param_groups:
                group["initial_lr"], group["lr"] = cfg.lr, lr
        return torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=total, eta_min=cfg.min_lr,
                                                          last_epoch=at - 1)

    def _loader(self, dataset, *, train: bool, epoch: int) -> DataLoader:
        cfg = self.config
        bs = cfg.batch_size if train else (cfg.val_batch_size or cfg.batch_size)
        if train:
            sampler = EpochShuffleSampler(len(dataset), cfg.seed, cfg.shuffle, self.rank, self.world_size)
            sampler.set_epoch(epoch)
        else:
            sampler = StridedSampler(len(dataset), self.rank, self.world_size)
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch * 2 + (0 if train else 1))
        return DataLoader(
            dataset, batch_size=bs, sampler=sampler, num_workers=cfg.num_workers, generator=g,
            collate_fn=self.collate_fn, worker_init_fn=seed_worker if cfg.num_workers else None,
            drop_last=train and cfg.drop_last, pin_memory=self.device.type == "cuda", persistent_workers=False,
        )

    def _to_device(self, batch) -> dict:
        if not isinstance(batch, Mapping):
            raise TypeError(f"batches must be dicts with 'moving' and 'fixed', got {type(batch).__name__}")
        for key in ("moving", "fixed"):
            if key not in batch:
                raise ValueError(f"batches must have a {key!r} key, got keys {sorted(batch)}")
        return {k: (v.to(self.device, non_blocking=True) if isinstance(v, Tensor) else v) for k, v in batch.items()}

    def _autocast(self):
        dtype = self.amp_dtype
        return torch.autocast(device_type=self.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)

    def _progress(self) -> bool:
        if not self.is_main:
            return False
        return watched() if self.config.progress is None else self.config.progress

    # -- checkpoints ---------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Everything needed to resume exactly (plain types and tensors only).

        Returns
        -------
        dict
            Model, objective, optimiser and scheduler states, the RNG states, ``epoch``,
            ``step``, ``history``, ``config``, ``model_class``, ``model_config`` and
            ``objective_spec`` (:func:`regkit.train.resume.run_description`).
        """
        run = run_description(self.model, self.objective)
        return {
            "format": "regkit.train/2",
            "model": self.model.state_dict(),
            "objective": self.objective.state_dict() if isinstance(self.objective, nn.Module) else {},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "rng": rng_state(),
            "epoch": self.epoch,
            "step": self.step,
            "history": self.history,
            "config": self.config.to_dict(),
            "model_class": run["model_class"],
            "model_config": run["model_config"],
            "objective_spec": run["objective"],
        }

    def load_state_dict(self, state: dict, allow_config_change=False, source: str = "the checkpoint") -> None:
        """Restore a :meth:`state_dict`, after checking that it belongs to this run.

        Called by :meth:`resume` (through ``fit(..., resume=True)``, which builds the schedule
        first). Unchanged settings restore everything exactly. Accepted changes keep the
        model's weights, the epoch, step, history and RNG states, and apply the current
        settings from here on: the optimiser takes the current hyper-parameters (its moments
        kept where the parameters still match) and the schedule is rebuilt over the current
        run length, positioned at the stored step.

        Parameters
        ----------
        state : dict
        allow_config_change : bool or sequence of str
            ``False``: any change of a run-defining setting raises. ``True``: any change is
            accepted (with a warning). A list of names (from
            :data:`regkit.train.resume.RESUMABLE_CHANGES`): those may change.
        source : str
            Where ``state`` came from, for messages.

        Raises
        ------
        ValueError
            A changed setting that is not accepted (naming the fields), or weights that do not
            fit the model or objective (another width or architecture), which no override helps.
        """
        allowed = allowed_changes(allow_config_change)
        changes = run_changes(state, self.config, self.model, self.objective)
        refused = {k: v for k, v in changes.items() if k not in allowed}
        if refused:
            raise ValueError(
                f"cannot resume from {source}: it was written by a run with other settings "
                f"({describe_changes(refused)}). Resume with the same settings, start a new run (another "
                f"checkpoint_dir, or resume=False), or accept the change with "
                f"fit(..., resume=True, allow_config_change={tuple(refused)!r})"
            )
        problems = shape_mismatches(self.model, state["model"])
        if problems:
            raise ValueError(
                f"cannot resume from {source}: its weights do not fit this {type(self.model).__name__} "
                f"(was it trained with another width or architecture?): {'; '.join(problems)}"
            )
        obj_state = state.get("objective") or {}
        has_state = isinstance(self.objective, nn.Module) and bool(obj_state or self.objective.state_dict())
        problems = shape_mismatches(self.objective, obj_state) if has_state else []
        if problems and "objective" not in changes:
            raise ValueError(f"cannot resume from {source}: its objective state does not fit this "
                             f"{type(self.objective).__name__}: {'; '.join(problems)}")
        # Checked: from here on nothing refuses, so a refused resume leaves the Trainer untouched.
        self.model.load_state_dict(state["model"])
        notes = ["the objective's parameters start fresh"] if problems else []
        if has_state and not problems:
            self.objective.load_state_dict(obj_state)
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.history = [dict(h) for h in state["history"]]
        if OPTIMISER_CHANGES.isdisjoint(changes):
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scheduler is not None and state.get("scheduler") is not None:
                self.scheduler.load_state_dict(state["scheduler"])
        else:
            notes += self._restore_with_current_settings(state["optimizer"], keep_moments=not notes)
        set_rng_state(state["rng"])
        if changes:
            warnings.warn(
                f"resuming from {source} with changed settings ({describe_changes(changes)}); the current ones "
                f"apply from epoch {self.epoch + 1}" + (f"; {', '.join(notes)}" if notes else ""),
                UserWarning, stacklevel=3,
            )

    def _restore_with_current_settings(self, stored_optimizer: dict, keep_moments: bool = True) -> list[str]:
        """A fresh optimiser and schedule with the current settings; the stored moments if they fit."""
        notes = []
        self.optimizer = self._make_optimizer()
        fresh = self.optimizer.state_dict()
        groups = stored_optimizer.get("param_groups", [])
        try:
            if not keep_moments or len(groups) != len(fresh["param_groups"]):
                raise ValueError("the moments do not fit")
            merged = [{**{k: v for k, v in f.items() if k != "params"}, "params": g["params"]}
                      for f, g in zip(fresh["param_groups"], groups)]
            self.optimizer.load_state_dict({"state": stored_optimizer["state"], "param_groups": merged})
        except (ValueError, KeyError):
            self.optimizer = self._make_optimizer()
            notes.append("the optimiser's moments start fresh")
        # Outside fit the schedule is unknown; fit builds it, positioned at the restored step.
        steps = self._steps_per_epoch
        self.scheduler = self._make_scheduler(steps, at=self.step) if steps is not None else None
        return notes

    @property
    def checkpoint_path(self) -> str | None:
        """``config.checkpoint_dir/last.pt``, or ``None`` without a checkpoint folder."""
        d = self.config.checkpoint_dir
        return os.path.join(d, CHECKPOINT_NAME) if d else None

    def save(self, path=None) -> str:
        """Write the checkpoint atomically (rank 0 only; other ranks return at once).

        Parameters
        ----------
        path : str or PathLike, optional
            Default :attr:`checkpoint_path`.

        Returns
        -------
        str
            The path written.
        """
        path = path or self.checkpoint_path
        if path is None:
            raise ValueError("path must be given when config.checkpoint_dir is None")
        if self.is_main:
            save_checkpoint(self.state_dict(), path)
        return os.fspath(path)

    def resume(self, path=None, allow_config_change=False) -> bool:
        """Load a checkpoint (default :attr:`checkpoint_path`) if it exists.

        Call it through ``fit(..., resume=True)``, which builds the schedule first.

        Parameters
        ----------
        path : str or PathLike, optional
        allow_config_change : bool or sequence of str
            See :meth:`load_state_dict`.

        Returns
        -------
        bool
            True if a checkpoint was loaded.
        """
        path = path or self.checkpoint_path
        if path is None or not os.path.isfile(path):
            return False
        state = load_checkpoint(path, map_location=self.device)
        self.load_state_dict(state, allow_config_change, source=repr(os.fspath(path)))
        return True

    # -- loops ---------------------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self, data, metric_names=None) -> dict[str, float]:
        """Mean validation loss and metrics over ``data``, the model in eval mode.

        Parameters
        ----------
        data : Dataset of dict samples, or dict of batch tensors
        metric_names : sequence of str, optional
            Names in :data:`regkit.evaluation.METRICS` (default ``config.metrics``). A metric
            that does not apply (returns ``None``, e.g. ``folding`` without a displacement) is
            left out.

        Returns
        -------
        dict
            ``{"val_loss": ..., "val_<metric>": ...}``, means over all pairs (and processes).
        """
        dataset = as_dataset(data, "data")
        names = tuple(metric_names) if metric_names is not None else self.config.metrics
        unknown = [m for m in names if m not in METRICS]
        if unknown:
            raise ValueError(f"metric_names must be names in {sorted(METRICS)}, got unknown {unknown}")
        sums: dict[str, float] = {}
        count = 0.0
        with eval_mode(self.model), eval_mode(self.objective):
            for batch in self._loader(dataset, train=False, epoch=self.epoch):
                batch = self._to_device(batch)
                n = batch["moving"].shape[0]
                with self._autocast():
                    out = self.objective(self.model, batch)
                    result = out[2] if len(out) > 2 else None
                    if not isinstance(result, RegResult):
                        result = self.model(batch["moving"], batch["fixed"])
                sums["val_loss"] = sums.get("val_loss", 0.0) + float(out[0]) * n
                for name in names:
                    value = METRICS[name](result, batch, None)
                    if value is not None:
                        sums[f"val_{name}"] = sums.get(f"val_{name}", 0.0) + float(value.float().sum())
                count += n
        return distributed.reduce_mean(sums, count, self.device)

    def fit(self, train_data, val_data=None, *, resume: bool = False, stop_after: int | None = None,
            allow_config_change=False) -> list[dict]:
        """Train for ``config.epochs`` epochs (from the last checkpoint if ``resume``).

        Parameters
        ----------
        train_data, val_data : Dataset of dict samples, or dict of batch tensors
            A data set with a ``set_epoch(epoch)`` method gets it called at the start of every
            epoch (e.g. pairs re-drawn each epoch, seeded by ``(seed, epoch)``).
        resume : bool
            Continue from ``checkpoint_dir/last.pt`` if it exists (else start fresh). The stored
            configuration, model class and constructor arguments and objective must match the
            current ones (see ``allow_config_change``).
        stop_after : int, optional
            Stop once this many epochs are complete (the schedule still spans ``config.epochs``):
            an interruption on purpose, for tests and for splitting a run across sessions.
        allow_config_change : bool or sequence of str
            Changes a resumed run accepts: ``True`` for any, or names from
            :data:`regkit.train.resume.RESUMABLE_CHANGES`, e.g. ``("epochs",)`` to train a
            finished run longer. See :meth:`load_state_dict`.

        Returns
        -------
        list of dict
            :attr:`history`, one entry per completed epoch.
        """
        train_set = as_dataset(train_data, "train_data")
        val_set = as_dataset(val_data, "val_data") if val_data is not None else None
        if len(train_set) == 0:
            raise ValueError("train_data is empty")
        if stop_after is not None and (isinstance(stop_after, bool) or not isinstance(stop_after, int)
                                       or stop_after < 0):
            raise ValueError(f"stop_after must be None or a non-negative integer, got {stop_after!r}")
        allowed_changes(allow_config_change)  # validate before any work
        own_group = distributed.init_process_group(self.device)
        self.rank, self.world_size, self.local_rank = distributed.distributed_info()
        try:
            return self._fit(train_set, val_set, resume, stop_after, allow_config_change)
        finally:
            if own_group:
                distributed.end_process_group()

    def _steps(self, n: int) -> int:
        cfg = self.config
        per_rank = math.ceil(n / self.world_size)
        steps = per_rank // cfg.batch_size if cfg.drop_last else math.ceil(per_rank / cfg.batch_size)
        if steps == 0:
            raise ValueError(
                f"batch_size {cfg.batch_size} is larger than the {per_rank} samples per process with drop_last")
        return steps if cfg.steps_per_epoch is None else min(steps, cfg.steps_per_epoch)

    def _fit(self, train_set, val_set, resume, stop_after, allow_config_change):
        cfg = self.config
        seed_everything(cfg.seed)
        steps = self._steps_per_epoch = self._steps(len(train_set))
        self.scheduler = self._make_scheduler(steps, at=self.step)  # a second fit() continues the schedule
        show = self._progress()
        if resume and self.resume(allow_config_change=allow_config_change) and self.is_main and cfg.log and not show:
            print(f"resumed from {self.checkpoint_path} at epoch {self.epoch}", flush=True)
        runner = distributed.wrap_ddp(distributed.ModelAndObjective(self.model, self.objective), self.device,
                                      cfg.find_unused_parameters)
        last = cfg.epochs if stop_after is None else min(cfg.epochs, stop_after)
        from tqdm.auto import tqdm

        epochs_bar = tqdm(range(self.epoch, last), total=last, initial=self.epoch, desc="epochs", disable=not show,
                          dynamic_ncols=True)
        for epoch in epochs_bar:
            t0 = time.perf_counter()
            entry = self._train_epoch(runner, train_set, epoch, steps, tqdm, show)
            if val_set is not None:
                entry.update(self.evaluate(val_set))
            entry["time"] = time.perf_counter() - t0
            self.history.append(entry)
            self.epoch = epoch + 1
            if cfg.checkpoint_dir:
                self.save()
                if cfg.keep_every and self.epoch % cfg.keep_every == 0:
                    self.save(os.path.join(cfg.checkpoint_dir, f"epoch_{self.epoch:04d}.pt"))
            distributed.barrier()
            summary = " ".join(f"{k}={v:.4g}" for k, v in entry.items() if k not in ("epoch", "step", "time", "lr"))
            epochs_bar.set_postfix_str(summary, refresh=True)
            if self.is_main and cfg.log and not show:
                print(f"epoch {self.epoch}/{cfg.epochs} step {self.step} lr={entry['lr']:.3g} {summary} "
                      f"({entry['time']:.1f}s)", flush=True)
        epochs_bar.close()
        return self.history

    def _train_epoch(self, runner, train_set, epoch: int, steps: int, tqdm, show: bool) -> dict:
        cfg = self.config
        self.model.train()
        if isinstance(self.objective, nn.Module):
            self.objective.train()
        if callable(getattr(train_set, "set_epoch", None)):
            train_set.set_epoch(epoch)
        loader = self._loader(train_set, train=True, epoch=epoch)
        sums: dict[str, float] = {}
        count = 0.0
        bar = tqdm(total=steps, desc=f"epoch {epoch + 1}", leave=False, disable=not show, dynamic_ncols=True)
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
            value = float(loss.detach())
            sums["loss"] = sums.get("loss", 0.0) + value * n
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + float(v) * n
            count += n
            bar.update(1)
            bar.set_postfix(loss=f"{value:.4g}", refresh=False)
        bar.close()
        entry = {"epoch": epoch + 1, "step": self.step, "lr": float(self.optimizer.param_groups[0]["lr"])}
        entry.update(distributed.reduce_mean(sums, count, self.device))
        return entry

    def curves(self) -> dict[str, list[float]]:
        """The history as ``{"epoch": [...], "loss": [...], "val_mse": [...], ...}`` for plotting.

        Returns
        -------
        dict of str to list of float
            NaN where an epoch lacks a key.
        """
        keys = sorted({k for h in self.history for k in h})
        return {k: [h.get(k, float("nan")) for h in self.history] for k in keys}
