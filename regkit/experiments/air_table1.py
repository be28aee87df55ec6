r"""AiR paper, Table 1: MSE, PSNR and Smooth Dice on MNIST for the unregistered pairs, DIRNet,
AiR-single and AiR-parallel (MAPT-AiR).

``python -m regkit reproduce air-table1 --profile quick|full`` runs :func:`reproduce`; the chapter
``book/08_attention_air.ipynb`` calls :func:`run` for the live quick run and reads
``results/air-table1.json`` when it exists.

Protocol
--------
From the paper: same-class MNIST pairs, 80 % / 20 % train / test, Adam with learning rate 5e-4
for every model, AiR with one encoder and one decoder block, 4 heads, projection dimension 16,
dropout 0.5. Our choices (the paper states none of them): 28 x 28 digits zero-padded to 32 x 32
(:func:`regkit.data.mnist_pairs`), patch size 2 for AiR-single and (2, 4, 8) for MAPT-AiR,
loss MSE + 0.01 x diffusion regulariser of the dense field (pixels), batch size 32, constant
learning rate, no gradient clipping, 60 epochs in the full profile (batch size 16 in the quick one), and Smooth Dice as defined in
:func:`regkit.metrics.smooth_dice`. Means and standard deviations (``n - 1``) are over the test pairs,
evaluated in batches of :data:`EVAL_BATCH` pairs.

The quick profile keeps every code path but trains each model for :data:`QUICK_STEPS` steps on
a CPU and scores 200 test pairs (every 5th): its numbers show the direction, not the paper's values.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .. import metrics
from ..registry import register
from ..runtime import by_profile, seed_everything
from ..metrics import SMOOTH_DICE_SIGMA, smooth_dice
from .cli import table

__all__ = [
    "TABLE", "METHODS", "LABELS", "METRIC_NAMES", "paper_rows", "settings", "datasets", "build_model", "train",
    "evaluate", "run", "reproduce", "format_table", "count_parameters", "Table1Run",
]

TABLE = "air-table1"
METHODS = ("identity", "dirnet", "air", "mapt_air")
"""Rows of the table, as names of :func:`regkit.register` methods (``identity``: unregistered)."""
LABELS = {"identity": "Unregistered", "dirnet": "DIRNet", "air": "AiR-single", "mapt_air": "AiR-parallel"}
METRIC_NAMES = ("mse", "psnr", "smooth_dice")
QUICK_STEPS = 60
"""Training steps per model in the quick profile (batches of :data:`QUICK_BATCH` pairs)."""
QUICK_BATCH = 16
QUICK_TEST_PAIRS = 200
"""Test pairs scored in the quick profile: every 5th of the 1,000, so that all digits appear."""
EVAL_BATCH = 100



def paper_rows() -> dict:
    """The paper's Table 1 from :mod:`regkit.experiments.paper_numbers` as ``{method: {metric: (mean, std)}}``."""
    from .paper_numbers import AIR_TABLE1

    out = {}
    for name in METHODS:
        row = AIR_TABLE1.row_for_method(name)
        out[name] = {m: (row.values[k], row.std[k]) for k, m in enumerate(METRIC_NAMES)}
    return out


def settings(profile: str) -> dict:
    """Every setting of a run in ``profile`` ('quick' or 'full'), as plain data."""
    pick = lambda quick, full: by_profile(quick=quick, full=full, which=profile)  # noqa: E731
    return {
        "dataset": "mnist",
        "size": 32,
        "batch_size": pick(QUICK_BATCH, 32),
        "lr": 5e-4,
        "optimizer": "adam",
        "scheduler": "none",
        "grad_clip": None,
        "epochs": pick(1, 60),
        "steps_per_epoch": pick(QUICK_STEPS, None),
        "test_pairs": pick(QUICK_TEST_PAIRS, None),
        "similarity": "mse",
        "smoothness": "diffusion",
        "smoothness_weight": 0.01,
        "air": {"patch_size": 2, "dim": 16, "heads": 4, "depth": 1, "dropout": 0.5},
        "mapt_air": {"patch_sizes": [2, 4, 8], "dim": 16, "heads": 4, "depth": 1, "dropout": 0.5},
        "dirnet": {"channels": 32, "pools": 2},
        "smooth_dice_sigma": SMOOTH_DICE_SIGMA,
        "eval_batch": EVAL_BATCH,
    }


