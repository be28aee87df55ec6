"""Effect of the smoothness weight on a learned registration model (the slider of chapter 7).

Trains one VoxelMorph per weight ``lambda`` of the diffusion regulariser on MNIST same-class
pairs (MSE similarity), evaluates each on the same test pairs, and writes
``results/smoothness_sweep.json``: the metrics per weight (MSE, SSIM, folding fraction, mean and
minimum Jacobian determinant, mean displacement) plus a few example pairs (moving, fixed,
warped, displacement; 32x32, rounded to 2 decimals, stored compactly) so that the book can draw them with no
training. Provenance (git revision, device, versions, seed, wall time) is recorded.

Usage (from the repository root)::

    python benchmarks/smoothness_sweep.py                  # the profile of this machine
    REGKIT_PROFILE=full python benchmarks/smoothness_sweep.py --out results/smoothness_sweep.json
    python benchmarks/smoothness_sweep.py --quick          # a smoke run of the script (under a minute)
"""

from __future__ import annotations

import argparse
import time

import torch

import regkit
from regkit import metrics, spatial
from regkit.data import collate_pairs, mnist_pairs
from regkit.experiments.provenance import collect, write_json
from regkit.models.voxelmorph import VoxelMorph
from regkit.train import RegistrationObjective, TrainConfig, Trainer

WEIGHTS = (0.0, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
"""Weights of the diffusion term (images in [0, 1], displacements in pixels, MSE similarity)."""

EXAMPLES = 2


def settings(profile: str) -> dict:
    return regkit.by_profile(
        quick=dict(train=1024, test=64, epochs=5, batch_size=32, lr=5e-3),
        full=dict(train=None, test=None, epochs=30, batch_size=64, lr=1e-3),
        which=profile,
    )


def run(profile: str, seed: int = 0, device=None, smoke: bool = False) -> dict:
    """Train one VoxelMorph per weight; ``smoke`` shrinks the run to two weights, 128 pairs and one
    epoch (a check that the script works, not a result)."""
    device = torch.device(device) if device is not None else regkit.default_device()
    s = settings(profile)
    weights = WEIGHTS
    if smoke:
        s = {**s, "train": 128, "test": 16, "epochs": 1}
        weights = (WEIGHTS[0], WEIGHTS[-1])
    train = mnist_pairs("train", seed=seed, limit=s["train"])
    test = mnist_pairs("test", seed=seed, limit=s["test"])
    batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in collate_pairs([test[i] for i in range(len(test))]).items()}
    rows = []
    for weight in weights:
        regkit.seed_everything(seed)
        cfg = TrainConfig(epochs=s["epochs"], batch_size=s["batch_size"], lr=s["lr"], seed=seed, progress=False,
                          log=False, metrics=("mse",))
        trainer = Trainer(VoxelMorph(), RegistrationObjective("mse", "diffusion", weight), cfg, device=device)
        trainer.fit(train)
        res = regkit.register(batch["moving"], batch["fixed"], method="voxelmorph", model=trainer.model)
        det = spatial.jacobian_determinant(res.disp)
        rows.append({
            "weight": weight,
            "mse": float(metrics.mse(res.warped, batch["fixed"]).mean()),
            "ssim": float(metrics.ssim(res.warped, batch["fixed"]).mean()),
            "folding": float(metrics.folding_fraction(res.disp).mean()),
            "jac_mean": float(det.mean()),
            "jac_min": float(det.min()),
            "disp_mean_px": float(res.disp.norm(dim=1).mean()),
            "final_train_loss": trainer.history[-1]["loss"],
            "examples": {
                "warped": res.warped[:EXAMPLES, 0].round(decimals=2).tolist(),
                "disp": res.disp[:EXAMPLES].round(decimals=2).tolist(),
            },
        })
        print(f"weight {weight:g}: mse {rows[-1]['mse']:.4f} folding {rows[-1]['folding']:.4f}", flush=True)
    return {
        "experiment": "smoothness_sweep",
        "model": "voxelmorph", "similarity": "mse", "smoothness": "diffusion",
        "settings": s, "weights": list(weights),
        "examples": {
            "moving": batch["moving"][:EXAMPLES, 0].round(decimals=2).tolist(),
            "fixed": batch["fixed"][:EXAMPLES, 0].round(decimals=2).tolist(),
        },
        "rows": rows,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/smoothness_sweep.json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="two weights, 128 pairs, one epoch; print only")
    args = parser.parse_args(argv)
    profile = regkit.profile()
    t0 = time.perf_counter()
    data = run(profile, args.seed, smoke=args.quick)
    if args.quick:
        print(f"smoke run done in {time.perf_counter() - t0:.0f} s (not written)")
        return
    data["provenance"] = collect(table="smoothness_sweep", profile=profile, seed=args.seed,
                                 wall_time_s=time.perf_counter() - t0,
                                 command="python benchmarks/smoothness_sweep.py")
    write_json(data, args.out, indent=None)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
