"""``python -m regkit``: run reproduced tables end to end and write ``results/<table>.json``.

Usage
-----
::

    python -m regkit list
    python -m regkit reproduce air-table1 --profile quick
    python -m regkit reproduce gpereg-table1 --profile cpu --data-root data --out results
    python -m regkit reproduce --all --profile full

The tables are the modules of :mod:`regkit.experiments.tables` (its ``TABLES`` registry); each
``reproduce(profile, seed, device, data_root)`` returns a JSON-able dict, to which the command adds
a ``provenance`` block (:mod:`regkit.experiments.provenance`) before writing
``<out>/<table>.json`` atomically. The profile is exported as ``REGKIT_PROFILE`` for the duration
of the run, so code that calls :func:`regkit.by_profile` follows it. Arguments are checked before
anything runs: the output folder must be writable, the device must exist, the data folder must
exist. With ``--all`` every table runs in turn and each file is written as soon as its table
finishes, so a run stopped early keeps what finished.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from ..runtime import PROFILES, seed_everything
from . import provenance, tables

__all__ = ["reproduce", "check_out_dir", "check_device", "main"]


def check_out_dir(out) -> Path:
    """The output folder, created if needed; ``ValueError`` if it is a file or not writable."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"out must be a folder, but {str(path)!r} is a file")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".tmp-check-"):
            pass
    except OSError as err:
        raise ValueError(f"out folder {str(path)!r} is not writable: {err.strerror or err}") from None
    return path


def check_device(device) -> torch.device:
    """A usable torch device (``None``: cuda when available, else cpu); ``ValueError`` otherwise."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda:0', got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asks for CUDA, but no CUDA device is available here")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r} does not exist: {torch.cuda.device_count()} CUDA device(s)")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be cpu, cuda or mps, got {device!r}")
    return dev


def reproduce(name: str, profile: str = "quick", seed: int = 0, out: os.PathLike | str = "results",
              device: str | None = None, data_root=None, command: str | None = None) -> Path:
    """Run the table ``name`` in ``profile`` and write ``<out>/<name>.json``; return its path.

    Parameters
    ----------
    name : str
        One of :func:`regkit.experiments.tables.names`.
    profile : {"quick", "cpu", "full"}
    seed : int
    out : path
        Folder of the results file (created; must be writable).
    device : str, optional
    data_root : path, optional
        Folder holding real data sets (else ``$REGKIT_DATA_ROOT``, else the offline data).
    command : str, optional
        The command line, recorded in the provenance.

    Returns
    -------
    Path of the written file.
    """
    module = tables.get(name)
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    out = check_out_dir(out)
    dev = check_device(device)
    root = tables.base.data_root(data_root)
    revision = provenance.git_revision()  # the code that runs, read before it runs
    previous = os.environ.get("REGKIT_PROFILE")
    os.environ["REGKIT_PROFILE"] = profile
    try:
        seed_everything(seed)
        start = time.perf_counter()
        body = module.reproduce(profile=profile, seed=seed, device=dev, data_root=root)
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
                                         command=command, revision=revision),
    }
    return provenance.write_json(record, out / f"{name}.json")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m regkit", description="Reproduce the book's tables.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the tables that can be reproduced")
    rep = sub.add_parser("reproduce", help="run tables end to end and write <out>/<table>.json")
    rep.add_argument("table", nargs="?", help="table name (see `python -m regkit list`)")
    rep.add_argument("--all", action="store_true", help="run every table in turn")
    rep.add_argument("--profile", choices=PROFILES, default="quick",
                     help="quick: a smoke run in minutes; cpu: reduced-size models trained until they "
                          "converge on a CPU; full: the paper's protocol (GPU)")
    rep.add_argument("--seed", type=int, default=0, help="seed of the data split, the models and the training")
    rep.add_argument("--out", default="results", help="folder of the results files (default: results)")
    rep.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    rep.add_argument("--data-root", default=None,
                     help="folder with real data sets (FIRE, MNIST); default $REGKIT_DATA_ROOT, else offline data")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "list":
        for name in tables.names():
            print(f"{name:26s} {tables.get(name).SUMMARY}")
        return 0
    if args.all == (args.table is not None):
        parser.error("name one table, or pass --all")
    names = tables.names() if args.all else [args.table]
    if args.table is not None and args.table not in tables.TABLES:
        parser.error(f"table must be one of {tables.names()}, got {args.table!r}")
    if args.seed < 0:
        parser.error(f"--seed must be a non-negative integer, got {args.seed}")
    try:
        check_out_dir(args.out)
        check_device(args.device)
        tables.base.data_root(args.data_root)
    except ValueError as err:
        parser.error(str(err))
    argv = sys.argv[1:] if argv is None else argv
    command = " ".join(["python -m regkit", *argv])
    for name in names:
        path = reproduce(name, profile=args.profile, seed=args.seed, out=args.out, device=args.device,
                         data_root=args.data_root, command=command)
        print(f"wrote {path}")
    return 0
