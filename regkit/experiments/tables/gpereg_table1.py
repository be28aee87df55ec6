"""GPEReg-Net paper, Table 1: NCC, SSIM and PSNR on FIRE-Reg-256, every row.

Traditional rows (unregistered, SIFT + RANSAC, Demons, Horn-Schunck optical flow, SyN) and the
four learned models (VoxelMorph, TransMorph, SAS-Net, GPEReg-Net), trained on the training split
and scored on the test split through :func:`regkit.evaluation.evaluate`. The protocol and the
profiles are in :mod:`regkit.experiments.tables.gpereg_setup`.

``python -m regkit reproduce gpereg-table1 --profile quick|cpu|full [--data-root DIR]``
"""

from __future__ import annotations

from .gpereg_setup import (
    CLASSICAL,
    LEARNED,
    assess_dataset_table,
    build_model,
    dataset_table_body,
    run_dataset_table,
    settings,
    train,
)

__all__ = ["NAME", "SUMMARY", "DATASET", "ROWS", "settings", "build_model", "train", "run", "reproduce", "assess"]

NAME = "gpereg-table1"
SUMMARY = "GPEReg-Net paper, Table 1: NCC / SSIM / PSNR on FIRE-Reg-256, every row"
DATASET = "fire"
ROWS = (*CLASSICAL, *LEARNED)


def run(profile: str = "quick", seed: int = 0, device="cpu", data_root=None, progress: bool | None = False,
        models: dict | None = None):
    """Train the learned models (unless ``models`` are given) and score every row on the test split."""
    return run_dataset_table(NAME, DATASET, CLASSICAL, profile, seed, device, data_root, progress, models)


def reproduce(profile: str, seed: int, device, data_root=None) -> dict:
    """The body of ``results/gpereg-table1.json`` (the CLI adds provenance)."""
    return dataset_table_body(run(profile, seed, device, data_root), "FIRE-Reg-256 test patches: output vs fixed image",
                              DATASET)


def assess(record: dict) -> dict:
    """Status of a results record against the paper's claims (see
    :func:`~regkit.experiments.tables.gpereg_setup.assess_dataset_table`)."""
    return assess_dataset_table(record, traditional_below_unregistered=True)
