"""Cross-check regkit's classical methods against their reference implementations.

For each (ours, reference) pair of methods and each data set with a known ground-truth field,
both methods register the same pairs, interleaved pair by pair in one process, and we report:

- EPE: mean end-point error (pixels) of the field against the truth, over the valid region
  (fixed pixels whose true sample point lies inside the moving image);
- MSE: mean squared intensity error of the warped moving image against the fixed one, over the
  same region;
- folding: fraction of pixels with a non-positive Jacobian determinant;
- time ratio: our seconds / the reference's seconds, summed over the pairs (ratios, because the
  CPU is shared and absolute times drift).

Data sets (all seeded, 256x256):
  smooth      real scikit-image pictures (retina, camera, brick, moon), fixed = moving warped by
              a random smooth diffeomorphic field (max 6 px)
  affine      the same pictures under random affines (rotation 15 deg, scale 10%, shear 5 deg,
              translation 10 px)
  fire_proxy  the FIRE-Reg-256 offline proxy test split (semi-rigid maps up to ~60 px and an
              appearance shift), with its exact field

Threads: both sides get one CPU thread (``torch.set_num_threads(1)``,
``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=1``), so the ratio compares the algorithms rather than
how well each copes with a busy machine. With CUDA, the batched throughput of our methods on
the GPU is also measured against the reference's one-pair-at-a-time CPU rate.

Usage::

    python benchmarks/classical.py                 # profile from REGKIT_PROFILE (quick on CPU)
    python benchmarks/classical.py --pairs 8 --out results/classical_benchmark.json
    python benchmarks/classical.py --quick         # one pair per data set, print only (under a minute)
"""

from __future__ import annotations

import os

os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

import regkit  # noqa: E402
from regkit.classical.crosscheck import compare, load_dataset, verdict  # noqa: E402
from regkit.experiments.provenance import git_revision, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

#: (ours, reference, data sets, timing repeats per pair: the fastest run counts)
COMPARISONS = [
    ("sift_ransac", "cv2_affine", ("affine", "fire_proxy"), 5),
    ("horn_schunck", "skimage_tvl1", ("smooth", "fire_proxy"), 1),
    ("horn_schunck", "cv2_farneback", ("smooth", "fire_proxy"), 3),
    ("demons", "sitk_demons", ("smooth", "fire_proxy"), 1),
    ("syn", "ants_syn", ("smooth", "fire_proxy"), 1),
]

def gpu_throughput(ours: str, moving, fixed, batch: int) -> float | None:
    """Pairs per second of ``ours`` on CUDA, batches of ``batch`` (None without CUDA)."""
    if not torch.cuda.is_available():
        return None
    dev = torch.device("cuda")
    reps = (batch + moving.shape[0] - 1) // moving.shape[0]
    m = moving.repeat(reps, 1, 1, 1)[:batch].to(dev)
    f = fixed.repeat(reps, 1, 1, 1)[:batch].to(dev)
    regkit.register(m, f, method=ours)  # warm-up
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    regkit.register(m, f, method=ours)
    torch.cuda.synchronize()
    return batch / (time.perf_counter() - t0)


def _git_revision() -> str:
    rev = git_revision()
    return rev["commit"] + ("+dirty" if rev["dirty"] else "")


def provenance(seed: int, pairs: int, wall: float) -> dict:
    import ants
    import cv2
    import SimpleITK as sitk
    import skimage

    from _bench import load_average, machine

    return {
        "machine": {**machine(), "load_average_after": load_average()},
        "git_revision": _git_revision(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({platform.processor() or platform.machine()})",
        "cpu_threads": {"torch": torch.get_num_threads(), "itk": os.environ.get("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS")},
        "versions": {
            "python": platform.python_version(),
            "regkit": regkit.__version__,
            "torch": torch.__version__,
            "SimpleITK": sitk.Version_VersionString(),
            "antspyx": getattr(ants, "__version__", "unknown"),
            "scikit-image": skimage.__version__,
            "opencv": cv2.__version__,
        },
        "seed": seed,
        "pairs_per_dataset": pairs,
        "wall_seconds": wall,
        "profile": regkit.profile(),
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "python " + " ".join(sys.argv),
    }


def run(pairs: int, seed: int = 0, comparisons=COMPARISONS, gpu_batch: int = 64, log=print) -> dict:
    torch.set_num_threads(1)
    available = set(regkit.methods())
    t_start = time.perf_counter()
    data = {}
    rows = []
    for ours, ref, sets, repeats in comparisons:
        if ours not in available or ref not in available:
            log(f"skip {ours} vs {ref}: not registered")
            continue
        for ds in sets:
            if ds not in data:
                data[ds] = load_dataset(ds, pairs, seed)
            moving, fixed, true = data[ds]
            res = compare(ours, ref, moving, fixed, true, repeats=repeats)
            row = {"ours": ours, "reference": ref, "dataset": ds, "pairs": int(moving.shape[0]), "repeats": repeats,
                   "metrics": res, **verdict(res[ours], res[ref])}
            tp = gpu_throughput(ours, moving, fixed, gpu_batch)
            if tp is not None:
                row["gpu_pairs_per_second"] = tp
                row["gpu_batch"] = gpu_batch
                row["reference_cpu_pairs_per_second"] = 1.0 / res[ref]["seconds_per_pair"]
            rows.append(row)
            log(format_row(row))
    return {"rows": rows, "provenance": provenance(seed, pairs, time.perf_counter() - t_start)}


HEADER = (f"{'dataset':10s} {'ours':12s} {'reference':13s} {'EPE ours':>8s} {'EPE ref':>8s} {'MSE ours':>9s} "
          f"{'MSE ref':>9s} {'fold ours':>9s} {'fold ref':>9s} {'t ratio':>7s}")


def format_row(row: dict) -> str:
    o, r = row["metrics"][row["ours"]], row["metrics"][row["reference"]]
    line = (f"{row['dataset']:10s} {row['ours']:12s} {row['reference']:13s} {o['epe']:8.3f} {r['epe']:8.3f} "
            f"{o['mse']:9.2e} {r['mse']:9.2e} {o['folding']:9.2e} {r['folding']:9.2e} {row['time_ratio']:7.2f}")
    if "gpu_pairs_per_second" in row:
        line += f"  GPU {row['gpu_pairs_per_second']:.0f} pairs/s vs ref CPU {row['reference_cpu_pairs_per_second']:.1f}"
    return line


def table(results: dict) -> str:
    return "\n".join([HEADER] + [format_row(r) for r in results["rows"]])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=None, help="pairs per data set (default: 4 quick, 12 full)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gpu-batch", type=int, default=64)
    p.add_argument("--out", type=Path, default=ROOT / "results" / "classical_benchmark.json")
    p.add_argument("--quick", action="store_true", help="one pair per data set; print, do not write")
    args = p.parse_args(argv)
    pairs = 1 if args.quick else args.pairs or regkit.by_profile(quick=4, full=12)
    print(HEADER)
    results = run(pairs, args.seed, gpu_batch=args.gpu_batch)
    if args.quick:
        return 0
    write_json(results, args.out)
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out} "
          f"({results['provenance']['wall_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
