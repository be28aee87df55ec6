"""Shared pieces of the benchmarks: the machine record, interleaved timing, ratios, writing.

Every benchmark reports its figures as ratios against a reference run in the same process
(``ours / reference``, accuracy and time), records the machine, its load and the thread counts,
and writes ``results/<name>_benchmark.json`` through :mod:`regkit.experiments.provenance`.

Timing: the candidates are called in turn, in an order that alternates every round, so that a
change in the machine's load hits all of them alike; a time ratio is the median of the per-round
ratios. The machine's load average is recorded before and after: figures taken on a busy machine
are development figures, not figures for the record.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS")


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the platform has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def machine(device=None) -> dict:
    """What the figures depend on: device, CPU count, load, thread settings."""
    from regkit.experiments.provenance import device_name

    info = {
        "device": device_name(device),
        "cpu_count": os.cpu_count(),
        "load_average": load_average(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "thread_variables": {k: os.environ.get(k) for k in _THREAD_VARIABLES},
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info


def synchronize(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def interleaved(fns: dict, repeats: int, device="cpu", warmup: int = 1) -> dict[str, list[float]]:
    """Seconds of ``repeats`` calls of each function, called in turn (order reversed every round)."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    synchronize(device)
    times = {name: [] for name in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            synchronize(device)
            t0 = time.perf_counter()
            fns[name]()
            synchronize(device)
            times[name].append(time.perf_counter() - t0)
    return times


def ratio(times: dict[str, list[float]], ours: str, reference: str) -> float:
    """Median over the rounds of ``ours / reference``."""
    return statistics.median(a / b for a, b in zip(times[ours], times[reference]))


def ratio_of_minimums(times: dict[str, list[float]], ours: str, reference: str) -> float:
    """``min(ours) / min(reference)``: on a shared machine the fastest run is the steadiest estimate."""
    return min(times[ours]) / min(times[reference])


def seconds(ts: list[float]) -> dict:
    return {"median": statistics.median(ts), "min": min(ts), "repeats": len(ts)}


def write(name: str, record: dict, *, profile: str, seed: int, wall: float, device=None, out=None) -> Path:
    """Add provenance and the machine record, write ``results/<name>_benchmark.json`` (or ``out``)."""
    from regkit.experiments.provenance import collect, write_json

    record = dict(record)
    record["provenance"] = collect(table=f"{name}-benchmark", profile=profile, seed=seed, wall_time_s=wall,
                                   device=device, command="python " + " ".join(sys.argv))
    record["machine"] = {**record.get("machine", {}), "load_average_after": load_average()}
    path = Path(out) if out is not None else RESULTS / f"{name}_benchmark.json"
    write_json(record, path)
    return path


def add_cuda_only(parser) -> None:
    """The ``--cuda-only`` option: time only the CUDA cases (the CPU figures come from a separate CPU run)."""
    parser.add_argument("--cuda-only", action="store_true",
                        help="only the CUDA cases (for a GPU machine; the CPU figures are recorded separately)")


def devices(cuda_only: bool = False) -> list[str]:
    """The devices to time: the CPU, and CUDA where present; only CUDA with ``cuda_only``.

    >>> devices()[0]
    'cpu'
    """
    cuda = ["cuda"] if torch.cuda.is_available() else []
    if cuda_only:
        if not cuda:
            raise SystemExit("--cuda-only needs a CUDA device, and torch finds none")
        return cuda
    return ["cpu"] + cuda


def one_thread() -> None:
    """One intra-op thread for torch (and ITK, when it starts later), as the recorded figures use."""
    os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")
    torch.set_num_threads(1)