def datasets(profile: str, seed: int = 0, dataset: str = "mnist"):
    """``(train, test)`` pair sets of ``dataset`` ('mnist' or 'fashion') for ``profile``."""
    from ..data import mnist_pairs

    s = settings(profile)
    train = mnist_pairs("train", dataset=dataset, seed=seed, size=s["size"])
    test = mnist_pairs("test", dataset=dataset, seed=seed, size=s["size"])
    if s["test_pairs"] is not None and s["test_pairs"] < len(test):
        # Evenly strided, not the first n: the pairs are ordered by class.
        stride = len(test) / s["test_pairs"]
        test = test.subset([int(i * stride) for i in range(s["test_pairs"])])
    return train, test


def build_model(name: str, seed: int = 0, profile: str = "quick", **overrides) -> nn.Module:
    """A fresh, seeded model: ``"dirnet"``, ``"air"`` or ``"mapt_air"`` with this table's settings."""
    s = settings(profile)
    seed_everything(seed)
    if name == "dirnet":
        from ..models.dirnet import DIRNet

        return DIRNet(**{**s["dirnet"], **overrides})
    if name in ("air", "mapt_air"):
        from ..models.air import build

        return build(name, size=(s["size"], s["size"]), **{**s[name], **overrides})
    raise ValueError(f"name must be 'dirnet', 'air' or 'mapt_air', got {name!r}")


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def train(name: str, train_set, profile: str = "quick", seed: int = 0, device="cpu", steps: int | None = None,
          progress: bool | None = None, **overrides):
    """Train one model with the shared Trainer; returns ``(model, history)``.

    ``steps`` overrides the profile's steps per epoch; ``overrides`` go to the model's constructor
    (e.g. ``attention_axis="batch"`` for the chapter's pitfall).
    """
    from ..train import RegistrationObjective, TrainConfig, Trainer

    s = settings(profile)
    model = build_model(name, seed, profile, **overrides)
    cfg = TrainConfig(
        epochs=s["epochs"], batch_size=s["batch_size"], lr=s["lr"], optimizer=s["optimizer"],
        scheduler=s["scheduler"], grad_clip=s["grad_clip"], seed=seed,
        steps_per_epoch=steps if steps is not None else s["steps_per_epoch"],
        metrics=("mse",), progress=progress, log=False,
    )
    objective = RegistrationObjective(s["similarity"], s["smoothness"], weight=s["smoothness_weight"])
    trainer = Trainer(model, objective, cfg, device=device)
    history = trainer.fit(train_set)
    return trainer.model.eval(), history


def _batches(test_set, batch: int):
    from ..data import collate_pairs

    for start in range(0, len(test_set), batch):
        items = [test_set[i] for i in range(start, min(start + batch, len(test_set)))]
        yield collate_pairs(items)


@torch.no_grad()
def evaluate(models: dict, test_set, device="cpu", batch: int = EVAL_BATCH) -> dict:
    """Score every method on ``test_set`` through :func:`regkit.register`.

    ``models`` maps a method name to its trained model (``None`` for methods that need none, such
    as ``identity``). Returns ``{name: {"mse": {"mean", "std"}, "psnr": ..., "smooth_dice": ...,
    "per_pair": {metric: [...]}}}``.
    """
    values = {name: {m: [] for m in METRIC_NAMES} for name in models}
    for b in _batches(test_set, batch):
        moving, fixed = b["moving"].to(device), b["fixed"].to(device)
        for name, model in models.items():
            kwargs = {} if model is None else {"model": model}
            warped = register(moving, fixed, method=name, **kwargs).warped.clamp(0, 1)
            values[name]["mse"].append(metrics.mse(warped, fixed).cpu())
            values[name]["psnr"].append(metrics.psnr(warped, fixed).cpu())
            values[name]["smooth_dice"].append(smooth_dice(warped, fixed).cpu())
    rows = {}
    for name, per in values.items():
        row = {}
        for m, chunks in per.items():
            v = torch.cat(chunks).double()
            row[m] = {"mean": float(v.mean()), "std": float(v.std()) if v.numel() > 1 else 0.0}
        row["per_pair"] = {m: torch.cat(c).tolist() for m, c in per.items()}
        rows[name] = row
    return rows


