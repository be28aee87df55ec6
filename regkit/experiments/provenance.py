"""Provenance of a results file: what ran, where, with which code, and how long it took.

Every results file written by ``python -m regkit reproduce <table>`` carries a ``provenance``
block, so that a number in the book can be traced back to the code and the machine that made it.

Example
-------
>>> p = collect(table="demo", profile="quick", seed=0, wall_time_s=1.5)
>>> sorted(p)[:4]
['command', 'created_utc', 'device', 'device_type']
>>> p["profile"], p["seed"], p["wall_time_s"]
('quick', 0, 1.5)
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from ..files import atomic_write

__all__ = ["collect", "describe", "git_revision", "device_name", "versions", "plain", "write_json", "read_json", "REPO_ROOT"]

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The folder that holds the ``regkit`` package (the repository root in a checkout)."""


def git_revision(root: os.PathLike | str = REPO_ROOT) -> dict:
    """``{"commit": <40 hex>, "dirty": bool}`` of the checkout at ``root``, or ``commit=None`` outside git.

    ``dirty`` is true when tracked files differ from the commit. Untracked files and the files
    under ``results/`` (the outputs that experiments and benchmarks write, so that the second of
    several runs would otherwise see the first one's file) are ignored.
    """
    def git(*args):
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=20, check=True).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results").strip())
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def device_name(device: torch.device | str | None = None) -> str:
    """A readable name of the device: the GPU's model, or the CPU's (with its core count)."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine() or "cpu"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu} ({torch.get_num_threads()} threads)"


def versions() -> dict:
    """Versions of Python, the platform and the libraries a result depends on."""
    from .. import __version__

    return {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "regkit": __version__,
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
    }


def collect(*, table: str, profile: str, seed: int, wall_time_s: float, device=None, command: str | None = None,
            revision: dict | None = None) -> dict:
    """The provenance block: table, profile, seed, device, threads and load, git revision (``revision``
    when read before the run, else now), versions, wall time, time stamp, command."""
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "table": table,
        "profile": profile,
        "seed": int(seed),
        "device": device_name(device),
        "device_type": torch.device(device).type if device is not None else "cpu",
        "threads": torch.get_num_threads(),
        "load_average": load,
        "git_revision": revision if revision is not None else git_revision(),
        "versions": versions(),
        "wall_time_s": round(float(wall_time_s), 3),
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": command,
    }


def describe(record: dict) -> str:
    """One line saying where a results file comes from: commit (and whether the tree was dirty),
    date, device, profile.

    >>> describe({"provenance": {"git_revision": {"commit": "532545da7ded", "dirty": False},
    ...           "created_utc": "2026-11-21T06:23:02Z", "device": "AMD EPYC (1 threads)", "profile": "cpu"}})
    'commit 532545d, 2026-11-21, AMD EPYC (1 threads), cpu profile'
    """
    prov = record.get("provenance", record) if isinstance(record, dict) else {}
    rev = prov.get("git_revision")
    commit, dirty = (rev.get("commit"), rev.get("dirty")) if isinstance(rev, dict) else (rev, None)
    parts = [f"commit {commit[:7]}" + (" (uncommitted changes)" if dirty else "") if commit else "commit not recorded"]
    created = prov.get("created_utc")
    parts.append(created[:10] if isinstance(created, str) else "date not recorded")
    if prov.get("device"):
        parts.append(str(prov["device"]))
    if prov.get("profile"):
        parts.append(f"{prov['profile']} profile")
    return ", ".join(parts)


def plain(obj, where: str = "result"):
    """``obj`` as strict-JSON data: tensors and NumPy values become numbers or lists, NaN/inf ``None``.

    Anything else that JSON cannot hold raises a ``TypeError`` naming where it sits.

    >>> plain({"a": torch.tensor([1.0, float("nan")]), "b": (np.float32(0.5),)})
    {'a': [1.0, None], 'b': [0.5]}
    """
    if isinstance(obj, torch.Tensor):
        obj = obj.detach().cpu().tolist()
    elif isinstance(obj, np.ndarray):
        obj = obj.tolist()
    elif isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, dict):
        return {str(k): plain(v, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    raise TypeError(f"{where} is a {type(obj).__name__}, which a JSON results file cannot hold")


def write_json(data: dict, path: os.PathLike | str, indent: int | None = 2) -> Path:
    """Write ``data`` as strict JSON atomically (temp file in the same folder, then rename).

    Non-finite floats become ``null``. ``indent=None`` writes one line (for bulky data files).
    """
    path = Path(path)
    text = json.dumps(plain(data), indent=indent, allow_nan=False) + "\n"
    with atomic_write(path, "w", suffix=".json") as f:
        f.write(text)
    return path


def read_json(path: os.PathLike | str) -> dict | None:
    """The results file at ``path``, or ``None`` when it does not exist."""
    path = Path(path)
    if not path.is_file():
        return None
    with open(path) as f:
        return json.load(f)
