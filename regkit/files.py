"""Files written safely: atomic replacement, stale temporary files, SHA-256 digests.

The one place for "write to a temp file in the same folder, then rename": checkpoints
(:mod:`regkit.checkpoint`), downloads (:mod:`regkit.data.download`) and results files
(:mod:`regkit.experiments.provenance`) all write through :func:`atomic_write`, so a crash
mid-write leaves the previous file intact, and the temp files a killed process leaves behind are
removed by the next write to the same folder.

Example
-------
>>> import os, tempfile
>>> with tempfile.TemporaryDirectory() as d:
...     with atomic_write(os.path.join(d, "a.txt"), "w") as f:
...         _ = f.write("hi")
...     open(os.path.join(d, "a.txt")).read(), sorted(os.listdir(d))
('hi', ['a.txt'])
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import tempfile
import time
from pathlib import Path

__all__ = ["atomic_write", "remove_stale_temps", "sha256sum", "TEMP_PREFIX", "STALE_AFTER_S"]

TEMP_PREFIX = ".tmp-"
"""Prefix of every temp file regkit writes next to its destination."""
STALE_AFTER_S = 3600.0
"""A temp file older than this (seconds) is a leftover of a killed write, not a write in progress."""
_CHUNK = 1 << 20


def remove_stale_temps(folder, older_than_s: float = STALE_AFTER_S) -> list[Path]:
    """Remove regkit's temp files (``.tmp-*``) older than ``older_than_s`` seconds in ``folder``.

    Returns the removed paths. Files that vanish meanwhile are skipped.
    """
    removed = []
    now = time.time()
    for p in glob.glob(os.path.join(os.fspath(folder), glob.escape(TEMP_PREFIX) + "*")):
        try:
            if now - os.path.getmtime(p) > older_than_s:
                os.remove(p)
                removed.append(Path(p))
        except OSError:
            pass
    return removed


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb", suffix: str = ".part", perms: int | None = 0o644):
    """Open a temp file beside ``path`` for writing; on success ``fsync`` and rename it to ``path``.

    Parameters
    ----------
    path : str or PathLike
        Destination; its folder is created.
    mode : {"wb", "w"}
    suffix : str
        Suffix of the temp file (its prefix is :data:`TEMP_PREFIX`).
    perms : int or None
        Permissions of the final file (``mkstemp`` makes it private); ``None`` keeps them.

    Yields
    ------
    The open file object. If the block raises, the temp file is removed and ``path`` untouched.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=suffix, dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if perms is not None:
            os.chmod(tmp, perms)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def sha256sum(path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks.

    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = open(os.path.join(d, "a"), "wb").write(b"hi")
    ...     sha256sum(os.path.join(d, "a"))[:16]
    '8f434346648f6b96'
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()
