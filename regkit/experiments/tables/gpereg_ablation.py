"""GPEReg-Net without its GPE module and with other windows, on FIRE-Reg-256.

Every variant is trained on the same data, with the same seed and steps, and scored through
:func:`regkit.evaluation.evaluate`; the first row is the default model (window 4), reused from
Table 1's run when one is passed in.

``python -m regkit reproduce gpereg-ablation --profile quick|cpu|full [--data-root DIR]``
"""

from __future__ import annotations

from ...evaluation import MethodSpec, evaluate
from ...models.blocks import count_parameters
from .base import TableRun
from .gpereg_setup import build_model, load_split, profile_note, settings, train, train_all

__all__ = ["NAME", "SUMMARY", "VARIANTS", "settings", "build_model", "train", "run", "reproduce", "difference",
           "assess"]

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
    variants = dict(VARIANTS if variants is None else variants)
    test = load_split("fire", "test", profile, seed, data_root)
    models, histories, times, info, cached = {}, {}, {}, {}, []
    for i, (label, overrides) in enumerate(variants.items()):
        if i == 0 and base is not None and not overrides:
            models[label] = base
            continue
        m, h, t, info = train_all(("gpereg",), "fire", profile, seed, device, data_root, progress, **overrides)
        models[label], histories[label], times[label] = m["gpereg"], h["gpereg"], t["gpereg"]
        cached += [label] if info["cached"] else []
    info["cached"] = cached
    specs = [MethodSpec(label, "gpereg", {"model": m}, frame=True) for label, m in models.items()]
    results = evaluate(test, specs, metrics=("ncc", "ssim", "psnr"), batch_size=s["eval_batch"],
                       device=device)
    info = {**info, "source": test.info.get("source"), "test_pairs": len(test), "size": s["size"]}
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


def difference(record: dict, metric: str, a: str = "GPEReg-Net (window 4)", b: str = "without GPE") -> dict:
    """Mean ``metric`` of row ``a`` minus row ``b``, with the noise level it is judged against:
    two standard errors of a difference of two means over the record's test pairs, from the
    per-pair standard deviations (unpaired, so conservative).

    >>> rec = {"rows": {"x": {"ssim": 0.70, "ssim_std": 0.1}, "y": {"ssim": 0.60, "ssim_std": 0.1}},
    ...        "data": {"test_pairs": 100}}
    >>> d = difference(rec, "ssim", "x", "y")
    >>> round(d["diff"], 3), round(d["noise"], 4), d["measurable"]
    (0.1, 0.0283, True)
    """
    import math

    ra, rb, n = record["rows"][a], record["rows"][b], record["data"]["test_pairs"]
    diff = ra[metric] - rb[metric]
    noise = 2.0 * math.sqrt((ra[f"{metric}_std"] ** 2 + rb[f"{metric}_std"] ** 2) / n)
    return {"diff": diff, "noise": noise, "measurable": abs(diff) > noise}


def assess(record: dict) -> dict:
    """The paper has no ablation table, so the status is ``measured`` (ours only); the reason says
    what ours shows: does the default model (window 4) score differently from the one without
    GPE, beyond the noise of the test set (:func:`difference`)?"""
    from .base import unconverged

    late = unconverged(record)
    if late:
        return {"status": "not converged", "reason": f"validation loss still falling for {', '.join(late)}"}
    rows = record["rows"]
    full, without = rows["GPEReg-Net (window 4)"], rows["without GPE"]
    ssim, psnr = difference(record, "ssim"), difference(record, "psnr")
    if not (ssim["measurable"] or psnr["measurable"]):
        effect = "makes no measurable difference"
    else:  # the sign of the first measurable difference, SSIM before PSNR
        lead = ssim if ssim["measurable"] else psnr
        effect = "helps" if lead["diff"] > 0 else "hurts"
    return {"status": "measured", "reason": (
        f"ours only (the paper reports no ablation): GPE {effect} here, SSIM {full['ssim']:.3f} with it vs "
        f"{without['ssim']:.3f} without, PSNR {full['psnr']:.2f} vs {without['psnr']:.2f} dB (differences under "
        f"two standard errors, {ssim['noise']:.3f} SSIM and {psnr['noise']:.2f} dB, are not counted)")}
