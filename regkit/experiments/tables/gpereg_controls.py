"""Does it really register? Controls, shuffled-fixed and structural tests on FIRE-Reg-256.

Rows: the three controls of :mod:`regkit.baselines` (unregistered, appearance transfer, the fixed
image itself), two classical methods with a displacement, and the four learned models of Table 1
(trained here unless passed in). Every row goes through :func:`regkit.evaluation.evaluate` via
:func:`regkit.experiments.controls.does_it_register`.

``python -m regkit reproduce gpereg-does-it-register --profile quick|cpu|full [--data-root DIR]``
"""

from __future__ import annotations

from .. import controls
from .base import TableRun
from .gpereg_setup import LEARNED, build_model, load_split, profile_note, settings, spec, train, train_all

__all__ = ["NAME", "SUMMARY", "CLASSICAL", "COLUMNS", "settings", "build_model", "train", "run", "reproduce", "assess"]

NAME = "gpereg-does-it-register"
SUMMARY = "Does it register? Controls, shuffled-fixed and structural tests on FIRE-Reg-256"
CLASSICAL = ("demons", "syn")
COLUMNS = (
    ("ssim", "SSIM"), ("psnr", "PSNR"), ("shuffled_ssim", "SSIM, shuffled fixed"),
    ("geometry_shuffled_ssim", "SSIM, other geometry"), ("dice_vessels", "vessel Dice"),
    ("dice_vessels_gt", "Dice vs true vessels"), ("tre", "TRE (px)"),
)
"""The columns a chapter shows, with their headings."""


def run(profile: str = "quick", seed: int = 0, device="cpu", data_root=None, progress: bool | None = False,
        models: dict | None = None, classical=CLASSICAL) -> TableRun:
    """Controls, shuffled-fixed tests and structural scores on FIRE-Reg-256's test split.

    ``models`` (``{name: trained model}`` for names in :data:`LEARNED`) are trained here when not
    given.
    """
    s = settings(profile)
    histories, times, info = {}, {}, {}
    if models is None:
        models, histories, times, info = train_all(LEARNED, "fire", profile, seed, device, data_root, progress)
    test = load_split("fire", "test", profile, seed, data_root)
    specs = list(controls.CONTROLS) + [spec(n) for n in classical]
    specs += [spec(n, models[n]) for n in LEARNED if n in models]
    rows = controls.does_it_register(specs, test, batch_size=s["eval_batch"], seed=seed, device=device)
    info = {**info, "source": test.info.get("source"), "test_pairs": len(test), "size": s["size"]}
    return TableRun(NAME, profile, seed, {"rows": rows}, models, histories, times, s, info)


def reproduce(profile: str, seed: int, device, data_root=None) -> dict:
    """The body of ``results/gpereg-does-it-register.json`` (the CLI adds provenance)."""
    result = run(profile, seed, device, data_root)
    return {
        "description": "Scores vs the true fixed image with true, shuffled and geometry-shuffled fixed images; "
                       "vessel-mask Dice; TRE for methods with a displacement",
        "rows": result.results["rows"],
        "settings": result.settings,
        "data": result.data,
        "training": result.training(),
        "note": profile_note(profile),
    }


def assess(record: dict) -> dict:
    """The controls are ours (the paper has none): status ``measured`` (``not converged`` if a model
    had not converged), and a reason that states what they found: how much SSIM each
    deformation-free model loses when given another pair's layout with the right appearance."""
    from .base import unconverged

    late = unconverged(record)
    if late:
        return {"status": "not converged", "reason": f"validation loss still falling for {', '.join(late)}"}
    notes = []
    for r in record["rows"]:
        if r.get("deformation_free") and r.get("method") in LEARNED and r.get("geometry_drop_ssim") is not None:
            drop = round(r["geometry_drop_ssim"], 3) + 0.0  # no "-0.000"
            notes.append(f"{r['label']} loses {drop:.3f} SSIM with another geometry "
                         f"(the fixed image itself loses {_oracle_drop(record):.3f})")
    return {"status": "measured", "reason": "ours only (the paper has no controls): " + "; ".join(notes)}


def _oracle_drop(record: dict) -> float:
    for r in record["rows"]:
        if r.get("method") == "fixed_oracle":
            return r["geometry_drop_ssim"]
    return float("nan")
