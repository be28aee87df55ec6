"""GPEReg-Net paper, Table 2: parameters, batch-1 latency and throughput of the learned models.

Parameters are always those of the paper-size models. Latency is the median of repeated timed
calls at batch 1 (after warm-up; CUDA events on GPUs, ``perf_counter`` on CPUs), in eval mode
without gradients; FPS is 1000 / latency. Throughput is pairs per second at the best of a few
batch sizes. The forward pass's floating-point operations are counted once
(``torch.utils.flop_counter``), so that a GPU run can report the FLOP rate it reaches.

``python -m regkit reproduce gpereg-table2 --profile quick|cpu|full``
"""

from __future__ import annotations

import time

import torch
from torch import nn

from ... import papers
from ...models.blocks import count_parameters
from ..provenance import device_name
from .base import TableRun
from .gpereg_setup import LABELS, LEARNED, build_model, profile_note, settings

__all__ = ["NAME", "SUMMARY", "settings", "build_model", "measure_latency", "measure_throughput",
           "count_flops", "run", "reproduce", "assess"]

THROUGHPUT_BATCHES = {"quick": (1, 4), "cpu": (1, 4, 16), "full": (8, 32, 128, 512)}
"""Batch sizes tried for throughput per profile (a CPU cannot hold 512 pairs at 256 px)."""
THROUGHPUT_REPEATS = {"quick": 3, "cpu": 5, "full": 10}

NAME = "gpereg-table2"
SUMMARY = "GPEReg-Net paper, Table 2: parameters, latency and throughput on this device"


def _inputs(batch: int, size: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    m = torch.rand(batch, 1, size, size, generator=g).to(device)
    f = torch.rand(batch, 1, size, size, generator=g).to(device)
    return m, f


def _timer(device: torch.device):
    """``elapsed_ms(fn)``: one timed call (CUDA events on GPUs)."""
    if device.type == "cuda":
        def elapsed(fn):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            return start.elapsed_time(end)
    else:
        def elapsed(fn):
            t0 = time.perf_counter()
            fn()
            return (time.perf_counter() - t0) * 1000.0
    return elapsed


@torch.no_grad()
def measure_latency(model: nn.Module, size: int = 256, warmup: int = 20, repeats: int = 200, device="cpu") -> dict:
    """Median latency (ms) of one ``model(moving, fixed)`` call at batch 1, eval mode, no gradients.

    Returns ``{"latency_ms", "fps", "mean_ms", "min_ms", "max_ms", "repeats"}``.
    """
    device = torch.device(device)
    model = model.to(device).eval()
    m, f = _inputs(1, size, device)
    elapsed = _timer(device)
    for _ in range(warmup):
        model(m, f)
    times = torch.tensor([elapsed(lambda: model(m, f)) for _ in range(repeats)], dtype=torch.float64)
    med = float(times.median())
    return {"latency_ms": med, "fps": 1000.0 / med, "mean_ms": float(times.mean()),
            "min_ms": float(times.min()), "max_ms": float(times.max()), "repeats": repeats}


@torch.no_grad()
def measure_throughput(model: nn.Module, size: int = 256, batches=(8, 32, 128), repeats: int = 10,
                       device="cpu") -> dict:
    """Pairs per second at each batch size (median of ``repeats`` calls after one warm-up call),
    and the best. Batch sizes that run out of memory are skipped."""
    device = torch.device(device)
    model = model.to(device).eval()
    elapsed = _timer(device)
    per_batch = {}
    for n in batches:
        try:
            m, f = _inputs(n, size, device)
            model(m, f)
            ms = torch.tensor([elapsed(lambda: model(m, f)) for _ in range(repeats)], dtype=torch.float64).median()
            per_batch[str(n)] = n * 1000.0 / float(ms)
        except torch.OutOfMemoryError:
            if device.type == "cuda":
                torch.cuda.empty_cache()
            break
    best = max(per_batch, key=per_batch.get) if per_batch else None
    return {"pairs_per_s": per_batch, "best_batch": int(best) if best else None,
            "best_pairs_per_s": per_batch.get(best) if best else None}


@torch.no_grad()
def count_flops(model: nn.Module, size: int = 256) -> int:
    """Floating-point operations of one forward pass at batch 1 (``torch.utils.flop_counter``)."""
    from torch.utils.flop_counter import FlopCounterMode

    device = next(model.parameters()).device
    m, f = _inputs(1, size, device)
    was = model.training
    model.eval()
    with FlopCounterMode(display=False) as counter:
        model(m, f)
    model.train(was)
    return int(counter.get_total_flops())


def run(profile: str = "quick", seed: int = 0, device="cpu", data_root=None, progress: bool | None = False) -> TableRun:
    """Parameters (paper-size models, always), FLOPs, latency and throughput on ``device``."""
    s = settings(profile)
    lat = s["latency"]
    rows = {}
    for name in LEARNED:
        model = build_model(name, "full", seed)  # the paper-size model, whatever the profile
        timing = measure_latency(model, lat["size"], lat["warmup"], lat["repeats"], device)
        thr = measure_throughput(model, lat["size"], THROUGHPUT_BATCHES[profile], repeats=THROUGHPUT_REPEATS[profile],
                                 device=device)
        flops = count_flops(model.to(device), lat["size"])
        rows[name] = {"label": LABELS[name], "params": count_parameters(model),
                      "params_m": round(count_parameters(model) / 1e6, 3), "flops": flops, **timing, **thr,
                      "achieved_tflops_batched": (flops * thr["best_pairs_per_s"] / 1e12
                                                  if thr["best_pairs_per_s"] else None)}
    results = {"device": device_name(device), "size": lat["size"], "rows": rows}
    return TableRun(NAME, profile, seed, results, settings=s)


def reproduce(profile: str, seed: int, device, data_root=None) -> dict:
    """The body of ``results/gpereg-table2.json`` (the CLI adds provenance)."""
    result = run(profile, seed, device)
    return {
        "description": "Parameters of the paper-size models; FLOPs per pair; batch-1 latency (median ms) and FPS; "
                       "batched throughput (pairs/s) on the device named",
        **result.results,
        "paper": papers.GPEREG_TABLE2.values_by_method(),
        "paper_device": "NVIDIA RTX 5090",
        "settings": result.settings,
        "note": profile_note(profile) + "; Table 2 always measures the paper-size models",
    }


def assess(record: dict) -> dict:
    """Parameters within 5 % of the paper's for every model; timings are only comparable on the
    paper's GPU (an RTX 5090), so they are reported, not judged."""
    from .base import verdict

    checks = {}
    for name, row in record["rows"].items():
        paper = record["paper"][name]["params_m"]
        checks[f"{row['label']} {row['params_m']:.2f} M parameters vs {paper:.2f} M"] = abs(row["params_m"] / paper - 1) <= 0.05
    out = verdict(checks, record)
    out["reason"] += f". Timings on {record['device']}, not the paper's RTX 5090"
    return out
