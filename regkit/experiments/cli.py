"""``python -m regkit``: run reproduced tables end to end and write ``results/<table>.json``.

Usage
-----
::

    python -m regkit list
    python -m regkit reproduce air-table1 --profile quick
    python -m regkit reproduce air-table1 --profile full --seed 0 --out results

A table adds itself by decorating its entry point in any module of :mod:`regkit.experiments`::

    @table("air-table1", summary="AiR paper, Table 1 (MNIST)")
    def reproduce(profile: str, seed: int, device: torch.device) -> dict: ...

The function returns a JSON-able dict (its rows, the paper's numbers, its settings); the command
adds a ``provenance`` block (:mod:`regkit.experiments.provenance`) and writes
``<out>/<table>.json`` atomically. The profile is also exported as ``REGKIT_PROFILE`` for the
duration of the run, so code that calls :func:`regkit.by_profile` follows it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..runtime import PROFILES, seed_everything
from . import provenance

__all__ = ["table", "tables", "reproduce", "main"]

# Modules of this package that are infrastructure, not tables (not imported by discovery).
_NOT_TABLES = {"cli", "provenance", "evaluate", "paper_numbers"}


@dataclass(frozen=True)
class _Table:
    name: str
    fn: Callable[..., dict]
    summary: str
    module: str


_TABLES: dict[str, _Table] = {}
_BROKEN: dict[str, str] = {}
_discovered = False


def table(name: str, *, summary: str):
    """Decorator that registers ``fn(profile, seed, device) -> dict`` as the table ``name``."""

    def add(fn):
        if name in _TABLES and _TABLES[name].fn is not fn:
            raise ValueError(f"a table named {name!r} is already registered")
        _TABLES[name] = _Table(name, fn, summary, fn.__module__)
        return fn

    return add


def _discover() -> None:
    """Import every module of :mod:`regkit.experiments` once, so that their tables register."""
    global _discovered
    if _discovered:
        return
    package = importlib.import_module(__package__)
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_") or info.name in _NOT_TABLES:
            continue
        try:
            importlib.import_module(f"{__package__}.{info.name}")
        except Exception as err:  # a broken module must not hide the other tables
            _BROKEN[info.name] = f"{type(err).__name__}: {err}"
    _discovered = True


def tables() -> dict[str, str]:
    """``{name: summary}`` of every registered table, sorted by name."""
    _discover()
    return {n: t.summary for n, t in sorted(_TABLES.items())}


def reproduce(name: str, profile: str = "quick", seed: int = 0, out: os.PathLike | str = "results",
              device: str | None = None, command: str | None = None) -> Path:
    """Run the table ``name`` in ``profile`` and write ``<out>/<name>.json``; return its path."""
    _discover()
    if name not in _TABLES:
        broken = f" (modules that failed to import: {_BROKEN})" if _BROKEN else ""
        raise ValueError(f"table must be one of {sorted(_TABLES)}, got {name!r}{broken}")
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    dev = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    previous = os.environ.get("REGKIT_PROFILE")
    os.environ["REGKIT_PROFILE"] = profile
    try:
        seed_everything(seed)
        start = time.perf_counter()
        body = _TABLES[name].fn(profile=profile, seed=seed, device=dev)
        wall = time.perf_counter() - start
    finally:
        if previous is None:
            os.environ.pop("REGKIT_PROFILE", None)
        else:
            os.environ["REGKIT_PROFILE"] = previous
    if not isinstance(body, dict):
        raise TypeError(f"table {name!r} returned {type(body).__name__}, expected a dict")
    record = {
        "table": name,
        "profile": profile,
        **body,
        "provenance": provenance.collect(table=name, profile=profile, seed=seed, wall_time_s=wall, device=dev,
                                         command=command),
    }
    return provenance.write_json(record, Path(out) / f"{name}.json")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m regkit", description="Reproduce the book's tables.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the tables that can be reproduced")
    rep = sub.add_parser("reproduce", help="run one table end to end and write <out>/<table>.json")
    rep.add_argument("table", help="table name (see `python -m regkit list`)")
    rep.add_argument("--profile", choices=PROFILES, default="quick",
                     help="quick: every code path, small data, minutes on a CPU; full: the paper's protocol (GPU)")
    rep.add_argument("--seed", type=int, default=0, help="seed of the data split, the models and the training")
    rep.add_argument("--out", default="results", help="folder of the results file (default: results)")
    rep.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "list":
        for name, summary in tables().items():
            print(f"{name:20s} {summary}")
        for module, err in _BROKEN.items():
            print(f"(module {module} could not be imported: {err})", file=sys.stderr)
        return 0
    argv = sys.argv[1:] if argv is None else argv
    if args.table not in tables():
        broken = f" (modules that failed to import: {_BROKEN})" if _BROKEN else ""
        print(f"error: table must be one of {sorted(_TABLES)}, got {args.table!r}{broken}", file=sys.stderr)
        return 2
    if args.seed < 0:
        print(f"error: --seed must be a non-negative integer, got {args.seed}", file=sys.stderr)
        return 2
    path = reproduce(args.table, profile=args.profile, seed=args.seed, out=args.out, device=args.device,
                     command=" ".join(["python -m regkit", *argv]))
    print(f"wrote {path}")
    return 0
