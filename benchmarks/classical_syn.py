"""Benchmark: regkit's SyN against ANTsPy SyNOnly on seeded pairs with a known field.

Run from the repository root::

    python benchmarks/classical_syn.py            # prints the table, writes results/classical_syn_benchmark.json
    python benchmarks/classical_syn.py --no-write # prints only
    python benchmarks/classical_syn.py --quick    # 128 px, one round, no FIRE pairs, prints only (under a minute)

Pairs (256 x 256, grey): scikit-image's real images (``retina`` photograph, ``camera``,
``brick``) as moving images, each pulled onto the fixed grid by a seeded smooth diffeomorphic
field (``regkit.spatial.random_smooth_disp``, peak about 6 px), so the field is the ground truth;
plus FIRE-Reg-256 proxy test pairs (``regkit.data.fire_reg256("test", source="proxy")``), whose
exact field is known too (they also carry an affine part and an appearance change, which SyN
alone is not built for).

Per pair and method: mean end-point error against the true field (px), MSE of the warped image on
the valid region (fixed pixels whose sample points lie inside the image under both the true and
the estimated field), folding fraction, mean inverse-consistency error (px, see
:func:`regkit.classical.syn.inverse_consistency_error`) and wall time. Timing: the two methods are
run alternately on the same pair in one process (``repeats`` rounds) and the ratio is the median
of the per-round ratios ours / ANTsPy; both get one thread (``torch.set_num_threads(1)`` and
``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=1``) so that neither is favoured by, or suffers from,
cores shared with other work.

``syn_rows()`` returns the rows; ``print_rows()`` prints them. A combined classical benchmark can
import them: ``from classical_syn import syn_rows, print_rows`` (this folder on ``sys.path``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")  # before ANTs/ITK start their threads

import numpy as np  # noqa: E402
import torch  # noqa: E402

import regkit  # noqa: E402
from regkit import metrics, spatial  # noqa: E402
from regkit.classical.syn import inverse_consistency_error  # noqa: E402

IMAGES = ("retina", "camera", "brick")
RESULTS = "results/classical_syn_benchmark.json"


def _image(name: str, size: int) -> torch.Tensor:
    from skimage import color, data, transform

    img = getattr(data, name)()
    if img.ndim == 3:
        img = color.rgb2gray(img[..., :3])
    img = transform.resize(img.astype(np.float64), (size, size), anti_aliasing=True)
    img = (img - img.min()) / (img.max() - img.min())
    return torch.from_numpy(img).float()[None, None]


def make_pairs(size: int = 256, seed: int = 0, max_disp: float = 6.0, fire: int = 3) -> list[dict]:
    """Seeded pairs ``{"name", "moving", "fixed", "disp"}`` (``N=1`` tensors) with the true pull field."""
    pairs = []
    g = torch.Generator().manual_seed(seed)
    for name in IMAGES:
        moving = _image(name, size)
        u = spatial.random_smooth_disp(1, (size, size), max_disp=max_disp, generator=g)
        pairs.append({"name": f"{name} (smooth field)", "moving": moving, "fixed": spatial.warp(moving, u), "disp": u})
    if fire:
        try:
            from regkit.data import fire_reg256
        except ImportError:  # the data module is not there yet
            fire = 0
        else:
            ds = fire_reg256("test", source="proxy", seed=seed, limit=fire)
            for i in range(len(ds)):
                it = ds[i]
                pairs.append({"name": f"FIRE proxy test {i}", "moving": it["moving"][None], "fixed": it["fixed"][None],
                              "disp": it["disp"][None]})
    return pairs


def _scores(disp, inverse, pair) -> dict:
    u, moving, fixed = pair["disp"], pair["moving"], pair["fixed"]
    valid = spatial.inside_mask(u) & spatial.inside_mask(disp)
    return {
        "epe": float((disp - u).norm(dim=1).mean()),
        "mse_valid": float(metrics.mse(spatial.warp(moving, disp), fixed, valid)),
        "folding": float(metrics.folding_fraction(disp)),
        "inverse_consistency": float(inverse_consistency_error(disp, inverse)) if inverse is not None else None,
    }


def syn_rows(pairs: list[dict] | None = None, repeats: int = 3, syn_params: dict | None = None,
             ants_params: dict | None = None) -> list[dict]:
    """Run both methods on every pair; one row per (pair, method) plus the time ratio per pair."""
    pairs = make_pairs() if pairs is None else pairs
    syn_params, ants_params = dict(syn_params or {}), dict(ants_params or {})
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for pair in pairs:
                m, f = pair["moving"], pair["fixed"]
                t_ours, t_ants = [], []
                for _ in range(repeats):  # interleaved: ours, then ANTsPy, on the same pair
                    t0 = time.perf_counter()
                    ours = regkit.register(m, f, method="syn", **syn_params)
                    t1 = time.perf_counter()
                    ref = regkit.register(m, f, method="ants_syn", return_inverse=True, **ants_params)
                    t2 = time.perf_counter()
                    t_ours.append(t1 - t0)
                    t_ants.append(t2 - t1)
                ratio = statistics.median(a / b for a, b in zip(t_ours, t_ants))
                unreg = _scores(torch.zeros_like(pair["disp"]), None, pair)
                for method, res, inv, ts in (("syn", ours, ours.extras["inverse"], t_ours),
                                             ("ants_syn", ref, ref.extras["inverse_disp"], t_ants)):
                    rows.append({"pair": pair["name"], "method": method, **_scores(res.disp, inv, pair),
                                 "unregistered_epe": unreg["epe"], "unregistered_mse_valid": unreg["mse_valid"],
                                 "seconds": statistics.median(ts), "time_ratio_syn_over_ants": ratio})
    finally:
        torch.set_num_threads(saved)
    return rows


def summarise(rows: list[dict]) -> dict:
    """Means over the smooth-field pairs and over the FIRE proxy pairs, per method, and the time ratios."""
    out = {}
    for group, keep in (("smooth_field", lambda r: "smooth field" in r["pair"]), ("fire_proxy", lambda r: "FIRE" in r["pair"])):
        sel = [r for r in rows if keep(r)]
        if not sel:
            continue
        out[group] = {}
        for method in ("syn", "ants_syn"):
            rs = [r for r in sel if r["method"] == method]
            out[group][method] = {k: float(np.mean([r[k] for r in rs]))
                                  for k in ("epe", "mse_valid", "folding", "inverse_consistency", "seconds")}
        out[group]["unregistered_epe"] = float(np.mean([r["unregistered_epe"] for r in sel if r["method"] == "syn"]))
        out[group]["time_ratio_syn_over_ants"] = float(np.median([r["time_ratio_syn_over_ants"] for r in sel
                                                                  if r["method"] == "syn"]))
    return out


def print_rows(rows: list[dict], file=sys.stdout) -> None:
    """Print the rows as a plain table, then the summary."""
    head = f"{'pair':26s} {'method':9s} {'EPE px':>7s} {'MSE valid':>10s} {'folding':>8s} {'IC px':>7s} {'s':>6s} {'ours/ANTs':>9s}"
    print(head, file=file)
    for r in rows:
        ic = "-" if r["inverse_consistency"] is None else f"{r['inverse_consistency']:.4f}"
        print(f"{r['pair']:26s} {r['method']:9s} {r['epe']:7.3f} {r['mse_valid']:10.5f} {r['folding']:8.4f} {ic:>7s} "
              f"{r['seconds']:6.2f} {r['time_ratio_syn_over_ants']:9.2f}", file=file)
    for group, s in summarise(rows).items():
        print(f"\nmean over {group} pairs (unregistered EPE {s['unregistered_epe']:.3f} px); median time ratio "
              f"syn/ANTsPy {s['time_ratio_syn_over_ants']:.2f}", file=file)
        for method in ("syn", "ants_syn"):
            v = s[method]
            print(f"  {method:9s} EPE {v['epe']:.3f}  MSE {v['mse_valid']:.5f}  folding {v['folding']:.4f}  "
                  f"IC {v['inverse_consistency']:.4f}  {v['seconds']:.2f} s", file=file)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fire", type=int, default=3, help="number of FIRE proxy test pairs (0: none)")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--quick", action="store_true", help="128 px, one round, no FIRE pairs; print only")
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.repeats, args.fire, args.no_write = 128, 1, 0, True
    regkit.seed_everything(args.seed)
    from _bench import machine

    info = machine()
    start = time.perf_counter()
    pairs = make_pairs(args.size, args.seed, fire=args.fire)
    rows = syn_rows(pairs, repeats=args.repeats)
    wall = time.perf_counter() - start
    print_rows(rows)
    if not args.no_write:
        import ants

        from regkit.experiments import provenance

        prov = provenance.collect(table="classical-syn-benchmark", profile="full", seed=args.seed, wall_time_s=wall,
                                  device="cpu", command="python benchmarks/classical_syn.py " + " ".join(argv or sys.argv[1:]))
        prov["versions"]["antspyx"] = getattr(ants, "__version__", None)
        prov["threads"] = {"torch": 1, "itk": int(os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"])}
        from _bench import load_average, machine

        prov["machine"] = {**info, "load_average_after": load_average()}
        record = {
            "what": "regkit syn vs ANTsPy SyNOnly (ants_syn wrapper defaults: Mattes MI, 40x20x0) on seeded pairs "
                    "with a known field",
            "size": args.size, "repeats": args.repeats,
            "syn_params": "defaults", "ants_params": "defaults",
            "summary": summarise(rows), "rows": rows, "provenance": prov,
        }
        path = provenance.write_json(record, RESULTS)
        print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
