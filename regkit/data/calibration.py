"""Calibration: the unregistered row of a data set (NCC, SSIM, PSNR of moving vs fixed).

The GPEReg-Net paper reports an "Unregistered" row for each benchmark (Table 1: FIRE-Reg-256,
Table 3: HPatches-Reg-256). Our proxies were tuned until their rows matched those within 10%
each; :func:`unregistered_row` is the measurement, used by the tests and the book.

Example
-------
>>> from regkit.data import hpatches_reg256
>>> row = unregistered_row(hpatches_reg256("test", limit=2))   # doctest: +SKIP
>>> sorted(row)                                                # doctest: +SKIP
['n', 'ncc', 'psnr', 'ssim']
"""

from __future__ import annotations

import torch

from .. import metrics
from .pairs import collate_pairs

__all__ = ["unregistered_row", "relative_error", "PAPER_UNREGISTERED", "TOLERANCE"]

PAPER_UNREGISTERED = {
    "fire_reg256": {"ncc": 0.762, "ssim": 0.494, "psnr": 22.36},
    "hpatches_reg256": {"ncc": 0.312, "ssim": 0.241, "psnr": 14.87},
}
"""The "Unregistered" rows of the GPEReg-Net paper (Table 1 and Table 3)."""

TOLERANCE = 0.10
"""Largest relative difference we accept between our row and the paper's, per metric."""


@torch.no_grad()
def unregistered_row(dataset, n: int | None = None, batch: int = 16) -> dict:
    """Mean NCC, SSIM and PSNR (dB) of ``moving`` vs ``fixed`` over the first ``n`` items.

    Uses :mod:`regkit.metrics` (global NCC, Gaussian SSIM, PSNR with data range 1) per pair and
    averages over pairs, as the paper's tables do.
    """
    total = len(dataset) if n is None else min(int(n), len(dataset))
    if total <= 0:
        raise ValueError("dataset must hold at least one item (and n must be positive)")
    sums = {"ncc": 0.0, "ssim": 0.0, "psnr": 0.0}
    for start in range(0, total, batch):
        b = collate_pairs([dataset[i] for i in range(start, min(start + batch, total))])
        m, f = b["moving"], b["fixed"]
        sums["ncc"] += float(metrics.ncc(m, f).sum())
        sums["ssim"] += float(metrics.ssim(m, f).sum())
        sums["psnr"] += float(metrics.psnr(m, f).sum())
    row = {k: v / total for k, v in sums.items()}
    row["n"] = total
    return row


def relative_error(row: dict, paper: dict) -> dict:
    """``(ours - paper) / paper`` per metric."""
    return {k: (row[k] - paper[k]) / paper[k] for k in paper}