@dataclass
class Table1Run:
    """What :func:`run` returns: the rows, the trained models and how they were made."""

    profile: str
    seed: int
    rows: dict
    models: dict
    histories: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    train_time_s: dict = field(default_factory=dict)
    test_set: object = None

    def table(self) -> str:
        return format_table(self.rows)


def run(profile: str = "quick", seed: int = 0, device="cpu", progress: bool | None = None) -> Table1Run:
    """Train DIRNet, AiR-single and MAPT-AiR on MNIST pairs and score them with the unregistered row."""
    train_set, test_set = datasets(profile, seed)
    models, histories, times = {"identity": None}, {}, {}
    for name in ("dirnet", "air", "mapt_air"):
        t0 = time.perf_counter()
        models[name], histories[name] = train(name, train_set, profile, seed, device, progress=progress)
        times[name] = round(time.perf_counter() - t0, 2)
    rows = evaluate(models, test_set, device)
    return Table1Run(profile, seed, rows, models, histories, settings(profile), times, test_set)


def format_table(rows: dict, paper: dict | None = None, digits: dict | None = None) -> str:
    """Ours next to the paper's, one line per method: ``mean ± std (paper mean ± std)``."""
    paper = paper_rows() if paper is None else paper
    digits = digits or {"mse": 3, "psnr": 2, "smooth_dice": 3}
    heads = {"mse": "MSE", "psnr": "PSNR (dB)", "smooth_dice": "Smooth Dice"}
    lines = [f"{'':14s}" + "".join(f"{heads[m] + ' ours':>18s}{'paper':>18s}" for m in METRIC_NAMES)]
    for name in METHODS:
        if name not in rows:
            continue
        cells = []
        for m in METRIC_NAMES:
            d = digits[m]
            ours = rows[name][m]
            cells.append(f"{ours['mean']:.{d}f} ± {ours['std']:.{d}f}".rjust(18))
            pm, ps = paper[name][m]
            cells.append(f"{pm:.{d}f} ± {ps:.{d}f}".rjust(18))
        lines.append(f"{LABELS[name]:14s}" + "".join(cells))
    return "\n".join(lines)


@table(TABLE, summary="AiR paper, Table 1: MSE / PSNR / Smooth Dice on MNIST (unregistered, DIRNet, AiR, MAPT-AiR)")
def reproduce(profile: str, seed: int, device) -> dict:
    """The body of ``results/air-table1.json`` (the CLI adds provenance)."""
    result = run(profile, seed, device, progress=False)
    test = result.test_set
    return {
        "description": "AiR paper (Wang & Delingette), Table 1: MNIST same-class pairs, mean and std over test pairs",
        "rows": {name: {m: result.rows[name][m] for m in METRIC_NAMES} for name in METHODS},
        "labels": LABELS,
        "paper": {n: {m: {"mean": v[0], "std": v[1]} for m, v in ms.items()} for n, ms in paper_rows().items()},
        "settings": result.settings,
        "data": {**{k: v for k, v in test.info.items() if k != "classes"}, "test_pairs": len(test)},
        "parameters": {n: count_parameters(m) for n, m in result.models.items() if m is not None},
        "mapt_weights": [round(float(w), 4) for w in result.models["mapt_air"].weights.detach()],
        "train_time_s": result.train_time_s,
        "final_train_loss": {n: h[-1]["loss"] for n, h in result.histories.items()},
        "note": ("quick profile: every code path, but few training steps on a CPU; not comparable with the paper"
                 if profile == "quick" else "full profile: the protocol of the module docstring"),
    }
