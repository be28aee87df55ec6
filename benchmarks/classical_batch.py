"""Benchmark: pairs per second of the batched classical methods against the batch size.

Demons, Horn-Schunck and SyN register a whole batch at once (every operation is batched), so
the fixed cost of each step (Python, kernel launches) is shared by the pairs of a batch. Per
method and batch size: pairs per second (median over rounds in which every batch size is timed in
turn), the gain over one pair at a time, the batch with the most pairs/s, and the ratio to
SimpleITK's FastSymmetricForces demons (100 iterations) on one CPU thread, one pair at a time,
timed in the same process (the target on a GPU: at least 100x that rate at 256 px). Everything on
one CPU thread; with CUDA the same methods also run on the GPU with larger batches.

Usage::

    python benchmarks/classical_batch.py            # 128 and 256 px; writes results/classical_batch_benchmark.json
    python benchmarks/classical_batch.py --quick    # 128 px, batches 1, 4, 8; prints only
    python benchmarks/classical_batch.py --cuda-only --out results/gpu/classical_batch_benchmark.json   # GPU machine
"""

from __future__ import annotations

import argparse
import time

import torch

from _bench import add_cuda_only, devices, interleaved, load_average, machine, one_thread, write

METHODS = ("demons", "horn_schunck", "syn")
REFERENCE = "sitk_demons"
GAIN_GOAL = 1.2
"""The least gain in pairs/s over one pair at a time that counts as batching paying off."""


def pairs(n: int, size: int, seed: int = 0):
    from regkit import spatial
    from regkit.classical.crosscheck import scikit_images

    g = torch.Generator().manual_seed(seed)
    moving = scikit_images((size, size))[torch.arange(n) % 4]
    true = spatial.random_smooth_disp(n, (size, size), max_disp=6.0 * size / 256, generator=g)
    return moving, spatial.warp(moving, true)


def rates(size: int, batches, repeats: int, device="cpu", log=print) -> dict:
    """Pairs/s per method and batch (and the reference's one-pair CPU rate)."""
    import regkit

    out = {"size": size, "device": str(device), "batches": list(batches), "methods": {}}
    m1, f1 = pairs(1, size)
    ref_times = interleaved({REFERENCE: lambda: regkit.register(m1, f1, method=REFERENCE)}, repeats)[REFERENCE]
    ref_rate = 1.0 / sorted(ref_times)[len(ref_times) // 2]
    out["reference"] = {"method": REFERENCE, "device": "cpu", "threads": 1, "pairs_per_second": ref_rate}
    for method in METHODS:
        data = {b: tuple(t.to(device) for t in pairs(b, size)) for b in batches}
        # every batch size in each round, so that a change of the machine's load hits them all
        fns = {b: (lambda m=m, f=f: regkit.register(m, f, method=method)) for b, (m, f) in data.items()}
        times = interleaved(fns, repeats, device)
        per = {b: b / sorted(ts)[len(ts) // 2] for b, ts in times.items()}
        base = per[batches[0]]
        best = max(per, key=per.get)
        out["methods"][method] = {
            "pairs_per_second": {str(b): r for b, r in per.items()},
            "gain_over_smallest_batch": {str(b): r / base for b, r in per.items()},
            "ratio_vs_reference_cpu_rate": {str(b): r / ref_rate for b, r in per.items()},
            "best_batch": best,
            "gain_at_best_batch": per[best] / base,
            # batching pays: the best batch registers at least GAIN_GOAL x the pairs/s of one pair
            "gains_from_batching": per[best] / base >= GAIN_GOAL,
            # strictly more pairs/s at every larger batch (a plateau at large batches breaks it)
            "monotonic": all(per[b2] > per[b1] for b1, b2 in zip(batches, batches[1:])),
        }
        log(f"{device:5s} {size:4d} px {method:13s} " + "  ".join(f"b{b}: {r:7.1f}/s" for b, r in per.items())
            + f"   best b{best}: x{per[best] / base:.2f} over b{batches[0]}, "
            f"{per[best] / ref_rate:.1f}x {REFERENCE} (1 CPU thread, {ref_rate:.2f}/s)")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default=None)
    add_cuda_only(p)
    args = p.parse_args(argv)
    one_thread()
    start = time.perf_counter()
    info = machine()
    if args.quick:
        runs = [(128, (1, 4, 8), "cpu", 1)]
    else:
        runs = []
        for device in devices(args.cuda_only):
            if device == "cpu":
                runs += [(128, (1, 2, 4, 8, 16), "cpu", args.repeats), (256, (1, 2, 4, 8), "cpu", args.repeats)]
            else:
                runs += [(256, (1, 8, 64, 256), device, args.repeats)]
    rows = [rates(size, batches, repeats, device) for size, batches, device, repeats in runs]
    if args.quick:
        return 0
    record = {"what": "pairs per second of the batched classical methods against the batch size, one CPU thread "
                      "(and CUDA when present), with SimpleITK demons' one-pair CPU rate as the reference",
              "rows": rows, "machine": info}
    path = write("classical_batch", record, profile="full", seed=0, wall=time.perf_counter() - start, out=args.out)
    print(f"wrote {path} (load average at the end {load_average()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
