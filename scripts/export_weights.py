"""Ship trained models with the package: ``regkit.models.pretrained(name)``.

    REGKIT_MODEL_CACHE=checkpoints/model-cache-air .venv/bin/python scripts/export_weights.py air [mnist|fashion]
    REGKIT_MODEL_CACHE=checkpoints/model-cache-cpu .venv/bin/python scripts/export_weights.py gpereg

``air``: DIRNet, AiR-single and MAPT-AiR of Table 1's full profile, on MNIST (``<model>-mnist``)
and on Fashion-MNIST (``<model>-fashion``). ``gpereg``: VoxelMorph, TransMorph, SAS-Net and
GPEReg-Net of the GPEReg tables' cpu profile on the FIRE-Reg-256 proxy (``<model>-fire-cpu``).

The models come from the model cache that ``python -m regkit reproduce`` fills while it runs the
table (the same key: settings, data, seed), so the shipped weights are the very models behind the
committed results file; a model missing from the cache is trained here with the same settings.
Each entry of ``regkit/models/weights/manifest.json`` records how it was made.
"""

from __future__ import annotations

import os
import sys

import torch

from regkit.experiments import provenance
from regkit.experiments.tables import air_table1, gpereg_setup
from regkit.experiments.tables.base import MODEL_CACHE_ENV, export_weights


FASHION_PAIRS = 4000
"""``limit`` of the Fashion-MNIST run (3,500 training and 500 validation pairs, as the offline MNIST digits give)."""


def made_by(table: str, profile: str, dataset: str, history: list, extra: dict) -> dict:
    rev = provenance.git_revision()
    return {
        "command": f"{MODEL_CACHE_ENV}=... python scripts/export_weights.py {' '.join(sys.argv[1:])}",
        "table": table, "profile": profile, "dataset": dataset, "git_revision": rev,
        "steps": history[-1]["step"] if history else None, "epochs": len(history),
        "final_val_loss": history[-1].get("val_loss") if history else None, **extra,
    }


def export_air(only: str | None = None) -> None:
    for dataset, limit in (("mnist", None), ("fashion", FASHION_PAIRS)):
        if only is not None and dataset != only:
            continue
        run = air_table1.run("full", 0, "cpu", dataset=dataset, limit=limit)
        info = {"data": run.data, "test_mse": {k: v["mean"]["mse"] for k, v in run.results["methods"].items()}}
        for name in air_table1.LEARNED:
            entry = export_weights(run.models[name], f"{name}-{dataset}",
                                   made_by=made_by(air_table1.NAME, "full", dataset, run.histories.get(name, []), info))
            print(f"{name}-{dataset}: {entry['bytes']} bytes")


def export_gpereg() -> None:
    models, histories, _, info = gpereg_setup.train_all(gpereg_setup.LEARNED, "fire", "cpu", 0, "cpu")
    for name, model in models.items():
        entry = export_weights(model.cpu(), f"{name}-fire-cpu",
                               made_by=made_by("gpereg-table1", "cpu", "fire", histories.get(name, []), {"data": info}))
        print(f"{name}-fire-cpu: {entry['bytes']} bytes")


if __name__ == "__main__":
    args = sys.argv[1:]
    if not (args == ["gpereg"] or (args[:1] == ["air"] and args[1:] in ([], ["mnist"], ["fashion"]))):
        sys.exit("usage: export_weights.py air [mnist|fashion] | gpereg")
    if not os.environ.get(MODEL_CACHE_ENV):
        sys.exit(f"set {MODEL_CACHE_ENV} to the cache folder of the table run")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if args[0] == "air":
        export_air(*args[1:])
    else:
        export_gpereg()
