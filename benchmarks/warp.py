"""Benchmark: ``regkit.spatial.warp`` (and the fields built on it) against a bare ``grid_sample``.

The reference is one ``torch.nn.functional.grid_sample`` call (bilinear, border padding,
``align_corners=True``) on a normalised grid built beforehand, in the same dtype: what a warp
costs if nothing but the sampling is paid for. ``warp`` itself builds that grid from the field
(cached identity grid), checks its inputs and, on the CPU, works in cache-sized chunks.
Figures, per case: the time ratio ``warp / grid_sample`` (median of interleaved rounds), the
same for ``warp(check=False)`` (regkit's inner loops), and the largest difference between the
two outputs (they sample the same points, so it is 0 up to the grid's rounding). Accuracy:
the largest error of an identity and of an integer-shift warp (should be below 1e-5).

Target (issue): 64 x 1 x 256 x 256 float32 with a random field within 1.5x of grid_sample, on
one CPU thread.

Usage::

    python benchmarks/warp.py            # the cases below; writes results/warp_benchmark.json
    python benchmarks/warp.py --quick    # fewer repeats (under a minute), prints only
    python benchmarks/warp.py --cuda-only --out results/gpu/warp_benchmark.json   # only the CUDA cases
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from _bench import add_cuda_only, devices, interleaved, machine, one_thread, ratio, ratio_of_minimums, seconds, write

#: (batch, channels, size, dtype) on the CPU; the first is the issue's target case
CPU_CASES = [(64, 1, 256, torch.float32), (8, 1, 256, torch.float32), (32, 1, 32, torch.float32),
             (8, 2, 64, torch.float32), (8, 1, 256, torch.float64)]
CUDA_CASES = [(64, 1, 256, torch.float32), (256, 1, 256, torch.float32), (32, 1, 32, torch.float32),
              (64, 1, 256, torch.float16)]


def case(n: int, c: int, size: int, dtype, device, repeats: int) -> dict:
    from regkit import spatial

    g = torch.Generator().manual_seed(0)
    img = torch.rand(n, c, size, size, generator=g).to(device, dtype)
    disp = (3 * torch.randn(n, 2, size, size, generator=g)).to(device, dtype)
    # the reference's grid, built once outside the timing (float32 at least, as warp samples)
    sdtype = torch.promote_types(dtype, torch.float32)
    grid = spatial._grid_of(disp.to(sdtype), size, size).contiguous()
    img_s = img.to(sdtype)

    def bare():
        return F.grid_sample(img_s, grid, mode="bilinear", padding_mode="border", align_corners=True)

    fns = {
        "grid_sample": bare,
        "warp": lambda: spatial.warp(img, disp),
        "warp_unchecked": lambda: spatial.warp(img, disp, check=False),
    }
    times = interleaved(fns, repeats, device)
    diff = float((spatial.warp(img, disp).to(sdtype) - bare()).abs().max())
    # exactness: identity and an integer shift (interior) of a random image
    zero = torch.zeros_like(disp)
    ident = float((spatial.warp(img, zero) - img).abs().max())
    shift = zero.clone()
    shift[:, 0], shift[:, 1] = 3, -2
    rolled = torch.roll(img, shifts=(2, -3), dims=(2, 3))
    m = 4
    integer = float((spatial.warp(img, shift) - rolled)[..., m:-m, m:-m].abs().max())
    return {
        "batch": n, "channels": c, "size": size, "dtype": str(dtype).replace("torch.", ""), "device": str(device),
        "seconds": {k: seconds(v) for k, v in times.items()},
        "time_ratio_warp_over_grid_sample": ratio(times, "warp", "grid_sample"),
        "time_ratio_unchecked_over_grid_sample": ratio(times, "warp_unchecked", "grid_sample"),
        "time_ratio_of_minimums_warp_over_grid_sample": ratio_of_minimums(times, "warp", "grid_sample"),
        "max_abs_diff_warp_vs_grid_sample": diff,
        "identity_max_error": ident,
        "integer_shift_max_error": integer,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="3 repeats and the first two cases; print, do not write")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--out", default=None, help="results file (default results/warp_benchmark.json)")
    add_cuda_only(p)
    args = p.parse_args(argv)
    one_thread()
    repeats = 3 if args.quick else args.repeats
    start = time.perf_counter()
    info = machine()
    rows = []
    plan = [(c, d) for d in devices(args.cuda_only) for c in (CPU_CASES if d == "cpu" else CUDA_CASES)]
    if args.quick:
        plan = plan[:2]
    print(f"{'device':6s} {'N x C x size':>16s} {'dtype':8s} {'grid_sample ms':>15s} {'warp ms':>9s} "
          f"{'warp/gs':>8s} {'(of mins)':>9s} {'unchecked/gs':>12s} {'identity err':>12s} {'shift err':>10s}")
    for (n, c, size, dtype), device in plan:
        row = case(n, c, size, dtype, device, repeats)
        rows.append(row)
        s = row["seconds"]
        print(f"{device:6s} {f'{n} x {c} x {size}':>16s} {row['dtype']:8s} {1e3 * s['grid_sample']['median']:15.2f} "
              f"{1e3 * s['warp']['median']:9.2f} {row['time_ratio_warp_over_grid_sample']:8.2f} "
              f"{row['time_ratio_of_minimums_warp_over_grid_sample']:9.2f} "
              f"{row['time_ratio_unchecked_over_grid_sample']:12.2f} {row['identity_max_error']:12.1e} "
              f"{row['integer_shift_max_error']:10.1e}")
    target = rows[0]["time_ratio_warp_over_grid_sample"]
    print(f"target case 64 x 1 x 256 float32 on the {rows[0]['device'].upper()}: warp / grid_sample = {target:.2f} "
          f"(median of rounds), {rows[0]['time_ratio_of_minimums_warp_over_grid_sample']:.2f} (of the fastest runs); "
          "goal <= 1.5")
    if args.quick:
        return 0
    record = {
        "what": "regkit.spatial.warp against one bare grid_sample call on a prebuilt grid, same process, "
                "interleaved; random fields of 3 px standard deviation",
        "target": {"case": f"{rows[0]['device']} 64 x 1 x 256 float32", "time_ratio_goal": 1.5, "time_ratio": target,
                   "met": target <= 1.5},
        "rows": rows, "machine": info,
    }
    path = write("warp", record, profile="full", seed=0, wall=time.perf_counter() - start, out=args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
