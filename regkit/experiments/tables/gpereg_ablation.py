"""GPEReg-Net without its GPE module and with other windows, on FIRE-Reg-256.

Every variant is trained on the same data, with the same seed and steps, and scored through
:func:`regkit.evaluation.evaluate`; the first row is the default model (window 4), reused from
Table 1's run when one is passed in.

``python -m regkit reproduce gpereg-ablation --profile quick|cpu|full [--data-root DIR]``
"""

from __future__ import annotations

import time

from ...evaluation import MethodSpec, evaluate
from ...models.blocks import count_parameters
from .base import TableRun
from .gpereg_setup import build_model, load_split, materialise, profile_note, settings, train

__all__ = ["NAME", "SUMMARY", "VARIANTS", "settings", "build_model", "train", "run", "reproduce"]

NAME = "gpereg-ablation"
SUMMARY = "GPEReg-Net without GPE and with other windows, on FIRE-Reg-256"
VARIANTS = {
    "GPEReg-Net (window 4)": {},
    "without GPE": {"gpe": False},
    "window 1": {"window": 1},
    "window 8": {"window": 8},
}
"""Rows of the ablation: constructor overrides of GPEReg-Net (the first is the default model)."""


def run(profile: str = "quick", seed: int = 0, device="cpu", data_root=None, progress: bool | None = False,
        variants: dict | None = None, base=None) -> TableRun:
    """Train each variant (``base``: an already trained default GPEReg-Net for the first row) and
    score them on FIRE-Reg-256's test split."""
    s = settings(profile)
    size = (s["size"], s["size"])
    variants = dict(VARIANTS if variants is None else variants)
    train_set = load_split("fire", "train", profile, seed, data_root)
    val_set = load_split("fire", "val", profile, seed, data_root)
    data, val = materialise(train_set, size), materialise(val_set, size)
    test = load_split("fire", "test", profile, seed, data_root)
    models, histories, times = {}, {}, {}
    for i, (label, overrides) in enumerate(variants.items()):
        if i == 0 and base is not None and not overrides:
            models[label] = base
            continue
        t0 = time.perf_counter()
        models[label], histories[label] = train("gpereg", data, profile, seed, device, val, progress, **overrides)
        times[label] = round(time.perf_counter() - t0, 2)
    specs = [MethodSpec(label, "gpereg", {"model": m}, frame=True) for label, m in models.items()]
    results = evaluate(test, specs, metrics=("ncc", "ssim", "psnr"), size=size, batch_size=s["eval_batch"],
                       device=device)
    info = {"source": test.info.get("source"), "train_pairs": len(train_set), "val_pairs": len(val_set),
            "test_pairs": len(test), "size": list(size)}
    extra = {"variants": {k: dict(v) for k, v in variants.items()},
             "parameters": {label: count_parameters(m) for label, m in models.items()}}
    return TableRun(NAME, profile, seed, results, models, histories, times, s, info, extra)


def reproduce(profile: str, seed: int, device, data_root=None) -> dict:
    """The body of ``results/gpereg-ablation.json`` (the CLI adds provenance)."""
    from .base import rows_body

    result = run(profile, seed, device, data_root)
    return {
        "description": "Ablation of the GPE module on FIRE-Reg-256 test patches: output vs fixed image",
        "rows": rows_body(result.results),
        "settings": result.settings,
        "data": result.data,
        "training": result.training(),
        **result.extra,
        "note": profile_note(profile),
    }
